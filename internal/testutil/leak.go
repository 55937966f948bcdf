package testutil

import (
	"fmt"
	"os"
	"runtime"
	"strings"
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

// CheckGoroutinesMain runs a package's tests (m.Run) and fails the test
// binary if, once they are all done, more goroutines run than before the
// first started: the package-wide form of CheckGoroutines, which works with
// parallel tests. It polls for up to 5 s, then prints the stacks of the
// goroutines left. Use it as the package's TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(testutil.CheckGoroutinesMain(m)) }
//
// It names no test: to find the one that leaks, run subsets with -run.
// Goroutines the standard library starts once per process and keeps by
// design (os/signal's loop, started by the fuzzing coordinator's
// signal.Notify) are not counted.
func CheckGoroutinesMain(m *testing.M) int {
	start := len(otherGoroutines())
	code := m.Run()
	if code != 0 {
		return code
	}
	var left []string
	if WaitFor(5*time.Second, func() bool { left = otherGoroutines(); return len(left) <= start }) {
		return 0
	}
	fmt.Fprintf(os.Stderr, "FAIL: goroutines leaked: %d before the tests, %d after them (find the test with -run)\n\n%s\n",
		start, len(left), strings.Join(left, "\n\n"))
	return 1
}

// otherGoroutines returns the stacks of every goroutine but the caller's
// and the process-lifetime ones of the standard library.
func otherGoroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for i, g := range strings.Split(string(buf), "\n\n") {
		if i == 0 || strings.Contains(g, "os/signal.loop(") { // runtime.Stack puts the caller first
			continue
		}
		out = append(out, g)
	}
	return out
}
