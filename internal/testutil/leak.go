package testutil

import (
	"runtime"
	"testing"
	"time"
)

// CheckGoroutines fails the test if, at cleanup, more goroutines run than
// when it was called (tailscale's tstest.ResourceCheck idea). It polls for
// up to 5 s, since exiting goroutines need a moment to be gone. Not for
// parallel tests.
func CheckGoroutines(tb testing.TB) {
	tb.Helper()
	start := runtime.NumGoroutine()
	tb.Cleanup(func() {
		if tb.Failed() {
			return
		}
		if WaitFor(5*time.Second, func() bool { return runtime.NumGoroutine() <= start }) {
			return
		}
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		tb.Errorf("goroutines: %d at start, %d at end\n%s", start, runtime.NumGoroutine(), buf[:n])
	})
}
