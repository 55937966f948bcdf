// Package app owns Gatehouse's lifecycle: it loads and compiles the config,
// opens the listeners, serves, reloads on SIGHUP or a file change, and shuts
// down gracefully. Every goroutine it starts stops when Run's context ends.
package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"gatehouse/internal/admin"
	"gatehouse/internal/compile"
	"gatehouse/internal/config"
	"gatehouse/internal/h1guard"
	"gatehouse/internal/h1server"
	"gatehouse/internal/h2server"
	"gatehouse/internal/netx"
	"gatehouse/internal/observe/logging"
	"gatehouse/internal/observe/metrics"
	"gatehouse/internal/observe/tracing"
	"gatehouse/internal/proxy"
	"gatehouse/internal/runtime"
	"gatehouse/internal/tlsx"
)

// Options configure an App.
type Options struct {
	// ConfigPath is reloaded on SIGHUP and watched for changes. Empty means
	// the config came from elsewhere (the demo) and is never reloaded.
	ConfigPath string
	Events     *slog.Logger
	// Access receives access lines; nil turns them off.
	Access *slog.Logger
	// Ready, if set, is called with the bound public listener addresses
	// and the admin address (nil when off) once every listener is open.
	Ready func(addrs []net.Addr, admin net.Addr)
	// Version is reported in metrics and on the status page.
	Version string
	// Listen opens a listening TCP socket (public, TLS and admin alike);
	// nil means net.Listen. A zero-downtime upgrade passes one that
	// returns the socket inherited from the previous process
	// (internal/upgrade).
	Listen func(network, addr string) (net.Listener, error)
}

// App is one running Gatehouse.
type App struct {
	opts     Options
	events   *slog.Logger
	holder   runtime.Holder
	registry *runtime.Registry
	engine   *proxy.Engine
	metrics  *metrics.Metrics
	admin    *admin.Server
	up       atomic.Bool // every listener is open
	// handlers counts requests being served, WebSockets and other
	// tunnels included: net/http's Shutdown stops tracking a connection
	// once it is hijacked, so shutdown also waits for this to reach 0.
	handlers atomic.Int64
	// draining: the listeners were closed for a drain, so an accept
	// error from a closed listener ends its serve loop without error.
	draining atomic.Bool

	testHookBeforeListen func() // tests: runs just before the listeners are bound

	// started is the config the process started with: what its
	// restart-only settings (listeners, admin, log, tracing) still are.
	started *config.Config

	mu      sync.Mutex // guards the following fields; held across a reload
	doc     *config.Document
	gen     int64
	reloads admin.ReloadState
}

// New compiles doc and builds the engine. It starts nothing.
func New(doc *config.Document, o Options) (*App, error) {
	if o.Listen == nil {
		o.Listen = net.Listen
	}
	a := &App{opts: o, events: o.Events, doc: doc, gen: 1, started: doc.Config}
	if doc.Config.Admin.Listen != "off" {
		// Metrics exist only to be scraped: with the admin listener off,
		// nothing is counted and the request path pays nothing.
		a.metrics = metrics.New(o.Version)
	}
	if a.events == nil {
		a.events = slog.New(slog.DiscardHandler)
	}
	a.registry = runtime.NewRegistry(a.metrics, a.events)
	snap, err := compile.Compile(doc, a.registry, a.gen)
	if err != nil {
		return nil, err
	}
	a.holder.Store(snap)
	now := time.Now()
	a.reloads = admin.ReloadState{File: doc.File, Generation: a.gen, LoadedAt: now, LastTry: now, LastOK: true}
	if a.metrics != nil {
		a.metrics.Reload(true, float64(now.Unix()))
	}
	if a.metrics != nil {
		a.metrics.WatchTargets(a.targetStates)
		a.metrics.WatchCerts(a.certStates)
		a.metrics.WatchKeyFetches(func() map[string]int64 {
			out := map[string]int64{}
			for _, is := range a.holder.Load().Issuers {
				out[is.Name] = is.Keys.Fetches()
			}
			return out
		})
	}
	a.admin = admin.New(admin.Options{Source: a, Metrics: a.metrics, Pprof: doc.Config.Admin.Pprof, AllowedHosts: doc.Config.Admin.AllowedHosts, Version: o.Version, PID: os.Getpid()})
	return a, nil
}

