package issuer

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"

	"github.com/go-jose/go-jose/v4"
)

// TestUnreachableIssuerIsOneEventPerTransition (issue 15): however many
// fetches fail, an outage is one warning when it starts and one info
// line when it ends; Reachability says whether keys were ever fetched.
func TestUnreachableIssuerIsOneEventPerTransition(t *testing.T) {
	t.Parallel()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	set, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	var down atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write(set)
	}))
	defer srv.Close()
	var logs bytes.Buffer
	k := &Keys{Issuer: srv.URL, JWKSURI: srv.URL + "/jwks", Client: srv.Client(), Cooldown: time.Second, Refresh: time.Hour,
		Name: "main", Events: slog.New(slog.NewJSONHandler(&logs, nil))}
	count := func(msg string) int { return strings.Count(logs.String(), `"msg":"`+msg) }
	refresh := func(n int) {
		for range n {
			_ = k.RefreshKeys(context.Background())
		}
	}

	down.Store(true)
	refresh(5)
	if reached, lastErr := k.Reachability(); reached || !strings.Contains(lastErr, "status 503") {
		t.Fatalf("Reachability() = %v, %q before any success", reached, lastErr)
	}
	if n := count("issuer unreachable"); n != 1 {
		t.Fatalf("%d unreachable events over 5 failed fetches, want 1:\n%s", n, logs.String())
	}
	down.Store(false)
	refresh(3)
	if reached, lastErr := k.Reachability(); !reached || lastErr != "" {
		t.Fatalf("Reachability() = %v, %q after a success", reached, lastErr)
	}
	if n := count("issuer reachable again"); n != 1 {
		t.Fatalf("%d recovery events, want 1:\n%s", n, logs.String())
	}
	down.Store(true)
	refresh(3)
	if reached, _ := k.Reachability(); !reached {
		t.Fatal("an outage after a success forgot the success")
	}
	down.Store(false)
	refresh(1)
	if u, r := count("issuer unreachable"), count("issuer reachable again"); u != 2 || r != 2 {
		t.Fatalf("%d unreachable and %d recovery events over two outages, want 2 and 2:\n%s", u, r, logs.String())
	}
	if !strings.Contains(logs.String(), `"issuer":"main"`) {
		t.Errorf("events do not name the issuer:\n%s", logs.String())
	}
}

// A discovery that fails is an outage too.
func TestFailedDiscoveryIsAnEvent(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	var logs bytes.Buffer
	k := &Keys{Issuer: srv.URL, Client: srv.Client(), Cooldown: time.Second, Refresh: time.Hour,
		Name: "main", Events: slog.New(slog.NewJSONHandler(&logs, nil))}
	if err := k.RefreshKeys(context.Background()); err == nil {
		t.Fatal("keys from an issuer without metadata")
	}
	if !strings.Contains(logs.String(), `"msg":"issuer unreachable`) {
		t.Fatalf("no event for a failed discovery:\n%s", logs.String())
	}
	if reached, lastErr := k.Reachability(); reached || !strings.Contains(lastErr, "status 404") {
		t.Fatalf("Reachability() = %v, %q", reached, lastErr)
	}
}
