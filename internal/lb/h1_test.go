package lb

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gatehouse/internal/testutil"
)

// rawUpstream accepts connections on loopback and hands each to serve in
// its own goroutine; Accepted counts them.
type rawUpstream struct{ *testutil.RawServer }

func newRawUpstream(t testing.TB, serve func(c net.Conn)) *rawUpstream {
	t.Helper()
	return &rawUpstream{testutil.ServeRaw(t, serve)}
}

func (u *rawUpstream) addr() string { return u.Addr }

// readHead reads one request head from br; ok is false at EOF.
func readHead(br *bufio.Reader) (string, bool) {
	var b strings.Builder
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return b.String(), false
		}
		b.WriteString(line)
		if line == "\r\n" {
			return b.String(), true
		}
	}
}

// answerEach answers every request on a connection with resp.
func answerEach(resp string) func(net.Conn) {
	return func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			if _, ok := readHead(br); !ok {
				return
			}
			if _, err := io.WriteString(c, resp); err != nil {
				return
			}
		}
	}
}

func testClient(s Settings) *h1Client {
	d := &net.Dialer{Timeout: time.Second}
	if s.IdleConnTimeout == 0 {
		s.IdleConnTimeout = 4 * time.Second
	}
	return newH1Client(d.DialContext, s)
}

func get(t *testing.T, c *h1Client, addr, path string) (*http.Response, string, error) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
	resp, err := c.RoundTrip(req)
	if err != nil {
		return nil, "", err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b), err
}

const ok5 = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"

// idleConns is how many idle connections c holds to addr.
func idleConns(c *h1Client, addr string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.idle[addr])
}

func TestH1ReusesConnection(t *testing.T) {
	t.Parallel()
	u := newRawUpstream(t, answerEach(ok5))
	c := testClient(Settings{})
	defer c.CloseIdleConnections()
	for i := range 5 {
		_, body, err := get(t, c, u.addr(), "/")
		if err != nil || body != "hello" {
			t.Fatalf("request %d: %q, %v", i, body, err)
		}
	}
	if n := u.Accepted.Load(); n != 1 {
		t.Fatalf("5 sequential requests opened %d connections, want 1", n)
	}
}

func TestH1ChunkedAndTrailers(t *testing.T) {
	t.Parallel()
	u := newRawUpstream(t, answerEach("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n"+
		"3\r\nabc\r\n2\r\nde\r\n0\r\nX-Sum: 5\r\n\r\n"))
	c := testClient(Settings{})
	defer c.CloseIdleConnections()
	for range 2 {
		resp, body, err := get(t, c, u.addr(), "/")
		if err != nil || body != "abcde" || resp.Trailer.Get("X-Sum") != "5" {
			t.Fatalf("got %q trailer %v, %v", body, resp.Trailer, err)
		}
	}
	if n := u.Accepted.Load(); n != 1 {
		t.Fatalf("chunked responses opened %d connections, want 1", n)
	}
}

// An app server (Node closes idle keep-alive connections after 5 s) may
// close a connection just as it is reused: a GET is sent again on a new
// one, without an error reaching the caller; a POST is not sent twice.
func TestH1RetriesWhenServerClosesOnReuse(t *testing.T) {
	t.Parallel()
	u := newRawUpstream(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		if _, ok := readHead(br); ok {
			io.WriteString(c, ok5)
		}
		readHead(br) // the next request on this connection: closed unanswered
	})
	c := testClient(Settings{})
	defer c.CloseIdleConnections()
	for i := range 3 {
		if _, body, err := get(t, c, u.addr(), "/"); err != nil || body != "hello" {
			t.Fatalf("request %d: %q, %v", i, body, err)
		}
	}
	if n := u.Accepted.Load(); n != 3 {
		t.Fatalf("%d connections, want 3 (two retried on a new one)", n)
	}
	req, _ := http.NewRequest("POST", "http://"+u.addr()+"/", nil)
	if _, err := c.RoundTrip(req); err == nil {
		t.Fatal("POST on a connection the server closed succeeded; it must not be sent twice")
	}
}

