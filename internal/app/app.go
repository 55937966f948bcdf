// Package app owns Gatehouse's lifecycle: it loads and compiles the config,
// opens the listeners, serves, reloads on SIGHUP or a file change, and shuts
// down gracefully. Every goroutine it starts stops when Run's context ends.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"gatehouse/internal/compile"
	"gatehouse/internal/config"
	"gatehouse/internal/observe/logging"
	"gatehouse/internal/proxy"
	"gatehouse/internal/runtime"
)

// Options configure an App.
type Options struct {
	// ConfigPath is reloaded on SIGHUP and watched for changes. Empty means
	// the config came from elsewhere (the demo) and is never reloaded.
	ConfigPath string
	Events     *slog.Logger
	// Access receives access lines; nil turns them off.
	Access *slog.Logger
	// Ready, if set, is called with the bound listener addresses once
	// every listener is open.
	Ready func(addrs []net.Addr)
}

// App is one running Gatehouse.
type App struct {
	opts     Options
	events   *slog.Logger
	holder   runtime.Holder
	registry *runtime.Registry
	engine   *proxy.Engine

	mu  sync.Mutex // guards the following fields; held across a reload
	doc *config.Document
	gen int64
}

// New compiles doc and builds the engine. It starts nothing.
func New(doc *config.Document, o Options) (*App, error) {
	a := &App{opts: o, events: o.Events, registry: runtime.NewRegistry(), doc: doc, gen: 1}
	if a.events == nil {
		a.events = slog.New(slog.DiscardHandler)
	}
	snap, err := compile.Compile(doc, a.registry, a.gen)
	if err != nil {
		return nil, err
	}
	a.holder.Store(snap)
	a.engine = proxy.New(proxy.Options{Holder: &a.holder, Access: o.Access, Events: a.events})
	return a, nil
}

// Handler is the public handler (the engine).
func (a *App) Handler() http.Handler { return a.engine }

// Run opens the listeners and serves until ctx ends, then shuts down
// gracefully within server.shutdown_grace. reload delivers SIGHUPs.
func (a *App) Run(ctx context.Context, reload <-chan struct{}) error {
	s := a.doc.Config.Server
	var lns []net.Listener
	for _, addr := range s.Listen {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return fmt.Errorf("listen %s: %w", addr, err)
		}
		lns = append(lns, ln)
	}
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true) // h2c; TLS arrives with its own listener
	var servers []*http.Server
	g, gctx := errgroup.WithContext(ctx)
	addrs := make([]net.Addr, 0, len(lns))
	for _, ln := range lns {
		srv := &http.Server{
			Handler:           a.engine,
			ReadHeaderTimeout: s.ReadHeaderTimeout.D(),
			IdleTimeout:       s.IdleTimeout.D(),
			MaxHeaderBytes:    int(s.MaxHeaderBytes),
			Protocols:         &protos,
			HTTP2:             &http.HTTP2Config{MaxConcurrentStreams: 250},
			ErrorLog:          slog.NewLogLogger(a.events.Handler(), slog.LevelDebug),
		}
		servers = append(servers, srv)
		addrs = append(addrs, ln.Addr())
		g.Go(func() error {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serve %s: %w", ln.Addr(), err)
			}
			return nil
		})
	}
	a.events.Info("gatehouse started", "listen", fmt.Sprint(addrs), logging.KeyConfig, a.doc.File)
	if a.opts.Ready != nil {
		a.opts.Ready(addrs)
	}
	if a.opts.ConfigPath != "" {
		g.Go(func() error { return a.watch(gctx, reload) })
	}
	<-gctx.Done()

	grace := s.ShutdownGrace.D()
	a.events.Info("shutting down", "grace", grace.String())
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	var wg sync.WaitGroup
	for _, srv := range servers {
		wg.Go(func() {
			if err := srv.Shutdown(sctx); err != nil {
				a.events.Warn("grace period over; closing remaining connections", "err", err.Error())
				srv.Close()
			}
		})
	}
	wg.Wait()
	a.registry.Close()
	err := g.Wait()
	if ctx.Err() != nil && err == nil {
		a.events.Info("stopped")
	}
	return err
}

// Reload loads, validates and compiles the config file, then swaps it in.
// On any error the running config stays and every problem is logged.
// Requests in flight finish on the snapshot they started with.
func (a *App) Reload(reason string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	start := time.Now()
	doc, err := config.Load(a.opts.ConfigPath)
	if err == nil {
		var snap *runtime.Snapshot
		snap, err = compile.Compile(doc, a.registry, a.gen+1)
		if err == nil {
			a.gen++
			a.holder.Store(snap)
			a.registry.Retain(snap)
			a.warnRestartOnly(a.doc.Config, doc.Config)
			a.doc = doc
			a.events.Info("config reloaded", "reason", reason, "generation", a.gen,
				"routes", len(doc.Config.Routes), "took_ms", time.Since(start).Milliseconds())
			return nil
		}
	}
	a.registry.Retain(a.holder.Load()) // drop pools the failed compile made
	var es config.Errors
	if errors.As(err, &es) {
		for _, e := range es {
			a.events.Error("config rejected", "reason", reason, "err", e.Error())
		}
	} else {
		a.events.Error("config rejected", "reason", reason, "err", err.Error())
	}
	a.events.Warn("keeping the running config", "generation", a.gen)
	return err
}

// warnRestartOnly logs settings that a reload cannot change.
func (a *App) warnRestartOnly(old, cur *config.Config) {
	if !reflect.DeepEqual(old.Server.Listen, cur.Server.Listen) ||
		old.Server.ReadHeaderTimeout != cur.Server.ReadHeaderTimeout ||
		old.Server.IdleTimeout != cur.Server.IdleTimeout ||
		old.Server.MaxHeaderBytes != cur.Server.MaxHeaderBytes ||
		old.Log != cur.Log {
		a.events.Warn("server.listen, the server timeouts, max_header_bytes and log settings change only on restart")
	}
}
