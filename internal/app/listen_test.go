package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"gatehouse/internal/config"
	"gatehouse/internal/testutil"
)

// recordingListen is an Options.Listen that records what it was asked
// for, binds for real, and fails for the addresses in fail.
type recordingListen struct {
	fail map[string]bool

	mu    sync.Mutex // guards the following fields
	asked []string
	lns   []net.Listener
}

var errRefused = errors.New("refused by the test")

func (r *recordingListen) listen(network, addr string) (net.Listener, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.asked = append(r.asked, network+" "+addr)
	if r.fail[addr] {
		return nil, errRefused
	}
	ln, err := net.Listen(network, addr)
	if err == nil {
		r.lns = append(r.lns, ln)
	}
	return ln, err
}

// TestListenOpensEveryListener: every listener (public, TLS and admin)
// comes from Options.Listen, so an upgraded process inherits them all
// instead of binding; when one cannot be opened, Run fails with that
// error and closes the ones it already had.
func TestListenOpensEveryListener(t *testing.T) {
	ca := testutil.NewCA(t)
	dir := t.TempDir()
	cert, key := ca.Issue(t, dir, "gw", 1, "gw.test")
	plain, tlsAddr, admin := testutil.FreePort(t), testutil.FreePort(t), testutil.FreePort(t)
	tests := []struct {
		name    string
		cfg     string
		fail    string // an address Listen refuses
		want    []string
		wantErr bool
	}{
		{
			name: "plain only",
			cfg:  fmt.Sprintf("admin: { listen: \"off\" }\nserver: { listen: [%q] }\n", plain),
			want: []string{"tcp " + plain},
		},
		{
			name: "plain, tls and admin",
			cfg: fmt.Sprintf("admin: { listen: %q }\nserver:\n  listen: [%q]\n  tls: { listen: [%q], certificates: [{ cert: %q, key: %q }] }\n",
				admin, plain, tlsAddr, cert, key),
			want: []string{"tcp " + admin, "tcp " + plain, "tcp " + tlsAddr},
		},
		{
			name: "a refused listener stops Run and closes the others",
			cfg: fmt.Sprintf("admin: { listen: %q }\nserver:\n  listen: [%q]\n  tls: { listen: [%q], certificates: [{ cert: %q, key: %q }] }\n",
				admin, plain, tlsAddr, cert, key),
			fail:    tlsAddr,
			want:    []string{"tcp " + admin, "tcp " + plain, "tcp " + tlsAddr},
			wantErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := config.Parse("test.yaml", []byte(tt.cfg+"routes: [{ name: hello, match: { path: /hello }, respond: { body: hi } }]\n"), dir)
			if err != nil {
				t.Fatal(err)
			}
			rec := &recordingListen{fail: map[string]bool{tt.fail: true}}
			ready := make(chan struct{}, 1)
			a, err := New(doc, Options{Listen: rec.listen, Ready: func([]net.Addr, net.Addr) { ready <- struct{}{} }})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- a.Run(ctx, nil) }()
			select {
			case <-ready:
				if tt.wantErr {
					t.Fatal("Run became ready with a refused listener")
				}
				if body, err := get("http://" + plain + "/hello"); err != nil || body != "hi" {
					t.Errorf("GET /hello: %q, %v", body, err)
				}
				cancel()
				if err := <-done; err != nil {
					t.Fatalf("Run: %v", err)
				}
			case err := <-done:
				if !tt.wantErr || !errors.Is(err, errRefused) {
					t.Fatalf("Run: %v, want an error wrapping %v: %t", err, errRefused, tt.wantErr)
				}
			}
			rec.mu.Lock()
			defer rec.mu.Unlock()
			if diff := cmp.Diff(tt.want, rec.asked); diff != "" {
				t.Errorf("listeners asked for (-want +got):\n%s", diff)
			}
			for _, ln := range rec.lns {
				if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
					t.Errorf("listener %s left open after Run: Accept: %v", ln.Addr(), err)
				}
			}
		})
	}
}
