//go:build integration

package integration

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gatehouse/internal/testutil"
	"gatehouse/internal/testutil/fakeidp"
)

// Issue 15: secrets outside the YAML. A route's header value comes from an
// environment variable and the introspection client's secret from a file;
// neither shows on /config nor in the logs; a rotated secret file is picked
// up without a SIGHUP; and `gatehouse validate` names every variable that
// is not set, with its file:line:col and key.
func TestSecretsFromEnvironmentAndFiles(t *testing.T) {
	const apiKey = "api-key-s3cret-value"
	idp := fakeidp.New(t)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Seen-Key", r.Header.Get("X-Api-Key"))
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(app.Close)
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "introspection-secret")
	testutil.WriteAtomic(t, secretFile, []byte(fakeidp.IntrospectSecret+"\n"))
	addr, admin := testutil.FreePort(t), testutil.FreePort(t)
	path := filepath.Join(dir, "gatehouse.yaml")
	cfg := fmt.Sprintf(`
admin: { listen: %q }
server: { listen: [%q] }
auth:
  issuers:
    main:
      issuer: %q
      audience: gatehouse
      introspection: { client_id: "${GH_TEST_INTROSPECT_CLIENT}", client_secret_file: introspection-secret }
upstreams:
  app: { targets: [%q] }
routes:
  - name: app
    match: { path_prefix: /app }
    upstream: app
    request_headers: { set: { X-Api-Key: "${GH_TEST_API_KEY}" } }
  - name: private
    match: { path_prefix: /private }
    respond: { status: 204 }
    auth: { mode: required }
`, admin, addr, idp.Issuer, strings.TrimPrefix(app.URL, "http://"))
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"GH_TEST_INTROSPECT_CLIENT=" + fakeidp.IntrospectClient, "GH_TEST_API_KEY=" + apiKey}
	p := testutil.StartFileEnv(t, path, addr, env)

	resp, err := http.Get("http://" + addr + "/app/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Seen-Key"); resp.StatusCode != 204 || got != apiKey {
		t.Fatalf("upstream saw X-Api-Key %q (status %d), want the variable's value", got, resp.StatusCode)
	}
	opaque := func() string { return idp.Opaque(map[string]any{"sub": "svc", "aud": "gatehouse"}) }
	if code, _ := authStatus(t, "http://"+addr+"/private", opaque()); code != 204 {
		t.Fatalf("opaque token with the secret from the file: %d, want 204", code)
	}

	resp, err = http.Get("http://" + admin + "/config")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"X-Api-Key: ${GH_TEST_API_KEY}", "client_id: ${GH_TEST_INTROSPECT_CLIENT}",
		"client_secret: '[redacted]'", "client_secret_file: introspection-secret"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/config lacks %q:\n%s", want, body)
		}
	}

	// Rotate the secret (wrongly, then back): the file is watched like the
	// config, so no SIGHUP is needed.
	reloads := func() int { return strings.Count(p.Output(), `"msg":"config reloaded"`) }
	for i, tt := range []struct {
		secret string
		want   int
	}{{"not-the-secret", 503}, {fakeidp.IntrospectSecret, 204}} {
		testutil.WriteAtomic(t, secretFile, []byte(tt.secret+"\n"))
		if !testutil.WaitFor(10*time.Second, func() bool { return reloads() == i+1 }) {
			t.Fatalf("no reload after the secret file changed (%d reloads)\n%s", reloads(), p.Output())
		}
		if code, _ := authStatus(t, "http://"+addr+"/private", opaque()); code != tt.want {
			t.Errorf("after rotating the secret to %q: %d, want %d", tt.secret, code, tt.want)
		}
	}
	for _, secret := range []string{apiKey, fakeidp.IntrospectSecret, "not-the-secret"} {
		if strings.Contains(string(body), secret) || strings.Contains(p.Output(), secret) {
			t.Errorf("%q shows on /config or in the logs", secret)
		}
	}

	// validate without the variables: both named, with where they are used.
	var clean []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GH_TEST_") {
			clean = append(clean, kv)
		}
	}
	// The config as written: StartFileEnv may have rewritten path (to run
	// it on the server GATEHOUSE_TEST_FAST_SERVERS names), moving its lines.
	path = filepath.Join(dir, "validate.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(testutil.Binary(t), "validate", "-c", path)
	cmd.Env = clean
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("validate without the variables: %v, want exit 1\n%s", err, out)
	}
	for _, want := range []string{
		path + ":9:35: auth.issuers.main.introspection.client_id: environment variable GH_TEST_INTROSPECT_CLIENT is not set",
		path + ":16:42: routes[0].request_headers.set.X-Api-Key: environment variable GH_TEST_API_KEY is not set",
		"2 errors",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("validate output lacks %q:\n%s", want, out)
		}
	}
}
