package h2server

// Header blocks: a HEADERS frame and its CONTINUATIONs, decoded into the
// connection's own MetaHeadersFrame.
//
// x/net's Framer can do this itself (Framer.ReadMetaHeaders), but it
// allocates a MetaHeadersFrame, a closure with its captured state and a
// field slice grown from nothing for every block: nine allocations per
// request, a third of the server's. readHeaderBlock is its readMetaFrame
// with that state kept in the connection and reused, and the same rules:
// the header-list limit (a block past it is Truncated and answered 431),
// the refusal of fragments far past it and of CONTINUATIONs after an
// invalid field, field name and value validation, pseudo-fields first,
// no duplicate or unknown pseudo-field. The HPACK decoding itself stays
// x/net's hpack.Decoder.

import (
	"errors"
	"strings"

	"gatehouse/internal/httpsyntax"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

var (
	errInvalidFieldName  = errors.New("invalid header field name")
	errInvalidFieldValue = errors.New("invalid header field value")
	errPseudoAfterField  = errors.New("pseudo header field after regular")
	errUnknownPseudo     = errors.New("invalid pseudo-header")
	errDuplicatePseudo   = errors.New("duplicate pseudo-header")
	errMixedPseudo       = errors.New("mix of request and response pseudo headers")
)

// blockState is the decoding state of the header block being read. It is
// owned by the reading goroutine and reset for every block.
type blockState struct {
	meta       http2.MetaHeadersFrame // what readHeaderBlock returns; Fields reuses fields
	fields     []hpack.HeaderField
	remain     uint32 // what is left of the header-list limit
	sawRegular bool
	invalid    error // a field was malformed: the block is refused once read

	spans   [maxLiteralSpans]span // the block's cacheable literals (writeWholeBlock)
	recent  [literalCacheSize]cachedLiteral
	nextOut int // the entry of recent replaced next
}

// maxRetainedFields bounds the field slice kept between blocks.
const maxRetainedFields = 64

// readFrame reads the next frame; a HEADERS frame comes back with its
// CONTINUATIONs as the connection's MetaHeadersFrame, valid until
// releaseHeaderBlock.
func (c *conn) readFrame() (http2.Frame, error) {
	f, err := c.fr.ReadFrame()
	if err != nil {
		return nil, err
	}
	if hf, ok := f.(*http2.HeadersFrame); ok {
		return c.readHeaderBlock(hf)
	}
	return f, nil
}

// readHeaderBlock decodes hf's block, reading its CONTINUATIONs (the
// Framer's frame-order check guarantees they follow, on hf's stream).
// Errors come back with a nil frame: a stream error for a block that was
// read whole but is malformed (the HPACK state is intact), a connection
// error otherwise.
func (c *conn) readHeaderBlock(hf *http2.HeadersFrame) (http2.Frame, error) {
	b := &c.block
	b.meta = http2.MetaHeadersFrame{HeadersFrame: hf}
	b.fields = b.fields[:0]
	b.remain = c.srv.maxHeaderListSize()
	b.sawRegular = false
	b.invalid = nil
	c.hdec.SetEmitEnabled(true)

	frag := hf.HeaderBlockFragment()
	ended := hf.HeadersEnded()
	whole := ended // one frame: the literal cache may be used
	for {
		// Refuse to decode fragments far past the limit, and anything
		// after an invalid field, whose size is no longer counted.
		if int64(len(frag)) > 2*int64(b.remain) || b.invalid != nil {
			return nil, http2.ConnectionError(http2.ErrCodeProtocol)
		}
		write := c.hdec.Write
		if whole {
			write = c.writeWholeBlock
		}
		if _, err := write(frag); err != nil {
			return nil, http2.ConnectionError(http2.ErrCodeCompression)
		}
		if ended {
			break
		}
		f, err := c.fr.ReadFrame()
		if err != nil {
			return nil, err
		}
		cf := f.(*http2.ContinuationFrame) // guaranteed by the Framer's frame-order check
		frag, ended = cf.HeaderBlockFragment(), cf.HeadersEnded()
	}
	if err := c.hdec.Close(); err != nil {
		return nil, http2.ConnectionError(http2.ErrCodeCompression)
	}
	b.meta.Fields = b.fields
	if b.invalid != nil {
		return nil, http2.StreamError{StreamID: hf.StreamID, Code: http2.ErrCodeProtocol, Cause: b.invalid}
	}
	if err := checkPseudos(b.meta.PseudoFields()); err != nil {
		return nil, http2.StreamError{StreamID: hf.StreamID, Code: http2.ErrCodeProtocol, Cause: err}
	}
	return &b.meta, nil
}

// emitField is the decoder's emit function, bound once per connection.
func (c *conn) emitField(hf hpack.HeaderField) {
	b := &c.block
	// httpguts.ValidHeaderFieldValue's rule, eight bytes at a time: a
	// bearer token is 600 bytes on every request (1 % of the proxy's CPU
	// over HTTP/2 byte by byte).
	if !httpsyntax.ValidFieldValue(hf.Value) {
		b.invalid = errInvalidFieldValue // the value is not named: it may be a secret
	}
	if strings.HasPrefix(hf.Name, ":") {
		if b.sawRegular {
			b.invalid = errPseudoAfterField
		}
	} else {
		b.sawRegular = true
		if !validWireName(hf.Name) {
			b.invalid = errInvalidFieldName
		}
	}
	if b.invalid != nil {
		c.hdec.SetEmitEnabled(false)
		return
	}
	size := hf.Size()
	if size > b.remain {
		c.hdec.SetEmitEnabled(false)
		b.meta.Truncated = true
		b.remain = 0
		return
	}
	b.remain -= size
	b.fields = append(b.fields, hf)
}

// releaseHeaderBlock drops the strings of the block just read, taken or
// refused, so that an idle connection does not hold its last request's
// fields. (The literal cache below keeps its four on purpose, for the
// connection's life.)
func (c *conn) releaseHeaderBlock() {
	b := &c.block
	clear(b.fields)
	if cap(b.fields) > maxRetainedFields {
		b.fields = nil
	}
	b.meta = http2.MetaHeadersFrame{}
}

// checkPseudos refuses unknown and repeated pseudo-fields, and request
// and response pseudo-fields mixed.
func checkPseudos(pf []hpack.HeaderField) error {
	var isRequest, isResponse bool
	for i, hf := range pf {
		switch hf.Name {
		case ":method", ":path", ":scheme", ":authority", ":protocol":
			isRequest = true
		case ":status":
			isResponse = true
		default:
			return errUnknownPseudo
		}
		for _, prev := range pf[:i] {
			if hf.Name == prev.Name {
				return errDuplicatePseudo
			}
		}
	}
	if isRequest && isResponse {
		return errMixedPseudo
	}
	return nil
}

// Repeated literals.
//
// A client sends its credentials as literals that are never indexed
// (RFC 7541 §7.1.3): nghttp2 and browsers do so for authorization, so
// a bearer token is Huffman-decoded whole on every request of the
// connection (two thirds of the HPACK decoding of gatehouse-full over
// HTTP/2, docs/performance.md). A literal whose name is a static-table
// index or a literal, and that is not indexed, depends on its bytes
// alone, not on the dynamic table: the same bytes decode to the same
// field. writeWholeBlock keeps the last few such literals of each
// connection with the fields they decoded to and hands the decoder only
// what lies around a literal seen before. Only whole blocks (a HEADERS
// frame with END_HEADERS) without a dynamic table size update are
// split; anything else, and anything the scan cannot parse, goes to the
// decoder whole, which then answers malformed input as it always does.
// A block the scan parses is parsed alike by the decoder, so the pieces
// it is handed end where its fields do. The cache holds what the client
// sent on this connection (its credentials, mostly) as long as the
// connection lives, as the connection's HPACK table holds what it
// indexed: at most 4 × maxCachedLiteral raw bytes and their fields.

const (
	literalCacheSize = 4
	maxLiteralSpans  = 8
	minCachedLiteral = 64      // shorter literals decode faster than they are looked up
	maxCachedLiteral = 4 << 10 // the most a connection keeps: 4 × (4 KiB + the field, at most 6.4 KiB)
)

// span is a literal's bytes in the block: frag[start:end].
type span struct{ start, end int }

type cachedLiteral struct {
	raw []byte
	hf  hpack.HeaderField
}

// writeWholeBlock writes a whole header block to the decoder, emitting
// the literals it has seen before on this connection itself.
func (c *conn) writeWholeBlock(frag []byte) (int, error) {
	b := &c.block
	spans, ok := scanLiterals(frag, &b.spans)
	if !ok || len(spans) == 0 {
		return c.hdec.Write(frag)
	}
	pos := 0
	for _, sp := range spans {
		raw := frag[sp.start:sp.end]
		if _, err := c.hdec.Write(frag[pos:sp.start]); err != nil {
			return 0, err
		}
		pos = sp.end
		if e := b.lookup(raw); e != nil {
			if c.hdec.EmitEnabled() {
				c.emitField(e.hf)
			}
			continue
		}
		n := len(b.fields)
		if _, err := c.hdec.Write(raw); err != nil {
			return 0, err
		}
		if len(b.fields) == n+1 {
			b.remember(raw, b.fields[n])
		}
	}
	if _, err := c.hdec.Write(frag[pos:]); err != nil {
		return 0, err
	}
	return len(frag), nil
}

func (b *blockState) lookup(raw []byte) *cachedLiteral {
	for i := range b.recent {
		if e := &b.recent[i]; string(e.raw) == string(raw) {
			return e
		}
	}
	return nil
}

func (b *blockState) remember(raw []byte, hf hpack.HeaderField) {
	e := &b.recent[b.nextOut]
	b.nextOut = (b.nextOut + 1) % len(b.recent)
	e.raw = append(e.raw[:0], raw...)
	e.hf = hf
}

// scanLiterals finds, in a whole header block, the literals
// writeWholeBlock may take from its cache: not indexed, named by a
// static-table index or a literal, minCachedLiteral to maxCachedLiteral
// bytes long. ok is false for a block with a dynamic table size update
// or one the scan cannot parse to its end.
func scanLiterals(p []byte, buf *[maxLiteralSpans]span) (spans []span, ok bool) {
	spans = buf[:0]
	for i := 0; i < len(p); {
		start, b := i, p[i]
		var idx uint64
		switch {
		case b&0x80 != 0: // indexed field
			if _, i, ok = scanInt(p, i, 7); !ok {
				return nil, false
			}
			continue
		case b&0xc0 == 0x40: // literal, incremental indexing
			idx, i, ok = scanInt(p, i, 6)
		case b&0xe0 == 0x20: // dynamic table size update
			return nil, false
		default: // literal not indexed (0000) or never indexed (0001)
			idx, i, ok = scanInt(p, i, 4)
		}
		if ok && idx == 0 {
			i, ok = scanString(p, i)
		}
		if ok {
			i, ok = scanString(p, i)
		}
		if !ok {
			return nil, false
		}
		if b&0xc0 != 0x40 && idx <= staticTableLen && i-start >= minCachedLiteral && i-start <= maxCachedLiteral && len(spans) < maxLiteralSpans {
			spans = append(spans, span{start, i})
		}
	}
	return spans, true
}

// staticTableLen is the number of entries in HPACK's static table
// (RFC 7541 Appendix A); higher indexes name dynamic-table entries.
const staticTableLen = 61

// scanInt reads an HPACK integer with an n-bit prefix at p[i]
// (RFC 7541 §5.1); ok is false past the block's end or past 2^32.
func scanInt(p []byte, i int, n uint) (v uint64, next int, ok bool) {
	mask := uint64(1)<<n - 1
	v = uint64(p[i]) & mask
	i++
	if v < mask {
		return v, i, true
	}
	for m := uint(0); i < len(p); {
		b := p[i]
		i++
		v += uint64(b&0x7f) << m
		if b&0x80 == 0 {
			return v, i, v <= 1<<32
		}
		if m += 7; m >= 63 { // where hpack.Decoder gives up
			return 0, 0, false
		}
	}
	return 0, 0, false
}

// scanString skips an HPACK string literal at p[i] (RFC 7541 §5.2).
func scanString(p []byte, i int) (next int, ok bool) {
	if i >= len(p) {
		return 0, false
	}
	n, i, ok := scanInt(p, i, 7)
	if !ok || uint64(len(p)-i) < n {
		return 0, false
	}
	return i + int(n), true
}
