//go:build race

package h2server

// raceOn: the race detector is on; sync.Pool then drops a share of what
// is put back, so reuse is not pinned.
const raceOn = true
