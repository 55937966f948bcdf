//go:build race

package proxy

// raceOn: the race detector is on; sync.Pool then drops a share of what
// is put back, so allocation counts are not pinned.
const raceOn = true