// Snapshot implements admin.Source.
func (a *App) Snapshot() *runtime.Snapshot { return a.holder.Load() }

// ConfigYAML implements admin.Source: the running config, secrets redacted.
func (a *App) ConfigYAML() ([]byte, error) {
	a.mu.Lock()
	c := a.doc.Config
	a.mu.Unlock()
	return config.MarshalRedacted(config.InEffect(a.started, c))
}

// Reloads implements admin.Source.
func (a *App) Reloads() admin.ReloadState {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.reloads
}

// Ready implements admin.Source: a config is loaded (always, once New
// succeeded), every listener is open, and the config can serve its routes
// (notReady: their upstreams have a target, their issuers were reached).
func (a *App) Ready() (bool, []string) {
	if !a.up.Load() {
		return false, []string{"listeners are not open"}
	}
	reasons := notReady(a.holder.Load(), time.Now())
	return len(reasons) == 0, reasons
}

// Run opens the listeners and serves until ctx ends, then shuts down
// gracefully within server.shutdown_grace. reload delivers SIGHUPs.
func (a *App) Run(ctx context.Context, reload <-chan struct{}) error {
	s := a.doc.Config.Server
	popts := proxy.Options{Holder: &a.holder, Access: a.opts.Access, Events: a.events, Metrics: a.metrics,
		BodyReadTimeout: s.BodyReadTimeout.D(), WriteTimeout: s.WriteTimeout.D()}
	if tc := a.doc.Config.Tracing; tc.Endpoint != "" {
		tr, err := tracing.New(tracing.Config{Endpoint: tc.Endpoint, SampleRatio: *tc.SampleRatio,
			ServiceName: tc.ServiceName, Version: a.opts.Version, Headers: tc.Headers}, a.events)
		if err != nil {
			return err
		}
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := tr.Shutdown(ctx); err != nil {
				a.events.Warn("tracing: flushing spans at shutdown", "err", err.Error())
			}
		}()
		popts.Tracer = tr
	}
	a.engine = proxy.New(popts)
	var lns []net.Listener
	var lims []*netx.LimitListener
	var adminLn net.Listener
	if l := a.doc.Config.Admin.Listen; l != "off" {
		ln, err := a.opts.Listen("tcp", l)
		if err != nil {
			return fmt.Errorf("admin listen %s: %w", l, err)
		}
		adminLn = &onceCloseListener{Listener: ln}
	}
	if a.testHookBeforeListen != nil {
		a.testHookBeforeListen()
	}
	addrsToBind := s.Listen
	nPlain := len(addrsToBind)
	if t := s.TLS; t != nil {
		addrsToBind = append(append([]string{}, addrsToBind...), t.Listen...)
	}
	counts := netx.NewCounts(netx.Limits{Total: *s.MaxConnections, PerIP: s.MaxConnectionsPerIP}) // one for all listeners
	for i, addr := range addrsToBind {
		ln, err := a.opts.Listen("tcp", addr)
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			if adminLn != nil {
				adminLn.Close()
			}
			return fmt.Errorf("listen %s: %w", addr, err)
		}
		lim := counts.Listen(ln)
		if a.metrics != nil {
			lim.OnRefuse = a.metrics.ConnectionRefused
		}
		lims = append(lims, lim)
		if i >= nPlain {
			lns = append(lns, lim) // HTTPS: net/http must see the *tls.Conn
			continue
		}
		// Plain HTTP/1.x: every request's framing is checked before either
		// server reads it (request smuggling, oversized lines).
		lns = append(lns, h1guard.NewListener(lim, h1guard.Limits{
			MaxLineBytes: int(s.MaxHeaderLineBytes), MaxHeadBytes: int(s.MaxHeaderBytes)}))
	}
	// Health checkers and key refreshes start once the listeners are
	// bound (connections queue until served): keys served through
	// Gatehouse itself answer the first fetch. Stopped by registry.Close
	// below.
	a.registry.Start(ctx)
	var servers []server
	g, gctx := errgroup.WithContext(ctx)
	addrs := make([]net.Addr, 0, len(lns))
	for i, ln := range lns {
		srv, serve := a.listenerServer(s, i >= nPlain)
		servers = append(servers, srv)
		addrs = append(addrs, ln.Addr())
		g.Go(func() error {
			if err := serve(ln); !a.stoppedServing(err) {
				return fmt.Errorf("serve %s: %w", ln.Addr(), err)
			}
			return nil
		})
	}
	var adminAddr net.Addr
	if adminLn != nil {
		adminSrv := &http.Server{Handler: a.admin, ReadHeaderTimeout: 10 * time.Second,
			ErrorLog: slog.NewLogLogger(a.events.Handler(), slog.LevelDebug)}
		servers = append(servers, adminSrv)
		adminAddr = adminLn.Addr()
		g.Go(func() error {
			if err := adminSrv.Serve(adminLn); !a.stoppedServing(err) {
				return fmt.Errorf("admin serve %s: %w", adminLn.Addr(), err)
			}
			return nil
		})
		g.Go(func() error { a.admin.Run(gctx); return nil })
	}
	if a.opts.ConfigPath != "" {
		w := a.newWatcher()
		g.Go(func() error { a.watch(gctx, w, reload); return nil })
	}
	a.up.Store(true)
	a.events.Info("gatehouse started", "listen", fmt.Sprint(addrs), "admin", fmt.Sprint(adminAddr), logging.KeyConfig, a.doc.File)
	if a.opts.Ready != nil {
		a.opts.Ready(addrs, adminAddr)
	}
	<-gctx.Done()
	a.up.Store(false)
	a.drain(servers, lns, lims, adminLn, s.ShutdownGrace.D())
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
			a.warnRestartOnly(a.started, doc.Config)
			a.doc = doc
			now := time.Now()
			a.reloads = admin.ReloadState{File: doc.File, Generation: a.gen, LoadedAt: now, LastTry: now, LastOK: true}
			if a.metrics != nil {
				a.metrics.Reload(true, float64(now.Unix()))
			}
			a.events.Info("config reloaded", "reason", reason, "generation", a.gen,
				"routes", len(doc.Config.Routes), "took_ms", time.Since(start).Milliseconds())
			return nil
		}
	}
	a.registry.Retain(a.holder.Load()) // drop pools the failed compile made
	if a.metrics != nil {
		a.metrics.Reload(false, 0)
	}
	a.reloads.LastTry, a.reloads.LastOK, a.reloads.Errors = time.Now(), false, nil
	var es config.Errors
	if errors.As(err, &es) {
		for _, e := range es {
			a.events.Error("config rejected", "reason", reason, "err", e.Error())
			a.reloads.Errors = append(a.reloads.Errors, e.Error())
		}
	} else {
		a.events.Error("config rejected", "reason", reason, "err", err.Error())
		a.reloads.Errors = append(a.reloads.Errors, err.Error())
	}
	a.events.Warn("keeping the running config", "generation", a.gen)
	return err
}

