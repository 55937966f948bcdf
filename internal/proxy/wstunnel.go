package proxy

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
)

// errShuttingDown refuses a protocol switch once shutdown has begun: the
// client gets a 502 instead of a WebSocket that would be closed at once.
var errShuttingDown = errors.New("proxy: shutting down: no new tunnels")

// Drain runs when shutdown begins, and returns when what it ended has
// ended, or when ctx does (the end of server.shutdown_grace).
//
//   - Event streams (SSE) end at once, cleanly: their body ends as if
//     the upstream had finished it, so the client reads the chunked
//     terminator (0\r\n\r\n), not a cut connection, and reconnects
//     elsewhere.
//   - WebSockets are closed: each side is sent a close frame with status
//     1001, going away (RFC 6455 §7.4.1), at the next frame boundary of
//     the direction it is sent in, unmasked to the client and masked to
//     the upstream (§5.3); nothing more is relayed to either. Once both
//     peers have answered with their close frame, both connections are
//     closed; those still open when ctx ends are closed then.
//
// net/http's Shutdown does not wait for hijacked connections: the engine
// tracks its tunnels itself, and no new one opens once Drain has begun.
// Every goroutine Drain starts has ended when it returns.
func (e *Engine) Drain(ctx context.Context) {
	e.drain()
	ts := &e.tunnels
	ts.mu.Lock()
	ts.closed = true
	open := make([]*wsTunnel, 0, len(ts.open))
	for t := range ts.open {
		open = append(open, t)
	}
	ts.mu.Unlock()

	// Both directions of every tunnel are closing before any close frame
	// goes out: a peer may answer one close frame at once, and its answer
	// must meet a relay that already knows (else it would be relayed as
	// data, ahead of the 1001).
	for _, t := range open {
		t.toClient.closing.Store(true)
		t.toUpstream.closing.Store(true)
	}
	var wg sync.WaitGroup
	for _, t := range open {
		t.draining.Store(true)
		t.checkDone()
		// Each close frame may wait for a frame in flight or a peer that
		// does not read: one goroutine per direction, ended by cut at the
		// latest (a write to a closed connection fails).
		wg.Go(t.toClient.goingAway)
		wg.Go(t.toUpstream.goingAway)
	}
	cut := false
	for _, t := range open {
		if !cut {
			select {
			case <-t.ended:
				continue
			case <-ctx.Done():
				cut = true // the grace period is over
				for _, t := range open {
					t.cut()
				}
			}
		}
		<-t.ended // cut: every copy fails at once
	}
	wg.Wait()
}

// tunnelSet is the engine's open WebSockets.
type tunnelSet struct {
	mu     sync.Mutex // guards the following fields
	open   map[*wsTunnel]struct{}
	closed bool // Drain has begun: no new tunnel
}

// wsTunnel is one WebSocket relayed by httputil.ReverseProxy: it copies
// the upstream's bytes to the client through tunnelConn.Write
// (toClient) and the client's to the upstream through wsUpstream.Write
// (toUpstream). Each direction follows its frames (wsFrames), so a close
// frame can go between two of them at shutdown (Engine.Drain).
//
// It is made when the upstream answers 101 (upstreamResponseOf), opened
// when ReverseProxy hijacks the client's connection (respWriter.Hijack),
// and ended when the request's handler returns (Engine.finish), after
// ReverseProxy has closed both connections.
type wsTunnel struct {
	e          *Engine
	toClient   wsRelay
	toUpstream wsRelay
	client     net.Conn  // the hijacked connection; set when opened
	upstream   io.Closer // the upstream's connection (the 101's body)
	registered bool      // in e.tunnels; read and written by the handler only
	ended      chan struct{}

	draining atomic.Bool   // Drain has begun
	closes   atomic.Uint32 // wsClientGot | ...: the close frames that went
}

