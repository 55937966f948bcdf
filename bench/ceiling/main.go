// Command ceiling serves Gatehouse's engine behind a minimal HTTP/1.1 loop
// instead of net/http's server, to measure what replacing that server
// could save at most (docs/performance.md, "Where the time goes").
//
// It is a measuring stick, not a server: no timeouts, no limits, no
// request bodies, no pipelining care, no graceful anything, a response
// writer that knows only what the harness's responses need. Never put it
// in front of anything.
//
//	go build -o /tmp/ceiling ./bench/ceiling
//	/tmp/ceiling gatehouse.yaml 127.0.0.1:8080
package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"

	"gatehouse/internal/compile"
	"gatehouse/internal/config"
	"gatehouse/internal/proxy"
	"gatehouse/internal/runtime"
)

// pw writes the response head on the first write, with the handler's
// header as it is (unsorted), chunked when no length was set.
type pw struct {
	bw     *bufio.Writer
	h      http.Header
	status int
	wrote  bool
	chunk  bool
}

func (w *pw) Header() http.Header { return w.h }
func (w *pw) WriteHeader(code int) {
	if w.wrote {
		return
	}
	w.wrote = true
	w.status = code
	w.bw.WriteString("HTTP/1.1 ")
	w.bw.WriteString(strconv.Itoa(code))
	w.bw.WriteString(" ")
	w.bw.WriteString(http.StatusText(code))
	w.bw.WriteString("\r\n")
	if _, ok := w.h["Content-Length"]; !ok {
		w.chunk = true
		w.h["Transfer-Encoding"] = []string{"chunked"}
	}
	for k, vv := range w.h {
		for _, v := range vv {
			w.bw.WriteString(k)
			w.bw.WriteString(": ")
			w.bw.WriteString(v)
			w.bw.WriteString("\r\n")
		}
	}
	w.bw.WriteString("\r\n")
}
func (w *pw) Write(p []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(200)
	}
	if w.chunk {
		w.bw.WriteString(strconv.FormatInt(int64(len(p)), 16))
		w.bw.WriteString("\r\n")
		w.bw.Write(p)
		w.bw.WriteString("\r\n")
		return len(p), nil
	}
	return w.bw.Write(p)
}
func (w *pw) finish() {
	if !w.wrote {
		w.WriteHeader(200)
	}
	if w.chunk {
		w.bw.WriteString("0\r\n\r\n")
	}
	w.bw.Flush()
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: ceiling CONFIG.yaml LISTEN-ADDR")
		os.Exit(2)
	}
	doc, err := config.Load(os.Args[1])
	if err != nil {
		panic(err)
	}
	snap, err := compile.Compile(doc, runtime.NewRegistry(nil, nil), 1)
	if err != nil {
		panic(err)
	}
	var h runtime.Holder
	h.Store(snap)
	e := proxy.New(proxy.Options{Holder: &h})
	ln, err := net.Listen("tcp", os.Args[2])
	if err != nil {
		panic(err)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			panic(err)
		}
		go func() {
			defer c.Close()
			ra := c.RemoteAddr().String()
			ctx := proxy.ConnContext(context.Background(), c)
			br := bufio.NewReaderSize(c, 4096)
			bw := bufio.NewWriterSize(c, 4096)
			for {
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				req.RemoteAddr = ra
				req = req.WithContext(ctx)
				w := &pw{bw: bw, h: make(http.Header, 8)}
				e.ServeHTTP(w, req)
				w.finish()
			}
		}()
	}
}
