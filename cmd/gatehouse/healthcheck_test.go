package main

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// `gatehouse healthcheck` is what the container image's HEALTHCHECK runs:
// exit 0 only when the admin listener named by the config answers
// /healthz with 200.
func TestHealthcheck(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /down", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	closed := closedAddr(t)

	dir := t.TempDir()
	write := func(name, body string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name   string
		config string // file body; "" means a file that does not exist
		args   []string
		want   int
		errHas string
	}{
		{name: "admin listener answers", config: "admin:\n  listen: " + srv.Listener.Addr().String() + "\n", want: 0},
		// The image listens on all addresses; the check dials loopback.
		{name: "wildcard listen dials loopback", config: "admin:\n  listen: \":" + port + "\"\n", want: 0},
		{name: "0.0.0.0 dials loopback", config: "admin:\n  listen: 0.0.0.0:" + port + "\n", want: 0},
		// An invalid config (a reload would reject it) does not make a
		// running process unhealthy.
		{name: "rest of the config not validated", config: "admin:\n  listen: " + srv.Listener.Addr().String() + "\nroutes: 7\nserver: { listen: 3 }\n", want: 0},
		{name: "not YAML", config: "admin: [\n", want: 1, errHas: "yaml"},
		{name: "nothing listening", config: "admin:\n  listen: " + closed + "\n", want: 1, errHas: "connection refused"},
		{name: "admin off", config: "admin:\n  listen: \"off\"\n", want: 1, errHas: "admin.listen is off"},
		{name: "missing config", want: 1, errHas: "no such file"},
		{name: "url flag wins", config: "admin:\n  listen: \"off\"\n", args: []string{"-url", srv.URL + "/healthz"}, want: 0},
		{name: "non-200 is unhealthy", args: []string{"-url", srv.URL + "/down"}, want: 1, errHas: "503"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, "missing.yaml")
			if tc.config != "" {
				path = write("c"+string(rune('a'+i))+".yaml", tc.config)
			}
			var stdout, stderr bytes.Buffer
			args := append([]string{"healthcheck", "-c", path, "-timeout", "5s"}, tc.args...)
			if got := run(args, &stdout, &stderr); got != tc.want {
				t.Fatalf("exit %d, want %d; stdout %q stderr %q", got, tc.want, stdout.String(), stderr.String())
			}
			if tc.errHas != "" && !strings.Contains(stderr.String(), tc.errHas) {
				t.Errorf("stderr %q does not mention %q", stderr.String(), tc.errHas)
			}
		})
	}
}

// A server that never answers fails the check within -timeout.
func TestHealthcheckTimeout(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	var stdout, stderr bytes.Buffer
	start := time.Now()
	if got := run([]string{"healthcheck", "-url", srv.URL + "/healthz", "-timeout", "200ms"}, &stdout, &stderr); got != 1 {
		t.Fatalf("exit %d, want 1", got)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v with -timeout 200ms", d)
	}
	if !strings.Contains(stderr.String(), "deadline exceeded") {
		t.Errorf("stderr %q does not say the deadline passed", stderr.String())
	}
}

func TestDialable(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		":9901":          "127.0.0.1:9901",
		"0.0.0.0:9901":   "127.0.0.1:9901",
		"[::]:9901":      "[::1]:9901",
		"127.0.0.1:9901": "127.0.0.1:9901",
		"10.1.2.3:9901":  "10.1.2.3:9901",
		"admin:9901":     "admin:9901",
	} {
		if got := dialable(in); got != want {
			t.Errorf("dialable(%q) = %q, want %q", in, got, want)
		}
	}
}

// closedAddr is a loopback address nothing listens on (a moment ago).
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