// warnRestartOnly names the settings a reload changed in the file that
// only a restart applies (config.RestartOnlyChanges), against what the
// process started with: they keep their running values, which /config shows.
func (a *App) warnRestartOnly(started, cur *config.Config) {
	if ch := config.RestartOnlyChanges(started, cur); len(ch) > 0 {
		a.events.Warn("these settings take effect only at a restart; they keep the values the process started with (as /config shows)",
			"settings", strings.Join(ch, ", "))
	}
}

// targetStates lists every target's availability, for metrics.
func (a *App) targetStates() []metrics.TargetState {
	snap := a.holder.Load()
	now := time.Now().UnixNano()
	var out []metrics.TargetState
	for name, p := range snap.Pools {
		for _, t := range p.Targets() {
			out = append(out, metrics.TargetState{Upstream: name, Target: t.Addr, State: t.Verdict(now)})
		}
	}
	return out
}

// counted is h counting the requests it serves in a.handlers.
func (a *App) counted(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.handlers.Add(1)
		defer a.handlers.Add(-1)
		if r.ProtoMajor == 2 {
			// A drain leaves HTTP/2 connections to Shutdown's GOAWAY.
			netx.Multiplexed(proxy.Conn(r.Context()))
		}
		h.ServeHTTP(w, r)
	})
}

