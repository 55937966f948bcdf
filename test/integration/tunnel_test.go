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

// wsReadFrame reads one WebSocket frame from br: its first byte (FIN,
// opcode), whether it was masked, and its payload, unmasked.
func wsReadFrame(br *bufio.Reader) (b0 byte, masked bool, payload []byte, err error) {
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		return 0, false, nil, err
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126, 127:
		ext := make([]byte, map[uint64]int{126: 2, 127: 8}[n])
		if _, err := io.ReadFull(br, ext); err != nil {
			return 0, false, nil, err
		}
		n = 0
		for _, c := range ext {
			n = n<<8 | uint64(c)
		}
	}
	var key [4]byte
	masked = h[1]&0x80 != 0
	if masked {
		if _, err := io.ReadFull(br, key[:]); err != nil {
			return 0, false, nil, err
		}
	}
	if n > 1<<20 {
		return 0, false, nil, fmt.Errorf("frame of %d bytes", n)
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(br, payload); err != nil {
		return 0, false, nil, err
	}
	if masked {
		for i := range payload {
			payload[i] ^= key[i%4]
		}
	}
	return h[0], masked, payload, nil
}

// wsClose1001 reports whether a frame is a close frame with status 1001.
func wsClose1001(b0 byte, payload []byte) bool {
	return b0 == 0x88 && len(payload) >= 2 && int(payload[0])<<8|int(payload[1]) == 1001
}

// At shutdown a WebSocket is closed with status 1001 (going away), not
// cut: the client gets an unmasked close frame after the frame the
// upstream had half sent when SIGTERM came, the upstream a masked one,
// and once both have answered with theirs, both connections end, well
// before the grace deadline. Gatehouse then exits.
func TestWebSocketGoingAwayAtShutdown(t *testing.T) {
	const grace = 10 * time.Second
	for _, fast := range []bool{true, false} {
		t.Run(fmt.Sprintf("fast_http1=%v", fast), func(t *testing.T) {
			// Frames: G1 from the client (masked, sent in two writes), F1
			// and F2 from the upstream, F2 half sent before SIGTERM.
			g1 := []byte{0x81, 0x84, 1, 2, 3, 4, 'p' ^ 1, 'i' ^ 2, 'n' ^ 3, 'g' ^ 4}
			f1 := []byte("\x81\x05hello")
			f2 := []byte("\x82\x0a0123456789")
			f2Sent := 5 // the header and three payload bytes
			upErr := make(chan error, 1)
			up := testutil.ServeRaw(t, func(c net.Conn) {
				upErr <- func() error {
					br, ok := wsUpstreamAccept(c)
					if !ok {
						return fmt.Errorf("no upgrade")
					}
					_ = c.SetDeadline(time.Now().Add(3 * grace)) // a bound, not a wait
					got := make([]byte, len(g1))
					if _, err := io.ReadFull(br, got); err != nil || string(got) != string(g1) {
						return fmt.Errorf("upstream read % x, %v; want the client's frame % x", got, err, g1)
					}
					if _, err := c.Write(append(f1, f2[:f2Sent]...)); err != nil {
						return err
					}
					// Only once shutdown began: the rest of F2.
					b0, masked, payload, err := wsReadFrame(br)
					if err != nil || !masked || !wsClose1001(b0, payload) {
						return fmt.Errorf("upstream got frame %#x masked=%v % x, %v; want a masked close frame, 1001", b0, masked, payload, err)
					}
					if _, err := c.Write(append(f2[f2Sent:], 0x88, 0x02, 0x03, 0xe8)); err != nil { // F2's rest, close 1000
						return err
					}
					rest, err := io.ReadAll(br)
					if err != nil || len(rest) != 0 {
						return fmt.Errorf("upstream read % x, %v after the closing handshake; want EOF", rest, err)
					}
					return nil
				}()
			})
			p, addr := tunnelGate(t, fast, up.Addr, fmt.Sprintf(", shutdown_grace: %s", grace))
			c, br := wsHandshake(t, addr)
			_ = c.SetDeadline(time.Now().Add(3 * grace)) // a bound, not a wait
			if _, err := c.Write(g1[:3]); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Write(g1[3:]); err != nil {
				t.Fatal(err)
			}
			want := append(append([]byte{}, f1...), f2[:f2Sent]...)
			got := make([]byte, len(want))
			if _, err := io.ReadFull(br, got); err != nil || string(got) != string(want) {
				t.Fatalf("client read % x, %v; want % x", got, err, want)
			}

			start := time.Now()
			if err := p.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			rest := make([]byte, len(f2)-f2Sent)
			if _, err := io.ReadFull(br, rest); err != nil || string(rest) != string(f2[f2Sent:]) {
				t.Fatalf("client read % x, %v after SIGTERM; want the rest of the frame in flight % x", rest, err, f2[f2Sent:])
			}
			b0, masked, payload, err := wsReadFrame(br)
			if err != nil || masked || !wsClose1001(b0, payload) {
				t.Fatalf("client got frame %#x masked=%v % x, %v; want an unmasked close frame, 1001", b0, masked, payload, err)
			}
			if _, err := c.Write([]byte{0x88, 0x82, 9, 8, 7, 6, 0x03 ^ 9, 0xe9 ^ 8}); err != nil { // close 1001, answered
				t.Fatal(err)
			}
			if after, err := io.ReadAll(br); err != nil || len(after) != 0 {
				t.Fatalf("client read % x, %v after the closing handshake; want EOF", after, err)
			}
			if d := time.Since(start); d > grace/2 {
				t.Errorf("the client's connection ended %v after SIGTERM, with a grace period of %v", d, grace)
			}
			if err := <-upErr; err != nil {
				t.Fatal(err)
			}
			if d := time.Since(start); d > grace/2 {
				t.Errorf("the upstream's connection ended %v after SIGTERM, with a grace period of %v", d, grace)
			}
			select {
			case <-p.Done():
			case <-time.After(grace):
				t.Fatalf("Gatehouse still runs %v after SIGTERM", grace)
			}
		})
	}
}
