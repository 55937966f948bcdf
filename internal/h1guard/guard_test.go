package h1guard

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"gatehouse/internal/testutil"
)

var testLimits = Limits{MaxLineBytes: 64, MaxHeadBytes: 256}

// chunkedConn is a net.Conn whose reads return the scripted pieces, one
// per read, then EOF.
type chunkedConn struct {
	net.Conn
	pieces [][]byte
}

func (c *chunkedConn) Read(p []byte) (int, error) {
	if len(c.pieces) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.pieces[0])
	if n < len(c.pieces[0]) {
		c.pieces[0] = c.pieces[0][n:]
	} else {
		c.pieces = c.pieces[1:]
	}
	return n, nil
}

// pieces splits stream after every split bytes (0: one piece).
func pieces(stream []byte, split int) [][]byte {
	var out [][]byte
	for len(stream) > 0 {
		n := len(stream)
		if split > 0 && split < n {
			n = split
		}
		out = append(out, stream[:n])
		stream = stream[n:]
	}
	return out
}

// readAll reads a guarded connection over the scripted stream, split
// after every `split` bytes (0: whole), with reads of bufSize bytes.
func readAll(t *testing.T, stream string, split, bufSize int) (got string, g *Conn, err error) {
	t.Helper()
	l := NewListener(nil, testLimits)
	g = &Conn{Conn: &chunkedConn{pieces: pieces([]byte(stream), split)}, l: l}
	var out bytes.Buffer
	buf := make([]byte, bufSize)
	for i := 0; i < 10000; i++ {
		n, rerr := g.Read(buf)
		out.Write(buf[:n])
		if rerr != nil {
			return out.String(), g, rerr
		}
	}
	t.Fatal("no end of stream")
	return "", nil, nil
}