// waitHandlers waits until no request is being served (after the servers
// have shut down, only hijacked connections remain: WebSockets, which
// get the grace period too) or ctx ends. It returns how many remain; the
// process exit closes their connections.
func (a *App) waitHandlers(ctx context.Context) int64 {
	// Polled as net/http's Shutdown does: from 1 ms, doubling, at most 500 ms.
	wait := time.Millisecond
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		n := a.handlers.Load()
		if n == 0 {
			return 0
		}
		select {
		case <-ctx.Done():
			return n
		case <-timer.C:
			wait = min(2*wait, 500*time.Millisecond)
			timer.Reset(wait)
		}
	}
}

// server is what shutdown needs of an http.Server or an h1server.Server.
type server interface {
	SetKeepAlivesEnabled(bool)
	Shutdown(context.Context) error
	Close() error
}

// listenerServer is the server of a public listener and how it serves:
// HTTPS by net/http, HTTP/2 on it by h2server (server.fast_http2) or
// net/http; plain by h1server in front of net/http
// (server.fast_http1), with cleartext HTTP/2 by h2server (and
// fast_http2) or net/http, or by net/http alone.
func (a *App) listenerServer(s config.Server, useTLS bool) (server, func(net.Listener) error) {
	srv := a.publicServer(s, useTLS)
	switch {
	case srv.TLSConfig != nil:
		return srv, func(l net.Listener) error { return srv.ServeTLS(l, "", "") }
	case *s.FastHTTP1:
		// Simple HTTP/1.1 requests by h1server, the rest by srv.
		fast := h1server.New(srv, proxy.ConnContextKeepingDeadlines)
		// The engine keeps no request's header map past the request (see
		// package proxy): a connection's requests may share one.
		fast.ReuseRequestHeaders(true)
		if *s.FastHTTP2 {
			// Cleartext HTTP/2 (prior knowledge) by h2server too, as on
			// HTTPS: one HTTP/2 server, with its stricter checks, on
			// every listener. srv's Shutdown sends its GOAWAYs.
			h2 := a.h2server(s, srv.ErrorLog)
			srv.RegisterOnShutdown(h2.Shutdown)
			fast.ServeH2C(func(ctx context.Context, c net.Conn, prefaceBy time.Time) {
				netx.Multiplexed(c) // a drain leaves it to Shutdown's GOAWAY
				h2.ServeConnContext(ctx, c, srv.Handler, prefaceBy)
			})
		}
		return fast, fast.Serve
	default:
		return srv, srv.Serve
	}
}

