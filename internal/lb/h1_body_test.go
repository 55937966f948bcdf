package lb

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gatehouse/internal/testutil"
)

// teeConn records what is read from a connection.
type teeConn struct {
	net.Conn
	mu  sync.Mutex
	got bytes.Buffer
}

func (c *teeConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.got.Write(p[:n])
	c.mu.Unlock()
	return n, err
}

// take returns what was read so far, less what br still holds.
func (c *teeConn) take(br *bufio.Reader) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.got.Bytes()
	s := string(b[:len(b)-br.Buffered()])
	c.got.Reset()
	c.got.Write(b[len(b)-br.Buffered():])
	return s
}

// bodyExchange is one request as an upstream received it: the raw
// bytes of the whole request, or of what came before the connection
// ended, and whether the request was complete.
type bodyExchange struct {
	raw      string
	complete bool
	err      string
}

// bodyUpstream reads whole requests, bodies included, reports each on
// got, and answers each with ok5.
func bodyUpstream(t testing.TB, got chan<- bodyExchange) *rawUpstream {
	return newRawUpstream(t, func(nc net.Conn) {
		c := &teeConn{Conn: nc}
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				if raw := c.take(br); raw != "" || err != io.EOF {
					got <- bodyExchange{raw: raw, err: err.Error()}
				}
				return
			}
			_, err = io.Copy(io.Discard, req.Body)
			ex := bodyExchange{raw: c.take(br), complete: err == nil}
			if err != nil {
				ex.err = err.Error()
			}
			got <- ex
			if err != nil {
				return
			}
			resp := ok5
			if req.Method == "HEAD" {
				resp = strings.TrimSuffix(ok5, "hello")
			}
			if _, err := io.WriteString(c, resp); err != nil {
				return
			}
		}
	})
}

// pieces is a body that is not in memory: it returns its pieces one
// Read at a time, then EOF, or err after the last one.
type pieces struct {
	p   []string
	err error
}

func (b *pieces) Read(p []byte) (int, error) {
	if len(b.p) == 0 {
		if b.err != nil {
			return 0, b.err
		}
		return 0, io.EOF
	}
	n := copy(p, b.p[0])
	b.p[0] = b.p[0][n:]
	if b.p[0] == "" {
		b.p = b.p[1:]
	}
	return n, nil
}

func (b *pieces) Close() error { return nil }

// canonicalRequest sorts a raw request's header lines, leaving the
// request line and the body as they are.
func canonicalRequest(raw string) string {
	head, body, _ := strings.Cut(raw, "\r\n\r\n")
	return canonicalHead(head+"\r\n\r\n") + "\n\n" + body
}

// writersRunning counts body writer goroutines.
func writersRunning() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), "lb.(*h1Conn).writeBody(")
}

// noWriterLeft fails t if a body writer still runs: every writer ends
// before its round trip returns an error, or its response body's end
// returns. The body tests do not run in parallel, so that this holds.
func noWriterLeft(t *testing.T) {
	t.Helper()
	if !testutil.WaitFor(2*time.Second, func() bool { return writersRunning() == 0 }) {
		t.Fatalf("%d body writers still run", writersRunning())
	}
}

