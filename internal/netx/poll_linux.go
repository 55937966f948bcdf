//go:build linux

package netx

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// A Poller waits for many idle connections to become readable with one
// goroutine and no buffer or goroutine per connection: an epoll instance
// of its own, which is itself waited on through Go's netpoller, so the
// poller's goroutine holds no thread while it waits (h1server parks its
// idle keep-alive connections here: docs/performance.md, "Idle keep-alive
// connections").
//
// A connection is registered one-shot (EPOLLONESHOT) under a token that
// is unique for the Poller's life: an event is matched to its Waiter by
// the token, never by the descriptor's number, which the kernel hands to
// the next socket once this one is closed. The descriptor is only ever
// used inside RawConn.Control, which keeps it open meanwhile.
//
// The zero Poller is ready to use: the epoll instance and the goroutine
// start with the first Wait, and Close stops them, waiting for the
// goroutine to end.
type Poller struct {
	mu      sync.Mutex // guards the following fields
	ep      *os.File   // the epoll instance, in Go's netpoller; nil until the first Wait
	epfd    int        // its descriptor: valid while ep is open, used under mu only
	closed  bool
	err     error // the poller's goroutine ended on this error: Wait fails with it
	next    uint64
	waiters map[uint64]Waiter // by token
	done    chan struct{}     // closed when the goroutine ends
}

// pollBatch is how many events one epoll_wait takes.
const pollBatch = 64

// Wait registers c: w.Readable is called once c is readable (bytes, the
// end of the stream, an error), unless Forget is called with the token
// first. It looks through the connections WaitReadable looks through; it
// returns ErrReadable, without registering, when a wrapper holds bytes
// for the next Read, errors.ErrUnsupported for a connection it cannot
// wait on, and net.ErrClosed once the Poller is closed. The caller
// neither reads c nor waits on it elsewhere until Readable runs or
// Forget returns true.
//
// A connection readable when it is registered is reported at once: the
// registration is level-triggered, so nothing that arrived before is
// lost. Closing c ends its registration (the kernel drops it with the
// socket); Readable is then never called, and the caller forgets the
// token.
func (p *Poller) Wait(c net.Conn, w Waiter) (uint64, error) {
	rc, pending, err := socketOf(c)
	if err != nil {
		return 0, err
	}
	if pending {
		return 0, ErrReadable
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.closed:
		return 0, net.ErrClosed
	case p.err != nil:
		return 0, p.err
	case p.ep == nil:
		if err := p.start(); err != nil {
			return 0, err
		}
	}
	p.next++
	tok := p.next
	// Registered before the descriptor is: the event may come at once.
	p.waiters[tok] = w
	ev := unix.EpollEvent{
		Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT,
		Fd:     int32(uint32(tok)),
		Pad:    int32(uint32(tok >> 32)),
	}
	var ctlErr error
	err = rc.Control(func(fd uintptr) {
		ctlErr = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev)
		if ctlErr == unix.EEXIST {
			// Registered by an earlier Wait, whose one shot was spent
			// (or forgotten): rearm it under the new token.
			ctlErr = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, int(fd), &ev)
		}
	})
	if err == nil && ctlErr != nil {
		err = fmt.Errorf("netx: epoll_ctl: %w", ctlErr)
	}
	if err != nil {
		delete(p.waiters, tok)
		return 0, err
	}
	return tok, nil
}

// Forget drops the registration with token tok, and reports whether it
// was still waiting: then its Readable will not be called. The caller
// closes the connection, which ends the kernel's side of the
// registration; one left open is rearmed by its next Wait.
func (p *Poller) Forget(tok uint64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.waiters[tok]
	delete(p.waiters, tok)
	return ok
}

// Waiting is the number of registrations waiting (tests).
func (p *Poller) Waiting() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.waiters)
}

// Close stops the poller and waits for its goroutine to end. The
// registrations still waiting are dropped, their Readable never called:
// their owners close those connections. Wait fails from then on.
func (p *Poller) Close() {
	p.mu.Lock()
	first := !p.closed
	p.closed = true
	ep, done := p.ep, p.done
	p.waiters = nil
	p.mu.Unlock()
	if ep == nil {
		return
	}
	if first {
		_ = ep.Close() // wakes the goroutine's wait (ErrFileClosing)
	}
	<-done
}

// start creates the epoll instance and starts the goroutine. p.mu is
// held.
func (p *Poller) start() error {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return fmt.Errorf("netx: epoll_create1: %w", err)
	}
	// Non-blocking, so that os.NewFile puts it in Go's netpoller: an
	// epoll instance is readable while events are ready in it.
	if err := unix.SetNonblock(epfd, true); err != nil {
		_ = unix.Close(epfd)
		return fmt.Errorf("netx: epoll: %w", err)
	}
	ep := os.NewFile(uintptr(epfd), "netx-poller")
	rc, err := ep.SyscallConn()
	if err != nil {
		_ = ep.Close()
		return fmt.Errorf("netx: epoll: %w", err)
	}
	p.ep, p.epfd = ep, epfd
	p.waiters = map[uint64]Waiter{}
	p.done = make(chan struct{})
	go p.run(rc, p.done)
	return nil
}

// run is the poller's goroutine: it waits in Go's netpoller for the
// epoll instance to be readable, takes its events without blocking, and
// calls the Readable of each registration still waiting, until Close.
func (p *Poller) run(rc syscall.RawConn, done chan struct{}) {
	defer close(done)
	var (
		evs   [pollBatch]unix.EpollEvent
		ready [pollBatch]Waiter
		fatal error
	)
	err := rc.Read(func(fd uintptr) bool {
		for {
			n, err := unix.EpollWait(int(fd), evs[:], 0)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				fatal = fmt.Errorf("netx: epoll_wait: %w", err)
				return true
			}
			p.mu.Lock()
			for i := range n {
				tok := uint64(uint32(evs[i].Fd)) | uint64(uint32(evs[i].Pad))<<32
				ready[i] = p.waiters[tok] // nil: forgotten
				delete(p.waiters, tok)
			}
			p.mu.Unlock()
			for i := range n {
				if ready[i] != nil {
					ready[i].Readable()
					ready[i] = nil
				}
			}
			if n < len(evs) {
				return false // drained: wait for the next readiness
			}
		}
	})
	if fatal == nil {
		fatal = err // nil when Read returned on fatal's callback only
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		// Not closed, yet the poller cannot go on: the registrations
		// waiting are stranded (their owners' idle timeouts close them),
		// and new ones are refused, so that their owners wait otherwise.
		p.err = cmp.Or(fatal, errors.New("netx: poller stopped"))
	}
}
