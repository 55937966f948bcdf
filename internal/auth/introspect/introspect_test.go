package introspect

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gatehouse/internal/auth/issuer"
	"gatehouse/internal/testutil"
)

// Issue 14: an introspection call shared by the requests with the same
// token ran under the context of the first, so that client disconnecting
// failed the call for all of them (503). It must end only its own wait.
func TestIntrospectionOutlivesTheRequestThatStartedIt(t *testing.T) {
	srv := testutil.StartHeldServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"active":true,"sub":"alice"}`))
	})
	c := &Client{Issuer: srv.URL, Endpoint: srv.URL, ClientID: "gw", ClientSecret: "s", HTTP: srv.Client(),
		Timeout: time.Minute}
	srv.CheckWaiterLeaves(t, func(ctx context.Context) error {
		_, err := c.Introspect(ctx, "op_1")
		return err
	})
}

// Issue 14: a token the endpoint refuses with a 4xx (a JWE or 5-segment
// string, answered 400) was reported as "introspection unavailable" (503).
// RFC 7662 §2.2 says such a token is inactive (401). The endpoint refusing
// Gatehouse's own client is a configuration fault: not the token's (no
// 401), so ErrMisconfigured (503), logged once until it answers again.
func TestStatusMeaning(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		status int
		body   string
		want   error // ErrInactive, ErrMisconfigured, errUnavailable or nil
	}{
		{name: "active", status: 200, body: `{"active":true}`},
		{name: "inactive", status: 200, body: `{"active":false}`, want: ErrInactive},
		{name: "token refused as malformed", status: 400, body: `{"error":"invalid_request"}`, want: ErrInactive},
		{name: "token refused, no body", status: 400, want: ErrInactive},
		{name: "token refused, 422", status: 422, want: ErrInactive},
		{name: "credentials refused, 401", status: 401, body: `{"error":"invalid_client"}`, want: ErrMisconfigured},
		{name: "credentials refused, 403", status: 403, want: ErrMisconfigured},
		{name: "credentials refused, 400 invalid_client", status: 400, body: `{"error":"invalid_client"}`, want: ErrMisconfigured},
		{name: "wrong endpoint, 404", status: 404, want: ErrMisconfigured},
		{name: "wrong endpoint, 405", status: 405, want: ErrMisconfigured},
		{name: "throttled", status: 429, want: errUnavailable},
		{name: "timeout", status: 408, want: errUnavailable},
		{name: "server error", status: 500, want: errUnavailable},
		{name: "bad gateway", status: 502, want: errUnavailable},
		// A 200 that is no JSON says nothing of the token.
		{name: "an error page", status: 200, body: "<html>maintenance</html>", want: errUnavailable},
		{name: "an answer cut short", status: 200, body: `{"active": tru`, want: errUnavailable},
		{name: "an answer past the bound", status: 200, body: `{"active":true,"pad":"` + strings.Repeat("x", maxAnswerBytes) + `"}`, want: errUnavailable},
		{name: "JSON, not an object", status: 200, body: `[true]`, want: ErrInactive},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(tt.body))
			}))
			defer srv.Close()
			c := &Client{Issuer: srv.URL, Endpoint: srv.URL, ClientID: "gw", ClientSecret: "s", HTTP: srv.Client()}
			_, err := c.Introspect(context.Background(), "tok")
			switch tt.want {
			case nil:
				if err != nil {
					t.Fatalf("err = %v, want none", err)
				}
			case errUnavailable:
				if err == nil || errors.Is(err, ErrInactive) || errors.Is(err, ErrMisconfigured) {
					t.Fatalf("err = %v, want unavailable (neither inactive nor misconfigured)", err)
				}
			default:
				if !errors.Is(err, tt.want) {
					t.Fatalf("err = %v, want %v", err, tt.want)
				}
			}
		})
	}
}

var errUnavailable = errors.New("unavailable")

func TestMisconfigurationLoggedOnceUntilFixed(t *testing.T) {
	t.Parallel()
	var status atomic.Int64
	status.Store(401)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(int(status.Load()))
		_, _ = w.Write([]byte(`{"active":true}`))
	}))
	defer srv.Close()
	var logs bytes.Buffer
	c := &Client{Issuer: srv.URL, Endpoint: srv.URL, ClientID: "gw", ClientSecret: "s", HTTP: srv.Client(),
		Events: slog.New(slog.NewTextHandler(&logs, nil))}
	for i := range 3 {
		if _, err := c.Introspect(context.Background(), fmt.Sprint("tok", i)); !errors.Is(err, ErrMisconfigured) {
			t.Fatalf("err = %v", err)
		}
	}
	status.Store(200)
	if _, err := c.Introspect(context.Background(), "tok"); err != nil {
		t.Fatal(err)
	}
	status.Store(403)
	if _, err := c.Introspect(context.Background(), "tok"); !errors.Is(err, ErrMisconfigured) {
		t.Fatalf("err = %v", err)
	}
	warn, info := strings.Count(logs.String(), "level=WARN"), strings.Count(logs.String(), "level=INFO")
	if warn != 2 || info != 1 {
		t.Errorf("%d warnings and %d notices of recovery, want 2 and 1 (one per change):\n%s", warn, info, logs.String())
	}
}

// An active answer is still refused when it describes what a resource
// server must not accept, or when a check cannot read it: a refresh
// token (OAuth 2.1 §1.3.2; the server finds one whatever the hint, RFC
// 7662 §2.1), an iss that is not the issuer's string, a token not valid
// yet, a date that is not a NumericDate, or two "active" members.
func TestActiveAnswersThatAreRefused(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	for _, tt := range []struct {
		name, body string
		refused    bool
	}{
		{"access token", `{"active":true,"sub":"alice","token_type":"Bearer","token_use":"access_token"}`, false},
		{"refresh token (token_use)", `{"active":true,"sub":"alice","token_use":"refresh_token"}`, true},
		{"refresh token (token_type)", `{"active":true,"sub":"alice","token_type":"refresh_token"}`, true},
		{"refresh token (typ)", `{"active":true,"sub":"alice","typ":"Refresh"}`, true},
		{"refresh token (RFC 8693 URI)", `{"active":true,"sub":"alice","token_type":"urn:ietf:params:oauth:token-type:refresh_token"}`, true},
		{"iss not a string", `{"active":true,"sub":"alice","iss":5}`, true},
		{"iss another issuer", `{"active":true,"sub":"alice","iss":"https://other.test"}`, true},
		{"iss this issuer", `{"active":true,"sub":"alice","iss":"ISSUER"}`, false},
		{"not valid yet", `{"active":true,"sub":"alice","nbf":1800003600}`, true},
		{"nbf within leeway", `{"active":true,"sub":"alice","nbf":1800000010}`, false},
		{"nbf past 2262", `{"active":true,"sub":"alice","nbf":99999999999}`, true},
		{"nbf a string", `{"active":true,"sub":"alice","nbf":"1"}`, true},
		{"iat out of range", `{"active":true,"sub":"alice","iat":1e300}`, true},
		{"expired", `{"active":true,"sub":"alice","exp":1799999999}`, true},
		{"duplicate active", `{"active":false,"active":true,"sub":"alice"}`, true},
		{"duplicate nested member", `{"active":true,"sub":"alice","ext":{"a":1,"a":2}}`, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var srv *httptest.Server
			srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(strings.ReplaceAll(tt.body, "ISSUER", srv.URL)))
			}))
			defer srv.Close()
			c := &Client{Issuer: srv.URL, Endpoint: srv.URL, ClientID: "gw", ClientSecret: "s", HTTP: srv.Client(),
				Leeway: 30 * time.Second, Now: func() time.Time { return now }}
			_, err := c.Introspect(context.Background(), "tok")
			if tt.refused && !errors.Is(err, ErrInactive) {
				t.Fatalf("err = %v, want ErrInactive", err)
			}
			if !tt.refused && err != nil {
				t.Fatalf("err = %v, want the claims", err)
			}
		})
	}
}

// With the endpoint discovered, an issuer whose metadata cannot be had
// is asked through its key set's Metadata: one fetch for the requests
// waiting on it, then none for a second, however many distinct tokens
// arrive (each token is its own introspection flight).
func TestDiscoveryFailureNotRepeatedPerToken(t *testing.T) {
	t.Parallel()
	var fetches atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		http.Error(w, "down", http.StatusInternalServerError)
	}))
	defer srv.Close()
	now := time.Unix(1_800_000_000, 0)
	keys := &issuer.Keys{Issuer: srv.URL, Client: srv.Client(), Cooldown: 30 * time.Second, Refresh: time.Hour,
		Now: func() time.Time { return now }}
	c := &Client{Issuer: srv.URL, ClientID: "gw", ClientSecret: "s", HTTP: srv.Client(), Metadata: keys.Metadata}
	for i := range 50 {
		if _, err := c.Introspect(context.Background(), fmt.Sprint("tok", i)); err == nil || errors.Is(err, ErrInactive) {
			t.Fatalf("token %d: err = %v, want unavailable", i, err)
		}
	}
	if n := fetches.Load(); n > 2 { // both well-known locations, once
		t.Fatalf("%d metadata fetches for 50 tokens within a second", n)
	}
}