// The synchronous client frames and writes a body as the Transport does:
// the same bytes on the wire, header order aside.
func TestH1WritesBodiesAsTransport(t *testing.T) {
	got := make(chan bodyExchange, 4)
	u := bodyUpstream(t, got)
	tr := &http.Transport{DisableCompression: true}
	defer tr.CloseIdleConnections()
	c := testClient(Settings{})
	defer c.CloseIdleConnections()
	for _, tc := range []struct {
		name, method string
		cl           int64
		te           []string
		body         func() io.ReadCloser
		trailer      http.Header
	}{
		{"length, in memory", "POST", 11, nil, func() io.ReadCloser { return io.NopCloser(strings.NewReader("hello world")) }, nil},
		{"length, streamed", "PUT", 11, nil, func() io.ReadCloser { return &pieces{p: []string{"hello", " world"}} }, nil},
		{"chunked", "POST", -1, nil, func() io.ReadCloser { return &pieces{p: []string{"abc", "de", strings.Repeat("x", 40000)}} }, nil},
		{"chunked with trailers", "POST", -1, nil, func() io.ReadCloser { return &pieces{p: []string{"abc"}} },
			http.Header{"X-Sum": {"3"}, "x-other": {"a", "b"}}},
		{"empty chunked", "PATCH", -1, nil, func() io.ReadCloser { return &pieces{} }, nil},
		{"length 0 with a body", "PUT", 0, nil, func() io.ReadCloser { return &pieces{p: []string{"late"}} }, nil},
		{"transfer-encoding chunked wins", "POST", 5, []string{"chunked"}, func() io.ReadCloser { return &pieces{p: []string{"hello"}} }, nil},
		{"HEAD with a body", "HEAD", 4, nil, func() io.ReadCloser { return io.NopCloser(strings.NewReader("body")) }, nil},
		{"DELETE with a body", "DELETE", 4, nil, func() io.ReadCloser { return &pieces{p: []string{"bo", "dy"}} }, nil},
		{"big, in memory", "POST", 100 << 10, nil, func() io.ReadCloser {
			return io.NopCloser(bytes.NewReader(bytes.Repeat([]byte("0123456789abcdef"), 100<<10/16)))
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var sent [2]string
			for i, rt := range []http.RoundTripper{tr, c} {
				req := &http.Request{Method: tc.method, Header: http.Header{"User-Agent": {""}, "X-A": {"1"}},
					URL: &url.URL{Scheme: "http", Host: u.addr(), Path: "/up"}, ContentLength: tc.cl,
					TransferEncoding: tc.te, Body: tc.body()}
				if tc.trailer != nil {
					req.Trailer = tc.trailer.Clone()
				}
				if i == 1 && !c.eligible(req) {
					t.Fatal("not eligible for the synchronous client")
				}
				resp, err := rt.RoundTrip(req)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				ex := <-got
				if !ex.complete {
					t.Fatalf("incomplete request: %+v", ex)
				}
				sent[i] = canonicalRequest(ex.raw)
			}
			if sent[0] != sent[1] {
				t.Errorf("Transport wrote:\n%q\nsynchronous client wrote:\n%q", sent[0], sent[1])
			}
		})
	}
	noWriterLeft(t)
	if n := u.Accepted.Load(); n != 2 {
		t.Errorf("%d connections, want 2 (one each, reused)", n)
	}
}

// Bodies the Transport probes, or frames otherwise, stay with it.
func TestH1BodyEligibility(t *testing.T) {
	c := testClient(Settings{})
	body := func() io.ReadCloser { return io.NopCloser(strings.NewReader("x")) }
	for _, tc := range []struct {
		method string
		cl     int64
		te     []string
		want   bool
	}{
		{"POST", 1, nil, true}, {"POST", -1, nil, true}, {"GET", 1, nil, true},
		{"GET", -1, nil, false}, {"DELETE", -1, nil, false}, {"HEAD", 0, nil, false},
		{"OPTIONS", -1, nil, false}, {"PUT", -1, []string{"gzip", "chunked"}, false},
		{"CONNECT", 1, nil, false},
	} {
		req := &http.Request{Method: tc.method, URL: &url.URL{Scheme: "http", Host: "x"}, Header: http.Header{},
			ContentLength: tc.cl, TransferEncoding: tc.te, Body: body()}
		if got := c.eligible(req); got != tc.want {
			t.Errorf("%s, length %d, %v: eligible %v, want %v", tc.method, tc.cl, tc.te, got, tc.want)
		}
	}
}

