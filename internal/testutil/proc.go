// Package testutil holds helpers shared by Gatehouse's integration and
// end-to-end tests: building the real binary once, picking free loopback
// ports, and running Gatehouse as a child process with a temporary config.
//
// Nothing here sleeps for a fixed time: readiness is a condition (the port
// accepts connections), polled until a deadline.
package testutil

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// RepoRoot returns the repository root (the directory holding go.mod).
func RepoRoot(tb testing.TB) string {
	tb.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Binary builds ./cmd/gatehouse once per test process (CGO_ENABLED=0, as
// shipped) and returns the path of the executable.
func Binary(tb testing.TB) string {
	tb.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "gatehouse-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "gatehouse")
		cmd := exec.Command("go", "build", "-o", buildPath, "./cmd/gatehouse")
		cmd.Dir = RepoRoot(tb)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	return buildPath
}

// FreePort returns a loopback TCP address ("127.0.0.1:N") that was free a
// moment ago and that no earlier call in this process has returned.
//
// Two rules keep a port from being taken between this call and the bind of
// the process it is meant for:
//   - Ports come from below the kernel's ephemeral range, so no outgoing
//     connection (of any test) is given one as its local port.
//   - A port is handed out once per test process. Asking the kernel for
//     ":0" twice in a row can return the same port when the first listener
//     is already closed; two listeners of one config then collide (seen in
//     CI as "admin.listen: must differ from every server.listen address").
func FreePort(tb testing.TB) string {
	tb.Helper()
	portMu.Lock()
	defer portMu.Unlock()
	if portNext == 0 {
		// Spread test processes (go test runs packages in parallel) over
		// the range, so two of them rarely probe the same ports.
		portNext = portLow + (os.Getpid()*7919)%(portHigh-portLow)
	}
	for tries := 0; tries < portHigh-portLow; tries++ {
		port := portNext
		portNext++
		if portNext >= portHigh {
			portNext = portLow
		}
		if portUsed[port] {
			continue
		}
		portUsed[port] = true
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue // someone else's; try the next one
		}
		l.Close()
		return addr
	}
	tb.Fatal("testutil: no free loopback port left below the ephemeral range")
	return ""
}

// The range FreePort hands out: above the well-known ports and below
// Linux's default ephemeral range (net.ipv4.ip_local_port_range, 32768-60999).
const portLow, portHigh = 20000, 32768

var (
	portMu   sync.Mutex // guards the following fields
	portNext int
	portUsed = map[int]bool{}
)

// Proc is a running Gatehouse process.
type Proc struct {
	Cmd        *exec.Cmd
	ConfigPath string
	Addr       string // the public listener, as given to Start

	mu     sync.Mutex
	output bytes.Buffer // stdout+stderr: the JSON access and event logs
	done   chan struct{}
	err    error
}

type lockedWriter struct{ p *Proc }

func (w lockedWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.output.Write(b)
}

// Output returns everything the process has written so far.
func (p *Proc) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.output.String()
}

// Start writes config to a temp dir and runs `gatehouse run -c` on it, then
// waits until addr accepts TCP connections. The process is stopped (SIGTERM,
// then SIGKILL) at test cleanup; its output is logged if the test failed.
func Start(tb testing.TB, config, addr string) *Proc {
	tb.Helper()
	dir := tb.TempDir()
	path := filepath.Join(dir, "gatehouse.yaml")
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		tb.Fatal(err)
	}
	return StartFile(tb, path, addr)
}

// StartFile is Start with a config file the caller has written.
func StartFile(tb testing.TB, path, addr string) *Proc {
	tb.Helper()
	return StartFileEnv(tb, path, addr, nil)
}

// StartFileEnv is StartFile with env ("NAME=value" entries) added to the
// environment the process inherits.
//
// With GATEHOUSE_TEST_FAST_SERVERS set, the file is first rewritten in place
// to set server.fast_http1 unless it does (see ConfigForEnv); a test that
// rewrites the file to reload should write it through ConfigForEnv too.
func StartFileEnv(tb testing.TB, path, addr string, env []string) *Proc {
	tb.Helper()
	applyEnvToFile(tb, path)
	p := &Proc{ConfigPath: path, Addr: addr, done: make(chan struct{})}
	p.Cmd = exec.Command(Binary(tb), "run", "-c", path)
	if env != nil {
		p.Cmd.Env = append(os.Environ(), env...)
	}
	p.Cmd.Stdout = lockedWriter{p}
	p.Cmd.Stderr = lockedWriter{p}
	if err := p.Cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	go func() { p.err = p.Cmd.Wait(); close(p.done) }()
	tb.Cleanup(func() {
		p.Stop(tb, 10*time.Second)
		if tb.Failed() {
			tb.Logf("gatehouse output:\n%s", p.Output())
		}
	})
	if err := WaitListening(addr, 20*time.Second, p.done); err != nil {
		tb.Fatalf("gatehouse did not start: %v\n%s", err, p.Output())
	}
	return p
}

// Signal sends sig to the process.
func (p *Proc) Signal(sig os.Signal) error { return p.Cmd.Process.Signal(sig) }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// ExitErr is the result of Wait, valid after Done is closed.
func (p *Proc) ExitErr() error { return p.err }