// publicServer is the http.Server of a public listener: plain (HTTP/1.1
// and cleartext HTTP/2 with prior knowledge) or HTTPS (ALPN h2 and
// http/1.1, certificates from the live snapshot's TLS front).
func (a *App) publicServer(s config.Server, useTLS bool) *http.Server {
	var protos http.Protocols
	protos.SetHTTP1(true)
	srv := &http.Server{
		Handler:           a.counted(a.engine),
		ConnContext:       proxy.ConnContext,
		ReadHeaderTimeout: s.ReadHeaderTimeout.D(), // also bounds the TLS handshake
		IdleTimeout:       s.IdleTimeout.D(),
		MaxHeaderBytes:    int(s.MaxHeaderBytes),
		Protocols:         &protos,
		// "OPTIONS *" goes to the engine, which refuses non-origin targets
		// (400), not to net/http's built-in 200.
		DisableGeneralOptionsHandler: true,
		// Go's HTTP/2 server bounds CONTINUATION floods by MaxHeaderBytes
		// and disconnects rapid-reset clients (test/integration/h2_test.go).
		HTTP2:    &http.HTTP2Config{MaxConcurrentStreams: s.HTTP2MaxConcurrentStreams},
		ErrorLog: slog.NewLogLogger(a.events.Handler(), slog.LevelDebug),
	}
	if !useTLS {
		protos.SetUnencryptedHTTP2(true)
		return srv
	}
	protos.SetHTTP2(true)
	// An HTTP/2 connection is marked as such from its start (the
	// handler marks it too, but an idle one may carry no request): a
	// drain does not wait for it to close (netx.Multiplexed). net/http
	// reports a connection idle once per request at most.
	srv.ConnState = func(c net.Conn, st http.ConnState) {
		if tc, ok := c.(*tls.Conn); ok && st == http.StateIdle && tc.ConnectionState().NegotiatedProtocol == "h2" {
			netx.Multiplexed(c)
		}
	}
	min, _ := tlsx.MinVersion(s.TLS.MinVersion) // validated
	var alpn []string
	if f := a.holder.Load().TLS; f != nil {
		alpn = f.ALPN()
	}
	base := tlsx.ServerConfig(min, func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		f := a.holder.Load().TLS
		if f == nil {
			return nil, errors.New("tls: off in the running config")
		}
		return f.GetCertificate(hello)
	}, alpn...)
	srv.TLSConfig = base.Clone()
	if *s.FastHTTP2 {
		// HTTP/2 by h2server: net/http hands it the connections that
		// negotiate h2 and its Shutdown sends them GOAWAY.
		h2 := a.h2server(s, srv.ErrorLog)
		srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){
			"h2": func(_ *http.Server, c *tls.Conn, h http.Handler) {
				netx.Multiplexed(c) // a drain leaves it to Shutdown's GOAWAY
				h2.ServeConn(c, h)
			},
		}
		srv.RegisterOnShutdown(h2.Shutdown)
	}
	// Mutual TLS is per host, and may change with a reload: the live
	// snapshot decides for each handshake.
	srv.TLSConfig.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		if f := a.holder.Load().TLS; f != nil {
			return f.ForClient(base, hello), nil
		}
		return nil, nil
	}
	return srv
}

// h2server is the HTTP/2 server of a public listener (server.fast_http2).
func (a *App) h2server(s config.Server, errorLog *log.Logger) *h2server.Server {
	return h2server.New(h2server.Config{
		MaxConcurrentStreams: uint32(s.HTTP2MaxConcurrentStreams),
		MaxHeaderBytes:       int(s.MaxHeaderBytes),
		IdleTimeout:          s.IdleTimeout.D(),
		ReadHeaderTimeout:    s.ReadHeaderTimeout.D(),
		WriteTimeout:         s.WriteTimeout.D(),
		ErrorLog:             errorLog,
		// The engine keeps no request's header map past the request
		// (see package proxy): the server may reuse it.
		ReuseRequestHeaders: true,
	})
}

// certStates lists the served certificates' expiry, for metrics.
func (a *App) certStates() []metrics.CertState {
	f := a.holder.Load().TLS
	if f == nil {
		return nil
	}
	st := f.Status()
	var out []metrics.CertState
	for _, c := range st.Files {
		for _, n := range c.Names {
			out = append(out, metrics.CertState{Name: n, Source: "file", NotAfter: c.NotAfter})
		}
	}
	for _, c := range st.ACME {
		if !c.NotAfter.IsZero() {
			out = append(out, metrics.CertState{Name: c.Name, Source: "acme", NotAfter: c.NotAfter})
		}
	}
	return out
}
