// Command idlemem measures a proxy's memory per idle keep-alive
// connection: it opens N connections to addr, sends one GET on each and
// reads its response, keeps them all open, and prints how much the
// resident set of process pid grew, per connection.
//
//	go run ./bench/idlemem -addr 127.0.0.1:6188 -pid $(pidof gatehouse) -n 5000
//
// The process should be quiet otherwise (no other load), and allow n
// connections (Gatehouse: server.max_connections). Linux only (/proc).
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:6188", "the proxy's plain HTTP listener")
	pid := flag.Int("pid", 0, "the proxy's process id")
	n := flag.Int("n", 5000, "connections to open")
	path := flag.String("path", "/", "the path each connection GETs once")
	settle := flag.Duration("settle", 2*time.Second, "wait before each reading of the resident set")
	flag.Parse()
	if *pid == 0 {
		log.Fatal("idlemem: -pid is required")
	}
	time.Sleep(*settle)
	before := rss(*pid)
	conns := make([]net.Conn, 0, *n)
	for range *n {
		c, err := net.Dial("tcp", *addr)
		if err != nil {
			log.Fatalf("idlemem: after %d connections: %v", len(conns), err)
		}
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: idlemem.test\r\n\r\n", *path)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			log.Fatalf("idlemem: connection %d: %v", len(conns), err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		conns = append(conns, c)
	}
	time.Sleep(*settle)
	after := rss(*pid)
	fmt.Printf("%d idle connections: resident set %d KiB -> %d KiB, %.1f KiB per connection\n",
		len(conns), before, after, float64(after-before)/float64(len(conns)))
	for _, c := range conns {
		c.Close()
	}
}

// rss is the resident set of pid in KiB (/proc/PID/status, VmRSS).
func rss(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		log.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	log.Fatalf("idlemem: no VmRSS for pid %d", pid)
	return 0
}
