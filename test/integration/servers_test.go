//go:build integration

package integration

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"gatehouse/internal/testutil"
)

// The suite runs twice in CI (scripts/test-all.sh): as written, and with
// GATEHOUSE_TEST_FAST_SERVERS=false, on net/http alone. A config that
// does not set server.fast_http1 (or fast_http2) runs on the variable's
// server; one that sets it keeps its own. The running config (admin
// /config, defaults applied) says which servers a process uses.
func TestServersFromEnvironment(t *testing.T) {
	fast, set, err := testutil.FastServersFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	want := true // the default
	if set {
		want = fast
	}
	for _, tt := range []struct {
		name, key string
		want      bool
	}{
		{"unset follows the environment", "", want},
		{"set true keeps true", ", fast_http1: true, fast_http2: true", true},
		{"set false keeps false", ", fast_http1: false, fast_http2: false", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			addr, admin := testutil.FreePort(t), testutil.FreePort(t)
			testutil.Start(t, fmt.Sprintf(`
admin: { listen: %q }
server: { listen: [%q]%s }
routes:
  - { name: ok, match: { path_prefix: / }, respond: { status: 204 } }
`, admin, addr, tt.key), addr)
			resp, err := http.Get("http://" + admin + "/config")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for _, key := range []string{"fast_http1", "fast_http2"} {
				if line := fmt.Sprintf("%s: %v\n", key, tt.want); !strings.Contains(string(body), line) {
					t.Errorf("/config lacks %q (%s=%q):\n%s", line, testutil.EnvFastServers, os.Getenv(testutil.EnvFastServers), body)
				}
			}
		})
	}
}
