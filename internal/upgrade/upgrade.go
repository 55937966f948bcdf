// Package upgrade is Gatehouse's zero-downtime binary upgrade: on request
// (SIGUSR2), the running process starts the binary now on disk with the
// same arguments and hands it its listening sockets (fd passing, by
// github.com/cloudflare/tableflip). The new process opens the listeners it
// is given instead of binding, loads and compiles its config, serves, and
// only then reports ready; the old one then stops accepting and drains. A
// new process that exits, fails to report ready within the timeout, or
// cannot be started leaves the old one serving.
//
// Invariants:
//   - At most two processes share the sockets, and at most one of them is
//     not ready: a second upgrade is refused until the previous old
//     process has exited.
//   - Listeners are matched by network and address exactly as written in
//     the config ("127.0.0.1:6188" and ":6188" are different); an address
//     the old process did not have is bound by the new one.
//   - The PID file, when set, names the ready process: the new process
//     writes it before it reports ready (systemd's PIDFile= relies on this).
//
// tableflip allows one Upgrader per process (it holds the inherited file
// descriptors): New is called once, by cmd/gatehouse, never by a library.
package upgrade

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cloudflare/tableflip"
)

// DefaultTimeout is how long a new process has to report ready before it
// is killed and the upgrade fails.
const DefaultTimeout = time.Minute

// Options configure an Upgrader.
type Options struct {
	// PIDFile, if set, is written with the PID of the process once it is
	// ready (atomically: a temporary file renamed over it).
	PIDFile string
	// Timeout bounds how long a new process may take to report ready.
	// Zero means DefaultTimeout.
	Timeout time.Duration
	Events  *slog.Logger
}

// Upgrader owns the sockets that survive an upgrade.
type Upgrader struct {
	flip    *tableflip.Upgrader
	events  *slog.Logger
	pid     int
	pidFile string
}

// New returns the process's Upgrader, holding the sockets inherited from
// the previous process, if any. Call it once per process; Stop releases it.
func New(o Options) (*Upgrader, error) {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Events == nil {
		o.Events = slog.New(slog.DiscardHandler)
	}
	flip, err := tableflip.New(tableflip.Options{PIDFile: o.PIDFile, UpgradeTimeout: o.Timeout})
	if err != nil {
		return nil, fmt.Errorf("upgrade: %w", err)
	}
	return &Upgrader{flip: flip, events: o.Events, pid: os.Getpid(), pidFile: o.PIDFile}, nil
}

// Listen returns the listener inherited for network and addr, or binds a
// new one (the first process, or an address the old process did not have).
func (u *Upgrader) Listen(network, addr string) (net.Listener, error) {
	ln, err := u.flip.Listen(network, addr)
	if err != nil {
		return nil, fmt.Errorf("upgrade: listen %s %s: %w", network, addr, err)
	}
	return ln, nil
}

// Inherited reports whether this process was started by an upgrade.
func (u *Upgrader) Inherited() bool { return u.flip.HasParent() }

// Ready writes the PID file and tells the old process, if any, that this
// one serves: the old one then stops accepting and drains. Inherited
// sockets the config no longer names are closed.
func (u *Upgrader) Ready() error {
	if err := u.flip.Ready(); err != nil {
		return fmt.Errorf("upgrade: ready: %w", err)
	}
	return nil
}

// Exit is closed once a new process has reported ready: this process must
// then stop accepting and drain.
func (u *Upgrader) Exit() <-chan struct{} { return u.flip.Exit() }

// Close refuses further upgrades and kills a new process that is not
// ready yet. It removes the PID file if it still names this process (no
// new process took over). Call it when the process stops.
func (u *Upgrader) Close() {
	u.flip.Stop()
	if u.pidFile != "" {
		if pid, err := ReadPIDFile(u.pidFile); err == nil && pid == u.pid {
			_ = os.Remove(u.pidFile)
		}
	}
}

// Run upgrades on every signal from trigger until an upgrade succeeds or
// ctx ends (which also aborts an upgrade in progress). A failed upgrade is
// logged and this process keeps serving. It returns true when a new
// process has taken over.
func (u *Upgrader) Run(ctx context.Context, trigger <-chan os.Signal) bool {
	stop := context.AfterFunc(ctx, u.flip.Stop)
	defer stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-u.flip.Exit():
			return true
		case <-trigger:
		}
		u.events.Info("upgrade: starting the binary on disk", "pid", u.pid)
		start := time.Now()
		if err := u.flip.Upgrade(); err != nil {
			u.events.Error("upgrade failed; this process keeps serving", "pid", u.pid, "err", err.Error())
			continue
		}
		u.events.Info("upgrade: the new process is ready; this one stops accepting and drains",
			"pid", u.pid, "took_ms", time.Since(start).Milliseconds())
		return true
	}
}

// ErrNoProcess means the PID file names no running process.
var ErrNoProcess = errors.New("no running process")

// ReadPIDFile returns the PID the file names.
func ReadPIDFile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("pid file: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("pid file %s: %q is not a PID", path, strings.TrimSpace(string(b)))
	}
	return pid, nil
}

// Signal sends SIGUSR2 to the process named by pidFile. With wait > 0 it
// then waits until the PID file names another process (the upgrade
// succeeded) or wait passes (it failed or is still running: the log of
// the old process says which). It returns the old and the new PID.
func Signal(ctx context.Context, pidFile string, wait time.Duration) (old, cur int, err error) {
	old, err = ReadPIDFile(pidFile)
	if err != nil {
		return 0, 0, err
	}
	if err := syscall.Kill(old, syscall.SIGUSR2); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return old, 0, fmt.Errorf("pid %d from %s: %w", old, pidFile, ErrNoProcess)
		}
		return old, 0, fmt.Errorf("signal pid %d: %w", old, err)
	}
	if wait <= 0 {
		return old, old, nil
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if pid, err := ReadPIDFile(pidFile); err == nil && pid != old {
			return old, pid, nil
		}
		select {
		case <-ctx.Done():
			return old, old, fmt.Errorf("pid file %s still names %d after %s: the upgrade failed or is still running (see the log): %w",
				pidFile, old, wait, ctx.Err())
		case <-tick.C:
		}
	}
}
