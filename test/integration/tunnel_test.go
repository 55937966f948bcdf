//go:build integration

package integration

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"gatehouse/internal/testutil"
)

// tunnelGate runs Gatehouse with fast_http1 set to fast, every path to
// the upstream at upstream, and extra server settings.
func tunnelGate(t *testing.T, fast bool, upstream, extra string) (*testutil.Proc, string) {
	t.Helper()
	addr := testutil.FreePort(t)
	p := testutil.Start(t, fmt.Sprintf(`
server: { listen: [%q], fast_http1: %v %s }
admin: { listen: "off" }
upstreams: { app: { targets: [%q] } }
routes: [{ name: app, match: { path_prefix: / }, upstream: app }]
`, addr, fast, extra, upstream), addr)
	return p, addr
}

// wsHandshake opens a WebSocket to addr by hand and reads the 101.
func wsHandshake(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second)) // a bound, not a wait
	_, _ = io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v, %v", resp, err)
	}
	return c, br
}

// wsUpstreamAccept reads an upgrade request on c and switches protocols.
func wsUpstreamAccept(c net.Conn) (*bufio.Reader, bool) {
	br := bufio.NewReader(c)
	if _, err := http.ReadRequest(br); err != nil {
		return nil, false
	}
	_, err := io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")
	return br, err == nil
}

// When the upstream closes a WebSocket, both connections are closed: the
// client reads what the upstream sent, then EOF, and the upstream sees
// Gatehouse close its side, though the client keeps its own open.
// Regression: the client's connection stayed open (no FIN under
// fast_http1) and the upstream's sat in CLOSE-WAIT for as long as the
// client kept its side.
func TestWebSocketUpstreamCloseClosesBothSides(t *testing.T) {
	for _, fast := range []bool{true, false} {
		t.Run(fmt.Sprintf("fast_http1=%v", fast), func(t *testing.T) {
			peerClosed := make(chan error, 1)
			up := testutil.ServeRaw(t, func(c net.Conn) {
				br, ok := wsUpstreamAccept(c)
				if !ok {
					return
				}
				_, _ = io.WriteString(c, "\x81\x02hi") // a text frame, then FIN
				_ = c.(*net.TCPConn).CloseWrite()
				_ = c.SetReadDeadline(time.Now().Add(10 * time.Second)) // a bound, not a wait
				_, err := io.Copy(io.Discard, br)
				peerClosed <- err
			})
			_, addr := tunnelGate(t, fast, up.Addr, "")
			_, br := wsHandshake(t, addr)
			got, err := io.ReadAll(br) // the client never closes its side
			if err != nil || string(got) != "\x81\x02hi" {
				t.Fatalf("client read %q, %v; want the frame, then EOF", got, err)
			}
			if err := <-peerClosed; err != nil {
				t.Fatalf("upstream: %v; want Gatehouse to close its side", err)
			}
		})
	}
}

// At shutdown an event stream ends cleanly (the chunked terminator), at
// once, not cut at the grace deadline: the client reconnects elsewhere
// knowing the stream was ended, not broken.
func TestEventStreamEndsCleanlyAtShutdown(t *testing.T) {
	for _, fast := range []bool{true, false} {
		t.Run(fmt.Sprintf("fast_http1=%v", fast), func(t *testing.T) {
			up := testutil.ServeRaw(t, func(c net.Conn) {
				br := bufio.NewReader(c)
				if _, err := http.ReadRequest(br); err != nil {
					return
				}
				_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"+
					"b\r\ndata: one\n\n\r\n")
				_, _ = io.Copy(io.Discard, br) // the stream stays open until Gatehouse hangs up
			})
			p, addr := tunnelGate(t, fast, up.Addr, ", shutdown_grace: 5s")
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(20 * time.Second)) // a bound, not a wait
			_, _ = io.WriteString(c, "GET /events HTTP/1.1\r\nHost: app.test\r\nAccept: text/event-stream\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("response: %v, %v", resp, err)
			}
			br := bufio.NewReader(resp.Body)
			if line, err := br.ReadString('\n'); line != "data: one\n" || err != nil {
				t.Fatalf("first event: %q, %v", line, err)
			}
			start := time.Now()
			if err := p.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			rest, err := io.ReadAll(br)
			if err != nil || string(rest) != "\n" {
				t.Fatalf("after SIGTERM: %q, %v after %v; want the stream's clean end (0\\r\\n\\r\\n)", rest, err, time.Since(start))
			}
			if d := time.Since(start); d > 4*time.Second {
				t.Errorf("the stream ended %v after SIGTERM, with the grace period (5s)", d)
			}
		})
	}
}
