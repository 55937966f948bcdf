package proxy

import (
	"net/netip"
	"sync"
	"testing"
)

// The memo an HTTP/2 connection's requests share gives each request its
// own peer and Forwarded element, whatever the others ask for at the
// same time (run under -race).
func TestSharedConnMemoUnderConcurrency(t *testing.T) {
	var cs connState
	peers := []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::7")}
	hosts := []string{"a.example", "b.example:8443"}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				peer := peers[(g+i)%2]
				host, proto := hosts[(g+i/3)%2], []string{"http", "https"}[i%2]
				if got, want := cs.sharedPeer(peer), peer.String(); got != want {
					t.Errorf("sharedPeer(%v) = %q", peer, got)
					return
				}
				if got, want := cs.sharedForwarded(peer.String(), host, proto), forwardedElem(peer.String(), host, proto); got != want {
					t.Errorf("sharedForwarded(%v, %s, %s) = %q, want %q", peer, host, proto, got, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	// A repeated request finds both in the memo: nothing is formatted.
	p := peers[0]
	cs.sharedPeer(p)
	cs.sharedForwarded(p.String(), hosts[0], "https")
	key := p.String()
	if n := testing.AllocsPerRun(100, func() {
		_ = cs.sharedPeer(p)
		_ = cs.sharedForwarded(key, hosts[0], "https")
	}); n != 0 {
		t.Errorf("a repeated peer and Forwarded element allocate %v times, want 0", n)
	}
}
