package oidc

import (
	"context"
	"testing"
	"time"

	"gatehouse/internal/auth/session"
	"gatehouse/internal/testutil"
)

// A stream whose session vanished from the store without the broadcast
// reaching this instance is still ended, by the periodic re-check; a
// stream of a live session is not.
func TestRecheckEndsStreamsOfMissingSessions(t *testing.T) {
	testutil.CheckGoroutines(t)
	store := session.NewMemory(10, nil)
	sh := NewShared(store, nil)
	ctx := context.Background()
	for _, k := range []string{"s:gone", "s:live"} {
		if err := store.Save(ctx, k, []byte("x"), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	gone, live := make(chan struct{}), make(chan struct{})
	sh.streams.add("s:gone", func() { close(gone) })
	removeLive := sh.streams.add("s:live", func() { close(live) })
	defer removeLive()
	store.Delete(ctx, "s:gone") // as another instance would, with the broadcast lost

	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { sh.recheck(rctx, 10*time.Millisecond); close(done) }()
	defer func() { cancel(); <-done }()
	select {
	case <-gone:
	case <-time.After(5 * time.Second):
		t.Fatal("the stream of a deleted session was not ended")
	}
	sh.recheckOnce(ctx) // one whole pass after the one that ended "gone"
	select {
	case <-live:
		t.Fatal("the stream of a live session was ended")
	default:
	}
}
