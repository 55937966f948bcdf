//go:build integration

package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"gatehouse/internal/testutil"
	"gatehouse/internal/upgrade"
)

// upgradeGate is a Gatehouse run from a binary path the test owns (it
// replaces the binary there), with a PID file. Its output goes to a file,
// not a pipe: the new process of an upgrade inherits it, and the old
// process's Wait must return when the old one exits.
type upgradeGate struct {
	bin, cfg, pidFile, outFile string
	addr, admin                string
	cmd                        *exec.Cmd
	done                       chan struct{}
	err                        error
}

func (g *upgradeGate) output() string {
	b, _ := os.ReadFile(g.outFile)
	return string(b)
}

// startUpgradeGate runs the binary testutil builds, copied to a path of
// the test's own, with a config proxying /app to an upstream answering
// 200 and /ws to a raw echo tunnel.
func startUpgradeGate(t *testing.T, args ...string) *upgradeGate {
	t.Helper()
	dir := t.TempDir()
	g := &upgradeGate{bin: filepath.Join(dir, "gatehouse"), cfg: filepath.Join(dir, "gatehouse.yaml"),
		pidFile: filepath.Join(dir, "gatehouse.pid"), outFile: filepath.Join(dir, "output.log"),
		addr: testutil.FreePort(t), admin: testutil.FreePort(t), done: make(chan struct{})}
	b, err := os.ReadFile(testutil.Binary(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(g.bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	t.Cleanup(up.Close)
	ws := testutil.ServeRaw(t, func(c net.Conn) {
		br, ok := wsUpstreamAccept(c)
		if ok {
			_, _ = io.Copy(c, br) // echo until the client closes
		}
	})
	writeAtomic(t, g.cfg, fmt.Sprintf(`
server: { listen: [%q], shutdown_grace: 20s }
admin: { listen: %q }
upstreams:
  app: { targets: [%q] }
  ws: { targets: [%q] }
routes:
  - { name: ws, match: { path: /ws }, upstream: ws }
  - { name: app, match: { path_prefix: /app }, upstream: app }
`, g.addr, g.admin, strings.TrimPrefix(up.URL, "http://"), ws.Addr))
	out, err := os.OpenFile(g.outFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close() // the process has its own copy
	g.cmd = exec.Command(g.bin, append([]string{"run", "-c", g.cfg, "-pid-file", g.pidFile}, args...)...)
	g.cmd.Stdout, g.cmd.Stderr = out, out
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { g.err = g.cmd.Wait(); close(g.done) }()
	t.Cleanup(func() {
		// Every process of this gate: the first (our child) and whichever
		// the PID file names (started by an upgrade).
		if pid, err := upgrade.ReadPIDFile(g.pidFile); err == nil && pid != g.cmd.Process.Pid {
			stopGrandchild(t, pid, g.cfg)
		}
		select {
		case <-g.done:
		default:
			_ = g.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-g.done:
			case <-time.After(25 * time.Second):
				_ = g.cmd.Process.Kill()
				<-g.done
			}
		}
		if t.Failed() {
			t.Logf("gatehouse output:\n%s", g.output())
		}
	})
	if err := testutil.WaitListening(g.addr, 20*time.Second, g.done); err != nil {
		t.Fatalf("gatehouse did not start: %v\n%s", err, g.output())
	}
	if !testutil.WaitFor(10*time.Second, func() bool { pid, _ := upgrade.ReadPIDFile(g.pidFile); return pid == g.cmd.Process.Pid }) {
		t.Fatalf("the PID file does not name the process\n%s", g.output())
	}
	return g
}

// stopGrandchild stops a Gatehouse started by an upgrade of ours (not our
// child: we cannot wait for it), after checking by its command line that
// the PID is still that process.
func stopGrandchild(t *testing.T, pid int, cfg string) {
	t.Helper()
	if !alive(pid, cfg) {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	if !testutil.WaitFor(25*time.Second, func() bool { return !alive(pid, cfg) }) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// alive reports whether pid runs (a zombie does not) with cfg among its
// arguments.
func alive(pid int, cfg string) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	if i := strings.LastIndexByte(string(stat), ')'); i < 0 || strings.HasPrefix(string(stat[i+1:]), " Z") {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && strings.Contains(string(cmdline), cfg)
}

// status is the admin status page's answer, on a new connection: which
// process, which binary.
func (g *upgradeGate) status(t *testing.T) (pid int, version string) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + g.admin + "/status.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct {
		PID     int    `json:"pid"`
		Version string `json:"version"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st.PID, st.Version
}

// steadyLoad is steady traffic to a gate: clients on keep-alive connections
// and clients opening a new connection per request, counted.
type steadyLoad struct {
	ok, failed atomic.Int64
	mu         sync.Mutex // guards errs
	errs       []string
	stop       chan struct{}
	wg         sync.WaitGroup
}

func startSteadyLoad(url string) *steadyLoad {
	l := &steadyLoad{stop: make(chan struct{})}
	for i := range 4 {
		tr := &http.Transport{DisableKeepAlives: i%2 == 1, MaxIdleConnsPerHost: 4}
		c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		l.wg.Go(func() {
			defer tr.CloseIdleConnections()
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				resp, err := c.Get(url)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					l.failed.Add(1)
					l.mu.Lock()
					if len(l.errs) < 10 {
						l.errs = append(l.errs, err.Error())
					}
					l.mu.Unlock()
					continue
				}
				l.ok.Add(1)
			}
		})
	}
	return l
}

// waitMore waits until n more requests have succeeded.
func (l *steadyLoad) waitMore(t *testing.T, n int64) {
	t.Helper()
	target := l.ok.Load() + n
	if !testutil.WaitFor(30*time.Second, func() bool { return l.ok.Load() >= target }) {
		t.Fatalf("load stalled at %d ok, %d failed", l.ok.Load(), l.failed.Load())
	}
}

// finish stops the load and fails the test on any failed request.
func (l *steadyLoad) finish(t *testing.T) {
	t.Helper()
	close(l.stop)
	l.wg.Wait()
	t.Logf("%d requests ok, %d failed", l.ok.Load(), l.failed.Load())
	if n := l.failed.Load(); n != 0 {
		t.Errorf("%d requests failed across the upgrade; first errors: %q", n, l.errs)
	}
}

// buildVersion builds the gatehouse binary with version v to a temporary
// path and moves it over bin, as a package upgrade does.
func buildVersion(t *testing.T, bin, v string) {
	t.Helper()
	tmp := bin + ".new"
	cmd := exec.Command("go", "build", "-ldflags", "-X main.version="+v, "-o", tmp, "./cmd/gatehouse")
	cmd.Dir = testutil.RepoRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	if err := os.Rename(tmp, bin); err != nil {
		t.Fatal(err)
	}
}

// TestUpgradeUnderLoad: SIGUSR2 hands the listeners to the binary now on
// disk; under steady load no request fails (not even one on a connection
// the old process accepted just before it stopped accepting), a WebSocket
// opened before the upgrade is closed cleanly by the draining old process
// (1001, going away: its client reconnects to the new one), the new
// process (the new binary: its version) answers, and the old one exits
// once its last connection is done.
func TestUpgradeUnderLoad(t *testing.T) {
	g := startUpgradeGate(t)
	oldPID := g.cmd.Process.Pid
	buildVersion(t, g.bin, "upgrade-test-v2")

	ws, wsr := wsHandshake(t, g.addr) // served by the old process
	l := startSteadyLoad("http://" + g.addr + "/app/x")
	l.waitMore(t, 300)

	if err := g.cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	var newPID int
	if !testutil.WaitFor(60*time.Second, func() bool {
		newPID, _ = upgrade.ReadPIDFile(g.pidFile)
		return newPID != oldPID && newPID != 0
	}) {
		t.Fatalf("the PID file still names %d: no new process became ready", oldPID)
	}
	// The old process closes its listeners just after the new one is
	// ready: until then either may accept.
	var pid int
	var v string
	if !testutil.WaitFor(10*time.Second, func() bool { pid, v = g.status(t); return pid == newPID }) {
		t.Errorf("after the upgrade the admin listener answers from pid %d; want %d", pid, newPID)
	}
	if !strings.HasPrefix(v, "upgrade-test-v2") {
		t.Errorf("the new process reports version %q; want the new binary's, upgrade-test-v2", v)
	}
	l.waitMore(t, 300) // served by the new process (the old one no longer accepts)
	l.finish(t)
	http.DefaultClient.CloseIdleConnections()

	// The old process drains: its WebSocket is closed cleanly, with
	// status 1001 (going away), so that the client reconnects to the new
	// process.
	_ = ws.SetDeadline(time.Now().Add(25 * time.Second)) // a bound, not a wait
	b0, masked, payload, err := wsReadFrame(wsr)
	if err != nil || masked || !wsClose1001(b0, payload) {
		t.Fatalf("WebSocket after the upgrade: frame %#x masked=%v % x, %v; want an unmasked close frame, 1001", b0, masked, payload, err)
	}
	if _, err := ws.Write([]byte{0x88, 0x82, 9, 8, 7, 6, 0x03 ^ 9, 0xe9 ^ 8}); err != nil { // close 1001, answered
		t.Fatal(err)
	}
	if after, err := io.ReadAll(wsr); err != nil || len(after) != 0 {
		t.Errorf("WebSocket read % x, %v after the closing handshake; want EOF", after, err)
	}
	ws.Close()
	select {
	case <-g.done:
		if g.err != nil {
			t.Errorf("the old process exited with %v", g.err)
		}
	case <-time.After(25 * time.Second):
		t.Fatal("the old process did not exit after draining")
	}
	if !alive(newPID, g.cfg) {
		t.Fatal("the new process is gone")
	}
	if pid, _ := g.status(t); pid != newPID {
		t.Errorf("after the old process exited, pid %d answers; want %d", pid, newPID)
	}
	out := g.output()
	for _, want := range []string{"upgrade: the new process is ready", "inheriting its listeners"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

// TestUpgradeFailureKeepsServing: an upgrade to a new process that cannot
// serve leaves the old one serving, under load, without a failed request,
// and logs why; the PID file keeps naming it. Once the cause is fixed, the
// next upgrade succeeds.
func TestUpgradeFailureKeepsServing(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		break_  func(t *testing.T, g *upgradeGate) (restore func())
		wantLog string
	}{
		{
			name: "broken config on disk",
			break_: func(t *testing.T, g *upgradeGate) func() {
				good, err := os.ReadFile(g.cfg)
				if err != nil {
					t.Fatal(err)
				}
				writeAtomic(t, g.cfg, "routes: [{ name: x, upstream: nope }]\n")
				return func() { writeAtomic(t, g.cfg, string(good)) }
			},
			wantLog: "exit status 1",
		},
		{
			name:    "new binary exits at start",
			break_:  replaceBinary("#!/bin/sh\necho 'broken binary' >&2\nexit 3\n"),
			wantLog: "exit status 3",
		},
		{
			name:    "new binary never becomes ready",
			args:    []string{"-upgrade-timeout", "2s"},
			break_:  replaceBinary("#!/bin/sh\nexec sleep 600\n"),
			wantLog: "timed out",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := startUpgradeGate(t, tt.args...)
			oldPID := g.cmd.Process.Pid
			restore := tt.break_(t, g)
			l := startSteadyLoad("http://" + g.addr + "/app/x")
			l.waitMore(t, 200)
			if err := g.cmd.Process.Signal(syscall.SIGUSR2); err != nil {
				t.Fatal(err)
			}
			if !testutil.WaitFor(60*time.Second, func() bool { return strings.Contains(g.output(), "upgrade failed") }) {
				t.Fatal("no upgrade failure logged")
			}
			if out := g.output(); !strings.Contains(out, tt.wantLog) {
				t.Errorf("the failure log does not say %q", tt.wantLog)
			}
			l.waitMore(t, 200)
			select {
			case <-g.done:
				t.Fatalf("the old process exited: %v", g.err)
			default:
			}
			if pid, err := upgrade.ReadPIDFile(g.pidFile); pid != oldPID {
				t.Errorf("the PID file names %d (%v); want the old process %d", pid, err, oldPID)
			}
			if pid, _ := g.status(t); pid != oldPID {
				t.Errorf("pid %d answers; want the old process %d", pid, oldPID)
			}

			// Fixed, the next upgrade succeeds.
			restore()
			if err := g.cmd.Process.Signal(syscall.SIGUSR2); err != nil {
				t.Fatal(err)
			}
			if !testutil.WaitFor(60*time.Second, func() bool { pid, _ := upgrade.ReadPIDFile(g.pidFile); return pid != oldPID }) {
				t.Fatal("the upgrade after the fix did not take over")
			}
			l.waitMore(t, 200)
			l.finish(t)
			select {
			case <-g.done:
			case <-time.After(25 * time.Second):
				t.Fatal("the old process did not exit after the upgrade")
			}
		})
	}
}

// replaceBinary puts a script in place of the gate's binary; restore puts
// the real one back.
func replaceBinary(script string) func(t *testing.T, g *upgradeGate) func() {
	return func(t *testing.T, g *upgradeGate) func() {
		good, err := os.ReadFile(g.bin)
		if err != nil {
			t.Fatal(err)
		}
		put := func(b []byte) {
			tmp := g.bin + ".new"
			if err := os.WriteFile(tmp, b, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, g.bin); err != nil {
				t.Fatal(err)
			}
		}
		put([]byte(script))
		return func() { put(good) }
	}
}
