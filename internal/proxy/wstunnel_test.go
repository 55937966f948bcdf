package proxy

import (
	"bytes"
	"encoding/binary"
	"net"
	"sync"
	"testing"
)

// wsSink is one side of a tunnel in memory: what was written to it, and
// whether it was closed.
type wsSink struct {
	net.Conn // nil: only Write and Close are used
	mu       sync.Mutex
	buf      bytes.Buffer
	closed   bool
}

func (s *wsSink) Read([]byte) (int, error) { panic("not read") }

func (s *wsSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, net.ErrClosed
	}
	return s.buf.Write(p)
}

func (s *wsSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

func (s *wsSink) state() ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.buf.Bytes()), s.closed
}

// newTestTunnel is a tunnel between two sinks, the 101 not yet sent.
func newTestTunnel() (*wsTunnel, *wsSink, *wsSink) {
	client, upstream := &wsSink{}, &wsSink{}
	t, _ := New(Options{}).newTunnel(upstream)
	t.client, t.toClient.dst = client, client
	return t, client, upstream
}

// The close frame goes between frames only: after the rest of the frame
// in flight, never in it; what follows it is dropped. Once both peers
// have answered, both connections are closed.
func TestWSRelayClosesBetweenFrames(t *testing.T) {
	t.Parallel()
	tu, client, upstream := newTestTunnel()
	frame := wsFrame(0x2, 10, 7, false)
	next := wsFrame(0x1, 3, 7, false)

	tu.toClient.start()
	if _, err := tu.toClient.Write(frame[:5]); err != nil {
		t.Fatal(err)
	}
	tu.draining.Store(true)
	tu.toClient.goingAway() // mid-frame: nothing yet
	if got, _ := client.state(); !bytes.Equal(got, frame[:5]) {
		t.Fatalf("client got % x after goingAway mid-frame, want % x", got, frame[:5])
	}
	if _, err := tu.toClient.Write(append(frame[5:], next...)); err != nil {
		t.Fatal(err)
	}
	want := append(bytes.Clone(frame), wsCloseGoingAway[:]...)
	if got, _ := client.state(); !bytes.Equal(got, want) {
		t.Fatalf("client got % x, want % x (the frame, then close 1001)", got, want)
	}

	tu.toUpstream.goingAway() // between frames: at once
	got, _ := upstream.state()
	if len(got) != 8 || got[0] != 0x88 || got[1] != 0x82 {
		t.Fatalf("upstream got % x, want a masked close frame with 2 bytes", got)
	}
	if code := binary.BigEndian.Uint16([]byte{got[6] ^ got[2], got[7] ^ got[3]}); code != 1001 {
		t.Errorf("upstream's close status %d, want 1001", code)
	}

	// The answers: dropped, and the tunnel ends once both came.
	answer := wsMaskedClose([4]byte{1, 2, 3, 4})
	if _, err := tu.toUpstream.Write(append(wsFrame(0x1, 2, 7, true), answer[:]...)); err != nil {
		t.Fatal(err)
	}
	if _, closed := client.state(); closed {
		t.Fatal("closed with the upstream's answer still to come")
	}
	if _, err := tu.toClient.Write(wsCloseGoingAway[:]); err != nil {
		t.Fatal(err)
	}
	if got, _ := upstream.state(); len(got) != 8 {
		t.Errorf("upstream got % x: the client's bytes after the close were relayed", got)
	}
	if got, closed := client.state(); !bytes.Equal(got, want) || !closed {
		t.Errorf("client got % x, closed=%v; want % x and closed", got, closed, want)
	}
	if _, closed := upstream.state(); !closed {
		t.Error("upstream not closed after both closing handshakes")
	}
}

// Before the 101 has gone out (tunnelConn's first Read), no close frame
// goes to the client; it goes as soon as the relay starts.
func TestWSRelayWaitsForTheSwitch(t *testing.T) {
	t.Parallel()
	tu, client, _ := newTestTunnel()
	tu.toClient.goingAway()
	if got, _ := client.state(); len(got) != 0 {
		t.Fatalf("client got % x before the 101", got)
	}
	tu.toClient.start()
	if got, _ := client.state(); !bytes.Equal(got, wsCloseGoingAway[:]) {
		t.Fatalf("client got % x once started, want close 1001", got)
	}
}

// goingAway racing the relay's writes: the close frame goes exactly
// once, after whole frames only (run with -race).
func TestWSRelayGoingAwayRacesWrites(t *testing.T) {
	t.Parallel()
	for range 50 {
		tu, client, _ := newTestTunnel()
		tu.toClient.start()
		frame := wsFrame(0x2, 7, 7, false)
		var wg sync.WaitGroup
		wg.Go(func() {
			for range 20 {
				_, _ = tu.toClient.Write(frame[:4])
				_, _ = tu.toClient.Write(frame[4:])
			}
		})
		wg.Go(tu.toClient.goingAway)
		wg.Wait()
		got, _ := client.state()
		ends, ops := wsRefEnds(got)
		if len(ends) == 0 || ends[len(ends)-1] != uint64(len(got)) || ops[len(ops)-1] != wsOpClose {
			t.Fatalf("client got % x: want whole frames, the last a close frame", got)
		}
		for _, op := range ops[:len(ops)-1] {
			if op == wsOpClose {
				t.Fatalf("client got % x: a close frame before the last", got)
			}
		}
	}
}
