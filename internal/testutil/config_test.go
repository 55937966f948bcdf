package testutil

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"
)

// fastHTTP1Of decodes config and returns server.fast_http1 ("unset" when
// absent), and the rest of the document, for comparing what else changed.
func fastHTTP1Of(t *testing.T, config []byte) (string, map[string]any) {
	t.Helper()
	var doc map[string]any
	if err := yaml.Unmarshal(config, &doc); err != nil {
		t.Fatalf("output is not YAML: %v\n%s", err, config)
	}
	got := "unset"
	if doc["server"] == nil {
		delete(doc, "server") // "server:" with nothing under it is no server
	}
	if server, ok := doc["server"].(map[string]any); ok {
		if v, ok := server["fast_http1"]; ok {
			got = yaml2str(v)
			delete(server, "fast_http1")
		}
		if len(server) == 0 {
			delete(doc, "server")
		}
	}
	return got, doc
}

func yaml2str(v any) string {
	b, _ := yaml.Marshal(v)
	return strings.TrimSpace(string(b))
}

func TestDefaultFastHTTP1(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		config string
		fast   bool
		want   string // server.fast_http1 after, or "unset"
		same   bool   // returned byte for byte
	}{
		{name: "flow server", config: "server: { listen: [\"127.0.0.1:1\"] }\nroutes: []\n", want: "false"},
		{name: "block server", config: "admin: { listen: \"off\" }\nserver:\n  listen: [\"127.0.0.1:1\"]\n  idle_timeout: 5s\n", want: "false"},
		{name: "true", config: "server: { listen: [\"127.0.0.1:1\"] }\n", fast: true, want: "true"},
		{name: "no server", config: "routes: []\n", want: "false"},
		{name: "empty server", config: "server:\nroutes: []\n", want: "false"},
		{name: "set false keeps", config: "server: { listen: [\"a\"], fast_http1: false }\n", fast: true, want: "false", same: true},
		{name: "set true keeps", config: "server:\n  fast_http1: true\n", want: "true", same: true},
		{name: "set by a variable keeps", config: "server:\n  fast_http1: ${FAST}\n", want: "${FAST}", same: true},
		{name: "set through a merge key keeps", config: "routes:\n  - &base { fast_http1: true }\nserver:\n  <<: *base\n  listen: [a]\n", want: "unset", same: true},
		{name: "invalid YAML unchanged", config: "server: { listen: [\n", want: "unset", same: true},
		{name: "empty file unchanged", config: "", want: "unset", same: true},
		{name: "not a mapping unchanged", config: "- server\n", want: "unset", same: true},
		{name: "server not a mapping unchanged", config: "server: [a]\n", want: "unset", same: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, err := DefaultFastHTTP1([]byte(tt.config), tt.fast)
			if err != nil {
				t.Fatal(err)
			}
			if tt.same {
				if diff := cmp.Diff(tt.config, string(out)); diff != "" {
					t.Fatalf("config changed (-want +got):\n%s", diff)
				}
				return
			}
			got, rest := fastHTTP1Of(t, out)
			if got != tt.want {
				t.Errorf("server.fast_http1 = %s, want %s\n%s", got, tt.want, out)
			}
			_, wantRest := fastHTTP1Of(t, []byte(tt.config))
			if diff := cmp.Diff(wantRest, rest); diff != "" {
				t.Errorf("the rest of the config changed (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDefaultFastHTTP1KeepsCommentsAndQuoting(t *testing.T) {
	t.Parallel()
	in := "# top comment\nserver:\n  listen: [\"127.0.0.1:1\"] # the listener\nroutes:\n  - name: app\n    request_headers: { set: { X-Key: \"${KEY}\" } }\n"
	out, err := DefaultFastHTTP1([]byte(in), false)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"# top comment", "# the listener", `"${KEY}"`, "fast_http1: false"} {
		if !strings.Contains(string(out), s) {
			t.Errorf("output lacks %q:\n%s", s, out)
		}
	}
}

func TestDefaultFastHTTP1RefusesAnAliasedServer(t *testing.T) {
	t.Parallel()
	in := "routes:\n  - &srv { listen: [a] }\nserver: *srv\n"
	if _, err := DefaultFastHTTP1([]byte(in), false); err == nil {
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

	t.Setenv(EnvFastHTTP1, "")
	write()
	applyEnvToFile(t, path)
	if got := read(); got != in {
		t.Errorf("unset: the file changed to %q", got)
	}

	t.Setenv(EnvFastHTTP1, "false")
	applyEnvToFile(t, path)
	if got, _ := fastHTTP1Of(t, []byte(read())); got != "false" {
		t.Errorf("%s=false: server.fast_http1 = %s\n%s", EnvFastHTTP1, got, read())
	}
	if info, err := os.Stat(path); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("mode after rewriting: %v %v, want 0600", info.Mode(), err)
	}

	t.Setenv(EnvFastHTTP1, "ture")
	if _, _, err := FastHTTP1FromEnv(); err == nil {
		t.Errorf("%s=ture accepted", EnvFastHTTP1)
	}
}