// Close frames seen on a tunnel, bits of wsTunnel.closes. With all four
// both closing handshakes are done (RFC 6455 §7.1.2).
const (
	wsClientGot = 1 << iota
	wsClientSent
	wsUpstreamGot
	wsUpstreamSent
	wsAllClosed = wsClientGot | wsClientSent | wsUpstreamGot | wsUpstreamSent
)

// newTunnel starts a tunnel on the upstream's side, body the 101's.
func (e *Engine) newTunnel(body io.ReadWriteCloser) (*wsTunnel, *wsUpstream) {
	t := &wsTunnel{e: e, upstream: body, ended: make(chan struct{})}
	t.toClient = wsRelay{t: t, gotBit: wsClientGot, sentBit: wsUpstreamSent}
	// The upgrade request went out by the transport: nothing else is
	// being written to the upstream.
	t.toUpstream = wsRelay{t: t, dst: body, masked: true, gotBit: wsUpstreamGot, sentBit: wsClientSent, started: true}
	return t, &wsUpstream{ReadWriteCloser: body, t: t}
}

// open registers the tunnel, with hijack handing over the client's
// connection, unless Drain has begun. Drain sees every tunnel whole.
func (t *wsTunnel) open(hijack func() (net.Conn, error)) (net.Conn, error) {
	ts := &t.e.tunnels
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.closed {
		return nil, errShuttingDown
	}
	c, err := hijack()
	if err != nil {
		return nil, err
	}
	t.client, t.toClient.dst = c, c
	if ts.open == nil {
		ts.open = make(map[*wsTunnel]struct{})
	}
	ts.open[t] = struct{}{}
	t.registered = true
	return c, nil
}

// end runs when the request's handler has returned.
func (t *wsTunnel) end() {
	if !t.registered {
		return
	}
	ts := &t.e.tunnels
	ts.mu.Lock()
	delete(ts.open, t)
	ts.mu.Unlock()
	close(t.ended)
}

// noteClose records close frames that went, and ends a draining tunnel
// whose closing handshakes are both done.
func (t *wsTunnel) noteClose(bits uint32) {
	t.closes.Or(bits)
	t.checkDone()
}

func (t *wsTunnel) checkDone() {
	// Drain sets draining before it checks; noteClose sets closes
	// before it does: one of them sees both.
	if t.draining.Load() && t.closes.Load() == wsAllClosed {
		t.cut()
	}
}

// cut closes both connections: every copy ReverseProxy runs fails, and
// it returns.
func (t *wsTunnel) cut() {
	_ = t.client.Close()
	_ = t.upstream.Close()
}

// wsRelay is one direction of a tunnel: it writes what it is given to
// dst and follows the frames. Once asked to close (goingAway) it writes
// a close frame at the next frame boundary and from then on drops what
// it is given, watching only for the source's own close frame.
//
// Writes to dst hold mu; the close frame is written by whoever holds it
// at the boundary: the relay's Write, or goingAway when no Write runs.
type wsRelay struct {
	t       *wsTunnel
	dst     io.Writer
	masked  bool   // dst is the upstream: close frames are masked
	gotBit  uint32 // the bit of t.closes for dst's receiving a close frame
	sentBit uint32 // the bit of t.closes for the source's sending one
	closing atomic.Bool

	mu        sync.Mutex // held while writing to dst; guards the following fields
	frames    wsFrames   // the source's stream
	started   bool       // dst may be written to: the 101 went to the client
	dstClosed bool       // a close frame went to dst, relayed or ours
	drop      bool       // the source's bytes go no further
}

// Write relays p, or as much of it as goes before the close frame.
func (r *wsRelay) Write(p []byte) (int, error) {
	r.mu.Lock()
	n, err := r.writeLocked(p)
	r.mu.Unlock()
	if r.closing.Load() {
		// goingAway may have found mu held, and left the close frame
		// to this Write (closing was set before it tried).
		r.tryClose()
	}
	return n, err
}

