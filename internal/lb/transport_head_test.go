package lb

import (
	"io"
	"net"
	"strings"
	"testing"
)

// trickleConn is a connection whose reads return at most n bytes.
type trickleConn struct {
	net.Conn
	r io.Reader
	n int
}

func (c *trickleConn) Read(p []byte) (int, error) { return c.r.Read(p[:min(len(p), c.n)]) }

// TestHeadRecorderFindsTheFinalHead: whatever the reads cut, the
// recorder keeps the final head's Connection field, after any 1xx heads,
// with CRLF or bare LF line ends, and stops recording at its end (the
// body is not copied).
func TestHeadRecorderFindsTheFinalHead(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, stream string
		want         string // the final head's Connection, "" for none
	}{
		{"one head", "HTTP/1.1 200 OK\r\nConnection: close, X-A\r\nContent-Length: 4\r\n\r\nbody", "close, X-A"},
		{"after 1xx", "HTTP/1.1 100 Continue\r\nConnection: X-One\r\n\r\nHTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 200 OK\r\nConnection: X-B\r\nConnection: close\r\n\r\nbody", "X-B, close"},
		{"bare LF", "HTTP/1.1 200 OK\nConnection: close, X-C\n\nbody", "close, X-C"},
		{"101 is final", "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\r\nframes", "Upgrade"},
		{"no field", "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody", ""},
	}
	for _, c := range cases {
		for _, n := range []int{1, 2, 3, 7, 4096} {
			conn := &headRecorder{Conn: &trickleConn{r: strings.NewReader(c.stream), n: n}}
			conn.start()
			if _, err := io.ReadAll(conn); err != nil {
				t.Fatal(err)
			}
			got := strings.Join(conn.finalConnection(), ", ")
			if got != c.want {
				t.Errorf("%s, reads of %d: Connection %q, want %q", c.name, n, got, c.want)
			}
			if body := c.stream[strings.LastIndex(c.stream, "\n")+1:]; n == 1 && strings.Contains(string(conn.rec), body) {
				t.Errorf("%s: the body was recorded: %q", c.name, conn.rec)
			}
		}
	}
}
