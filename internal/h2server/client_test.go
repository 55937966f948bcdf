package h2server_test

// A raw HTTP/2 client for the tests: a TLS connection that negotiated
// "h2", x/net/http2's Framer to write whatever frames a test asks for
// (legal or not), and a reader goroutine that acknowledges SETTINGS and
// PING, returns flow-control credit for every DATA it receives, and
// records what the server sent as a transcript.

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// transcript is what a client noticed of one exchange, normalized so
// that two servers' transcripts compare with cmp.Diff.
type transcript struct {
	Streams      map[uint32]*streamT
	GoAway       string   // the first GOAWAY's error code, "" if none
	GoAwayLast   uint32   // its last stream ID
	Closed       bool     // the server ended the connection
	ReadErr      string   // a frame the client could not accept, if any
	Saw          []view   // what the handlers saw
	PanicLogged  bool     // the server's ErrorLog mentions a panic
	Wrote        []string // what handlers noted of their writes
	ScriptErr    string   // the script's first failed write or wait (not compared)
	HandlersLeft int64    // handlers still running when the snapshot was taken
}

// streamT is what the client saw on one stream.
type streamT struct {
	Info      []hdrs // 1xx header blocks
	Headers   hdrs   // the final header block
	Body      string // DATA payloads concatenated, summarize()d
	Trailers  hdrs
	EndStream bool
	RST       string // the first RST_STREAM's code from the server
	body      []byte // Body in full (not compared)
}

// hdrs is a decoded header block; a "date" of the present is "(now)".
type hdrs map[string][]string

// client is one raw HTTP/2 connection to a test server.
type client struct {
	conn *tls.Conn

	wmu sync.Mutex // guards the write side: fr's writes, bw, enc, buf
	bw  *bufio.Writer
	fr  *http2.Framer
	enc *hpack.Encoder
	buf bytes.Buffer

	mu          sync.Mutex // guards everything below
	changed     chan struct{}
	tr          transcript
	gotSettings bool
	pingAcks    int
	// What the client may send, per the server's flow control.
	sendInitial int64
	connWin     int64
	streamWin   map[uint32]int64
	maxFrame    int
	scriptErr   error
	clientRST   map[uint32]bool

	readerDone chan struct{}
}

// dial connects to s, sends the preface and settings, and starts the
// reader unless noRead (a client that never reads).
func dial(s *testServer, noRead bool, settings ...http2.Setting) (*client, error) {
	d := net.Dialer{Timeout: waitTimeout}
	raw, err := d.Dial("tcp", s.addr)
	if err != nil {
		return nil, err
	}
	conn := tls.Client(raw, &tls.Config{ServerName: authority, InsecureSkipVerify: true, NextProtos: []string{"h2"}})
	conn.SetDeadline(time.Now().Add(waitTimeout))
	if err := conn.Handshake(); err != nil {
		conn.Close()
		return nil, err
	}
	if p := conn.ConnectionState().NegotiatedProtocol; p != "h2" {
		conn.Close()
		return nil, fmt.Errorf("ALPN negotiated %q, not h2", p)
	}
	conn.SetDeadline(time.Time{})
	c := &client{
		conn: conn, changed: make(chan struct{}),
		sendInitial: 65535, connWin: 65535, streamWin: map[uint32]int64{}, maxFrame: 16384,
		clientRST: map[uint32]bool{}, readerDone: make(chan struct{}),
	}
	c.tr.Streams = map[uint32]*streamT{}
	c.bw = bufio.NewWriterSize(conn, 64<<10)
	c.fr = http2.NewFramer(c.bw, conn)
	c.fr.AllowIllegalWrites = true
	c.enc = hpack.NewEncoder(&c.buf)
	if err := c.write(func() error {
		if _, err := io.WriteString(c.bw, http2.ClientPreface); err != nil {
			return err
		}
		return c.fr.WriteSettings(settings...)
	}); err != nil {
		conn.Close()
		return nil, err
	}
	if noRead {
		close(c.readerDone)
	} else {
		go c.readLoop()
	}
	return c, nil
}