// When the server closes every idle connection at once, the resend after
// a stale one goes on a new connection, not on the next idle one.
func TestH1ResendDialsNewConnection(t *testing.T) {
	t.Parallel()
	var arrived atomic.Int32
	both := make(chan struct{}) // closed when two first requests are in flight
	u := newRawUpstream(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		if _, ok := readHead(br); !ok {
			return
		}
		if n := arrived.Add(1); n == 2 {
			close(both)
		}
		<-both
		io.WriteString(c, ok5)
		readHead(br) // a later request on this connection: closed unanswered
	})
	c := testClient(Settings{})
	defer c.CloseIdleConnections()
	errs := make(chan error, 2)
	for range 2 {
		go func() { _, _, err := get(t, c, u.addr(), "/"); errs <- err }()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	idle := idleConns(c, u.addr())
	if idle != 2 {
		t.Fatalf("%d idle connections, want 2", idle)
	}
	if _, body, err := get(t, c, u.addr(), "/"); err != nil || body != "hello" {
		t.Fatalf("GET after both idle connections went stale: %q, %v", body, err)
	}
}

// waitIdleDirty waits until the server's FIN or stray bytes have arrived
// on the idle connection to addr.
func waitIdleDirty(t *testing.T, c *h1Client, addr string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.mu.Lock()
		list := c.idle[addr]
		dirty := len(list) == 1 && socketPending(t, list[0])
		c.mu.Unlock()
		if dirty {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the idle connection never showed the server's close or bytes")
		}
		time.Sleep(time.Millisecond)
	}
}

// A connection the server closed while idle is noticed before use, so even
// a request that cannot be replayed gets a new connection: closed, or
// half-closed by a server that still reads (nginx's lingering close), which
// no write of ours would reveal before the response header timeout.
func TestH1SkipsIdleConnectionClosedByServer(t *testing.T) {
	t.Parallel()
	for _, halfClose := range []bool{false, true} {
		t.Run(fmt.Sprint("half-closed=", halfClose), func(t *testing.T) {
			t.Parallel()
			u := newRawUpstream(t, func(c net.Conn) {
				br := bufio.NewReader(c)
				if _, ok := readHead(br); !ok {
					return
				}
				io.WriteString(c, ok5) // then close
				if halfClose {
					c.(*net.TCPConn).CloseWrite()
					io.Copy(io.Discard, br)
				}
			})
			c := testClient(Settings{ResponseHeaderTimeout: 10 * time.Second})
			defer c.CloseIdleConnections()
			if _, _, err := get(t, c, u.addr(), "/"); err != nil {
				t.Fatal(err)
			}
			waitIdleDirty(t, c, u.addr())
			req, _ := http.NewRequest("POST", "http://"+u.addr()+"/", nil)
			resp, err := c.RoundTrip(req)
			if err != nil {
				t.Fatalf("POST after the server closed the idle connection: %v", err)
			}
			resp.Body.Close()
			if n := u.Accepted.Load(); n != 2 {
				t.Fatalf("%d connections, want 2", n)
			}
		})
	}
}

// Bytes that arrive on an idle connection answer no request: reading them
// as the next response would give one client another's answer.
func TestH1UnsolicitedBytesRetireConnection(t *testing.T) {
	t.Parallel()
	smuggle := make(chan struct{})
	u := newRawUpstream(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for first := true; ; first = false {
			if _, ok := readHead(br); !ok {
				return
			}
			io.WriteString(c, ok5)
			if first { // once the connection is idle
				<-smuggle
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil")
			}
		}
	})
	c := testClient(Settings{})
	defer c.CloseIdleConnections()
	if _, body, err := get(t, c, u.addr(), "/"); err != nil || body != "hello" {
		t.Fatalf("first: %q, %v", body, err)
	}
	close(smuggle)
	waitIdleDirty(t, c, u.addr())
	if _, body, err := get(t, c, u.addr(), "/"); err != nil || body != "hello" {
		t.Fatalf("second request got %q, %v; want its own response", body, err)
	}
	if n := u.Accepted.Load(); n != 2 {
		t.Fatalf("%d connections, want 2 (the dirty one retired)", n)
	}
}

