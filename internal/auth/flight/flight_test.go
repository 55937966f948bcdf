package flight

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

type traceKey struct{}

// The waiter that starts a fetch leaving (its client disconnected) ends
// its own wait only: the fetch goes on, under the waiter's values but not
// its cancellation, and the others get its result (issue 14).
func TestWaiterLeavingDoesNotCancelTheSharedFetch(t *testing.T) {
	t.Parallel()
	var g Group
	started, release := make(chan struct{}), make(chan struct{})
	type seen struct {
		trace    any
		canceled bool
		deadline bool
	}
	seenCh := make(chan seen, 2)
	var once sync.Once
	fn := func(ctx context.Context) (string, error) {
		// The second waiter joins this fetch, or, when it comes after the
		// fetch ended, runs its own: once is enough to say started.
		once.Do(func() { close(started) })
		<-release
		_, hasDeadline := ctx.Deadline()
		seenCh <- seen{trace: ctx.Value(traceKey{}), canceled: ctx.Err() != nil, deadline: hasDeadline}
		return "keys", nil
	}
	first, leave := context.WithCancel(context.WithValue(context.Background(), traceKey{}, "trace-1"))
	firstErr := make(chan error, 1)
	go func() {
		_, err := Do(&g, first, "k", time.Minute, fn)
		firstErr <- err
	}()
	<-started
	secondRes := make(chan string, 1)
	go func() {
		v, err := Do(&g, context.Background(), "k", time.Minute, fn) // joins, or finds the fetch done
		if err != nil {
			v = "error: " + err.Error()
		}
		secondRes <- v
	}()
	leave()
	if err := <-firstErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("the waiter that left got %v, want context.Canceled", err)
	}
	close(release)
	if got := <-secondRes; got != "keys" {
		t.Fatalf("the waiter that stayed got %q, want the fetch's result", got)
	}
	s := <-seenCh
	if s.trace != "trace-1" || s.canceled || !s.deadline {
		t.Fatalf("the fetch's context: %+v, want the first waiter's values, not cancelled, with a deadline", s)
	}
}

func TestDo(t *testing.T) {
	t.Parallel()
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name    string
		ctx     context.Context
		timeout time.Duration
		wantErr error
		wantRun bool
	}{
		{name: "result", ctx: context.Background(), timeout: time.Minute, wantRun: true},
		{name: "waiter already gone: nothing starts", ctx: canceled, timeout: time.Minute, wantErr: context.Canceled},
		{name: "own timeout", ctx: context.Background(), timeout: time.Nanosecond, wantErr: context.DeadlineExceeded, wantRun: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var g Group
			ran := false
			v, err := Do(&g, tt.ctx, "k", tt.timeout, func(ctx context.Context) (int, error) {
				ran = true
				if tt.wantErr != nil {
					<-ctx.Done() // only the fetch's own timeout can end it
					return 0, ctx.Err()
				}
				return 42, nil
			})
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && v != 42) || ran != tt.wantRun {
				t.Fatalf("Do = %v, %v (ran %v); want error %v (ran %v)", v, err, ran, tt.wantErr, tt.wantRun)
			}
		})
	}
}
