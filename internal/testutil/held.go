package testutil

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
)

// HeldServer is a test server whose answers wait until Release: the
// upstream of a fetch that many callers share while it is in flight.
type HeldServer struct {
	*httptest.Server
	arrived chan struct{}
	release chan struct{}
}

// StartHeldServer starts a server that, for each request, signals that it
// arrived, then waits for Release (or for the request to end) before
// answer writes the response. It is closed, and released, at the end of
// the test.
func StartHeldServer(t testing.TB, answer http.HandlerFunc) *HeldServer {
	t.Helper()
	s := &HeldServer{arrived: make(chan struct{}, 1), release: make(chan struct{})}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case s.arrived <- struct{}{}:
		default:
		}
		select {
		case <-s.release:
			answer(w, r)
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() {
		s.Release()
		s.Close()
	})
	return s
}

// Release lets every held and later request be answered.
func (s *HeldServer) Release() {
	select {
	case <-s.release:
	default:
		close(s.release)
	}
}

// CheckWaiterLeaves is the scenario of a fetch shared by two callers
// while the first one's client leaves: call runs under a context that is
// cancelled once the first call has reached s and a second call has
// started. The first must end with context.Canceled, and the second,
// which stays, must get the fetch's result once s answers (call returns
// nil): the leaving caller ends only its own wait.
func (s *HeldServer) CheckWaiterLeaves(t testing.TB, call func(ctx context.Context) error) {
	t.Helper()
	first, leave := context.WithCancel(context.Background())
	defer leave()
	firstErr := make(chan error, 1)
	go func() { firstErr <- call(first) }()
	<-s.arrived
	second := make(chan error, 1)
	go func() { second <- call(context.Background()) }()
	leave()
	if err := <-firstErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("the caller that left: %v, want context.Canceled", err)
	}
	s.Release()
	if err := <-second; err != nil {
		t.Fatalf("the caller that stayed: %v", err)
	}
}
