package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	goruntime "runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"gatehouse/internal/compile"
	"gatehouse/internal/config"
	"gatehouse/internal/runtime"
)

// TestWholePathAllocations counts the heap allocations of a proxied GET on
// the whole HTTP/1.1 path as a plain listener serves it: h1server's fast
// path, the engine and the synchronous upstream client, between a
// loopback client and a loopback upstream that allocate nothing per
// request themselves. Issue 16 asks for fewer than 10; this pins 5 (with
// room for a stray allocation of another goroutine now and then):
// h1server's response and head text (2; the request header map is
// reused), the request id (1), and the upstream response's text and the
// rest of it (2). The response header map is h1server's pooled one, which
// the upstream's fields are read into (EmptyHeader).
// TestEngineProxyAllocations pins the engine's and the client's share.
func TestWholePathAllocations(t *testing.T) {
	if raceOn {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	do := startWholePath(t)
	// Warm-up: connections made, pools and buffers filled.
	for range 200 {
		do()
	}
	const n = 2000
	var before, after goruntime.MemStats
	goruntime.ReadMemStats(&before)
	for range n {
		do()
	}
	goruntime.ReadMemStats(&after)
	per := float64(after.Mallocs-before.Mallocs) / n
	t.Logf("%.2f allocations per proxied request", per)
	const want = 5
	if per > want+0.5 {
		t.Errorf("a proxied GET allocates %.2f times on the whole path, want %d", per, want)
	}
}

// BenchmarkWholePath: TestWholePathAllocations' proxied GET, timed; the
// client and the upstream, in the same process, are in the time too.
func BenchmarkWholePath(b *testing.B) {
	do := startWholePath(b)
	do()
	b.ReportAllocs()
	for b.Loop() {
		do()
	}
}

// startWholePath starts a canned upstream and a gate in front of it, and
// returns a function that sends one GET on a keep-alive connection to the
// gate and reads its response, allocating nothing itself.
func startWholePath(tb testing.TB) (do func()) {
	tb.Helper()
	up := startCannedUpstream(tb, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n"+
		strings.Repeat("x", 100))
	addr := startFastGate(tb, fmt.Sprintf(`
upstreams: { app: { targets: [%q] } }
routes:
  - { name: flow, match: { path_prefix: /flow }, upstream: app }
`, up))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	req := []byte("GET /flow/board/7?x=1 HTTP/1.1\r\nHost: gate.example\r\nUser-Agent: test\r\nAccept: */*\r\n\r\n")
	br := bufio.NewReaderSize(c, 4096)
	body := make([]byte, 100)
	return func() {
		if _, err := c.Write(req); err != nil {
			tb.Fatal(err)
		}
		if err := readCanned(br, body); err != nil {
			tb.Fatal(err)
		}
	}
}

// readCanned reads one response to startWholePath's request
// without allocating: a 200 head with "Content-Length: 100", then the
// body into body.
func readCanned(br *bufio.Reader, body []byte) error {
	sawLength := false
	for i := 0; ; i++ {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if i == 0 && !bytes.HasPrefix(line, []byte("HTTP/1.1 200 ")) {
			return fmt.Errorf("status line %q", line)
		}
		if string(line) == "Content-Length: 100\r\n" {
			sawLength = true
		}
		if len(line) == 2 {
			break
		}
	}
	if !sawLength {
		return fmt.Errorf("no Content-Length: 100")
	}
	_, err := io.ReadFull(br, body)
	return err
}

// startFastGate serves the engine, compiled from yaml, on a loopback
// listener through h1server in front of an http.Server, as internal/app
// serves a plain listener (no access log, no metrics), and returns its
// address.
func startFastGate(t testing.TB, yaml string) string {
	t.Helper()
	doc, err := config.Parse("test.yaml", []byte(yaml), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	snap, err := compile.Compile(doc, runtime.NewRegistry(nil, nil), 1)
	if err != nil {
		t.Fatal(err)
	}
	var h runtime.Holder
	h.Store(snap)
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	srv := &http.Server{
		Handler: New(Options{Holder: &h}), ConnContext: ConnContext,
		ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute, Protocols: &protos,
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveH1(t, srv, ln)
	return ln.Addr().String()
}

// startCannedUpstream serves resp to every request head on loopback,
// allocating nothing per request (requests have no body), and closes its
// connections at the end of the test. It returns the address.
func startCannedUpstream(t testing.TB, resp string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu     sync.Mutex // guards the following fields
		conns  = map[net.Conn]struct{}{}
		closed bool
		wg     sync.WaitGroup
	)
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		closed = true
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = struct{}{}
			if closed {
				c.Close()
			}
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				serveCanned(c, []byte(resp))
			}()
		}
	}()
	return ln.Addr().String()
}

// serveCanned writes resp for each "\r\n\r\n"-ended head read from c,
// until c fails or a head does not fit the buffer.
func serveCanned(c net.Conn, resp []byte) {
	buf := make([]byte, 8<<10)
	n := 0
	for n < len(buf) {
		m, err := c.Read(buf[n:])
		if err != nil {
			return
		}
		n += m
		for {
			i := bytes.Index(buf[:n], []byte("\r\n\r\n"))
			if i < 0 {
				break
			}
			if _, err := c.Write(resp); err != nil {
				return
			}
			n = copy(buf, buf[i+4:n])
		}
	}
}
