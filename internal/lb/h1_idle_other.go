//go:build !linux

package lb

// idleClean: without a portable non-blocking peek, an idle connection is
// taken as clean; a stale one is still caught by the retry on reuse.
func (pc *h1Conn) idleClean() bool { return true }

func (pc *h1Conn) peek(uintptr) bool { return true }