func (r *wsRelay) writeLocked(p []byte) (int, error) {
	r.started = true
	if r.drop {
		r.noteClose(r.follow(p))
		return len(p), nil
	}
	if !r.closing.Load() {
		bits := r.follow(p)
		n, err := r.dst.Write(p)
		r.noteClose(bits)
		return n, err
	}
	k, bits := r.followToBoundary(p)
	if !r.frames.atBoundary() {
		return r.dst.Write(p) // all of p is inside the frame in flight
	}
	if k > 0 {
		n, err := r.dst.Write(p[:k])
		r.noteClose(bits)
		if err != nil {
			return n, err
		}
	}
	if err := r.closeLocked(); err != nil {
		return k, err
	}
	r.noteClose(r.follow(p[k:]))
	return len(p), nil
}

// follow feeds p to r.frames and returns the bits of t.closes for the
// close frames that end in it: sent by the source, and received by dst
// unless dropped.
func (r *wsRelay) follow(p []byte) uint32 {
	var bits uint32
	for len(p) > 0 {
		p = p[r.frames.step(p):]
		bits |= r.ended()
	}
	return bits
}

// followToBoundary is follow up to the end of the frame in flight: it
// returns how many bytes of p that took (0 between frames).
func (r *wsRelay) followToBoundary(p []byte) (int, uint32) {
	if r.frames.atBoundary() || len(p) == 0 {
		return 0, 0
	}
	n := r.frames.step(p)
	return n, r.ended()
}

// ended returns the close bits for the frame that the last step ended.
func (r *wsRelay) ended() uint32 {
	if !r.frames.ended || r.frames.op != wsOpClose {
		return 0
	}
	if r.drop {
		return r.sentBit
	}
	r.dstClosed = true // relayed: the caller writes it
	return r.sentBit | r.gotBit
}

// noteClose passes close bits on to the tunnel (after the write that
// relayed the frames they stand for).
func (r *wsRelay) noteClose(bits uint32) {
	if bits != 0 {
		r.t.noteClose(bits)
	}
}

// start tells the relay that dst may be written to.
func (r *wsRelay) start() {
	r.mu.Lock()
	r.started = true
	r.mu.Unlock()
	if r.closing.Load() {
		r.tryClose()
	}
}

// goingAway asks for the close frame, at once when no write runs and the
// stream is between frames; otherwise the write that reaches the
// boundary sends it.
func (r *wsRelay) goingAway() {
	r.closing.Store(true)
	r.tryClose()
}

func (r *wsRelay) tryClose() {
	if !r.mu.TryLock() {
		return // a write runs; it calls tryClose when done
	}
	defer r.mu.Unlock()
	if r.started && !r.drop && r.frames.atBoundary() {
		_ = r.closeLocked() // a failed write ends ReverseProxy's copy
	}
}

// closeLocked writes the close frame (status 1001) to dst, unless one
// went already, and stops the relay.
func (r *wsRelay) closeLocked() error {
	r.drop = true
	if r.dstClosed {
		return nil
	}
	r.dstClosed = true
	var err error
	if r.masked {
		var key [4]byte
		_, _ = rand.Read(key[:])
		f := wsMaskedClose(key)
		_, err = r.dst.Write(f[:])
	} else {
		f := wsCloseGoingAway
		_, err = r.dst.Write(f[:])
	}
	r.t.noteClose(r.gotBit)
	if err != nil {
		return fmt.Errorf("websocket close frame: %w", err)
	}
	return nil
}

// wsUpstream is the upstream's side of a tunnel, the 101's body: its
// Write is the client-to-upstream direction (t.toUpstream).
type wsUpstream struct {
	io.ReadWriteCloser
	t *wsTunnel
}

func (u *wsUpstream) Write(p []byte) (int, error) { return u.t.toUpstream.Write(p) }

// CloseWrite half-closes the upstream's connection when the client has
// closed its side, as ReverseProxy does with net/http's 101 body.
func (u *wsUpstream) CloseWrite() error {
	if cw, ok := u.ReadWriteCloser.(closeWriter); ok {
		return cw.CloseWrite()
	}
	return fmt.Errorf("close write: %w", http.ErrNotSupported)
}