// A body that fails, or does not match its length, never makes a
// complete request upstream: the connection is closed without the
// rest, and without a chunked body's last chunk.
func TestH1BrokenBodyNeverCompletesTheRequest(t *testing.T) {
	got := make(chan bodyExchange, 4)
	u := bodyUpstream(t, got)
	c := testClient(Settings{})
	defer c.CloseIdleConnections()
	errCut := errors.New("client went away")
	for _, tc := range []struct {
		name    string
		cl      int64
		body    *pieces
		wantErr string
	}{
		{"length, read fails", 10, &pieces{p: []string{"hello"}, err: errCut}, errCut.Error()},
		{"chunked, read fails", -1, &pieces{p: []string{"hello"}, err: errCut}, errCut.Error()},
		{"shorter than its length", 10, &pieces{p: []string{"hello"}}, "ContentLength=10 with Body length 5"},
		{"longer than its length", 5, &pieces{p: []string{"hello", "!"}}, "ContentLength=5 with Body length 6"},
		{"longer, in one read", 5, &pieces{p: []string{"hello!"}}, "ContentLength=5 with Body length 6"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A kept connection first: the failure must not leave it idle.
			if _, _, err := get(t, c, u.addr(), "/warm"); err != nil {
				t.Fatal(err)
			}
			<-got
			req, _ := http.NewRequest("POST", "http://"+u.addr()+"/", tc.body)
			req.ContentLength = tc.cl
			_, err := c.RoundTrip(req)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
			if tc.body.err != nil && !errors.Is(err, errCut) {
				t.Errorf("err = %v, not the body's own", err)
			}
			ex := <-got
			if ex.complete || tc.cl < 0 && strings.HasSuffix(ex.raw, "\r\n0\r\n\r\n") {
				t.Fatalf("the upstream got a complete request: %+v", ex)
			}
			if tc.cl == 5 && strings.HasSuffix(ex.raw, "hello") {
				t.Fatalf("the upstream got all the declared bytes of a longer body: %q", ex.raw)
			}
			idle := idleConns(c, u.addr())
			if idle != 0 {
				t.Fatal("the connection went back to the idle list")
			}
			noWriterLeft(t)
		})
	}
}

// abortablePipe is a request body fed by the test, whose waiting read can
// be aborted, as the proxy's bodies can.
type abortablePipe struct {
	*io.PipeReader
	aborted chan struct{}
	once    sync.Once
}

func newAbortablePipe() (*abortablePipe, *io.PipeWriter) {
	pr, pw := io.Pipe()
	return &abortablePipe{PipeReader: pr, aborted: make(chan struct{})}, pw
}

func (p *abortablePipe) AbortRead() {
	p.once.Do(func() {
		close(p.aborted)
		p.PipeReader.CloseWithError(errors.New("read aborted"))
	})
}

// An upstream may answer before it has read the body (413, 401), and
// close or not: the answer reaches the caller at once, even while the
// body waits for its client, and the body writer ends with the answer's
// body, on a connection that is never reused.
func TestH1EarlyResponse(t *testing.T) {
	for _, closeAfter := range []bool{true, false} {
		t.Run(fmt.Sprint("upstream closes=", closeAfter), func(t *testing.T) {
			heads := make(chan string, 2)
			u := newRawUpstream(t, func(c net.Conn) {
				br := bufio.NewReader(c)
				for {
					h, ok := readHead(br)
					if !ok {
						return
					}
					heads <- h
					io.WriteString(c, "HTTP/1.1 413 Request Entity Too Large\r\nContent-Length: 3\r\n\r\nbig")
					if closeAfter {
						return
					}
					io.Copy(io.Discard, br) // lingers, reading what comes
					return
				}
			})
			c := testClient(Settings{ResponseHeaderTimeout: 5 * time.Second})
			defer c.CloseIdleConnections()
			body, pw := newAbortablePipe()
			defer pw.Close()
			go pw.Write([]byte("first part"))
			req, _ := http.NewRequest("POST", "http://"+u.addr()+"/", body)
			req.ContentLength = 1 << 20
			resp, err := c.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			var b []byte
			ended := make(chan struct{})
			go func() {
				b, err = io.ReadAll(resp.Body)
				resp.Body.Close()
				close(ended)
			}()
			select {
			case <-ended:
			case <-time.After(5 * time.Second):
				pw.Close()
				<-ended
				t.Fatal("the response's end waited for the body's client")
			}
			if resp.StatusCode != 413 || string(b) != "big" || err != nil {
				t.Fatalf("%d %q %v", resp.StatusCode, b, err)
			}
			select {
			case <-body.aborted:
			default:
				t.Fatal("the body's read was not aborted")
			}
			noWriterLeft(t)
			<-heads
			idle := idleConns(c, u.addr())
			if idle != 0 {
				t.Fatal("a connection whose body was not all sent went back to the idle list")
			}
		})
	}
}

