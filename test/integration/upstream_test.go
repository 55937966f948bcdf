//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"net/http"
	"os"
	"os/exec"
	"strconv"

	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"gatehouse/internal/testutil"
)

// The upstream runs as a separate process: this test binary re-executed
// with GATEHOUSE_TEST_UPSTREAM=<addr>. Tests steer it over HTTP: /_release/ID
// lets a gated handler continue, /_state reports what it saw.
const upstreamEnv = "GATEHOUSE_TEST_UPSTREAM"

func TestMain(m *testing.M) {
	if addr := os.Getenv(upstreamEnv); addr != "" {
		runUpstream(addr)
		return
	}
	os.Exit(m.Run())
}

type upstreamState struct {
	mu        sync.Mutex
	gates     map[string]chan struct{}
	arrived   map[string]bool
	cancelled atomic.Int64
}

func (s *upstreamState) gate(id string) chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.gates[id]
	if !ok {
		g = make(chan struct{}, 16)
		s.gates[id] = g
	}
	return g
}

func runUpstream(addr string) {
	s := &upstreamState{gates: map[string]chan struct{}{}, arrived: map[string]bool{}}
	name := os.Getenv("UPSTREAM_NAME")
	mux := http.NewServeMux()
	mux.HandleFunc("/_release/{id}", func(w http.ResponseWriter, r *http.Request) {
		s.gate(r.PathValue("id")) <- struct{}{}
	})
	mux.HandleFunc("/_state", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		_ = json.NewEncoder(w).Encode(map[string]any{"arrived": s.arrived, "cancelled": s.cancelled.Load()})
	})
	// wait blocks until the test releases id, the client goes, or 30s.
	wait := func(r *http.Request, id string) bool {
		s.mu.Lock()
		s.arrived[id] = true
		s.mu.Unlock()
		select {
		case <-s.gate(id):
			return true
		case <-r.Context().Done():
			s.cancelled.Add(1)
			return false
		case <-time.After(30 * time.Second):
			return false
		}
	}
	mux.HandleFunc("/{p...}", func(w http.ResponseWriter, r *http.Request) {
		if os.Getenv("UPSTREAM_MODE") == "hang" { // a stuck instance: accepts, never answers
			<-r.Context().Done()
			return
		}
		q := r.URL.Query()
		switch q.Get("do") {
		case "stream": // chunked; each chunk after the first waits for a release
			id := q.Get("id")
			if q.Get("sse") != "" {
				w.Header().Set("Content-Type", "text/event-stream")
			}
			for i := 0; i < 3; i++ {
				if i > 0 && !wait(r, id) {
					return
				}
				if q.Get("sse") != "" {
					fmt.Fprintf(w, "id: %d\ndata: chunk-%d\n\n", i, i)
				} else {
					fmt.Fprintf(w, "chunk-%d;", i)
				}
				w.(http.Flusher).Flush()
			}
			return
		case "hold":
			if wait(r, q.Get("id")) {
				_, _ = io.WriteString(w, "done")
			}
			return
		case "download":
			n, _ := strconv.ParseInt(q.Get("n"), 10, 64)
			w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
			buf := make([]byte, 64<<10)
			for n > 0 {
				k := min(n, int64(len(buf)))
				if _, err := w.Write(buf[:k]); err != nil {
					return
				}
				n -= k
			}
			return
		case "upload":
			n, err := io.Copy(io.Discard, r.Body)
			fmt.Fprintf(w, `{"bytes":%d,"err":%q}`, n, fmt.Sprint(err))
			return
		case "trailers":
			w.Header().Set("Trailer", "X-Checksum")
			_, _ = io.WriteString(w, "body")
			w.Header().Set("X-Checksum", "abc123")
			return
		case "ws":
			c, err := websocket.Accept(w, r, nil)
			if err != nil {
				return
			}
			defer c.CloseNow()
			for {
				typ, msg, err := c.Read(r.Context())
				if err != nil {
					return
				}
				if err := c.Write(r.Context(), typ, append([]byte("echo:"), msg...)); err != nil {
					return
				}
			}
		case "status":
			code, _ := strconv.Atoi(q.Get("code"))
			w.WriteHeader(code)
			return
		}
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(echo{Upstream: name, Method: r.Method, URI: r.RequestURI, Host: r.Host, Header: r.Header, Body: string(b), Proto: r.Proto})
	})
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

type echo struct {
	Upstream, Method, URI, Host, Body, Proto string
	Header                                   http.Header
}

// upstream is a handle on an upstream process.
type upstream struct {
	Addr string
	cmd  *exec.Cmd
	done chan struct{}
}

func startUpstream(t *testing.T, name string) *upstream {
	t.Helper()
	return startUpstreamAt(t, name, testutil.FreePort(t))
}

// startUpstreamAt starts an upstream process on addr; env adds settings
// such as UPSTREAM_MODE=hang.
func startUpstreamAt(t *testing.T, name, addr string, env ...string) *upstream {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), upstreamEnv+"="+addr, "UPSTREAM_NAME="+name), env...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
	if err := testutil.WaitListening(addr, 10*time.Second, done); err != nil {
		t.Fatal(err)
	}
	return &upstream{Addr: addr, cmd: cmd, done: done}
}

// kill stops the upstream process at once, as a crash would.
func (u *upstream) kill() {
	_ = u.cmd.Process.Kill()
	<-u.done
}

func (u *upstream) release(t *testing.T, id string) {
	t.Helper()
	resp, err := http.Get("http://" + u.Addr + "/_release/" + id)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

func (u *upstream) state(t *testing.T) (arrived map[string]bool, cancelled int64) {
	t.Helper()
	resp, err := http.Get("http://" + u.Addr + "/_state")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s struct {
		Arrived   map[string]bool
		Cancelled int64
	}
	_ = json.NewDecoder(resp.Body).Decode(&s)
	return s.Arrived, s.Cancelled
}

func (u *upstream) waitArrived(t *testing.T, id string) {
	t.Helper()
	if !testutil.WaitFor(10*time.Second, func() bool { a, _ := u.state(t); return a[id] }) {
		t.Fatalf("request %s never reached the upstream", id)
	}
}

// dialWS opens a WebSocket through addr.
func dialWS(ctx context.Context, url string) (*websocket.Conn, *http.Response, error) {
	return websocket.Dial(ctx, url, nil)
}
