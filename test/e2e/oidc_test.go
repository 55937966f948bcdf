//go:build e2e

package e2e

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"gatehouse/internal/testutil"
)

// authServer is panva's oidc-provider (test/e2e/oidc/server.mjs) as a
// child process.
type authServer struct {
	issuer string
	port   string
	dir    string
	cmd    *exec.Cmd
	done   chan struct{}
}

// newKeysFile writes private JWKs (kids given, first signs) made by node.
func newKeysFile(t *testing.T, dir string, kids ...string) string {
	t.Helper()
	script := `import crypto from 'node:crypto';
const kids = process.argv.slice(1); // with -e, the arguments start at 1
console.log(JSON.stringify(kids.map((kid) => ({ ...crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' }), kid, use: 'sig', alg: 'RS256' }))));`
	out, err := exec.Command("node", append([]string{"--input-type=module", "-e", script}, kids...)...).Output()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, strings.Join(kids, "-")+".json")
	os.WriteFile(path, out, 0o600)
	return path
}

// rotateKeys writes a key file with a new signing key "k2" first and the
// keys of old after it (still published, no longer signing).
func rotateKeys(t *testing.T, dir, old string) string {
	t.Helper()
	var oldKeys, newKeys []json.RawMessage
	b, _ := os.ReadFile(old)
	json.Unmarshal(b, &oldKeys)
	nb, _ := os.ReadFile(newKeysFile(t, dir, "k2"))
	json.Unmarshal(nb, &newKeys)
	out, _ := json.Marshal(append(newKeys, oldKeys...))
	path := filepath.Join(dir, "rotated.json")
	os.WriteFile(path, out, 0o600)
	return path
}

func startAuthServer(t *testing.T, port, keysFile string) *authServer {
	t.Helper()
	return startAuthServerEnv(t, port, keysFile)
}

// startAuthServerEnv is startAuthServer with extra environment ("K=V"),
// such as server.mjs's LOGIN_* settings.
func startAuthServerEnv(t *testing.T, port, keysFile string, env ...string) *authServer {
	t.Helper()
	dir := filepath.Join(testutil.RepoRoot(t), "test", "e2e", "oidc")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "oidc-provider")); err != nil {
		t.Fatalf("run `npm ci --prefix test/e2e/oidc` first: %v", err)
	}
	a := &authServer{issuer: "http://127.0.0.1:" + port, port: port, dir: dir, done: make(chan struct{})}
	a.cmd = exec.Command("node", "server.mjs")
	a.cmd.Dir = dir
	a.cmd.Env = append(append(os.Environ(), "PORT="+port, "KEYS_FILE="+keysFile), env...)
	// Its output (warnings about the Node version and the memory adapter,
	// errors) is shown only when the test fails.
	var out lockedBuffer
	a.cmd.Stdout, a.cmd.Stderr = &out, &out
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { a.cmd.Wait(); close(a.done) }()
	t.Cleanup(func() {
		a.stop()
		if t.Failed() {
			t.Logf("oidc-provider output:\n%s", out.String())
		}
	})
	if err := testutil.WaitListening("127.0.0.1:"+port, 20*time.Second, a.done); err != nil {
		t.Fatalf("oidc-provider did not start: %v", err)
	}
	return a
}

func (a *authServer) stop() {
	select {
	case <-a.done:
		return
	default:
	}
	syscall.Kill(-a.cmd.Process.Pid, syscall.SIGKILL)
	<-a.done
}

// token gets a client_credentials JWT access token for the gateway.
func (a *authServer) token(t *testing.T, client, secret, scope string) string {
	return a.tokenFor(t, client, secret, scope, "https://gatehouse.test")
}

// revoke revokes a token at the server (RFC 7009).
func (a *authServer) revoke(t *testing.T, client, secret, token string) {
	t.Helper()
	req, _ := http.NewRequest("POST", a.issuer+"/token/revocation", strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(client, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("revocation: %d", resp.StatusCode)
	}
}

// tokenFor gets a client_credentials access token for resource.
func (a *authServer) tokenFor(t *testing.T, client, secret, scope, resource string) string {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {scope}, "resource": {resource}}
	req, _ := http.NewRequest("POST", a.issuer+"/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(client, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
		Error       string `json:"error"`
	}
	json.NewDecoder(resp.Body).Decode(&body)
	if body.AccessToken == "" {
		t.Fatalf("token endpoint: %d %s", resp.StatusCode, body.Error)
	}
	return body.AccessToken
}

