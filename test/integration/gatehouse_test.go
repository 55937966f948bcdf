//go:build integration

// Package integration runs the real gatehouse binary as a process on
// loopback against real upstream processes, and checks what a user of the
// proxy would notice: routing, streaming, WebSockets, large bodies,
// failures, reload and shutdown.
package integration

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"gatehouse/internal/testutil"
)

// seedConfig is the shipped gatehouse.yaml with its five upstream ports
// replaced by the test's upstream processes and its listener by addr.
func seedConfig(t *testing.T, addr string, ups map[string]*upstream) string {
	t.Helper()
	root := testutil.RepoRoot(t)
	b, err := os.ReadFile(filepath.Join(root, "gatehouse.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	ports := map[string]string{"oauth-service": "3001", "admin-portal": "3002", "kline-service": "3003", "flow-service": "3004", "test-service": "3005"}
	for name, port := range ports {
		s = strings.Replace(s, "127.0.0.1:"+port, ups[name].Addr, 1)
	}
	s = strings.Replace(s, `listen: [":6188"]`, fmt.Sprintf("listen: [%q]", addr), 1)
	s = strings.Replace(s, "listen: 127.0.0.1:9901", `listen: "off"`, 1)
	s = strings.Replace(s, "root: ./www", "root: "+filepath.Join(root, "www"), 1)
	return s
}

func getJSON(t *testing.T, c *http.Client, url string) (int, echo) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e echo
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &e)
	return resp.StatusCode, e
}

func TestSeedRoutes(t *testing.T) {
	ups := map[string]*upstream{}
	for _, n := range []string{"oauth-service", "admin-portal", "kline-service", "flow-service", "test-service"} {
		ups[n] = startUpstream(t, n)
	}
	addr := testutil.FreePort(t)
	testutil.Start(t, seedConfig(t, addr, ups), addr)
	base := "http://" + addr
	tests := []struct {
		path, wantUpstream, wantURI string
		wantStatus                  int
	}{
		{"/oauth/authorize?client_id=x", "oauth-service", "/oauth/authorize?client_id=x", 200},
		{"/admin", "admin-portal", "/admin", 200},
		{"/admin/users/7", "admin-portal", "/admin/users/7", 200},
		{"/kline/chart", "kline-service", "/kline/chart", 200},
		{"/flow/board", "flow-service", "/flow/board", 200},
		{"/test/run", "test-service", "/test/run", 200},
		{"/api/kline/v1/ticks?s=BTC", "kline-service", "/kline/api/v1/ticks?s=BTC", 200},
		{"/api/oauth/token", "oauth-service", "/oauth/api/token", 200},
		{"/api/flow", "flow-service", "/flow/api", 200},
		{"/api/unknown/x", "", "", 404},
		{"/adminx", "", "", 404}, // the static default route has no such file
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			code, e := getJSON(t, http.DefaultClient, base+tt.path)
			if code != tt.wantStatus {
				t.Fatalf("status %d, want %d", code, tt.wantStatus)
			}
			if tt.wantStatus == 200 && (e.Upstream != tt.wantUpstream || e.URI != tt.wantURI) {
				t.Fatalf("reached %s with %s, want %s with %s", e.Upstream, e.URI, tt.wantUpstream, tt.wantURI)
			}
		})
	}
	t.Run("default route serves the landing page", func(t *testing.T) {
		resp, err := http.Get(base + "/")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), "Gatehouse") {
			t.Fatalf("status %d body %.80q", resp.StatusCode, b)
		}
	})
	t.Run("h2c", func(t *testing.T) {
		var p http.Protocols
		p.SetUnencryptedHTTP2(true)
		c := &http.Client{Transport: &http.Transport{Protocols: &p}}
		resp, err := c.Get(base + "/flow/x")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.ProtoMajor != 2 || resp.StatusCode != 200 {
			t.Fatalf("proto %s status %d", resp.Proto, resp.StatusCode)
		}
	})
}