func TestH1RefusesHeaderInjection(t *testing.T) {
	t.Parallel()
	// Each refused request dialled a connection and closed it unused; the
	// upstream reports how many bytes each connection carried.
	sent := make(chan int, 8)
	u := newRawUpstream(t, func(c net.Conn) {
		b, _ := io.ReadAll(c)
		sent <- len(b)
	})
	c := testClient(Settings{})
	defer c.CloseIdleConnections()
	for _, h := range []http.Header{
		{"X-Auth-Subject": {"alice\r\nX-Auth-Roles: admin"}},
		{"X-Bad\r\nName": {"v"}},
		{"User-Agent": {"a\nb"}},
		// A head larger than the write buffer: nothing of it may be
		// flushed before the bad value is found.
		{"X-Big": {strings.Repeat("b", 6000)}, "X-Evil": {"a\r\nb"}},
	} {
		req, _ := http.NewRequest("GET", "http://"+u.addr()+"/", nil)
		req.Header = h
		if _, err := c.RoundTrip(req); err == nil || !strings.Contains(err.Error(), "invalid header") {
			t.Fatalf("header %q: err = %v, want an invalid header error", h, err)
		}
	}
	req, _ := http.NewRequest("GET", "http://"+u.addr()+"/", nil)
	req.Host = "evil\r\nX: y"
	if _, err := c.RoundTrip(req); err == nil {
		t.Fatal("a Host with CR/LF was sent")
	}
	req, _ = http.NewRequest("GET", "http://"+u.addr()+"/public", nil)
	req.Method = "GET /admin"
	if _, err := c.RoundTrip(req); err == nil {
		t.Fatal("a method with a space was sent")
	}
	for range 6 {
		if n := <-sent; n != 0 {
			t.Fatalf("%d bytes of a refused request reached the upstream", n)
		}
	}
}

func TestH1ResponseHeadTooLarge(t *testing.T) {
	t.Parallel()
	u := newRawUpstream(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		readHead(br)
		io.WriteString(c, "HTTP/1.1 200 OK\r\n")
		line := "X-Big: " + strings.Repeat("a", 1000) + "\r\n"
		for range maxResponseHead/len(line) + 10 {
			if _, err := io.WriteString(c, line); err != nil {
				return
			}
		}
	})
	c := testClient(Settings{})
	defer c.CloseIdleConnections()
	if _, _, err := get(t, c, u.addr(), "/"); !errors.Is(err, errHeadTooLarge) {
		t.Fatalf("err = %v, want errHeadTooLarge", err)
	}
}

// Connections are reused only after a complete, clean response.
func TestH1ReuseRules(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, resp string
		closeEarly bool
		reqClose   bool
	}{
		{"connection close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello", false, false},
		{"http/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello", false, false},
		{"stray bytes after the body", ok5 + "HTTP/1.1 200 OK\r\n", false, false},
		{"body closed before its end", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello", true, false},
		{"request asked to close", ok5, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			u := newRawUpstream(t, answerEach(tc.resp))
			c := testClient(Settings{})
			defer c.CloseIdleConnections()
			for range 2 {
				req, _ := http.NewRequest("GET", "http://"+u.addr()+"/", nil)
				req.Close = tc.reqClose
				resp, err := c.RoundTrip(req)
				if err != nil {
					t.Fatal(err)
				}
				buf := make([]byte, 5)
				if _, err := io.ReadFull(resp.Body, buf); err != nil {
					t.Fatal(err)
				}
				if !tc.closeEarly {
					io.Copy(io.Discard, resp.Body)
				}
				resp.Body.Close()
			}
			if n := u.Accepted.Load(); n != 2 {
				t.Fatalf("opened %d connections, want 2 (none reused)", n)
			}
		})
	}
}

// hookCtx is a request context with its own closeOnCancel, as
// h1server's. Its Done is nil, so the client can only learn of its
// cancellation through the hook.
type hookCtx struct {
	context.Context
	cancelFn context.CancelFunc
	mu       sync.Mutex
	closer   io.Closer
}

func (c *hookCtx) Done() <-chan struct{} { return nil }

func (c *hookCtx) CloseOnCancel(cl io.Closer) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closer = cl
	return true
}

func (c *hookCtx) ReleaseClose(cl io.Closer) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closer != cl {
		return false
	}
	c.closer = nil
	return true
}

func (c *hookCtx) cancel() {
	c.mu.Lock()
	cl := c.closer
	c.closer = nil
	c.mu.Unlock()
	c.cancelFn()
	if cl != nil {
		cl.Close()
	}
}

