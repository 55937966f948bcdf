package introspect

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// Issue 14: an introspection call shared by the requests with the same
// token ran under the context of the first, so that client disconnecting
// failed the call for all of them (503). It must end only its own wait.
func TestIntrospectionOutlivesTheRequestThatStartedIt(t *testing.T) {
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case arrived <- struct{}{}:
		default:
		}
		select {
		case <-release:
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"active":true,"sub":"alice"}`))
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	c := &Client{Issuer: srv.URL, Endpoint: srv.URL, ClientID: "gw", ClientSecret: "s", HTTP: srv.Client(),
		Timeout: time.Minute}

	first, leave := context.WithCancel(context.Background())
	firstErr := make(chan error, 1)
	go func() {
		_, err := c.Introspect(first, "op_1")
		firstErr <- err
	}()
	<-arrived
	second := make(chan error, 1)
	go func() {
		_, err := c.Introspect(context.Background(), "op_1")
		second <- err
	}()
	leave()
	if err := <-firstErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("the request that left: %v, want context.Canceled", err)
	}
	close(release)
	if err := <-second; err != nil {
		t.Fatalf("the request that stayed: %v", err)
	}
}
