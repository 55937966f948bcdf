// Command gatehouse is a reverse proxy and API gateway.
//
//	gatehouse run [-c gatehouse.yaml] [-pid-file F]  serve with a config file
//	gatehouse upgrade -pid-file F [-wait 90s]        zero-downtime binary upgrade
//	gatehouse validate [-c gatehouse.yaml]  check a config; exit 1 listing every error
//	gatehouse demo [-listen 127.0.0.1:6188] the shipped routes with echo upstreams
//	gatehouse healthcheck [-c FILE] [-url URL]  GET the admin /healthz; exit 0 if 200
//	gatehouse version                       print the version
//	gatehouse help [command]                list commands, or one command's flags
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"gatehouse/internal/app"
	"gatehouse/internal/compile"
	"gatehouse/internal/config"
	"gatehouse/internal/demo"
	"gatehouse/internal/observe/logging"
	"gatehouse/internal/runtime"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the command line: the subcommands are in commands.go.
func run(args []string, stdout, stderr io.Writer) int {
	return dispatch(args, stdout, stderr)
}

// runConfig serves the config file at path (gatehouse run).
func runConfig(path string, up *upgradeFlags, stdout, stderr io.Writer) int {
	doc, err := config.Load(path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return serve(doc, path, stdout, stderr, nil, up)
}

func validate(path string, stdout, stderr io.Writer) int {
	doc, err := config.Load(path)
	if err == nil {
		_, err = compile.Compile(doc, runtime.NewRegistry(nil, nil), 0)
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		var es config.Errors
		if errors.As(err, &es) && len(es) > 1 {
			fmt.Fprintf(stderr, "%d errors\n", len(es))
		}
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok (%d routes, %d upstreams)\n", path, len(doc.Config.Routes), len(doc.Config.Upstreams))
	return 0
}

// serve runs an App until SIGTERM or SIGINT; SIGHUP reopens the access log
// file (after logrotate renamed it) and reloads configPath.
// With up set, SIGUSR2 upgrades to the binary on disk, and the listeners
// are inherited when this process is the new one of an upgrade.
func serve(doc *config.Document, configPath string, stdout, stderr io.Writer, ready func([]net.Addr, net.Addr), up *upgradeFlags) int {
	events := logging.NewEventLogger(stderr, logging.ParseLevel(doc.Config.Log.Level))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	dst, closer, err := logging.OpenAccess(doc.Config.Log.Access)
	if err != nil {
		events.Error("cannot open the access log", "err", err.Error())
		return 1
	}
	if dst == os.Stdout {
		dst = stdout
	}
	var access *slog.Logger
	var flushDone chan struct{}
	var reopen func() // opens the access log file again (SIGHUP), if it is one
	if dst != nil {
		bw := logging.NewBufferedWriter(dst)
		if f, ok := dst.(*logging.File); ok {
			reopen = func() {
				_ = bw.Flush() // the lines so far go to the file they were for
				if err := f.Reopen(); err != nil {
					events.Error("cannot reopen the access log; still writing to the file open before", "err", err.Error())
					return
				}
				events.Info("access log reopened", "path", doc.Config.Log.Access)
			}
		}
		access = slog.New(logging.NewLineHandler(bw, nil))
		flushCtx, cancelFlush := context.WithCancel(context.Background())
		flushDone = make(chan struct{})
		go func() { bw.Run(flushCtx); close(flushDone) }()
		defer func() {
			cancelFlush()
			<-flushDone
			if closer != nil {
				closer.Close()
			}
		}()
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reload := make(chan struct{}, 1)
	go func() {
		for range hup {
			if reopen != nil {
				reopen() // after logrotate renamed it
			}
			select {
			case reload <- struct{}{}:
			default:
			}
		}
	}()

	opts := app.Options{ConfigPath: configPath, Events: events, Access: access, Ready: ready, Version: versionString()}
	if up != nil {
		upg, err := newUpgrader(*up, events)
		if err != nil {
			events.Error("cannot start", "err", err.Error())
			return 1
		}
		defer upg.Close()
		var cancel context.CancelCauseFunc
		ctx, cancel = context.WithCancelCause(ctx)
		wait := startUpgrades(ctx, upg, func() { cancel(nil) })
		defer wait()
		defer cancel(nil) // before wait
		opts.Listen = upg.Listen
		// Ready once every listener is open and served: an old process
		// waiting on this one stops accepting only now.
		opts.Ready = func(addrs []net.Addr, admin net.Addr) {
			if err := upg.Ready(); err != nil {
				cancel(err)
				return
			}
			if ready != nil {
				ready(addrs, admin)
			}
		}
	}
	a, err := app.New(doc, opts)
	if err != nil {
		events.Error("cannot start", "err", err.Error())
		return 1
	}
	err = a.Run(ctx, reload)
	if cause := context.Cause(ctx); err == nil && cause != nil && !errors.Is(cause, context.Canceled) {
		err = cause
	}
	if err != nil {
		events.Error("stopped with an error", "err", err.Error())
		return 1
	}
	return 0
}

func serveDemo(listen string, stdout, stderr io.Writer) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	doc, cleanup, err := demo.Setup(ctx, listen)
	if err != nil {
		fmt.Fprintln(stderr, "demo:", err)
		return 1
	}
	defer cleanup()
	return serve(doc, "", stdout, stderr, func(addrs []net.Addr, admin net.Addr) {
		demo.Banner(stdout, addrs[0].String(), admin, doc)
	}, nil)
}