// close closes the connection and waits for the reader to end.
func (c *client) close() {
	c.conn.Close()
	<-c.readerDone
}

// write runs f on the write side and flushes, with a write deadline.
// The first error is kept as the script's error.
func (c *client) write(f func() error) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	err := f()
	if err == nil {
		err = c.bw.Flush()
	}
	if err != nil {
		c.fail(fmt.Errorf("write: %w", err))
	}
	return err
}

func (c *client) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.scriptErr == nil {
		c.scriptErr = err
	}
}

// notify wakes the waiters; c.mu is held.
func (c *client) notify() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// waitFor waits until cond (called with c.mu held) holds, or the
// deadline; a timeout is kept as the script's error, named what.
func (c *client) waitFor(what string, cond func() bool) bool {
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		ok, ch := cond(), c.changed
		c.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-ch:
		case <-deadline.C:
			c.fail(fmt.Errorf("timed out waiting for %s", what))
			return false
		}
	}
}

func (c *client) stream(id uint32) *streamT {
	st := c.tr.Streams[id]
	if st == nil {
		st = &streamT{}
		c.tr.Streams[id] = st
	}
	return st
}

func (c *client) readLoop() {
	defer close(c.readerDone)
	var (
		block   []byte
		blockID uint32
		blockES bool
	)
	dec := hpack.NewDecoder(4096, nil)
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			c.mu.Lock()
			var ce http2.ConnectionError
			var se http2.StreamError
			switch {
			case errors.As(err, &ce), errors.As(err, &se), errors.Is(err, http2.ErrFrameTooLarge):
				c.tr.ReadErr = err.Error()
			}
			c.tr.Closed = true
			c.notify()
			c.mu.Unlock()
			return
		}
		var reply func() error
		c.mu.Lock()
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				f.ForeachSetting(func(s http2.Setting) error {
					switch s.ID {
					case http2.SettingInitialWindowSize:
						delta := int64(s.Val) - c.sendInitial
						c.sendInitial = int64(s.Val)
						for id := range c.streamWin {
							c.streamWin[id] += delta
						}
					case http2.SettingMaxFrameSize:
						c.maxFrame = int(s.Val)
					}
					return nil
				})
				c.gotSettings = true
				reply = c.fr.WriteSettingsAck
			}
		case *http2.PingFrame:
			if f.IsAck() {
				c.pingAcks++
			} else {
				data := f.Data
				reply = func() error { return c.fr.WritePing(true, data) }
			}
		case *http2.WindowUpdateFrame:
			if f.StreamID == 0 {
				c.connWin += int64(f.Increment)
			} else if _, ok := c.streamWin[f.StreamID]; ok {
				c.streamWin[f.StreamID] += int64(f.Increment)
			}
		case *http2.HeadersFrame:
			block, blockID, blockES = append([]byte(nil), f.HeaderBlockFragment()...), f.StreamID, f.StreamEnded()
			if f.HeadersEnded() {
				c.headerBlock(dec, blockID, block, blockES)
			}
		case *http2.ContinuationFrame:
			block = append(block, f.HeaderBlockFragment()...)
			if f.HeadersEnded() {
				c.headerBlock(dec, blockID, block, blockES)
			}
		case *http2.DataFrame:
			st := c.stream(f.StreamID)
			st.body = append(st.body, f.Data()...)
			if f.StreamEnded() {
				st.EndStream = true
			}
			if n := f.Length; n > 0 {
				id, ended := f.StreamID, f.StreamEnded()
				reply = func() error {
					if err := c.fr.WriteWindowUpdate(0, n); err != nil || ended {
						return err
					}
					return c.fr.WriteWindowUpdate(id, n)
				}
			}
		case *http2.RSTStreamFrame:
			st := c.stream(f.StreamID)
			if st.RST == "" {
				st.RST = f.ErrCode.String()
			}
		case *http2.GoAwayFrame:
			if c.tr.GoAway == "" {
				c.tr.GoAway, c.tr.GoAwayLast = f.ErrCode.String(), f.LastStreamID
			}
		}
		c.notify()
		c.mu.Unlock()
		if reply != nil {
			// Errors are the server's having closed: the next read says so.
			c.wmu.Lock()
			c.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
			if reply() == nil {
				c.bw.Flush()
			}
			c.wmu.Unlock()
		}
	}
}