// oneUpstream starts an upstream and a gatehouse with extra route YAML;
// every route may use upstream "app".
func oneUpstream(t *testing.T, extraUpstreams, extraRoutes string) (*upstream, *testutil.Proc, string) {
	t.Helper()
	up := startUpstream(t, "app")
	addr := testutil.FreePort(t)
	cfg := fmt.Sprintf(`
admin: { listen: "off" }
server:
  listen: [%q]
  max_body_bytes: 200MiB
  shutdown_grace: 20s
upstreams:
  app: { targets: [%q], response_header_timeout: 1s }
%s
routes:
  - { name: app, match: { path_prefix: / }, upstream: app }
  - { name: strip, match: { path_prefix: /strip }, upstream: app, strip_prefix: true }
%s`, addr, up.Addr, extraUpstreams, extraRoutes)
	p := testutil.Start(t, cfg, addr)
	return up, p, "http://" + addr
}

func TestPrefixKeptAndStripped(t *testing.T) {
	_, _, base := oneUpstream(t, "", "")
	if _, e := getJSON(t, http.DefaultClient, base+"/keep/me?x=1"); e.URI != "/keep/me?x=1" {
		t.Errorf("kept: upstream saw %q", e.URI)
	}
	_, e := getJSON(t, http.DefaultClient, base+"/strip/me?x=1")
	if e.URI != "/me?x=1" || e.Header.Get("X-Forwarded-Prefix") != "/strip" {
		t.Errorf("stripped: upstream saw %q prefix %q", e.URI, e.Header.Get("X-Forwarded-Prefix"))
	}
}

// readUntil reads from r until it has seen want, or fails.
func readUntil(t *testing.T, r *bufio.Reader, want string) {
	t.Helper()
	var got strings.Builder
	for !strings.Contains(got.String(), want) {
		b, err := r.ReadByte()
		if err != nil {
			t.Fatalf("reading for %q: got %q, %v", want, got.String(), err)
		}
		got.WriteByte(b)
	}
}

func TestStreamingIsUnbuffered(t *testing.T) {
	up, _, base := oneUpstream(t, "", "")
	for _, sse := range []bool{false, true} {
		t.Run(fmt.Sprintf("sse=%v", sse), func(t *testing.T) {
			id := fmt.Sprintf("stream-%v", sse)
			url := base + "/s?do=stream&id=" + id
			if sse {
				url += "&sse=1"
			}
			resp, err := http.Get(url)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			r := bufio.NewReader(resp.Body)
			// The upstream sends chunk i+1 only after the test has received
			// chunk i and released it: a proxy that buffered would hang here.
			for i := 0; i < 3; i++ {
				start := time.Now()
				readUntil(t, r, fmt.Sprintf("chunk-%d", i))
				t.Logf("chunk %d reached the client %v after it was due", i, time.Since(start))
				if i < 2 {
					up.release(t, id)
				}
			}
			if sse && resp.Header.Get("Content-Type") != "text/event-stream" {
				t.Errorf("content type %q", resp.Header.Get("Content-Type"))
			}
		})
	}
}

func TestWebSocketEcho(t *testing.T) {
	_, p, base := oneUpstream(t, "", "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, strings.Replace(base, "http", "ws", 1)+"/ws?do=ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if resp.StatusCode != 101 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	for i := 0; i < 3; i++ {
		msg := fmt.Sprintf("hello %d", i)
		if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		_, got, err := c.Read(ctx)
		if err != nil || string(got) != "echo:"+msg {
			t.Fatalf("got %q, %v", got, err)
		}
	}
	c.Close(websocket.StatusNormalClosure, "")
	if !p.WaitLog(`"status":101`, 5*time.Second) {
		t.Errorf("no access line with status 101")
	}
}

// hwm is the process's peak resident memory (VmHWM) in KiB.
func hwm(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			n, _ := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
			return n
		}
	}
	t.Fatal("no VmHWM")
	return 0
}

func TestLargeBodiesStreamWithFlatMemory(t *testing.T) {
	_, p, base := oneUpstream(t, "", "")
	const size = 100 << 20
	getJSON(t, http.DefaultClient, base+"/warm") // connections and buffers in place
	before := hwm(t, p.Cmd.Process.Pid)

	resp, err := http.Post(base+"/up?do=upload", "application/octet-stream", io.LimitReader(rand.Reader, size))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), fmt.Sprintf(`"bytes":%d`, size)) {
		t.Fatalf("upload: %d %s", resp.StatusCode, b)
	}

	resp, err = http.Get(base + "/down?do=download&n=" + strconv.Itoa(size))
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || n != size {
		t.Fatalf("download: %d bytes, %v", n, err)
	}
	after := hwm(t, p.Cmd.Process.Pid)
	t.Logf("gatehouse peak RSS: %d KiB before, %d KiB after 2×100 MiB", before, after)
	if growth := after - before; growth > 32<<10 {
		t.Fatalf("peak RSS grew by %d KiB moving 100 MiB each way: bodies are being buffered", growth)
	}
}

