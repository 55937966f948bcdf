//go:build !linux

package netx

import (
	"errors"
	"net"
)

// A Poller waits for many idle connections to become readable with one
// goroutine: implemented on Linux only (poll_linux.go). Here Wait returns
// errors.ErrUnsupported and its callers wait otherwise (h1server parks a
// connection on a goroutine of its own).
type Poller struct{}

// Wait is unsupported here.
func (p *Poller) Wait(net.Conn, Waiter) (uint64, error) { return 0, errors.ErrUnsupported }

// Forget does nothing here.
func (p *Poller) Forget(uint64) bool { return false }

// Waiting is always 0 here.
func (p *Poller) Waiting() int { return 0 }

// Close does nothing here.
func (p *Poller) Close() {}