// An early answer to a body that has been read whole, but not yet all
// written (the upstream does not read it): the writer gets its grace,
// then the connection is closed, which ends its write.
func TestH1EarlyResponseWhileWriting(t *testing.T) {
	release := make(chan struct{})
	u := newRawUpstream(t, func(c net.Conn) {
		readHead(bufio.NewReader(c))
		io.WriteString(c, "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
		<-release // reads nothing more, and keeps the connection
	})
	defer close(release)
	c := testClient(Settings{})
	defer c.CloseIdleConnections()
	big := bytes.Repeat([]byte("x"), 32<<20) // more than the sockets hold
	req, _ := http.NewRequest("PUT", "http://"+u.addr()+"/", bytes.NewReader(big))
	resp, err := c.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("ending the response took %v", took)
	}
	noWriterLeft(t)
}

// The upstream closing while the body is being sent, without an answer:
// the round trip fails, after its writer has ended.
func TestH1UpstreamClosesMidBody(t *testing.T) {
	u := newRawUpstream(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		readHead(br)
		io.CopyN(io.Discard, br, 1000)
	})
	c := testClient(Settings{})
	defer c.CloseIdleConnections()
	for _, cl := range []int64{8 << 20, -1} {
		req, _ := http.NewRequest("POST", "http://"+u.addr()+"/", &pieces{p: []string{strings.Repeat("y", 8<<20)}})
		req.ContentLength = cl
		if _, err := c.RoundTrip(req); err == nil {
			t.Fatal("a round trip whose upstream closed mid-body succeeded")
		}
		noWriterLeft(t)
	}
}

// The response header timeout runs from the end of the body, as the
// Transport's: a slow upload is not a slow upstream; an upstream that
// does not answer a whole body in time is.
func TestH1HeaderTimeoutFromTheEndOfTheBody(t *testing.T) {
	const timeout = 300 * time.Millisecond
	u := newRawUpstream(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			if req.URL.Path == "/never" {
				io.Copy(io.Discard, br)
				return
			}
			io.WriteString(c, ok5)
		}
	})
	c := testClient(Settings{ResponseHeaderTimeout: timeout})
	defer c.CloseIdleConnections()
	for range 2 { // on a new connection, then on the kept one
		body, pw := newAbortablePipe()
		go func() {
			for range 4 {
				time.Sleep(timeout / 2)
				pw.Write([]byte("slow"))
			}
			pw.Close()
		}()
		req, _ := http.NewRequest("POST", "http://"+u.addr()+"/", body)
		resp, err := c.RoundTrip(req)
		if err != nil {
			t.Fatalf("a body sent over twice the header timeout: %v", err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if n := u.Accepted.Load(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
	req, _ := http.NewRequest("POST", "http://"+u.addr()+"/never", strings.NewReader("body"))
	_, err := c.RoundTrip(req)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("err = %v, want a timeout", err)
	}
	noWriterLeft(t)
}

// Cancelling the request while its body is being written ends the round
// trip and its writer.
func TestH1CancelWhileWritingBody(t *testing.T) {
	release := make(chan struct{})
	u := newRawUpstream(t, func(c net.Conn) {
		readHead(bufio.NewReader(c))
		<-release // reads nothing: the writer blocks
	})
	defer close(release)
	c := testClient(Settings{})
	defer c.CloseIdleConnections()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+u.addr()+"/", bytes.NewReader(make([]byte, 32<<20)))
	time.AfterFunc(50*time.Millisecond, cancel)
	if _, err := c.RoundTrip(req); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	noWriterLeft(t)
}

// A body is sent again after a stale reused connection only when the
// request is replayable and GetBody gives the body again (net/http's
// isReplayable and rewindBody).
func TestH1BodyResendNeedsGetBody(t *testing.T) {
	got := make(chan string, 8)
	u := newRawUpstream(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		b, _ := io.ReadAll(req.Body)
		got <- string(b)
		io.WriteString(c, ok5)
		readHead(br) // the next request on this connection: closed unanswered
	})
	var dials atomic.Int32
	d := &net.Dialer{Timeout: time.Second}
	c := newH1Client(func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		return d.DialContext(ctx, network, addr)
	}, Settings{IdleConnTimeout: 4 * time.Second})
	defer c.CloseIdleConnections()
	post := func(getBody bool) error {
		req, _ := http.NewRequest("PUT", "http://"+u.addr()+"/", &pieces{p: []string{"payload"}})
		req.ContentLength = 7
		req.Header.Set("Idempotency-Key", "k1")
		if getBody {
			req.GetBody = func() (io.ReadCloser, error) { return &pieces{p: []string{"payload"}}, nil }
		}
		resp, err := c.RoundTrip(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		return resp.Body.Close()
	}
	if err := post(false); err != nil {
		t.Fatal(err)
	}
	<-got
	if err := post(true); err != nil {
		t.Fatalf("a replayable body on a stale connection: %v", err)
	}
	if b := <-got; b != "payload" {
		t.Fatalf("resent body %q", b)
	}
	if err := post(false); err == nil {
		t.Fatal("a body without GetBody was sent twice")
	}
	if n := dials.Load(); n != 2 {
		t.Fatalf("%d connections dialled, want 2: a body without GetBody was tried again", n)
	}
	noWriterLeft(t)
}

