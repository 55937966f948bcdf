// Command goplain is the bench harness's reference point for Go proxies: a
// plain httputil.ReverseProxy with a tuned Transport and pooled copy
// buffers, and nothing else. Gatehouse's cost above it is the engine's;
// its cost is the floor net/http sets. Not part of Gatehouse.
//
//	goplain -listen 127.0.0.1:8080 -upstream 127.0.0.1:9090
package main

import (
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
			MaxIdleConnsPerHost: 256,
			IdleConnTimeout:     4 * time.Second,
			DisableCompression:  true,
		},
		BufferPool: bufs,
	}
	srv := &http.Server{Addr: *listen, Handler: rp, ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.ListenAndServe())
}