// headerBlock records a decoded header block; c.mu is held.
func (c *client) headerBlock(dec *hpack.Decoder, id uint32, block []byte, endStream bool) {
	st := c.stream(id)
	fields, err := dec.DecodeFull(block)
	if err != nil {
		c.tr.ReadErr = "hpack: " + err.Error()
	}
	h := hdrs{}
	for _, f := range fields {
		v := f.Value
		if f.Name == "date" {
			// The server's own date differs between servers and runs; a
			// handler's is kept as sent.
			if t, err := http.ParseTime(v); err == nil && time.Since(t).Abs() < time.Hour {
				v = "(now)"
			}
		}
		h[f.Name] = append(h[f.Name], v)
	}
	switch {
	case st.Headers != nil:
		st.Trailers = h
	case len(h[":status"]) == 1 && len(h[":status"][0]) == 3 && h[":status"][0][0] == '1':
		st.Info = append(st.Info, h)
	default:
		st.Headers = h
	}
	if endStream {
		st.EndStream = true
	}
}

// streamDone reports whether stream id will see nothing more; c.mu is held.
func (c *client) streamDone(id uint32) bool {
	st := c.tr.Streams[id]
	switch {
	case c.tr.Closed, c.clientRST[id]:
		return true
	case st != nil && (st.EndStream || st.RST != ""):
		return true
	case c.tr.GoAway != "" && (c.tr.GoAway != "NO_ERROR" || id > c.tr.GoAwayLast):
		return true
	}
	return false
}

// --- what scripts do ---

// fields builds a header list from name, value pairs.
func fields(kv ...string) []hpack.HeaderField {
	var hf []hpack.HeaderField
	for i := 0; i+1 < len(kv); i += 2 {
		hf = append(hf, hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
	}
	return hf
}

// req is a request's pseudo-header fields followed by extra.
func req(method, path string, extra ...string) []hpack.HeaderField {
	return fields(append([]string{":method", method, ":scheme", "https", ":authority", authority, ":path", path}, extra...)...)
}

// encode HPACK-encodes hf with the connection's encoder; c.wmu is held.
func (c *client) encode(hf []hpack.HeaderField) []byte {
	c.buf.Reset()
	for _, f := range hf {
		c.enc.WriteField(f)
	}
	return bytes.Clone(c.buf.Bytes())
}

// headers sends hf on stream id as HEADERS and as many CONTINUATION
// frames as 16 KiB frames need, opening the stream.
func (c *client) headers(id uint32, endStream bool, hf []hpack.HeaderField) error {
	c.mu.Lock()
	if _, ok := c.streamWin[id]; !ok {
		c.streamWin[id] = c.sendInitial
	}
	c.mu.Unlock()
	return c.write(func() error {
		block := c.encode(hf)
		const max = 16384
		first := block[:min(len(block), max)]
		block = block[len(first):]
		if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: first,
			EndStream: endStream, EndHeaders: len(block) == 0}); err != nil {
			return err
		}
		for len(block) > 0 {
			frag := block[:min(len(block), max)]
			block = block[len(frag):]
			if err := c.fr.WriteContinuation(id, len(block) == 0, frag); err != nil {
				return err
			}
		}
		return nil
	})
}

