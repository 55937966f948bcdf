//go:build !linux

package lb

// writeAndAwait: without the Linux socket's guarantees, a plain write,
// with no check of an idle connection (a stale one is still caught by the
// resend on reuse); the response is read as usual.
func (pc *h1Conn) writeAndAwait(p []byte) (int, error) { return pc.nc.Write(p) }

func (pc *h1Conn) writeWait(uintptr) bool { return true }

// tcpPending: not looked at without the Linux peek; a connection the
// server closed is still caught by the resend on reuse.
func (pc *h1Conn) tcpPending() bool { return false }

// idlePending: see tcpPending.
func (pc *h1Conn) idlePending() bool { return false }
