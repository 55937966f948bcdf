package oidc

import (
	"context"
	"errors"
	"strings"
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

// Decoded records are reused only while the stored bytes are unchanged.
func TestLoadReusesOnlyUnchangedRecords(t *testing.T) {
	store := session.NewMemory(10, nil)
	l, err := New(Config{RedirectURL: "https://gw.example/cb", CookieSecret: testSecret, CookieName: "s"}, NewShared(store, nil))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	until := time.Now().Add(time.Hour)
	if err := l.save(ctx, "s:k", &Record{Subject: "a", AccessToken: "one", Until: until}); err != nil {
		t.Fatal(err)
	}
	first, _ := l.load(ctx, "s:k")
	again, _ := l.load(ctx, "s:k")
	if first != again || first.AccessToken != "one" {
		t.Fatalf("unchanged bytes decoded again (%p, %p)", first, again)
	}
	l.save(ctx, "s:k", &Record{Subject: "a", AccessToken: "two", Until: until})
	if got, _ := l.load(ctx, "s:k"); got.AccessToken != "two" {
		t.Fatalf("a changed record was served from the cache: %q", got.AccessToken)
	}
	store.Delete(ctx, "s:k")
	if _, err := l.load(ctx, "s:k"); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("a deleted record: %v", err)
	}
	// Another cookie secret (a reload that rotated it) does not open it.
	l.save(ctx, "s:k", &Record{Subject: "a", AccessToken: "three", Until: until})
	other, _ := New(Config{RedirectURL: "https://gw.example/cb", CookieSecret: strings.Repeat("z", 32), CookieName: "s"}, l.sh)
	if _, err := other.load(ctx, "s:k"); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("a record under another secret: %v", err)
	}
}