func TestGuard(t *testing.T) {
	t.Parallel()
	const get = "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
	tests := []struct {
		name   string
		in     string
		passed string // delivered before the refusal or error
		status int    // refusal; 0: none
		bad    bool   // ErrMalformedBody
	}{
		{name: "two gets", in: get + get, passed: get + get},
		{name: "content-length body then get", in: "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nGET /" + get, passed: "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nGET /" + get},
		{name: "chunked body then get", in: "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\n\r\n" + get,
			passed: "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\n\r\n" + get},
		{name: "chunked with trailer", in: "POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n1\r\na\r\n0\r\nX-T: 1\r\n\r\n" + get,
			passed: "POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n1\r\na\r\n0\r\nX-T: 1\r\n\r\n" + get},
		{name: "bare LF head lines pass", in: "GET / HTTP/1.1\nHost: a\n\n", passed: "GET / HTTP/1.1\nHost: a\n\n"},
		{name: "content-length and transfer-encoding", in: "POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + get, status: 400},
		{name: "second request smuggles", in: get + "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", passed: get, status: 400},
		{name: "tab before chunked", in: "POST / HTTP/1.1\r\nTransfer-Encoding:\tchunked\r\n\r\n", status: 400},
		{name: "obs-fold", in: "POST / HTTP/1.1\r\nTransfer-Encoding:\r\n chunked\r\n\r\n", status: 400},
		{name: "chunked, identity", in: "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, identity\r\n\r\n", status: 400},
		{name: "two transfer-encodings", in: "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", status: 400},
		{name: "http/1.0 with transfer-encoding", in: "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", status: 400},
		{name: "a query", in: "POST /x?access_token=secret HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", status: 400},
		{name: "differing content-lengths", in: "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", status: 400},
		{name: "signed content-length", in: "POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\n", status: 400},
		{name: "space before colon", in: "POST / HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n", status: 400},
		{name: "bare CR", in: "GET / HTTP/1.1\r\nX: a\rTransfer-Encoding: chunked\r\n\r\n", status: 400},
		{name: "request line too long", in: "GET /" + strings.Repeat("a", 80) + " HTTP/1.1\r\n\r\n", status: 414},
		{name: "request line too long, unfinished", in: "GET /" + strings.Repeat("a", 80), status: 414},
		{name: "header line too long", in: "GET / HTTP/1.1\r\nX: " + strings.Repeat("a", 80) + "\r\n\r\n", status: 431},
		{name: "head too large", in: "GET / HTTP/1.1\r\n" + strings.Repeat("X-Y: aaaaaaaaaaaaa\r\n", 20), status: 431},
		{name: "chunk size bare LF", in: "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n", passed: "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3", bad: true},
		{name: "chunk size 0x", in: "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0x3\r\n", passed: "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0", bad: true},
		{name: "chunk size +", in: "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n+3\r\n", passed: "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", bad: true},
		{name: "chunk size -1", in: "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n", passed: "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", bad: true},
		{name: "chunk size overflow", in: "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n", passed: "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1000000000000000", bad: true},
		{name: "chunk data too long", in: "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n", passed: "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc", bad: true},
		{name: "trailer bare LF", in: "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: y\n\n" + get, passed: "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: y", bad: true},
		{name: "PRI with a header field is HTTP/1", in: "PRI * HTTP/2.0\r\nHost: x\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
			passed: "PRI * HTTP/2.0\r\nHost: x\r\n\r\n", status: 400},
		{name: "prior-knowledge h2 passes", in: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x01binary", passed: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x01binary"},
	}
	for _, tt := range tests {
		for _, split := range []int{0, 1, 7} {
			for _, bufSize := range []int{1, 16, 4096} {
				got, g, err := readAll(t, tt.in, split, bufSize)
				want := tt.passed
				if tt.status != 0 {
					want += string(g.l.canned)
				}
				if got != want {
					t.Errorf("%s (split %d, buf %d): delivered\n%q\nwant\n%q", tt.name, split, bufSize, got, want)
					continue
				}
				ref := g.Refusal(g.l.target)
				switch {
				case tt.status != 0 && (ref == nil || ref.Status != tt.status):
					t.Errorf("%s: refusal %+v, want status %d", tt.name, ref, tt.status)
				case tt.status != 0 && (ref.Method == "" || !strings.Contains(tt.in, ref.Method+" "+ref.Target) || len(ref.Target) > 256 ||
					strings.Contains(ref.Target, "?")):
					// For the access log: the refused request, not the stand-in.
					t.Errorf("%s: refusal names %q %q, not the refused request line", tt.name, ref.Method, ref.Target)
				case tt.status == 0 && ref != nil:
					t.Errorf("%s: refused %+v", tt.name, ref)
				case tt.bad != errors.Is(err, ErrMalformedBody):
					t.Errorf("%s: err %v, want malformed body %v", tt.name, err, tt.bad)
				case !tt.bad && err != io.EOF:
					t.Errorf("%s: err %v, want EOF", tt.name, err)
				}
			}
		}
	}
}

// The stand-in for a refused request is recognized by its target only.
func TestRefusalNeedsTheTarget(t *testing.T) {
	t.Parallel()
	_, g, _ := readAll(t, "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 0, 4096)
	if g.Refusal("/") != nil || g.Refusal("/.gatehouse/refused/x") != nil {
		t.Fatal("a refusal answered for another target")
	}
	if r := g.Refusal(g.l.target); r == nil || r.Reason != "Transfer-Encoding in an HTTP/1.0 request" {
		t.Fatalf("refusal %+v", r)
	}
}

// timeoutConn returns a deadline error once, after the first piece.
type timeoutConn struct {
	net.Conn
	pieces []string
	i      int
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func (c *timeoutConn) Read(p []byte) (int, error) {
	c.i++
	switch {
	case c.i == 2:
		return 0, timeoutErr{}
	case len(c.pieces) == 0:
		return 0, io.EOF
	}
	n := copy(p, c.pieces[0])
	if c.pieces[0] = c.pieces[0][n:]; c.pieces[0] == "" {
		c.pieces = c.pieces[1:]
	}
	return n, nil
}

// A deadline that interrupts a held head (net/http aborts its background
// read that way) keeps the head held and checked: the rest of it is not
// let through unchecked.
func TestDeadlineKeepsHeldHead(t *testing.T) {
	t.Parallel()
	l := NewListener(nil, testLimits)
	g := &Conn{Conn: &timeoutConn{pieces: []string{"POST / HTTP/1.1\r\nTransfer-", "Encoding: chunked\r\nContent-Length: 1\r\n\r\n"}}, l: l}
	buf := make([]byte, 1)
	if n, err := g.Read(buf); n != 0 || err == nil {
		t.Fatalf("first read: %d, %v; want the deadline error", n, err)
	}
	got, err := io.ReadAll(g)
	if err != nil || string(got) != string(l.canned) {
		t.Fatalf("after the deadline: %q, %v; want the refusal's stand-in", got, err)
	}
}

// A tunnel passes what follows untouched, held bytes first.
func TestTunnelPassesThrough(t *testing.T) {
	t.Parallel()
	l := NewListener(nil, testLimits)
	up := "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n"
	g := &Conn{Conn: &chunkedConn{pieces: [][]byte{[]byte(up + "\x81\x05hel"), []byte("lo\r\n\r\nanything")}}, l: l}
	buf := make([]byte, 4096)
	n, _ := g.Read(buf)
	if string(buf[:n]) != up {
		t.Fatalf("head: %q", buf[:n])
	}
	g.Tunnel()
	rest, err := io.ReadAll(g)
	if err != nil || string(rest) != "\x81\x05hello\r\n\r\nanything" {
		t.Fatalf("tunnel: %q, %v", rest, err)
	}
}

func TestOf(t *testing.T) {
	t.Parallel()
	g := &Conn{}
	if Of(g) != g || Of(wrapped{g}) != g || Of(&net.TCPConn{}) != nil || Of(nil) != nil {
		t.Fatal("Of does not find the guard")
	}
}

type wrapped struct{ net.Conn }

func (w wrapped) NetConn() net.Conn { return w.Conn }

// netHTTPStarts returns the offsets at which net/http reads requests in
// stream, reading each body through.
func netHTTPStarts(stream []byte) []int {
	cr := &countReader{r: bytes.NewReader(stream)}
	br := bufio.NewReader(cr)
	var starts []int
	for {
		off := cr.n - br.Buffered()
		req, err := http.ReadRequest(br)
		if err != nil {
			return starts
		}
		starts = append(starts, off)
		if _, err := io.Copy(io.Discard, req.Body); err != nil {
			return starts
		}
	}
}

type countReader struct {
	r io.Reader
	n int
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// FuzzFramingMatchesNetHTTP: where the guard lets bytes through, every
// request net/http reads from them starts where the guard saw a head
// start, so no request reaches the server unchecked. And the guard
// delivers the same bytes however the stream is split.
func FuzzFramingMatchesNetHTTP(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: 1\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\n\n3;e\r\nabc\r\n0\r\n\r\n",
	} {
		f.Add([]byte(s), uint8(0))
	}
	lim := Limits{MaxLineBytes: 8192, MaxHeadBytes: 32 << 10}
	f.Fuzz(func(t *testing.T, stream []byte, split uint8) {
		var starts []int
		var fr framer
		k, _ := fr.advanceHeads(stream, lim, func(off int) { starts = append(starts, off) })
		for _, s := range netHTTPStarts(stream[:k]) {
			if !slices.Contains(starts, s) {
				t.Fatalf("net/http reads a request at %d; the guard's heads start at %v (delivered %d of %d)", s, starts, k, len(stream))
			}
		}
		// Split delivery gives the same bytes as whole delivery.
		whole := deliver(stream, 0, lim)
		if parts := deliver(stream, int(split%16)+1, lim); parts != whole {
			t.Fatalf("split %d delivers\n%q\nwhole delivers\n%q", split%16+1, parts, whole)
		}
	})
}

func deliver(stream []byte, split int, lim Limits) string {
	l := NewListener(nil, lim)
	l.canned = []byte("<refused>")
	g := &Conn{Conn: &chunkedConn{pieces: pieces(stream, split)}, l: l}
	var out bytes.Buffer
	buf := make([]byte, 512)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		n, err := g.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return out.String()
}

// BenchmarkGuardRead: the guard's cost on a keep-alive connection's
// typical read, one whole browser-like head, checked in place.
func BenchmarkGuardRead(b *testing.B) {
	head := []byte("GET /kline/api/v1/ticks?symbol=BTCUSDT HTTP/1.1\r\nHost: gatehouse.example\r\n" +
		"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36\r\nAccept: application/json\r\n" +
		"Accept-Encoding: gzip, deflate, br\r\nAccept-Language: en-US,en;q=0.9\r\nCookie: theme=dark\r\n\r\n")
	src := &repeatConn{b: head}
	l := NewListener(nil, Limits{MaxLineBytes: 8192, MaxHeadBytes: 32 << 10})
	g := &Conn{Conn: src, l: l}
	buf := make([]byte, 4096)
	b.ReportAllocs()
	b.SetBytes(int64(len(head)))
	for b.Loop() {
		if n, err := g.Read(buf); n != len(head) || err != nil {
			b.Fatal(n, err)
		}
	}
}

// repeatConn returns the same bytes on every read.
type repeatConn struct {
	net.Conn
	b []byte
}

func (c *repeatConn) Read(p []byte) (int, error) { return copy(p, c.b), nil }

// After a refusal, Close half-closes and reads what the client is still
// sending before it closes, so the client reads the answer instead of a
// reset (the rest of a 200 KiB header, here).
func TestCloseLingersAfterRefusal(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	gl := NewListener(ln, Limits{MaxLineBytes: 1024, MaxHeadBytes: 4096})
	served := make(chan error, 1)
	go func() {
		c, err := gl.Accept()
		if err != nil {
			served <- err
			return
		}
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			served <- err
			return
		}
		if Of(c).Refusal(req.RequestURI) == nil {
			served <- errors.New("no refusal")
			return
		}
		io.WriteString(c, "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
		served <- c.Close()
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// As an HTTP client does: the whole request first, then the answer.
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\nX-Big: "+strings.Repeat("a", 200<<10)+"\r\n\r\n"); err != nil {
		t.Fatalf("writing the request: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	if resp.StatusCode != 431 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	// A clean end (FIN), not a reset: the unread request was drained.
	if _, err := io.Copy(io.Discard, c); err != nil {
		t.Fatalf("after the answer: %v, want a clean end of stream", err)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
}

// A refusal recorded before a protocol switch ends the tunnel: neither
// the refused bytes nor the stand-in reach the new protocol's peer.
func TestTunnelAfterRefusalEnds(t *testing.T) {
	t.Parallel()
	l := NewListener(nil, testLimits)
	up := "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n"
	bad := "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
	g := &Conn{Conn: &chunkedConn{pieces: [][]byte{[]byte(up + bad)}}, l: l}
	buf := make([]byte, 4096)
	n, _ := g.Read(buf)
	if string(buf[:n]) != up {
		t.Fatalf("head: %q", buf[:n])
	}
	g.Tunnel()
	rest, err := io.ReadAll(g)
	if err != nil || len(rest) != 0 {
		t.Fatalf("tunnel after a refusal: %q, %v; want nothing", rest, err)
	}
}

// closeCounter counts reads and closes.
type closeCounter struct {
	net.Conn
	reads, closes int
}

func (c *closeCounter) Read(p []byte) (int, error) { c.reads++; return 0, io.EOF }
func (c *closeCounter) Close() error               { c.closes++; return nil }

// A refusal not yet answered (pipelined behind a request still running
// when a shutdown closes the connection) is closed at once: lingering
// there made a shutdown wait half a second per such connection.
func TestCloseDoesNotLingerBeforeTheAnswer(t *testing.T) {
	t.Parallel()
	cc := &closeCounter{}
	g := &Conn{Conn: cc, l: NewListener(nil, testLimits)}
	g.refusal.Store(&Refusal{Status: 400})
	g.refused = true
	if err := g.Close(); err != nil || cc.reads != 0 || cc.closes != 1 {
		t.Fatalf("Close: %v, %d reads, %d closes; want no lingering read", err, cc.reads, cc.closes)
	}
}

// TestWaitReadable: the guard's readability wait reads nothing itself
// (every byte is still framed by Read), waits past an incomplete head it
// holds, and returns at once when it has bytes to deliver.
func TestWaitReadable(t *testing.T) {
	t.Parallel()
	client, server := testutil.SocketPair(t)
	defer client.Close()
	g := &Conn{Conn: server, l: NewListener(nil, testLimits)}
	defer g.Close()

	if _, err := io.WriteString(client, "GET / HTTP/1.1\r\nHost: a\r\n"); err != nil {
		t.Fatal(err)
	}
	if err := g.WaitReadable(); err != nil {
		t.Fatal(err)
	}
	_ = g.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	buf := make([]byte, 256)
	if n, err := g.Read(buf); n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("an incomplete head: read %q, %v; want nothing before the deadline", buf[:n], err)
	}
	if err := g.WaitReadable(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("an incomplete head held: got %v, want a wait to the deadline", err)
	}
	_ = g.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(client, "\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if err := g.WaitReadable(); err != nil {
		t.Fatal(err)
	}
	n, err := g.Read(buf[:20])
	if err != nil || string(buf[:n]) != "GET / HTTP/1.1\r\nHost" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	if err := g.WaitReadable(); err != nil { // the rest is the guard's to deliver
		t.Fatal(err)
	}
	rest, err := g.Read(buf)
	if err != nil || string(buf[:rest]) != ": a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n" {
		t.Fatalf("read %q, %v", buf[:rest], err)
	}
}

// TestGuardStaysSmall: every guarded connection keeps its guard, idle
// ones too; it fits the size class its memory budget was measured with
// (docs/performance.md, "Idle keep-alive connections").
func TestGuardStaysSmall(t *testing.T) {
	t.Parallel()
	if size := unsafe.Sizeof(Conn{}); unsafe.Sizeof(uintptr(0)) == 8 && size > 208 {
		t.Errorf("Conn is %d bytes: over the 208-byte size class", size)
	}
}

// A refusal names the refused request's own line, whatever came before it
// in the same read: the tail of another request's body (a login form's
// password) or a whole good request; and never the query or an absolute
// target's userinfo. Read from where the read began, it named the body.
func TestRefusalNamesTheRefusedRequest(t *testing.T) {
	t.Parallel()
	const bad = "Content-Length: 1\r\nContent-Length: 2\r\n\r\n"
	for _, tc := range []struct{ name, in, method, target string }{
		{"after a body", "POST /login HTTP/1.1\r\nContent-Length: 20\r\n\r\npassword=hunter2&x=1POST /refused HTTP/1.1\r\n" + bad, "POST", "/refused"},
		{"after a request", "GET /good HTTP/1.1\r\n\r\nGET /bad?token=s3cret HTTP/1.1\r\n" + bad, "GET", "/bad"},
		{"absolute form", "GET http://u:s3cret@h.example/p?q=1 HTTP/1.1\r\n" + bad, "GET", "http://h.example/p"},
		{"absolute form, no path", "GET http://u:s3cret@h.example HTTP/1.1\r\n" + bad, "GET", "http://h.example"},
		{"a password with / and ?", "GET http://u:s3/cr?et@h.example/x?q=1 HTTP/1.1\r\n" + bad, "GET", "http://h.example/x"},
	} {
		for _, split := range []int{0, 1, 7, 30, 50} {
			for _, bufSize := range []int{1, 16, 4096} {
				_, g, _ := readAll(t, tc.in, split, bufSize)
				ref := g.Refusal(g.l.target)
				if ref == nil || ref.Method != tc.method || ref.Target != tc.target {
					t.Fatalf("%s (split %d, buf %d): refusal %+v, want %s %s", tc.name, split, bufSize, ref, tc.method, tc.target)
				}
			}
		}
	}
}