// cancelKinds are the two ways a request context's cancellation reaches
// the client: context.AfterFunc, or the context's own closeOnCancel.
var cancelKinds = []struct {
	name string
	ctx  func() (context.Context, func())
}{
	{"context.WithCancel", func() (context.Context, func()) { return context.WithCancel(context.Background()) }},
	{"closeOnCancel", func() (context.Context, func()) {
		inner, cancel := context.WithCancel(context.Background())
		c := &hookCtx{Context: inner, cancelFn: cancel}
		return c, c.cancel
	}},
}

func TestH1CancelWhileWaitingForHeaders(t *testing.T) {
	t.Parallel()
	for _, kind := range cancelKinds {
		t.Run(kind.name, func(t *testing.T) {
			t.Parallel()
			testH1CancelWhileWaitingForHeaders(t, kind.ctx)
		})
	}
}

func testH1CancelWhileWaitingForHeaders(t *testing.T, newCtx func() (context.Context, func())) {
	release := make(chan struct{})
	u := newRawUpstream(t, func(c net.Conn) {
		readHead(bufio.NewReader(c))
		<-release
	})
	defer close(release)
	c := testClient(Settings{})
	defer c.CloseIdleConnections()
	ctx, cancel := newCtx()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+u.addr()+"/", nil)
	errc := make(chan error, 1)
	go func() {
		_, err := c.RoundTrip(req)
		errc <- err
	}()
	for u.Accepted.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("RoundTrip did not return after cancellation")
	}
}

func TestH1CancelWhileReadingBody(t *testing.T) {
	t.Parallel()
	for _, kind := range cancelKinds {
		t.Run(kind.name, func(t *testing.T) {
			t.Parallel()
			testH1CancelWhileReadingBody(t, kind.ctx)
		})
	}
}

func testH1CancelWhileReadingBody(t *testing.T, newCtx func() (context.Context, func())) {
	release := make(chan struct{})
	u := newRawUpstream(t, func(c net.Conn) {
		readHead(bufio.NewReader(c))
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhello")
		<-release
	})
	defer close(release)
	c := testClient(Settings{})
	defer c.CloseIdleConnections()
	ctx, cancel := newCtx()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+u.addr()+"/", nil)
	resp, err := c.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(20*time.Millisecond, cancel)
	errc := make(chan error, 1)
	go func() {
		_, err := io.ReadAll(resp.Body)
		errc <- err
	}()
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("a body cut off by cancellation read without error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("reading the body did not end after cancellation")
	}
	resp.Body.Close()
	idle := idleConns(c, u.addr())
	if idle != 0 {
		t.Fatal("a cancelled connection went back to the idle list")
	}
}

// The response header timeout ends a wait for the head as a timeout
// (504 upstream of it), not retried: when nothing came, and when the head
// was still trickling in, where bufio hands the parser the partial status
// line ("HTTP/1.1 2") without the deadline's error and it would read as a
// malformed head (502).
func TestH1ResponseHeaderTimeout(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		trickle string // sent a byte every 20 ms after the request
	}{
		{"nothing sent", ""},
		{"mid head", "HTTP/1.1 200 OK\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			release := make(chan struct{})
			u := newRawUpstream(t, func(c net.Conn) {
				readHead(bufio.NewReader(c))
				for _, b := range []byte(tc.trickle) {
					select {
					case <-release:
						return
					case <-time.After(20 * time.Millisecond): // a trickle, not a wait
					}
					if _, err := c.Write([]byte{b}); err != nil {
						return
					}
				}
				<-release
			})
			defer close(release)
			c := testClient(Settings{ResponseHeaderTimeout: 100 * time.Millisecond})
			defer c.CloseIdleConnections()
			_, _, err := get(t, c, u.addr(), "/")
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Fatalf("err = %v, want a timeout", err)
			}
			if n := u.Accepted.Load(); n != 1 {
				t.Fatalf("a timeout was retried (%d connections)", n)
			}
		})
	}
}

