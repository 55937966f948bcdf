//go:build !linux

package lb

// idleClean: without a portable non-blocking peek, an idle connection is
// taken as clean; a stale one is still caught by the retry on reuse.
func (pc *h1Conn) idleClean() bool { return true }

func (pc *h1Conn) peek(uintptr) bool { return true }

// writeAndAwait: without the Linux socket's guarantees, a plain write;
// the response is read as usual.
func (pc *h1Conn) writeAndAwait(p []byte) (int, error) { return pc.nc.Write(p) }

func (pc *h1Conn) writeWait(uintptr) bool { return true }
