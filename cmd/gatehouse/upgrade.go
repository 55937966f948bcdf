package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"gatehouse/internal/upgrade"
)

// upgradeFlags are run's zero-downtime upgrade settings (docs/operations.md).
type upgradeFlags struct {
	pidFile string
	timeout time.Duration
}

// startUpgrades serves zero-downtime upgrades on SIGUSR2 until ctx ends.
// When a new process has taken over, takeover is called (it ends ctx: this
// process stops accepting and drains). The returned wait blocks until the
// goroutine started here has stopped; call it after ctx has ended, as the
// process stops.
//
// SIGUSR2 stays caught until wait: its default action ends the process,
// and a draining old process may get one (`systemctl kill -s USR2`
// signals every process of the unit).
func startUpgrades(ctx context.Context, upg *upgrade.Upgrader, takeover func()) (wait func()) {
	usr2 := make(chan os.Signal, 1)
	signal.Notify(usr2, syscall.SIGUSR2)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if upg.Run(ctx, usr2) {
			takeover()
		}
	}()
	return func() {
		<-done
		signal.Stop(usr2)
	}
}

// newUpgrader is the process's upgrader; it logs whether the listeners
// are inherited from an upgrading process.
func newUpgrader(f upgradeFlags, events *slog.Logger) (*upgrade.Upgrader, error) {
	upg, err := upgrade.New(upgrade.Options{PIDFile: f.pidFile, Timeout: f.timeout, Events: events})
	if err != nil {
		return nil, err
	}
	if upg.Inherited() {
		events.Info("upgrade: started by the running process; inheriting its listeners", "pid", os.Getpid(), "parent_pid", os.Getppid())
	}
	return upg, nil
}

// upgradeCommand is `gatehouse upgrade`: SIGUSR2 to the process the PID
// file names, then (with -wait) wait until the PID file names the new one.
func upgradeCommand(pidFile string, wait time.Duration, stdout, stderr io.Writer) int {
	if pidFile == "" {
		fmt.Fprintln(stderr, "gatehouse upgrade: -pid-file is required (the one given to gatehouse run), or send SIGUSR2 yourself: kill -USR2 <pid>")
		return 2
	}
	old, cur, err := upgrade.Signal(context.Background(), pidFile, wait)
	switch {
	case err != nil:
		fmt.Fprintf(stderr, "gatehouse upgrade: %v\n", err)
		return 1
	case wait <= 0:
		fmt.Fprintf(stdout, "sent SIGUSR2 to pid %d; its log says whether the upgrade succeeded (or use -wait)\n", old)
	default:
		fmt.Fprintf(stdout, "upgraded: pid %d now serves; pid %d drains and exits\n", cur, old)
	}
	return 0
}
