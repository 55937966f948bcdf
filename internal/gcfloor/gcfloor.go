// Package gcfloor keeps the Go heap's collection target at or above a
// floor, so a process whose live heap is small does not collect every few
// megabytes allocated.
//
// Why: a proxy's live heap is small (buffers of the open connections,
// the config snapshot) while it allocates steadily per request, so with
// the default GOGC=100 the collector runs whenever a few megabytes have
// been allocated, and took about 5 % of Gatehouse's CPU under load
// (docs/performance.md). After each collection the floor raises GOGC so
// that the next target is at least floor bytes, and lowers it back to 100
// as the live heap grows; a big heap is collected exactly as by default.
// The cost is memory: up to floor bytes of garbage between collections.
//
// It stays off when the operator has set GOGC or GOMEMLIMIT: their choice
// wins.
package gcfloor

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// Floor raises GOGC after every collection while the live heap is small.
type Floor struct {
	floor  uint64
	onTune func(gogc int) // tests

	mu      sync.Mutex // guards the following fields
	stopped bool
	gogc    int // the value last set
	sample  [1]metrics.Sample
}

// sentinel is the object whose collection tells a cycle has ended. It
// holds a pointer, so it is never batched with other tiny objects (whose
// cleanups could wait for a neighbour).
type sentinel struct{ _ *byte }

// Start sets GOGC for floor now and after every collection, until Stop.
// It returns nil, and changes nothing, when GOGC or GOMEMLIMIT is set in
// the environment.
func Start(floor uint64) *Floor {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return nil
	}
	return start(floor, nil)
}

func start(floor uint64, onTune func(int)) *Floor {
	f := &Floor{floor: floor, onTune: onTune, gogc: 100}
	f.sample[0].Name = "/gc/heap/live:bytes"
	f.tune()
	f.arm()
	return f
}

// Stop puts GOGC back to 100 and stops tuning. f may be nil.
func (f *Floor) Stop() {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stopped = true
	debug.SetGCPercent(100)
}

// arm asks for tune to run after the next collection: the sentinel is
// unreachable from the start, so the cycle that ends next runs its
// cleanup, which arms the next one.
func (f *Floor) arm() {
	runtime.AddCleanup(new(sentinel), func(f *Floor) {
		if f.tune() {
			f.arm()
		}
	}, f)
}

// tune sets GOGC so that the next target, live × (1 + GOGC/100), is at
// least the floor: GOGC = floor/live × 100 − 100, between 100 and 10 000.
// It reports false once stopped.
func (f *Floor) tune() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		return false
	}
	metrics.Read(f.sample[:])
	live := uint64(1)
	if s := f.sample[0]; s.Value.Kind() == metrics.KindUint64 && s.Value.Uint64() > 0 {
		live = s.Value.Uint64()
	}
	gogc := 100
	if live < f.floor/2 {
		gogc = int(min(f.floor/live*100-100, 10000))
	}
	// Only a change of more than a tenth is worth setting.
	if d := gogc - f.gogc; d*10 > f.gogc || -d*10 > f.gogc {
		debug.SetGCPercent(gogc)
		f.gogc = gogc
		if f.onTune != nil {
			f.onTune(gogc)
		}
	}
	return true
}