// Stop sends SIGTERM and waits up to grace, then kills.
func (p *Proc) Stop(tb testing.TB, grace time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.Cmd.Process.Kill()
		<-p.done
	}
}

// WaitFor polls cond every 10 ms until it is true or timeout passes.
func WaitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// WaitLog waits until the process output contains substr.
func (p *Proc) WaitLog(substr string, timeout time.Duration) bool {
	return WaitFor(timeout, func() bool { return strings.Contains(p.Output(), substr) })
}

// WaitListening waits until addr accepts a TCP connection, the timeout passes,
// or exited is closed.
func WaitListening(addr string, timeout time.Duration, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var d net.Dialer
	for {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("process exited")
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", addr, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// NeedTool returns the path of an external program, or skips the test when
// it is missing, unless GATEHOUSE_REQUIRE_TOOLS=1 (as in CI, where .ci/run
// installs them), which turns the skip into a failure.
func NeedTool(tb testing.TB, name, apt string) string {
	tb.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	msg := fmt.Sprintf("%s not found: apt-get install %s", name, apt)
	if os.Getenv("GATEHOUSE_REQUIRE_TOOLS") == "1" {
		tb.Fatal(msg)
	}
	tb.Skip(msg)
	return ""
}

// Redis is a redis-server child process on a loopback port.
type Redis struct {
	Addr string
	cmd  *exec.Cmd
	done chan struct{}
}

// StartRedis starts redis-server (Debian's package) on addr (a free port
// when empty), without persistence, with extra arguments after the
// usual ones. It stops at cleanup, or with Stop.
func StartRedis(tb testing.TB, addr string, extra ...string) *Redis {
	tb.Helper()
	bin := NeedTool(tb, "redis-server", "redis-server")
	if addr == "" {
		addr = FreePort(tb)
	}
	_, port, _ := strings.Cut(addr, ":")
	r := &Redis{Addr: addr, done: make(chan struct{})}
	r.cmd = exec.Command(bin, append([]string{"--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no", "--protected-mode", "yes"}, extra...)...)
	if err := r.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	go func() { _ = r.cmd.Wait(); close(r.done) }()
	tb.Cleanup(r.Stop)
	if err := WaitListening(addr, 10*time.Second, r.done); err != nil {
		tb.Fatalf("redis-server: %v", err)
	}
	return r
}

// Stop kills the server.
func (r *Redis) Stop() {
	select {
	case <-r.done:
	default:
		_ = r.cmd.Process.Kill()
		<-r.done
	}
}

// startRedisProc runs redis-server with args (after the config file, if
// any) on addr until cleanup.
func startRedisProc(tb testing.TB, addr, dir string, args ...string) *Redis {
	tb.Helper()
	bin := NeedTool(tb, "redis-server", "redis-server")
	r := &Redis{Addr: addr, done: make(chan struct{})}
	r.cmd = exec.Command(bin, args...)
	r.cmd.Dir = dir
	if err := r.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	go func() { _ = r.cmd.Wait(); close(r.done) }()
	tb.Cleanup(r.Stop)
	if err := WaitListening(addr, 10*time.Second, r.done); err != nil {
		tb.Fatalf("redis-server %v: %v", args, err)
	}
	return r
}

// StartSentinel starts a Redis Sentinel on a free port that watches the
// primary at primary under the name master.
func StartSentinel(tb testing.TB, master, primary string) *Redis {
	tb.Helper()
	addr := FreePort(tb)
	_, port, _ := strings.Cut(addr, ":")
	host, pport, _ := strings.Cut(primary, ":")
	dir := tb.TempDir()
	conf := filepath.Join(dir, "sentinel.conf")
	body := fmt.Sprintf("bind 127.0.0.1\nport %s\nprotected-mode yes\nsentinel monitor %s %s %s 1\nsentinel down-after-milliseconds %s 5000\n",
		port, master, host, pport, master)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		tb.Fatal(err)
	}
	return startRedisProc(tb, addr, dir, conf, "--sentinel")
}

// StartCluster starts a Redis Cluster of n primaries (no replicas) on free
// ports and waits until it serves every slot. It returns the node addresses.
func StartCluster(tb testing.TB, n int) []string {
	tb.Helper()
	cli := NeedTool(tb, "redis-cli", "redis-tools")
	dir := tb.TempDir()
	var addrs []string
	for i := 0; i < n; i++ {
		addr := FreePort(tb)
		_, port, _ := strings.Cut(addr, ":")
		// The cluster bus port too: by default it is port+10000, which
		// FreePort never checked (it may be taken, or in the ephemeral range).
		_, busPort, _ := strings.Cut(FreePort(tb), ":")
		startRedisProc(tb, addr, dir, "--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no",
			"--cluster-enabled", "yes", "--cluster-port", busPort,
			"--cluster-config-file", "nodes-"+port+".conf", "--dir", dir)
		addrs = append(addrs, addr)
	}
	args := append(append([]string{"--cluster", "create"}, addrs...), "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		tb.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	host, port, _ := strings.Cut(addrs[0], ":")
	if !WaitFor(20*time.Second, func() bool {
		out, _ := exec.Command(cli, "-h", host, "-p", port, "cluster", "info").Output()
		return strings.Contains(string(out), "cluster_state:ok")
	}) {
		tb.Fatal("the Redis Cluster did not reach cluster_state:ok")
	}
	return addrs
}
