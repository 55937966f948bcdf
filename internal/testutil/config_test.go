package testutil

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"
)

// fastOf decodes config and returns server.fast_http1 and
// server.fast_http2 ("unset" when absent), and the rest of the document,
// for comparing what else changed.
func fastOf(t *testing.T, config []byte) (h1, h2 string, rest map[string]any) {
	t.Helper()
	var doc map[string]any
	if err := yaml.Unmarshal(config, &doc); err != nil {
		t.Fatalf("output is not YAML: %v\n%s", err, config)
	}
	h1, h2 = "unset", "unset"
	if doc["server"] == nil {
		delete(doc, "server") // "server:" with nothing under it is no server
	}
	if server, ok := doc["server"].(map[string]any); ok {
		if v, ok := server["fast_http1"]; ok {
			h1 = yaml2str(v)
			delete(server, "fast_http1")
		}
		if v, ok := server["fast_http2"]; ok {
			h2 = yaml2str(v)
			delete(server, "fast_http2")
		}
		if len(server) == 0 {
			delete(doc, "server")
		}
	}
	return h1, h2, doc
}

func yaml2str(v any) string {
	b, _ := yaml.Marshal(v)
	return strings.TrimSpace(string(b))
}

func TestDefaultFastServers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		config string
		fast   bool
		h1, h2 string // server.fast_http1 and fast_http2 after, or "unset"
		same   bool   // returned byte for byte
	}{
		{name: "flow server", config: "server: { listen: [\"127.0.0.1:1\"] }\nroutes: []\n", h1: "false", h2: "false"},
		{name: "block server", config: "admin: { listen: \"off\" }\nserver:\n  listen: [\"127.0.0.1:1\"]\n  idle_timeout: 5s\n", h1: "false", h2: "false"},
		{name: "true", config: "server: { listen: [\"127.0.0.1:1\"] }\n", fast: true, h1: "true", h2: "true"},
		{name: "no server", config: "routes: []\n", h1: "false", h2: "false"},
		{name: "empty server", config: "server:\nroutes: []\n", h1: "false", h2: "false"},
		{name: "fast_http1 set false keeps it", config: "server: { listen: [\"a\"], fast_http1: false }\n", fast: true, h1: "false", h2: "true"},
		{name: "fast_http1 set true keeps it", config: "server:\n  fast_http1: true\n", h1: "true", h2: "false"},
		{name: "fast_http2 set keeps it", config: "server:\n  fast_http2: true\n", h1: "false", h2: "true"},
		{name: "both set unchanged", config: "server:\n  fast_http1: true\n  fast_http2: false\n", fast: true, h1: "true", h2: "false", same: true},
		{name: "set by a variable keeps", config: "server:\n  fast_http1: ${FAST}\n  fast_http2: ${FAST}\n", h1: "${FAST}", h2: "${FAST}", same: true},
		{name: "set through a merge key keeps", config: "routes:\n  - &base { fast_http1: true, fast_http2: true }\nserver:\n  <<: *base\n  listen: [a]\n", same: true},
		{name: "invalid YAML unchanged", config: "server: { listen: [\n", same: true},
		{name: "empty file unchanged", config: "", same: true},
		{name: "not a mapping unchanged", config: "- server\n", same: true},
		{name: "server not a mapping unchanged", config: "server: [a]\n", same: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, err := DefaultFastServers([]byte(tt.config), tt.fast)
			if err != nil {
				t.Fatal(err)
			}
			if tt.same {
				if diff := cmp.Diff(tt.config, string(out)); diff != "" {
					t.Fatalf("config changed (-want +got):\n%s", diff)
				}
				return
			}
			h1, h2, rest := fastOf(t, out)
			if h1 != tt.h1 || h2 != tt.h2 {
				t.Errorf("server.fast_http1 = %s, fast_http2 = %s, want %s and %s\n%s", h1, h2, tt.h1, tt.h2, out)
			}
			_, _, wantRest := fastOf(t, []byte(tt.config))
			if diff := cmp.Diff(wantRest, rest); diff != "" {
				t.Errorf("the rest of the config changed (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDefaultFastServersKeepsCommentsAndQuoting(t *testing.T) {
	t.Parallel()
	in := "# top comment\nserver:\n  listen: [\"127.0.0.1:1\"] # the listener\nroutes:\n  - name: app\n    request_headers: { set: { X-Key: \"${KEY}\" } }\n"
	out, err := DefaultFastServers([]byte(in), false)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"# top comment", "# the listener", `"${KEY}"`, "fast_http1: false", "fast_http2: false"} {
		if !strings.Contains(string(out), s) {
			t.Errorf("output lacks %q:\n%s", s, out)
		}
	}
}

func TestDefaultFastServersRefusesAnAliasedServer(t *testing.T) {
	t.Parallel()
	in := "routes:\n  - &srv { listen: [a] }\nserver: *srv\n"
	if _, err := DefaultFastServers([]byte(in), false); err == nil {
		t.Fatal("no error for server: *alias")
	}
}

func TestApplyEnvToFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gatehouse.yaml")
	const in = "server: { listen: [\"127.0.0.1:1\"] }\n"
	write := func() {
		if err := os.WriteFile(path, []byte(in), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	read := func() string {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	t.Setenv(EnvFastServers, "")
	write()
	applyEnvToFile(t, path)
	if got := read(); got != in {
		t.Errorf("unset: the file changed to %q", got)
	}

	t.Setenv(EnvFastServers, "false")
	applyEnvToFile(t, path)
	if h1, h2, _ := fastOf(t, []byte(read())); h1 != "false" || h2 != "false" {
		t.Errorf("%s=false: server.fast_http1 = %s, fast_http2 = %s\n%s", EnvFastServers, h1, h2, read())
	}
	if info, err := os.Stat(path); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("mode after rewriting: %v %v, want 0600", info.Mode(), err)
	}

	t.Setenv(EnvFastServers, "ture")
	if _, _, err := FastServersFromEnv(); err == nil {
		t.Errorf("%s=ture accepted", EnvFastServers)
	}
}
