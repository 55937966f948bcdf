// Command goplain is the bench harness's reference point for Go proxies: a
// plain httputil.ReverseProxy with a tuned Transport and pooled copy
// buffers, and nothing else. Gatehouse's cost above it is the engine's;
// its cost is the floor net/http sets. Not part of Gatehouse.
//
//	goplain -listen 127.0.0.1:8080 -upstream 127.0.0.1:9090
//	goplain -listen 127.0.0.1:8443 -upstream 127.0.0.1:9090 -tls-cert c.pem -tls-key k.pem
//
// With -tls-cert and -tls-key it serves HTTPS (TLS 1.3 only) with HTTP/2
// and HTTP/1.1 by ALPN, net/http's defaults; the upstream stays plain HTTP/1.1.
package main

import (
	"crypto/tls"
	"flag"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"time"
)

type pool struct{ p sync.Pool }

func (b *pool) Get() []byte  { return *(b.p.Get().(*[]byte)) }
func (b *pool) Put(x []byte) { b.p.Put(&x) }

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "listen address")
	upstream := flag.String("upstream", "127.0.0.1:9090", "upstream host:port")
	certFile := flag.String("tls-cert", "", "serve HTTPS with this PEM certificate (and -tls-key)")
	keyFile := flag.String("tls-key", "", "PEM private key for -tls-cert")
	maxIdle := flag.Int("max-idle", 256, "idle upstream connections kept")
	flag.Parse()
	target := &url.URL{Scheme: "http", Host: *upstream}
	bufs := &pool{p: sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
			pr.Out.Host = pr.In.Host
		},
		Transport: &http.Transport{
			MaxIdleConnsPerHost: *maxIdle,
			IdleConnTimeout:     4 * time.Second,
			DisableCompression:  true,
		},
		BufferPool: bufs,
	}
	srv := &http.Server{Addr: *listen, Handler: rp, ReadHeaderTimeout: 10 * time.Second}
	if *certFile != "" {
		srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS13}
		log.Fatal(srv.ListenAndServeTLS(*certFile, *keyFile))
	}
	log.Fatal(srv.ListenAndServe())
}