// BenchmarkRoundTripBody: a 1 KiB POST on one kept plain connection, by
// the synchronous client and by http.Transport; the body in memory (as
// a client's), and streamed (as the proxy's: the head is flushed first).
func BenchmarkRoundTripBody(b *testing.B) {
	u := newRawUpstream(b, answerLengthBodies)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := newH1Client((&net.Dialer{}).DialContext, Settings{})
	defer c.CloseIdleConnections()
	payload := bytes.Repeat([]byte("p"), 1<<10)
	for _, rt := range []struct {
		name string
		rt   http.RoundTripper
	}{{"h1", c}, {"transport", tr}} {
		for _, streamed := range []bool{false, true} {
			name := rt.name + "/in-memory"
			if streamed {
				name = rt.name + "/streamed"
			}
			b.Run(name, func(b *testing.B) {
				req, _ := http.NewRequest("POST", "http://"+u.addr()+"/", nil)
				req.ContentLength = int64(len(payload))
				var mem bytes.Reader
				var str streamBody
				buf := make([]byte, 16)
				b.ReportAllocs()
				for b.Loop() {
					if streamed {
						str.Reset(payload)
						req.Body = &str
					} else {
						mem.Reset(payload)
						req.Body = io.NopCloser(&mem)
					}
					resp, err := rt.rt.RoundTrip(req)
					if err != nil {
						b.Fatal(err)
					}
					if n, _ := io.ReadFull(resp.Body, buf[:5]); n != 5 {
						b.Fatal("short body")
					}
					resp.Body.Close()
				}
			})
		}
	}
}

// streamBody is a reusable body that is not known to be in memory.
type streamBody struct{ r bytes.Reader }

func (s *streamBody) Reset(b []byte)             { s.r.Reset(b) }
func (s *streamBody) Read(p []byte) (int, error) { return s.r.Read(p) }
func (s *streamBody) Close() error               { return nil }

// answerLengthBodies answers ok5 to each request with a Content-Length
// body, allocating next to nothing (benchmarks count every allocation
// of the process).
func answerLengthBodies(c net.Conn) {
	br := bufio.NewReaderSize(c, 16<<10)
	for {
		cl := 0
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				return
			}
			if len(line) == 2 {
				break
			}
			if v, ok := bytes.CutPrefix(line, []byte("Content-Length: ")); ok {
				for _, d := range bytes.TrimSpace(v) {
					cl = cl*10 + int(d-'0')
				}
			}
		}
		if _, err := br.Discard(cl); err != nil {
			return
		}
		if _, err := io.WriteString(c, ok5); err != nil {
			return
		}
	}
}