func TestTrailersPass(t *testing.T) {
	_, _, base := oneUpstream(t, "", "")
	resp, err := http.Get(base + "/t?do=trailers")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "body" || resp.Trailer.Get("X-Checksum") != "abc123" {
		t.Fatalf("body %q trailer %v", b, resp.Trailer)
	}
}

func TestUpstreamFailures(t *testing.T) {
	dead := testutil.FreePort(t) // nothing listens there: connection refused
	_, p, base := oneUpstream(t,
		fmt.Sprintf("  dead: { targets: [%q] }", dead),
		"  - { name: dead, match: { path_prefix: /dead }, upstream: dead }")
	tests := []struct {
		name, path string
		want       int
	}{
		{"refused", "/dead/x", 502},
		{"slow headers", "/slow?do=hold&id=never", 504},
		{"upstream 503 passes through", "/x?do=status&code=503", 503},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := http.Get(base + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.want, b)
			}
		})
	}
	if !p.WaitLog(`"status":504`, 5*time.Second) || !p.WaitLog(`"status":502`, 5*time.Second) {
		t.Errorf("502/504 not in the access log:\n%s", p.Output())
	}
}

func TestClientAbortIsLoggedNotBlamedOnServer(t *testing.T) {
	up, p, base := oneUpstream(t, "", "")
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/abort?do=hold&id=abort", nil)
	errc := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	up.waitArrived(t, "abort")
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("client error %v", err)
	}
	if !p.WaitLog(`"path":"/abort","route":"app"`, 5*time.Second) {
		t.Fatal("no access line for the aborted request")
	}
	if !p.WaitLog(`"status":499`, 5*time.Second) {
		t.Errorf("aborted request not logged as 499:\n%s", p.Output())
	}
	if !testutil.WaitFor(5*time.Second, func() bool { _, c := up.state(t); return c > 0 }) {
		t.Error("the upstream never saw the cancellation")
	}
	if strings.Contains(p.Output(), `"status":502`) || strings.Contains(p.Output(), `"status":500`) {
		t.Errorf("client abort counted as a server error:\n%s", p.Output())
	}
}

func TestGracefulShutdownFinishesInFlight(t *testing.T) {
	up, p, base := oneUpstream(t, "", "")
	type result struct {
		code int
		body string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := http.Get(base + "/slow?do=hold&id=shutdown")
		if err != nil {
			done <- result{err: err}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- result{code: resp.StatusCode, body: string(b)}
	}()
	up.waitArrived(t, "shutdown")
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// New connections are refused once the listener closes...
	if !testutil.WaitFor(5*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", p.Addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err != nil
	}) {
		t.Fatal("still accepting connections after SIGTERM")
	}
	select {
	case <-p.Done():
		t.Fatal("exited with a request in flight")
	default:
	}
	// ...while the request in flight completes.
	up.release(t, "shutdown")
	r := <-done
	if r.err != nil || r.code != 200 || r.body != "done" {
		t.Fatalf("in-flight request: %d %q %v", r.code, r.body, r.err)
	}
	select {
	case <-p.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("did not exit after the last request")
	}
	if err := p.ExitErr(); err != nil {
		t.Fatalf("exit: %v", err)
	}
	if !strings.Contains(p.Output(), `"path":"/slow"`) {
		t.Error("the in-flight request's access line was lost at shutdown")
	}
}

