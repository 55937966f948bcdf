package gcfloor

import (
	"runtime"
	"runtime/debug"
	"sync"
	"testing"
	"time"
)

// TestFloorFollowsTheLiveHeap: with a small live heap GOGC is raised so
// the next target reaches the floor; once the live heap passes half the
// floor it is 100 again; Stop restores 100. (Not parallel: GOGC is the
// process's.)
func TestFloorFollowsTheLiveHeap(t *testing.T) {
	var mu sync.Mutex
	var seen []int
	last := func() int {
		mu.Lock()
		defer mu.Unlock()
		if len(seen) == 0 {
			return 100
		}
		return seen[len(seen)-1]
	}
	const floor = 256 << 20
	f := start(floor, func(g int) { mu.Lock(); seen = append(seen, g); mu.Unlock() })
	defer f.Stop()
	if g := last(); g <= 1000 {
		t.Fatalf("GOGC %d with a live heap of a few MiB and a floor of 256 MiB; want it raised", g)
	}

	ballast := make([][]byte, 0, 200)
	for range 200 { // 200 MiB live: more than half the floor
		ballast = append(ballast, make([]byte, 1<<20))
	}
	deadline := time.Now().Add(10 * time.Second)
	for last() != 100 && time.Now().Before(deadline) {
		runtime.GC() // the cleanup of the cycle's sentinel runs tune
		time.Sleep(10 * time.Millisecond)
	}
	runtime.KeepAlive(ballast)
	if g := last(); g != 100 {
		t.Fatalf("GOGC %d with 200 MiB live; want 100", g)
	}

	ballast = nil
	f.Stop()
	if prev := debug.SetGCPercent(100); prev != 100 {
		t.Fatalf("after Stop GOGC is %d", prev)
	}
}

func TestOffWhenTheOperatorChose(t *testing.T) {
	t.Setenv("GOGC", "200")
	if f := Start(64 << 20); f != nil {
		f.Stop()
		t.Fatal("started although GOGC is set")
	}
}