// The response header timeout's deadline may stay on a connection whose
// last body came whole with its head; it must still bound the next
// response's head, and must never cut a body that is still arriving.
func TestH1HeaderDeadlineAcrossResponses(t *testing.T) {
	t.Parallel()
	const timeout = 200 * time.Millisecond
	release := make(chan struct{})
	u := newRawUpstream(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			head, ok := readHead(br)
			if !ok {
				return
			}
			switch {
			case strings.HasPrefix(head, "GET /slow-body"):
				// The head now, the rest of the body after three timeouts.
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello")
				<-time.After(3 * timeout)
				io.WriteString(c, "world")
			case strings.HasPrefix(head, "GET /late"):
				<-time.After(timeout * 2 / 3)
				io.WriteString(c, ok5)
			case strings.HasPrefix(head, "GET /never"):
				<-release
				return
			default:
				io.WriteString(c, ok5)
			}
		}
	})
	defer close(release)
	c := testClient(Settings{ResponseHeaderTimeout: timeout})
	defer c.CloseIdleConnections()
	if _, body, err := get(t, c, u.addr(), "/quick"); err != nil || body != "hello" {
		t.Fatalf("quick: %q, %v", body, err)
	}
	if _, body, err := get(t, c, u.addr(), "/slow-body"); err != nil || body != "helloworld" {
		t.Fatalf("a body arriving after the header timeout: %q, %v", body, err)
	}
	if _, body, err := get(t, c, u.addr(), "/quick"); err != nil || body != "hello" {
		t.Fatalf("quick after the slow body: %q, %v", body, err)
	}
	// Half the timeout later, the deadline the quick response left is too
	// close: the next response gets the whole timeout again.
	<-time.After(timeout / 2)
	if _, body, err := get(t, c, u.addr(), "/late"); err != nil || body != "hello" {
		t.Fatalf("a response within the timeout, on a connection idle for half of it: %q, %v", body, err)
	}
	start := time.Now()
	_, _, err := get(t, c, u.addr(), "/never")
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("no answer on a reused connection: err = %v, want a timeout", err)
	}
	if took := time.Since(start); took > 5*timeout {
		t.Fatalf("the header timeout took %v", took)
	}
	if n := u.Accepted.Load(); n != 1 {
		t.Fatalf("%d connections, want 1 reused", n)
	}
}

// A connection that idles longer than the response header timeout (but
// less than the idle timeout) is reused: the deadline its last response
// left has expired by then, and must not fail the idle check.
func TestH1ReuseAfterKeptHeaderDeadlineExpired(t *testing.T) {
	t.Parallel()
	const timeout = 100 * time.Millisecond
	u := newRawUpstream(t, answerEach(ok5))
	c := testClient(Settings{ResponseHeaderTimeout: timeout, IdleConnTimeout: 10 * time.Second})
	defer c.CloseIdleConnections()
	for i := range 3 {
		if _, body, err := get(t, c, u.addr(), "/"); err != nil || body != "hello" {
			t.Fatalf("request %d: %q, %v", i, body, err)
		}
		<-time.After(2 * timeout)
	}
	if n := u.Accepted.Load(); n != 1 {
		t.Fatalf("%d connections for 3 requests, want 1 reused", n)
	}
}

// A status below 100 is no informational response: the request fails
// rather than passing a status net/http cannot write.
func TestH1StatusBelow100(t *testing.T) {
	t.Parallel()
	u := newRawUpstream(t, answerEach("HTTP/1.1 099 Odd\r\n\r\n"+ok5))
	c := testClient(Settings{})
	defer c.CloseIdleConnections()
	if _, body, err := get(t, c, u.addr(), "/"); err == nil {
		t.Fatalf("status 099 then 200: got %q, want an error", body)
	}
}

func TestH1Informational(t *testing.T) {
	t.Parallel()
	u := newRawUpstream(t, answerEach("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"+ok5))
	c := testClient(Settings{})
	defer c.CloseIdleConnections()
	var got []int
	var link string
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		got = append(got, code)
		if code == 103 {
			link = h.Get("Link")
		}
		return nil
	}}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", "http://"+u.addr()+"/", nil)
	resp, err := c.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !slices.Equal(got, []int{100, 103}) || link != "</a.css>; rel=preload" {
		t.Fatalf("status %d, 1xx %v, link %q", resp.StatusCode, got, link)
	}

	many := newRawUpstream(t, answerEach(strings.Repeat("HTTP/1.1 103 Early Hints\r\n\r\n", Max1xx+1)+ok5))
	if _, _, err := get(t, c, many.addr(), "/"); !errors.Is(err, ErrTooMany1xx) {
		t.Fatalf("err = %v, want too many 1xx", err)
	}
}