// writeAtomic replaces path the way editors do: write a temp file, rename.
// data is a Gatehouse config, run as the environment asks (see
// testutil.ConfigForEnv): a reload or an upgrade keeps the server.
func writeAtomic(t *testing.T, path, data string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, testutil.ConfigForEnv(t, []byte(data)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// generationConfig is a config whose responses carry X-Generation: gen,
// so a test can see which config served a request.
func generationConfig(addr, upstream string, gen int) string {
	return fmt.Sprintf(`
admin: { listen: "off" }
server: { listen: [%q] }
upstreams: { app: { targets: [%q] } }
routes:
  - name: app
    match: { path_prefix: / }
    upstream: app
    response_headers: { set: { X-Generation: "%d" } }
`, addr, upstream, gen)
}

func TestReloadUnderLoad(t *testing.T) {
	up := startUpstream(t, "app")
	addr := testutil.FreePort(t)
	cfg := func(gen int) string { return generationConfig(addr, up.Addr, gen) }
	dir := t.TempDir()
	path := filepath.Join(dir, "gatehouse.yaml")
	writeAtomic(t, path, cfg(0))
	p := testutil.StartFile(t, path, addr)

	var ok, failed atomic.Int64
	var lastErr atomic.Value
	var seenGen atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second}
	for w := 0; w < 4; w++ {
		wg.Go(func() {
			for i := 0; i < 100000; i++ { // bounded; stop ends it long before
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Get("http://" + addr + "/load")
				if err != nil {
					failed.Add(1)
					lastErr.Store(err.Error())
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
					lastErr.Store(resp.Status)
					continue
				}
				ok.Add(1)
				g, _ := strconv.ParseInt(resp.Header.Get("X-Generation"), 10, 64)
				for {
					cur := seenGen.Load()
					if g <= cur || seenGen.CompareAndSwap(cur, g) {
						break
					}
				}
			}
		})
	}
	defer func() { close(stop); wg.Wait() }()

	for gen := 1; gen <= 3; gen++ {
		writeAtomic(t, path, cfg(gen))
		if !testutil.WaitFor(10*time.Second, func() bool { return seenGen.Load() >= int64(gen) }) {
			t.Fatalf("generation %d never served after the file changed", gen)
		}
	}
	// An invalid config is refused; the running one keeps serving.
	writeAtomic(t, path, strings.Replace(cfg(9), "upstream: app", "upstream: apq", 1))
	if !p.WaitLog(`unknown upstream \"apq\" (did you mean \"app\"?)`, 10*time.Second) {
		t.Fatalf("invalid config not reported:\n%s", p.Output())
	}
	// SIGHUP reloads too.
	os.WriteFile(path, testutil.ConfigForEnv(t, []byte(cfg(4))), 0o644)
	p.Signal(syscall.SIGHUP)
	if !testutil.WaitFor(10*time.Second, func() bool { return seenGen.Load() >= 4 }) {
		t.Fatal("SIGHUP did not reload")
	}
	before := ok.Load()
	testutil.WaitFor(5*time.Second, func() bool { return ok.Load() > before+50 })
	close(stop)
	wg.Wait()
	stop = make(chan struct{})
	if seenGen.Load() == 9 {
		t.Error("the invalid config was applied")
	}
	t.Logf("%d requests succeeded, %d failed across 5 reloads", ok.Load(), failed.Load())
	if failed.Load() != 0 {
		t.Fatalf("%d requests failed during reloads (last: %v)", failed.Load(), lastErr.Load())
	}
}

// A request in flight during a reload finishes on the config it started
// with: its response filters are the old generation's.
func TestInFlightRequestKeepsItsSnapshot(t *testing.T) {
	up := startUpstream(t, "app")
	addr := testutil.FreePort(t)
	cfg := func(gen int) string { return generationConfig(addr, up.Addr, gen) }
	path := filepath.Join(t.TempDir(), "gatehouse.yaml")
	writeAtomic(t, path, cfg(1))
	p := testutil.StartFile(t, path, addr)
	done := make(chan *http.Response, 1)
	go func() {
		resp, err := http.Get("http://" + addr + "/x?do=hold&id=inflight")
		if err != nil {
			t.Error(err)
			done <- nil
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		done <- resp
	}()
	up.waitArrived(t, "inflight")
	writeAtomic(t, path, cfg(2))
	if !p.WaitLog(`"generation":2`, 10*time.Second) {
		t.Fatalf("no reload:\n%s", p.Output())
	}
	resp, err := http.Get("http://" + addr + "/y")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if g := resp.Header.Get("X-Generation"); g != "2" {
		t.Fatalf("new request: generation %q, want 2", g)
	}
	up.release(t, "inflight")
	if r := <-done; r == nil || r.StatusCode != 200 || r.Header.Get("X-Generation") != "1" {
		t.Fatalf("in-flight request: %v", r)
	}
}
