package h2server

import (
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"net/http"

	"gatehouse/internal/httpsyntax"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Frames are appended to c.wbuf under c.mu, in the order they must reach
// the client (HPACK state is encoded in that order too), and written by
// flushLocked.

func (c *conn) appendFrameHeader(length int, typ http2.FrameType, flags http2.Flags, id uint32) {
	c.wbuf = append(c.wbuf, byte(length>>16), byte(length>>8), byte(length), byte(typ), byte(flags),
		byte(id>>24)&0x7f, byte(id>>16), byte(id>>8), byte(id))
}

func (c *conn) appendSettings() {
	settings := []http2.Setting{
		{ID: http2.SettingMaxFrameSize, Val: maxReadFrame},
		{ID: http2.SettingMaxConcurrentStreams, Val: c.srv.cfg.MaxConcurrentStreams},
		{ID: http2.SettingMaxHeaderListSize, Val: c.srv.maxHeaderListSize()},
		{ID: http2.SettingInitialWindowSize, Val: recvWindow},
	}
	c.appendFrameHeader(6*len(settings), http2.FrameSettings, 0, 0)
	for _, s := range settings {
		c.wbuf = binary.BigEndian.AppendUint16(c.wbuf, uint16(s.ID))
		c.wbuf = binary.BigEndian.AppendUint32(c.wbuf, s.Val)
	}
}

func (c *conn) appendSettingsAck() {
	c.appendFrameHeader(0, http2.FrameSettings, http2.FlagSettingsAck, 0)
}

func (c *conn) appendPing(data [8]byte) {
	c.appendFrameHeader(8, http2.FramePing, http2.FlagPingAck, 0)
	c.wbuf = append(c.wbuf, data[:]...)
}

func (c *conn) appendWindowUpdate(id, inc uint32) {
	c.appendFrameHeader(4, http2.FrameWindowUpdate, 0, id)
	c.wbuf = binary.BigEndian.AppendUint32(c.wbuf, inc&0x7fffffff)
}

func (c *conn) appendRSTStream(id uint32, code http2.ErrCode) {
	c.appendFrameHeader(4, http2.FrameRSTStream, 0, id)
	c.wbuf = binary.BigEndian.AppendUint32(c.wbuf, uint32(code))
}

func (c *conn) appendGoAway(last uint32, code http2.ErrCode) {
	c.appendFrameHeader(8, http2.FrameGoAway, 0, 0)
	c.wbuf = binary.BigEndian.AppendUint32(c.wbuf, last&0x7fffffff)
	c.wbuf = binary.BigEndian.AppendUint32(c.wbuf, uint32(code))
}

// appendData appends one DATA frame.
func (c *conn) appendData(id uint32, p []byte, end bool) {
	var flags http2.Flags
	if end {
		flags = http2.FlagDataEndStream
	}
	c.appendFrameHeader(len(p), http2.FrameData, flags, id)
	c.wbuf = append(c.wbuf, p...)
}

// resHeaders is a response header block: final (status ≥ 200),
// informational (1xx) or trailers (status 0: only keys, from h).
type resHeaders struct {
	status           int
	list             []listField // a final response's fields
	h                http.Header // an informational response's, or the trailers'
	keys             []string    // trailers: the names to send
	ctype, clen, dat string
	endStream        bool
}

// appendHeaders encodes rh and appends it as HEADERS and CONTINUATION
// frames.
func (c *conn) appendHeaders(st *stream, rh *resHeaders) {
	c.hbuf.Reset()
	if rh.status != 0 {
		c.encode(":status", statusCode(rh.status), false)
	}
	switch {
	case rh.list != nil:
		for _, f := range rh.list {
			if f.k != "" {
				c.encodeKnown(f.k, f.vv)
			}
		}
	case rh.keys != nil:
		for _, k := range rh.keys {
			c.encodeField(k, rh.h[k])
		}
	default:
		for k, vv := range rh.h {
			c.encodeField(k, vv)
		}
	}
	if rh.ctype != "" {
		c.encodeKnown("content-type", []string{rh.ctype})
	}
	if rh.clen != "" {
		c.encodeKnown("content-length", []string{rh.clen})
	}
	if rh.dat != "" {
		c.encodeKnown("date", []string{rh.dat})
	}
	if rh.status >= 200 {
		st.sentFinal = true
	}
	block := c.hbuf.Bytes()
	first := true
	for first || len(block) > 0 {
		n := min(len(block), int(c.peerMaxFrame))
		frag := block[:n]
		block = block[n:]
		var flags http2.Flags
		if len(block) == 0 {
			flags |= http2.FlagHeadersEndHeaders
		}
		if first {
			if rh.endStream {
				flags |= http2.FlagHeadersEndStream
			}
			c.appendFrameHeader(n, http2.FrameHeaders, flags, st.id)
			first = false
		} else {
			c.appendFrameHeader(n, http2.FrameContinuation, flags, st.id)
		}
		c.wbuf = append(c.wbuf, frag...)
	}
	if rh.endStream {
		c.localEndLocked(st)
	}
}

// localEndLocked follows a frame with END_STREAM. A request body still
// coming is refused without error, in the same write (RFC 9113 §8.1:
// the response is complete; net/http does the same after the frame is
// written).
//
// With the request ended too, the stream is closed now (RFC 9113 §5.1),
// not when the handler returns: a frame the client sends on it in
// between (its ID reused) is then what it is on any closed stream, and
// the handler's context ends, as in net/http.
func (c *conn) localEndLocked(st *stream) {
	st.localClosed = true
	if !st.remoteClosed && !st.resetSent {
		c.resetLocked(st.id, http2.ErrCodeNo)
	} else {
		c.closeStreamLocked(st, errHandlerComplete)
	}
}

// encodeField encodes one response field under its lower-case name,
// as net/http does: names that are not ASCII tokens and values that are
// not valid field values are dropped. Connection-specific fields, which
// HTTP/2 forbids (RFC 9113 §8.2.2; TE only has a meaning in requests),
// are dropped too, where net/http drops only Connection and
// Transfer-Encoding.
func (c *conn) encodeField(k string, vv []string) {
	lk, ok := c.lower(k)
	if !ok || !validWireName(lk) {
		return
	}
	switch lk {
	case "connection", "keep-alive", "proxy-connection", "upgrade", "te":
		return
	}
	isTE := lk == "transfer-encoding"
	// Fields kept out of the dynamic table (sent "never indexed", RFC
	// 7541 §6.2.3): Set-Cookie, a secret an attacker who shares the
	// connection's table could recover by the size of what it sends
	// (§7.1); and X-Request-Id, which Gatehouse sets to a new value on
	// every response: indexed, each response added an entry no later
	// one could use and pushed out one that could (the table's adds and
	// evictions were 2.4 % of the proxy's CPU over HTTP/2).
	noIndex := lk == "set-cookie" || lk == "x-request-id"
	for _, v := range vv {
		if !httpsyntax.ValidFieldValue(v) || (isTE && v != "trailers") {
			continue
		}
		c.encode(lk, v, noIndex)
	}
}

// encode appends a field to the header block being encoded; a field
// not to index is sent never indexed. A field the encoder adds to its
// dynamic table moves every entry's index: the known fields are
// forgotten (encodeKnown).
func (c *conn) encode(k, v string, noIndex bool) {
	start := c.hbuf.Len()
	// hpack.Encoder writes to c.hbuf, which cannot fail.
	_ = c.enc.WriteField(hpack.HeaderField{Name: k, Value: v, Sensitive: noIndex})
	// After a resize the field begins with the table size update (RFC
	// 7541 §6.3), not its own representation; nothing is known then
	// (processSettings forgot it all, and this is the encoder's first
	// field since), so what it adds changes no known index.
	if b := c.hbuf.Bytes()[start:]; len(b) > 0 && b[0]&0xc0 == 0x40 {
		c.known.clear() // a literal with incremental indexing (§6.2.1)
	}
}

// encodeKnown is encodeField for a final response's fields, the header
// block's first field (":status") encoded before them: a field of one
// value the encoder last sent as an index into its tables (§6.1) is
// sent as those bytes again, with no lookup in the encoder's tables nor
// check of the field. A response through a proxy repeats most of its
// fields (its type, its length, the upstream's server, the security
// headers) on every response, and the encoder hashed each one twice to
// find it (3 % of the proxy's CPU over HTTP/2, with the name's lower
// case). The bytes stay right until the encoder adds an entry or the
// table is resized (encode and processSettings forget them then).
func (c *conn) encodeKnown(k string, vv []string) {
	if len(vv) != 1 {
		c.encodeField(k, vv)
		return
	}
	if b := c.known.lookup(k, vv[0]); b != nil {
		c.hbuf.Write(b)
		return
	}
	start := c.hbuf.Len()
	c.encodeField(k, vv)
	if b := c.hbuf.Bytes()[start:]; len(b) > 0 && len(b) <= maxKnownBytes && b[0]&0x80 != 0 {
		c.known.add(k, vv[0], b)
	}
}

// knownFields remembers how the encoder sent recent fields as an index
// (encodeKnown): the field's name as the handler's header map had it,
// its value, and the representation's bytes. It is guarded by c.mu, as
// the encoder is.
type knownFields struct {
	e    [16]knownField
	n    int // entries in use
	next int // the entry replaced next once all are in use
}

// maxKnownBytes: an indexed field of an index up to 16510 (7-bit
// prefix and two bytes more, RFC 7541 §5.1); a table of 4096 bytes
// holds at most 128 entries.
const maxKnownBytes = 3

type knownField struct {
	k, v string
	b    [maxKnownBytes]byte
	nb   uint8
}

func (kf *knownFields) lookup(k, v string) []byte {
	for i := 0; i < kf.n; i++ {
		if e := &kf.e[i]; e.k == k && e.v == v {
			return e.b[:e.nb]
		}
	}
	return nil
}

// add remembers a field; the strings are copied, so that the entry does
// not keep the response they came from (an upstream's whole head).
func (kf *knownFields) add(k, v string, b []byte) {
	i := kf.n
	if i < len(kf.e) {
		kf.n++
	} else {
		i = kf.next
		kf.next = (kf.next + 1) % len(kf.e)
	}
	e := &kf.e[i]
	e.k, e.v = strings.Clone(k), strings.Clone(v)
	e.nb = uint8(copy(e.b[:], b))
}

func (kf *knownFields) clear() {
	clear(kf.e[:kf.n])
	kf.n, kf.next = 0, 0
}

// validWireName: a lower-case token, as HTTP/2 requires of names.
func validWireName(v string) bool {
	if v == "" {
		return false
	}
	for i := 0; i < len(v); i++ {
		b := v[i]
		if !httpguts.IsTokenRune(rune(b)) || ('A' <= b && b <= 'Z') {
			return false
		}
	}
	return true
}

// lower is the lower-case form of a field name, cached per connection
// (c.mu held); ok is false for a name that is not ASCII.
func (c *conn) lower(k string) (string, bool) {
	if lk, ok := commonLower[k]; ok {
		return lk, true
	}
	if lk, ok := c.lowerCache[k]; ok {
		return lk, true
	}
	for i := 0; i < len(k); i++ {
		if k[i] >= 0x80 {
			return "", false
		}
	}
	lk := strings.ToLower(k)
	if c.lowerCache == nil {
		c.lowerCache = make(map[string]string)
	}
	if len(c.lowerCache) < 64 {
		c.lowerCache[k] = lk
	}
	return lk, true
}

func statusCode(code int) string {
	switch code {
	case 200:
		return "200"
	case 204:
		return "204"
	case 304:
		return "304"
	case 404:
		return "404"
	}
	return strconv.Itoa(code)
}

// kickLocked makes sure what is buffered gets written without the caller
// writing it: the reader must never block on a client that does not read
// (which may itself be blocked writing to us), so control frames are
// written by a goroutine of their own when no write is in progress.
func (c *conn) kickLocked() {
	if c.writing || c.kicked || c.closed || len(c.wbuf) == 0 {
		return
	}
	c.kicked = true
	go func() {
		c.mu.Lock()
		c.kicked = false
		c.flushLocked()
		c.mu.Unlock()
	}()
}

// flushLocked writes what is buffered, and what is appended while it
// writes, unless another goroutine is writing already (which then
// writes it). c.mu is released during each write.
func (c *conn) flushLocked() {
	for !c.writing && len(c.wbuf) > 0 && !c.closed {
		c.writing = true
		if c.handlers > 1 {
			// Other streams' handlers may be runnable now (their upstream
			// answers arrived in the same poll): let them append their
			// frames first, to write them all at once.
			c.mu.Unlock()
			runtime.Gosched()
			c.mu.Lock()
			if c.closed {
				c.writing = false
				c.cond.Broadcast()
				return
			}
		}
		buf := c.wbuf
		c.wbuf = c.spare[:0]
		c.ctrlQueued = 0
		c.mu.Unlock()
		if d := c.srv.cfg.WriteTimeout; d > 0 {
			_ = c.nc.SetWriteDeadline(time.Now().Add(d))
		}
		_, err := c.nc.Write(buf)
		c.mu.Lock()
		c.writing = false
		if cap(buf) <= 4*maxWriteBuf {
			c.spare = buf[:0]
		} else {
			c.spare = nil
		}
		c.cond.Broadcast()
		if err != nil {
			c.closeLocked(errClientDisconnected)
		}
	}
}

// waitLocked waits on cond until it is broadcast or deadline passes; it
// reports false when the deadline has passed.
func (c *conn) waitLocked(cond interface{ Wait() }, deadline time.Time) bool {
	if deadline.IsZero() {
		cond.Wait()
		return true
	}
	d := time.Until(deadline)
	if d <= 0 {
		return false
	}
	t := time.AfterFunc(d, func() {
		c.mu.Lock()
		c.cond.Broadcast()
		c.mu.Unlock()
	})
	cond.Wait()
	t.Stop()
	return true
}

// writeErrLocked is why st can send nothing more, or nil.
func (st *stream) writeErrLocked() error {
	switch {
	case st.c.closed:
		return errClientDisconnected
	case st.closed || st.resetSent:
		if st.closeErr != nil {
			return st.closeErr
		}
		return errStreamClosed
	case st.localClosed:
		return errStreamClosed
	}
	return nil
}

// writeHeaders appends a header block for st and writes it.
func (c *conn) writeHeaders(st *stream, rh *resHeaders, flush bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := st.writeErrLocked(); err != nil {
		return err
	}
	if err := c.roomLocked(st); err != nil {
		return err
	}
	c.appendHeaders(st, rh)
	if flush {
		c.flushLocked()
	}
	return nil
}

// roomLocked waits while the write buffer is full, for the write in
// progress, or writes it when none is.
func (c *conn) roomLocked(st *stream) error {
	for len(c.wbuf) >= maxWriteBuf {
		if err := st.writeErrLocked(); err != nil {
			return err
		}
		if !c.writing {
			c.flushLocked()
			continue
		}
		if !c.waitWriteLocked(st) {
			return c.writeTimeoutLocked(st)
		}
	}
	return st.writeErrLocked()
}

// waitWriteLocked is waitLocked for st's handler, waiting to write until
// st's write deadline.
func (c *conn) waitWriteLocked(st *stream) bool {
	st.writeWaiting = true
	ok := c.waitLocked(&c.cond, st.writeDL)
	st.writeWaiting = false
	return ok
}

func (c *conn) writeTimeoutLocked(st *stream) error {
	c.resetLocked(st.id, http2.ErrCodeInternal)
	c.kickLocked()
	return fmt.Errorf("%w", os.ErrDeadlineExceeded)
}

// writeData sends p on st as DATA frames within the flow-control
// windows, waiting for WINDOW_UPDATEs when they are spent, and ends the
// stream when end is set. With flush, what it appended is written
// before it returns (or by the write already in progress).
func (c *conn) writeData(st *stream, p []byte, end bool, flush bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		if err := st.writeErrLocked(); err != nil {
			return err
		}
		if len(p) == 0 {
			if end {
				if err := c.roomLocked(st); err != nil {
					return err
				}
				c.appendData(st.id, nil, true)
				c.localEndLocked(st)
			}
			break
		}
		allowed := min(st.sendWindow, c.sendWindow, c.peerMaxFrame)
		if allowed <= 0 {
			// Let the client see what is buffered before waiting on it.
			// flushLocked releases c.mu while it writes: a WINDOW_UPDATE
			// taken meanwhile broadcast to no one, so look at the windows
			// again before waiting (else that wakeup is lost, and a quiet
			// client's response hangs).
			if !c.writing && len(c.wbuf) > 0 {
				c.flushLocked()
				continue
			}
			if !c.waitWriteLocked(st) {
				return c.writeTimeoutLocked(st)
			}
			continue
		}
		if err := c.roomLocked(st); err != nil {
			return err
		}
		allowed = min(st.sendWindow, c.sendWindow, c.peerMaxFrame)
		if allowed <= 0 {
			continue
		}
		n := min(len(p), int(allowed))
		last := end && n == len(p)
		c.appendData(st.id, p[:n], last)
		st.sendWindow -= int32(n)
		c.sendWindow -= int32(n)
		p = p[n:]
		if last {
			c.localEndLocked(st)
			break
		}
	}
	if flush {
		c.flushLocked()
	}
	return nil
}

// httpDate is the Date field's value, formatted once a second.
func (s *Server) httpDate() string {
	now := time.Now().Unix()
	if d := s.date.Load(); d != nil && d.sec == now {
		return d.s
	}
	d := &dateEntry{sec: now, s: time.Unix(now, 0).UTC().Format(http.TimeFormat)}
	s.date.Store(d)
	return d.s
}

type dateEntry struct {
	sec int64
	s   string
}