func TestH1IdleConnectionsExpireAndAreClosed(t *testing.T) {
	t.Parallel()
	closed := make(chan struct{}, 1)
	u := newRawUpstream(t, func(c net.Conn) {
		answerEach(ok5)(c)
		closed <- struct{}{} // the client closed its side
	})
	c := testClient(Settings{IdleConnTimeout: 30 * time.Millisecond})
	defer c.CloseIdleConnections()
	if _, _, err := get(t, c, u.addr(), "/"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-closed: // the sweep closed the idle connection
	case <-time.After(5 * time.Second):
		t.Fatal("an idle connection outlived its idle timeout")
	}
	if _, _, err := get(t, c, u.addr(), "/"); err != nil {
		t.Fatal(err)
	}
	if n := u.Accepted.Load(); n != 2 {
		t.Fatalf("%d connections, want 2 (the expired one not reused)", n)
	}
}

// The synchronous client puts the same request on the wire as net/http's
// Transport (header order aside), so switching between them is invisible
// to an upstream.
func TestH1WritesWhatTransportWrites(t *testing.T) {
	t.Parallel()
	heads := make(chan string, 4)
	u := newRawUpstream(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			h, ok := readHead(br)
			if !ok {
				return
			}
			heads <- h
			if strings.HasPrefix(h, "HEAD ") {
				// No body to a HEAD: bytes after the head would be read
				// as the start of the next response on this connection
				// (a flake: "malformed HTTP version helloHTTP/1.1").
				io.WriteString(c, strings.TrimSuffix(ok5, "hello"))
				continue
			}
			io.WriteString(c, ok5)
		}
	})
	tr := &http.Transport{DisableCompression: true}
	defer tr.CloseIdleConnections()
	c := testClient(Settings{})
	defer c.CloseIdleConnections()
	for _, tc := range []struct {
		method, path, rawPath, query, host string
		header                             http.Header
		forceQuery                         bool
	}{
		{"GET", "/admin/", "", "", "", http.Header{"Accept": {"*/*"}, "User-Agent": {""}}, false},
		{"GET", "/a b/(c)*!'", "", "x=1&y=%20", "app.example", http.Header{"X-Two": {"1", "2"}, "User-Agent": {"curl/8"}}, false},
		{"GET", "/a/b%2Fc", "/a/b%252Fc", "", "", http.Header{"Te": {"trailers"}}, false},
		{"DELETE", "/x", "", "", "", nil, false},
		{"POST", "/form", "", "", "", http.Header{"Content-Length": {"99"}, "Transfer-Encoding": {"chunked"}}, false},
		{"HEAD", "/ünï", "", "", "h:8080", nil, false},
		{"GET", "/zone", "", "", "[fe80::1%eth0]:8080", http.Header{"User-Agent": {"  padded/1  "}}, false},
		{"GET", "/empty-query", "", "", "", nil, true},
		{"GET", "/plain;p=1", "", "q=a+b&r=%zz;s", "", nil, false},
		{"GET", "/both", "", "q=1", "", nil, true},
	} {
		var got [2]string
		for i, rt := range []http.RoundTripper{tr, c} {
			req := &http.Request{Method: tc.method, Header: http.Header{}, Host: tc.host,
				URL: &url.URL{Scheme: "http", Host: u.addr(), Path: tc.path, RawPath: tc.rawPath, RawQuery: tc.query, ForceQuery: tc.forceQuery}}
			req.Header["User-Agent"] = []string{""} // as ReverseProxy sets it when absent
			for k, v := range tc.header {
				req.Header[k] = v
			}
			resp, err := rt.RoundTrip(req)
			if err != nil {
				t.Fatalf("%s %s: %v", tc.method, tc.path, err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			got[i] = canonicalHead(<-heads)
		}
		if got[0] != got[1] {
			t.Errorf("%s %s:\nTransport:\n%s\nsynchronous client:\n%s", tc.method, tc.path, got[0], got[1])
		}
	}
}

// canonicalHead sorts a request head's header lines.
func canonicalHead(h string) string {
	lines := strings.Split(strings.TrimSuffix(h, "\r\n\r\n"), "\r\n")
	slices.Sort(lines[1:])
	return strings.Join(lines, "\n")
}
