//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gatehouse/internal/testutil"
)

// TestBrowserLogin logs in to the Next.js app (test/e2e/nextapp, basePath
// /admin) behind Gatehouse in headless Chromium (test/browser/login.mjs):
// the protected page sends the browser to oidc-provider's sign-in page,
// alice signs in with its form, and lands back on the app's page, which
// renders with its scripts and styles; the button of Gatehouse's logout
// page (its form post) ends the session here and at the issuer. A screenshot of the logged-in page goes to
// $GATEHOUSE_ARTIFACTS (default: a temp dir).
func TestBrowserLogin(t *testing.T) {
	node := testutil.NeedTool(t, "node", "nodejs")
	chromium := testutil.NeedTool(t, "chromium", "chromium")
	root := testutil.RepoRoot(t)
	browserDir := filepath.Join(root, "test", "browser")
	if _, err := os.Stat(filepath.Join(browserDir, "node_modules", "playwright-core")); err != nil {
		t.Fatalf("run `npm ci --prefix test/browser` first: %v", err)
	}
	appDir := filepath.Join(root, "test", "e2e", "nextapp")
	if _, err := os.Stat(filepath.Join(appDir, "node_modules", ".bin", "next")); err != nil {
		t.Fatalf("run `npm ci --prefix test/e2e/nextapp` first: %v", err)
	}
	buildNextApp(t, appDir)
	nextAddr := startNextApp(t, appDir)

	gwAddr := testutil.FreePort(t)
	gw := "http://" + gwAddr
	redirect := gw + "/_gatehouse/callback"
	postLogout := gw + "/admin/"
	opPort := strings.Split(testutil.FreePort(t), ":")[1]
	as := startAuthServerEnv(t, opPort, newKeysFile(t, t.TempDir(), "k1"),
		"LOGIN_REDIRECT_URIS="+redirect, "LOGIN_POST_LOGOUT_URIS="+postLogout)
	testutil.Start(t, fmt.Sprintf(`server: { listen: [%q] }
admin: { listen: "off" }
log: { access: stdout }
%supstreams: { admin-portal: { targets: [%q] } }
routes:
  - name: admin
    match: { path_prefix: /admin }
    upstream: admin-portal
    auth: { accept: [session], roles: { any_of: [admin] } }
`, gwAddr, loginConfig(as.issuer, redirect, postLogout), nextAddr), gwAddr)

	artifacts := os.Getenv("GATEHOUSE_ARTIFACTS")
	if artifacts == "" {
		artifacts = t.TempDir()
	}
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(artifacts, "login.png")
	cmd := exec.CommandContext(t.Context(), node, "login.mjs")
	cmd.Dir = browserDir
	cmd.Env = append(os.Environ(), "GATEHOUSE_URL="+gw, "ISSUER_URL="+as.issuer, "START_PATH=/admin/",
		"LOGIN_USER=alice", "SCREENSHOT="+shot, "CHROMIUM="+chromium)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	t.Logf("login.mjs: %s", out)
	if stderr.Len() > 0 {
		t.Logf("login.mjs stderr: %s", stderr.String())
	}
	var got struct {
		Problems          []string
		Step              string
		LoginPage, Landed string
		Title, H1, Host   string
		BodyMargin        string
		SessionCookie     *struct {
			HTTPOnly, Secure bool
			SameSite, Path   string
			Length           int
		}
		ScriptSeesSession  bool
		APIStatus          int
		LogoutPageText     string
		LogoutPage         string
		SessionAfterLogout bool
		AfterLogout        string
		APIAfterLogout     int
	}
	if jerr := json.Unmarshal(lastLine(out), &got); jerr != nil {
		t.Fatalf("login.mjs printed no result (%v; exit %v)", jerr, err)
	}
	if err != nil || len(got.Problems) > 0 {
		t.Errorf("login.mjs failed at %q: %v; problems:\n%s", got.Step, err, strings.Join(got.Problems, "\n"))
	}

	if !strings.HasPrefix(got.LoginPage, as.issuer+"/interaction/") {
		t.Errorf("the protected page sent the browser to %q, want the issuer's sign-in page %s/interaction/…", got.LoginPage, as.issuer)
	}
	if u, err := url.Parse(got.Landed); err != nil || u.Scheme+"://"+u.Host != gw || (u.Path != "/admin" && u.Path != "/admin/") || u.RawQuery != "" {
		t.Errorf("after signing in the browser is at %q, want %s/admin (the page it asked for)", got.Landed, gw)
	}
	for what, pair := range map[string][2]string{
		"title":                   {got.Title, "Gatehouse e2e admin portal"},
		"heading":                 {got.H1, "Admin portal"},
		"host the app was told":   {got.Host, gwAddr},
		"body margin (app's CSS)": {got.BodyMargin, "32px"},
	} {
		if pair[0] != pair[1] {
			t.Errorf("logged-in page %s = %q, want %q", what, pair[0], pair[1])
		}
	}
	switch c := got.SessionCookie; {
	case c == nil:
		t.Error("no gatehouse_session cookie in the browser after login")
	case !c.HTTPOnly || c.Secure || c.SameSite != "Lax" || c.Path != "/" || c.Length >= 200:
		t.Errorf("session cookie in the browser: %+v, want HttpOnly, SameSite=Lax, Path=/, not Secure over http, < 200 bytes", *c)
	}
	if got.ScriptSeesSession {
		t.Error("page scripts can read the session cookie (document.cookie)")
	}
	if got.APIStatus != 200 {
		t.Errorf("the page's fetch of /admin/api/hello: %d, want 200", got.APIStatus)
	}
	if !strings.Contains(got.LogoutPageText, "You are logged in as alice") {
		t.Errorf("Gatehouse's logout page says %q, want it to name alice", got.LogoutPageText)
	}
	if !strings.HasPrefix(got.LogoutPage, as.issuer+"/session/end") {
		t.Errorf("logout sent the browser to %q, want the issuer's end_session_endpoint", got.LogoutPage)
	}
	if got.SessionAfterLogout {
		t.Error("the session cookie survived logout")
	}
	if !strings.HasPrefix(got.AfterLogout, as.issuer+"/interaction/") {
		t.Errorf("after logging out at the issuer the browser is at %q, want the sign-in page again", got.AfterLogout)
	}
	if got.APIAfterLogout != 401 {
		t.Errorf("/admin/api/hello with the browser's cookies after logout: %d, want 401", got.APIAfterLogout)
	}
	if fi, err := os.Stat(shot); err != nil || fi.Size() < 1000 {
		t.Errorf("no screenshot at %s: %v", shot, err)
	} else {
		t.Logf("screenshot: %s", shot)
	}
}

// lastLine is the last non-empty line of out.
func lastLine(out []byte) []byte {
	lines := bytes.Split(bytes.TrimSpace(out), []byte("\n"))
	return lines[len(lines)-1]
}
