// Command gofloor is the bench harness's floor for a Go HTTP/1.1 proxy: the
// least a Go program can do per proxied request on Go's netpoller, so that
// what is left between Gatehouse and nginx can be split into "what Go's
// runtime costs" and "what Gatehouse does". Not part of Gatehouse, and not
// a proxy anyone should run: it checks nothing and rewrites nothing.
//
//	gofloor -listen 127.0.0.1:8080 -upstream 127.0.0.1:9090
//
// Per client connection, one goroutine and one upstream connection of its
// own (no pool, no locks). Per request: read the head into a fixed buffer
// until its blank line, write those bytes to the upstream unchanged, read
// the response head and its Content-Length body into a second fixed
// buffer, write it to the client in one write. No allocation, no header
// map, no parsing beyond finding the blank line and Content-Length. A
// request with a body, a response without Content-Length or anything that
// does not fit its buffer closes the connection.
package main

import (
	"bytes"
	"flag"
	"io"
	"log"
	"net"
)

const bufSize = 16 << 10

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "listen address")
	upstream := flag.String("upstream", "127.0.0.1:9090", "upstream host:port")
	flag.Parse()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go serve(c, *upstream)
	}
}

func serve(c net.Conn, upstream string) {
	defer c.Close()
	u, err := net.Dial("tcp", upstream)
	if err != nil {
		return
	}
	defer u.Close()
	var req, resp [bufSize]byte
	have := 0 // bytes of req read and not yet forwarded
	for {
		end := headEnd(req[:have])
		for end < 0 {
			if have == len(req) {
				return
			}
			n, err := c.Read(req[have:])
			if err != nil {
				return
			}
			have += n
			end = headEnd(req[:have])
		}
		head := req[:end]
		if contentLength(head) > 0 || hasField(head, "transfer-encoding") {
			return
		}
		if _, err := u.Write(head); err != nil {
			return
		}
		// Pipelined bytes after this head stay for the next turn.
		have = copy(req[:], req[end:have])

		got := 0
		rend := -1
		for rend < 0 {
			if got == len(resp) {
				return
			}
			n, err := u.Read(resp[got:])
			if err != nil {
				return
			}
			got += n
			rend = headEnd(resp[:got])
		}
		cl := contentLength(resp[:rend])
		if cl < 0 || rend+cl > len(resp) {
			return
		}
		if got < rend+cl {
			if _, err := io.ReadFull(u, resp[got:rend+cl]); err != nil {
				return
			}
		} else if got > rend+cl {
			return // the upstream sent more than one response
		}
		if _, err := c.Write(resp[:rend+cl]); err != nil {
			return
		}
	}
}

// headEnd is the length of the head in b through its blank line, or -1.
func headEnd(b []byte) int {
	i := bytes.Index(b, []byte("\r\n\r\n"))
	if i < 0 {
		return -1
	}
	return i + 4
}

// contentLength is the Content-Length field's value in head, or -1.
func contentLength(head []byte) int {
	v, ok := field(head, "content-length")
	if !ok {
		return -1
	}
	n := 0
	for _, ch := range v {
		if ch < '0' || ch > '9' || n > 1<<30 {
			return -1
		}
		n = n*10 + int(ch-'0')
	}
	return n
}

func hasField(head []byte, name string) bool {
	_, ok := field(head, name)
	return ok
}

// field finds a field by its lower-case name in head, case-insensitively,
// and returns its value trimmed of spaces.
func field(head []byte, name string) ([]byte, bool) {
	for len(head) > 0 {
		i := bytes.Index(head, []byte("\r\n"))
		if i < 0 {
			return nil, false
		}
		line := head[:i]
		head = head[i+2:]
		if len(line) > len(name) && line[len(name)] == ':' && equalFold(line[:len(name)], name) {
			return bytes.TrimSpace(line[len(name)+1:]), true
		}
	}
	return nil, false
}

func equalFold(b []byte, lower string) bool {
	for i := range len(lower) {
		ch := b[i]
		if 'A' <= ch && ch <= 'Z' {
			ch += 'a' - 'A'
		}
		if ch != lower[i] {
			return false
		}
	}
	return true
}
