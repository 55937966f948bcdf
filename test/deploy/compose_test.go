package deploy_test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"gatehouse/internal/config"
	"gatehouse/internal/testutil"
)

// The five apps behind Gatehouse: compose service (and Kubernetes Service)
// name → port, as in the README's route table.
var apps = map[string]int{
	"oauth-service": 3001,
	"admin-portal":  3002,
	"kline-service": 3003,
	"flow-service":  3004,
	"test-service":  3005,
}

type composeFile struct {
	Services map[string]struct {
		Build *struct {
			Context    string `yaml:"context"`
			Dockerfile string `yaml:"dockerfile"`
		} `yaml:"build"`
		Image     string         `yaml:"image"`
		Ports     []string       `yaml:"ports"`
		Expose    []string       `yaml:"expose"`
		Volumes   []string       `yaml:"volumes"`
		DependsOn map[string]any `yaml:"depends_on"`
		ReadOnly  bool           `yaml:"read_only"`
		CapDrop   []string       `yaml:"cap_drop"`
	} `yaml:"services"`
	Volumes map[string]any `yaml:"volumes"`
}

// deploy/compose.yaml runs the image built from this repository with
// Redis and the five apps, and its Gatehouse config validates in the image
// and names them by service name.
func TestCompose(t *testing.T) {
	t.Parallel()
	root := testutil.RepoRoot(t)
	dir := filepath.Join(root, "deploy")
	raw, err := os.ReadFile(filepath.Join(dir, "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range checkCompose(t, dir, raw) {
		t.Error(e)
	}
}

func checkCompose(t *testing.T, dir string, raw []byte) []string {
	t.Helper()
	var errs []string
	bad := func(format string, a ...any) { errs = append(errs, fmt.Sprintf(format, a...)) }
	var c composeFile
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	dec.KnownFields(false)
	if err := dec.Decode(&c); err != nil {
		return []string{"compose.yaml: " + err.Error()}
	}
	gh, ok := c.Services["gatehouse"]
	if !ok {
		return []string{"compose.yaml: no gatehouse service"}
	}
	if gh.Build == nil || filepath.Join(dir, gh.Build.Context) != filepath.Dir(dir) || gh.Build.Dockerfile != "Dockerfile" {
		bad("gatehouse: build must be the repository's Dockerfile (context ..)")
	}
	if !gh.ReadOnly || !slices.Contains(gh.CapDrop, "ALL") {
		bad("gatehouse: want read_only: true and cap_drop: [ALL]")
	}
	// The config directory is mounted, not the file: a bind mount of one
	// file keeps the old inode when an editor replaces the file, and the
	// reload is never seen.
	var cfgDir string
	var state bool
	for _, v := range gh.Volumes {
		src, dst, _ := strings.Cut(v, ":")
		dst, _, _ = strings.Cut(dst, ":")
		switch dst {
		case filepath.Dir(imageConfig):
			cfgDir = filepath.Join(dir, src)
		case imageConfig:
			bad("gatehouse: %q mounts the config file itself; mount its directory", v)
		case stateDir:
			if _, named := c.Volumes[src]; named {
				state = true
			}
		}
	}
	if !state {
		bad("gatehouse: no named volume at %s (ACME storage)", stateDir)
	}
	if !slices.Contains(gh.Ports, "6188:6188") {
		bad("gatehouse: ports %q do not publish 6188", gh.Ports)
	}
	for _, p := range gh.Ports {
		if strings.HasSuffix(p, ":9901") && !strings.HasPrefix(p, "127.0.0.1:") {
			bad("gatehouse: the admin port is published beyond the host's loopback: %q", p)
		}
	}
	for name := range apps {
		if _, ok := c.Services[name]; !ok {
			bad("compose.yaml: no service %s", name)
		}
		if _, ok := gh.DependsOn[name]; !ok {
			bad("gatehouse: does not depend on %s", name)
		}
	}
	if r, ok := c.Services["redis"]; !ok || !strings.HasPrefix(r.Image, "redis:") || strings.HasSuffix(r.Image, ":latest") {
		bad("compose.yaml: want a redis service with a pinned redis image")
	}
	for name, s := range c.Services {
		if s.Image != "" && !strings.Contains(s.Image, "${") {
			if _, tag := splitImage(s.Image); tag == "" || tag == "latest" {
				bad("%s: image %q: pin a version", name, s.Image)
			}
		}
	}
	if cfgDir == "" {
		bad("gatehouse: nothing mounted at %s", filepath.Dir(imageConfig))
		return errs
	}

	// The mounted config: valid in the image, Redis and the apps by
	// service name, admin reachable for the published port.
	file := filepath.Join(cfgDir, filepath.Base(imageConfig))
	data, err := os.ReadFile(file)
	if err != nil {
		bad("%v", err)
		return errs
	}
	rel, _ := filepath.Rel(filepath.Dir(dir), file)
	doc := validateInImage(t, rel, data)
	checkListeners(t, rel, doc)
	checkTargets(t, rel, doc)
	if r := doc.Config.Redis; r == nil || !strings.HasPrefix(r.URL, "redis://redis:6379") {
		bad("%s: redis.url must name the redis service (redis:6379)", rel)
	}
	usesRedis := false
	for _, p := range doc.Config.RateLimits {
		usesRedis = usesRedis || p.Store == "redis"
	}
	if !usesRedis {
		bad("%s: no rate limit uses the redis store", rel)
	}
	return errs
}

// checkTargets: every app's pool is the app's service name and port.
func checkTargets(t *testing.T, name string, doc *config.Document) {
	t.Helper()
	for app, port := range apps {
		u, ok := doc.Config.Upstreams[app]
		if !ok {
			t.Errorf("%s: no upstream %s", name, app)
			continue
		}
		want := []string{net.JoinHostPort(app, fmt.Sprint(port))}
		var got []string
		for _, tg := range u.Targets {
			got = append(got, tg.Address)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: upstream %s targets %q, want %q (the service name)", name, app, got, want)
		}
	}
}

// The compose checks refuse what they are for.
func TestComposeRefuses(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(testutil.RepoRoot(t), "deploy")
	raw, err := os.ReadFile(filepath.Join(dir, "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, old, new, want string }{
		{"file mount", "./compose:/etc/gatehouse:ro", "./compose/gatehouse.yaml:/etc/gatehouse/gatehouse.yaml:ro", "mounts the config file itself"},
		{"public admin", `"127.0.0.1:9901:9901"`, `"9901:9901"`, "admin port is published"},
		{"no state volume", "gatehouse-state:/var/lib/gatehouse", "/tmp/x:/var/lib/gatehouse", "no named volume"},
		{"app missing", "  kline-service:\n    image:", "  kline:\n    image:", "no service kline-service"},
		{"redis latest", "redis:7.4-bookworm", "redis:latest", "pinned redis image"},
		{"writable root", "read_only: true", "read_only: false", "read_only"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if !strings.Contains(string(raw), tc.old) {
				t.Fatalf("compose.yaml no longer contains %q: update this case", tc.old)
			}
			errs := checkCompose(t, dir, []byte(strings.Replace(string(raw), tc.old, tc.new, 1)))
			if !slices.ContainsFunc(errs, func(e string) bool { return strings.Contains(e, tc.want) }) {
				t.Errorf("not refused for %q: %q", tc.want, errs)
			}
		})
	}
}
