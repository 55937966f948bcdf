package lb

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// FuzzH1NextResponseIsItsOwn: whatever bytes an upstream sends as the
// answer to one request (truncated, doubled, smuggled, malformed), the
// next request through the same client gets its own response, never a
// leftover of the first. The upstream half-closes after its first answer,
// so bodies that run to EOF end.
func FuzzH1NextResponseIsItsOwn(f *testing.F) {
	for _, s := range []string{
		ok5,
		ok5 + "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nevil!",
		"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + ok5,
		"HTTP/1.0 200 OK\r\n\r\nto the end",
		"HTTP/1.1 204 No Content\r\nContent-Length: 4\r\n\r\nevil",
		"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
		"garbage\r\n\r\n",
		"",
	} {
		f.Add([]byte(s))
	}
	// One upstream for all the runs in a fuzzing process, which closes
	// every connection first: a listener per run left TIME_WAIT sockets on
	// a new port each time, and ten seconds of fuzzing took half of
	// loopback's ephemeral ports. Each connection serves the run that was
	// current when it was accepted.
	type run struct {
		first []byte
		n     atomic.Int32
	}
	var cur atomic.Pointer[run]
	u := newRawUpstream(f, func(c net.Conn) {
		r := cur.Load()
		br := bufio.NewReader(c)
		if _, ok := readHead(br); !ok {
			return
		}
		if r.n.Add(1) == 1 {
			c.Write(r.first)
			c.(*net.TCPConn).CloseWrite()
			io.Copy(io.Discard, br)
			return
		}
		// Closed by the upstream, so the TIME_WAIT socket is on the
		// upstream's side, on its one port, not on a client port.
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nsecond")
	})
	f.Fuzz(func(t *testing.T, first []byte) {
		cur.Store(&run{first: first})
		c := testClient(Settings{ResponseHeaderTimeout: 5 * time.Second})
		defer c.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+u.addr()+"/", nil)
		if resp, err := c.RoundTrip(req); err == nil {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
		}
		req2, _ := http.NewRequestWithContext(ctx, "GET", "http://"+u.addr()+"/", nil)
		resp, err := c.RoundTrip(req2)
		if err != nil {
			t.Fatalf("second request failed: %v", err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil || string(body) != "second" || resp.StatusCode != 200 {
			t.Fatalf("second request got %d %q, %v; want its own response", resp.StatusCode, body, err)
		}
	})
}