// headerFrames sends a header block on stream id as one HEADERS frame
// per group of fields, the first HEADERS and the rest CONTINUATION, each
// group encoded as never-indexed literals (the dynamic table is left
// alone). endHeaders false leaves the block unfinished.
func (c *client) headerFrames(id uint32, endStream, endHeaders bool, groups ...[]hpack.HeaderField) error {
	c.mu.Lock()
	if _, ok := c.streamWin[id]; !ok {
		c.streamWin[id] = c.sendInitial
	}
	c.mu.Unlock()
	return c.write(func() error {
		for i, g := range groups {
			frag := literal(g)
			end := endHeaders && i == len(groups)-1
			var err error
			if i == 0 {
				err = c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: frag, EndStream: endStream, EndHeaders: end})
			} else {
				err = c.fr.WriteContinuation(id, end, frag)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// literal HPACK-encodes hf as never-indexed literals, which need no
// encoder state.
func literal(hf []hpack.HeaderField) []byte {
	var b bytes.Buffer
	enc := hpack.NewEncoder(&b)
	for _, f := range hf {
		f.Sensitive = true
		enc.WriteField(f)
	}
	return b.Bytes()
}

// fill sends n bytes of DATA on stream id without END_STREAM, in 16 KiB
// frames, whatever the flow-control windows say.
func (c *client) fill(id uint32, n int) error {
	p := pattern(16384)
	for n > 0 {
		k := min(n, len(p))
		if err := c.data(id, false, p[:k]); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// windows returns what the server's flow control lets the client send on
// the connection and on stream id.
func (c *client) windows(id uint32) (conn, stream int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, ok := c.streamWin[id]
	if !ok {
		st = c.sendInitial
	}
	return c.connWin, st
}

// data sends one DATA frame, flow control or not (the windows are
// charged all the same).
func (c *client) data(id uint32, endStream bool, p []byte) error {
	return c.dataPadded(id, endStream, p, nil)
}

func (c *client) dataPadded(id uint32, endStream bool, p, pad []byte) error {
	c.mu.Lock()
	n := int64(len(p))
	if pad != nil {
		n += int64(len(pad)) + 1
	}
	c.connWin -= n
	if _, ok := c.streamWin[id]; ok {
		c.streamWin[id] -= n
	}
	c.mu.Unlock()
	return c.write(func() error { return c.fr.WriteDataPadded(id, endStream, p, pad) })
}

// body sends p on stream id within the server's flow-control windows,
// waiting for credit; it stops early, without error, if the stream ends.
func (c *client) body(id uint32, p []byte, endStream bool) error {
	for {
		var n int
		if !c.waitFor(fmt.Sprintf("flow-control credit on stream %d", id), func() bool {
			if c.streamDone(id) {
				return true
			}
			n = int(min(int64(len(p)), int64(c.maxFrame), c.connWin, c.streamWin[id]))
			return n > 0 || len(p) == 0
		}) {
			return c.scriptError()
		}
		c.mu.Lock()
		done := c.streamDone(id)
		c.mu.Unlock()
		if done {
			return nil
		}
		last := n == len(p)
		if err := c.data(id, endStream && last, p[:n]); err != nil {
			return err
		}
		p = p[n:]
		if last {
			return nil
		}
	}
}

func (c *client) rst(id uint32, code http2.ErrCode) error {
	c.mu.Lock()
	c.clientRST[id] = true
	c.mu.Unlock()
	return c.write(func() error { return c.fr.WriteRSTStream(id, code) })
}

func (c *client) windowUpdate(id, incr uint32) error {
	return c.write(func() error { return c.fr.WriteWindowUpdate(id, incr) })
}

func (c *client) ping() error {
	return c.write(func() error { return c.fr.WritePing(false, [8]byte{'b', 'a', 'r', 'r', 'i', 'e', 'r'}) })
}

// waitStream waits until stream id has ended (END_STREAM or RST_STREAM
// either way) or the connection has.
func (c *client) waitStream(id uint32) bool {
	return c.waitFor(fmt.Sprintf("stream %d to end", id), func() bool { return c.streamDone(id) })
}

// waitHeaders waits for stream id's final response headers.
func (c *client) waitHeaders(id uint32) bool {
	return c.waitFor(fmt.Sprintf("stream %d's headers", id), func() bool {
		st := c.tr.Streams[id]
		return c.streamDone(id) || st != nil && st.Headers != nil
	})
}

// waitAll waits until every stream the client opened has ended.
func (c *client) waitAll() bool {
	return c.waitFor("every stream to end", func() bool {
		for id := range c.streamWin {
			if !c.streamDone(id) {
				return false
			}
		}
		return true
	})
}

// waitSettings waits for the server's SETTINGS and then for a PING
// round trip, so that the WINDOW_UPDATEs it sends at once are in.
func (c *client) waitSettings() bool {
	return c.waitFor("the server's SETTINGS", func() bool { return c.gotSettings || c.tr.Closed }) && c.barrier()
}

// waitGoAway waits for a GOAWAY (or the connection's end).
func (c *client) waitGoAway() bool {
	return c.waitFor("GOAWAY", func() bool { return c.tr.GoAway != "" || c.tr.Closed })
}

// waitClosed waits for the server to end the connection.
func (c *client) waitClosed() bool {
	return c.waitFor("the connection to close", func() bool { return c.tr.Closed })
}

// barrier sends a PING and waits for its ACK, or for the connection to
// end: whatever the server sent before handling the PING is then in.
func (c *client) barrier() bool {
	c.mu.Lock()
	want := c.pingAcks + 1
	gone := c.tr.Closed || c.tr.GoAway != "" && c.tr.GoAway != "NO_ERROR"
	c.mu.Unlock()
	if gone {
		return true
	}
	if c.ping() != nil {
		return c.waitClosed()
	}
	return c.waitFor("PING ACK", func() bool {
		return c.pingAcks >= want || c.tr.Closed || c.tr.GoAway != "" && c.tr.GoAway != "NO_ERROR"
	})
}

// finish ends a script: it waits for the opened streams, a PING round
// trip, and, after a GOAWAY, for the connection to close.
func (c *client) finish() {
	c.waitAll()
	c.barrier()
	c.mu.Lock()
	goaway := c.tr.GoAway != ""
	c.mu.Unlock()
	if goaway {
		c.waitClosed()
	}
}

func (c *client) scriptError() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.scriptErr
}

// snapshot returns the transcript so far.
func (c *client) snapshot() transcript {
	c.mu.Lock()
	defer c.mu.Unlock()
	tr := c.tr
	tr.Streams = make(map[uint32]*streamT, len(c.tr.Streams))
	for id, st := range c.tr.Streams {
		cp := *st
		cp.Body = summarize(st.body)
		cp.body = bytes.Clone(st.body)
		tr.Streams[id] = &cp
	}
	if c.scriptErr != nil {
		tr.ScriptErr = c.scriptErr.Error()
	}
	return tr
}

// status is stream id's :status, "" if none.
func (tr transcript) status(id uint32) string {
	if st := tr.Streams[id]; st != nil && len(st.Headers[":status"]) > 0 {
		return st.Headers[":status"][0]
	}
	return ""
}

// String is a one-line summary for logs.
func (tr transcript) String() string {
	var b strings.Builder
	for id, st := range tr.Streams {
		fmt.Fprintf(&b, "[%d: status=%q end=%v rst=%q body=%.40q] ", id, st.Headers[":status"], st.EndStream, st.RST, st.Body)
	}
	fmt.Fprintf(&b, "goaway=%q closed=%v readErr=%q scriptErr=%q", tr.GoAway, tr.Closed, tr.ReadErr, tr.ScriptErr)
	return b.String()
}