func TestBearerTokensFromOIDCProvider(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not on PATH")
	}
	tmp := t.TempDir()
	port := strings.Split(testutil.FreePort(t), ":")[1]
	k1File := newKeysFile(t, tmp, "k1")
	as := startAuthServer(t, port, k1File)

	var seen http.Header
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = r.Header.Clone()
		io.WriteString(w, "ok")
	}))
	defer up.Close()
	addr := testutil.FreePort(t)
	testutil.Start(t, fmt.Sprintf(`
server: { listen: [%q] }
admin: { listen: "off" }
auth:
  issuers:
    main:
      issuer: %q
      audience: "https://gatehouse.test"
      type: at+jwt
      key_cooldown: 100ms
      introspection: { client_id: gatehouse, client_secret: gatehouse-secret, cache_ttl: 500ms }
upstreams: { app: { targets: [%q] } }
routes:
  - { name: oauth, match: { path_prefix: /oauth }, upstream: app }
  - { name: admin, match: { path_prefix: /admin }, upstream: app, auth: { roles: { any_of: [admin] } } }
  - { name: kline, match: { path_prefix: /api/kline }, upstream: app, auth: { scopes: [kline.read] } }
`, addr, as.issuer, strings.TrimPrefix(up.URL, "http://")), addr)
	base := "http://" + addr
	call := func(path, token string) int {
		req, _ := http.NewRequest("GET", base+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}

	admin := as.token(t, "admin-client", "admin-secret", "kline.read")
	viewer := as.token(t, "user-client", "user-secret", "kline.read")
	flowOnly := as.token(t, "user-client", "user-secret", "flow.read")
	tests := []struct {
		name, path, token string
		want              int
	}{
		{"public", "/oauth/x", "", 200},
		{"no token", "/admin/x", "", 401},
		{"admin role", "/admin/x", admin, 200},
		{"without the admin role", "/admin/x", viewer, 403},
		{"client_credentials token with the scope", "/api/kline/ticks", viewer, 200},
		{"token without the scope", "/api/kline/ticks", flowOnly, 403},
		{"tampered signature", "/admin/x", admin[:len(admin)-4] + "AAAA", 401},
	}
	for _, tt := range tests {
		if got := call(tt.path, tt.token); got != tt.want {
			t.Errorf("%s: %s → %d, want %d", tt.name, tt.path, got, tt.want)
		}
	}
	call("/admin/x", admin)
	if seen.Get("X-Auth-Client") != "admin-client" || seen.Get("X-Auth-Roles") != "admin" || seen.Get("X-Auth-Scopes") != "kline.read" {
		t.Errorf("identity headers upstream: %v", seen)
	}

	// User tokens from the authorization code flow: alice is an admin, bob
	// is not.
	if got := call("/admin/x", as.userToken(t, "alice")); got != 200 {
		t.Errorf("alice's token on /admin: %d", got)
	}
	if seen.Get("X-Auth-Subject") != "alice" || seen.Get("X-Auth-Client") != "web" {
		t.Errorf("identity of a user token: subject %q client %q", seen.Get("X-Auth-Subject"), seen.Get("X-Auth-Client"))
	}
	if got := call("/admin/x", as.userToken(t, "bob")); got != 403 {
		t.Errorf("bob's token on /admin: %d, want 403", got)
	}

	// Opaque tokens (a resource the server issues opaque tokens for) are
	// checked by introspection; a revoked one is refused once its cached
	// answer (500ms) runs out.
	opaque := as.tokenFor(t, "admin-client", "admin-secret", "kline.read", "https://opaque.gatehouse.test")
	if strings.Count(opaque, ".") == 2 {
		t.Fatalf("expected an opaque token, got a JWT")
	}
	if got := call("/admin/x", opaque); got != 200 {
		t.Fatalf("opaque admin token: %d", got)
	}
	opaqueViewer := as.tokenFor(t, "user-client", "user-secret", "kline.read", "https://opaque.gatehouse.test")
	if got := call("/admin/x", opaqueViewer); got != 403 {
		t.Errorf("opaque viewer token on /admin: %d", got)
	}
	as.revoke(t, "admin-client", "admin-secret", opaque)
	if !testutil.WaitFor(10*time.Second, func() bool { return call("/admin/x", opaque) == 401 }) {
		t.Fatal("revoked opaque token still accepted")
	}

	// Key rotation at the server: it restarts signing with a new key and
	// still publishes the old one. Gatehouse accepts new tokens without a
	// restart, and old tokens still verify.
	as.stop()
	as = startAuthServer(t, port, rotateKeys(t, tmp, k1File))
	rotated := as.token(t, "admin-client", "admin-secret", "kline.read")
	if !strings.Contains(rotated, ".") || !testutil.WaitFor(10*time.Second, func() bool { return call("/admin/x", rotated) == 200 }) {
		t.Fatal("a token signed with the rotated key was never accepted")
	}
	if got := call("/admin/x", admin); got != 200 {
		t.Errorf("a token signed with the previous key: %d after rotation", got)
	}
}

// userToken runs the authorization code flow with PKCE as user login
// (the test server logs in whoever the interaction URL names) and returns
// the JWT access token for the gateway.
func (a *authServer) userToken(t *testing.T, login string) string {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	const redirect = "http://127.0.0.1/callback"
	var code string
	c := &http.Client{Jar: jar, Timeout: 20 * time.Second, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if len(via) > 10 {
			return fmt.Errorf("login flow: too many redirects (%s)", req.URL)
		}
		if strings.HasPrefix(req.URL.String(), redirect) {
			code = req.URL.Query().Get("code")
			return http.ErrUseLastResponse
		}
		if strings.HasPrefix(req.URL.Path, "/interaction/") && req.URL.Query().Get("login") == "" {
			q := req.URL.Query()
			q.Set("login", login)
			req.URL.RawQuery = q.Encode()
		}
		return nil
	}}
	verifier := strings.Repeat("v", 43) + login
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{"client_id": {"web"}, "response_type": {"code"}, "redirect_uri": {redirect}, "scope": {"openid kline.read"},
		"resource": {"https://gatehouse.test"}, "code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])},
		"code_challenge_method": {"S256"}, "state": {"s1"}, "nonce": {"n1"}}
	resp, err := c.Get(a.issuer + "/auth?" + q.Encode())
	if err != nil {
		t.Fatalf("login flow: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if code == "" {
		t.Fatalf("no code after the login flow: %d %s", resp.StatusCode, b)
	}
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirect}, "client_id": {"web"},
		"code_verifier": {verifier}, "resource": {"https://gatehouse.test"}}
	tr, err := http.PostForm(a.issuer+"/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
		Error       string `json:"error"`
		Desc        string `json:"error_description"`
	}
	json.NewDecoder(tr.Body).Decode(&body)
	if body.AccessToken == "" {
		t.Fatalf("code exchange: %d %s %s", tr.StatusCode, body.Error, body.Desc)
	}
	return body.AccessToken
}
