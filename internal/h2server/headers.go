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

	"golang.org/x/net/http/httpguts"
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

	var frag []byte = hf.HeaderBlockFragment()
	ended := hf.HeadersEnded()
	for {
		// Refuse to decode fragments far past the limit, and anything
		// after an invalid field, whose size is no longer counted.
		if int64(len(frag)) > 2*int64(b.remain) || b.invalid != nil {
			return nil, http2.ConnectionError(http2.ErrCodeProtocol)
		}
		if _, err := c.hdec.Write(frag); err != nil {
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
	if !httpguts.ValidHeaderFieldValue(hf.Value) {
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

// releaseHeaderBlock drops the strings of the block just processed, so
// that an idle connection does not hold its last request's fields.
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
