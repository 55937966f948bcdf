//go:build integration

package integration

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"gatehouse/internal/testutil"
)

func TestValidateCommand(t *testing.T) {
	bin := testutil.Binary(t)
	root := testutil.RepoRoot(t)
	out, err := exec.Command(bin, "validate", "-c", filepath.Join(root, "gatehouse.yaml")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ok (7 routes, 5 upstreams)") {
		t.Fatalf("shipped config: %v\n%s", err, out)
	}

	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte(`server:
  listen: [":6188"]
  read_header_timout: 5s
upstreams:
  admin-portal: { targets: ["127.0.0.1:3002"] }
routes:
  - name: admin
    match: { path_prefix: /admin }
    upstream: admn
`), 0o644)
	out, err = exec.Command(bin, "validate", "-c", bad).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("exit %v, want 1\n%s", err, out)
	}
	for _, want := range []string{
		bad + `:3:3: server.read_header_timout: unknown key "read_header_timout" (did you mean "read_header_timeout"?)`,
		bad + `:9:15: routes[0].upstream: unknown upstream "admn" (did you mean "admin-portal"?)`,
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// run refuses to start on an invalid config, with the same errors.
	out, err = exec.Command(bin, "run", "-c", bad).CombinedOutput()
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "unknown upstream") {
		t.Fatalf("run on a bad config: %v\n%s", err, out)
	}
	out, err = exec.Command(bin, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "gatehouse ") {
		t.Fatalf("version: %v %s", err, out)
	}
}

func TestDemo(t *testing.T) {
	addr := testutil.FreePort(t)
	cmd := exec.Command(testutil.Binary(t), "demo", "-listen", addr)
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// The banner lists URLs to try; wait for it rather than for the port.
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var banner []string
	deadline := time.After(20 * time.Second)
	for len(banner) == 0 || !strings.Contains(banner[len(banner)-1], "Ctrl-C") {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("demo exited; printed:\n%s", strings.Join(banner, "\n"))
			}
			banner = append(banner, l)
		case <-deadline:
			t.Fatalf("no banner; printed:\n%s", strings.Join(banner, "\n"))
		}
	}
	urls := regexp.MustCompile(`curl -i --path-as-is (\S+)`).FindAllStringSubmatch(strings.Join(banner, "\n"), -1)
	logoutAt := regexp.MustCompile(`Log out at (http://\S+/_gatehouse/logout)\.`).FindStringSubmatch(strings.Join(banner, "\n"))
	if logoutAt == nil {
		t.Fatalf("banner has no logout URL:\n%s", strings.Join(banner, "\n"))
	}
	logoutURL := logoutAt[1]
	const logoutForm = `<form method="post" action="/_gatehouse/logout"><button type="submit" name="logout">Log out</button></form>`
	if len(urls) < 5 {
		t.Fatalf("banner has %d URLs:\n%s", len(urls), strings.Join(banner, "\n"))
	}
	resp, err := http.Get("http://" + addr + "/api/kline/v1/ticks")
	if err != nil {
		t.Fatal(err)
	}
	var e struct {
		Upstream, URI string
		Headers       http.Header
	}
	json.NewDecoder(resp.Body).Decode(&e)
	resp.Body.Close()
	if e.Upstream != "kline-service" || e.URI != "/kline/api/v1/ticks" || e.Headers.Get("X-Forwarded-For") != "127.0.0.1" {
		t.Fatalf("demo echo: %+v", e)
	}
	// The admin app's API is behind the same login, by either path: the
	// api route's /api/admin is admin-portal's /admin/api (a route of its
	// own gives it the admin route's auth; config refuses one upstream
	// path under two policies). It was open through /api/admin.
	for _, p := range []string{"/api/admin/users", "/admin/api/users"} {
		resp, err := http.Get("http://" + addr + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("GET %s without login: %d, want 401", p, resp.StatusCode)
		}
	}
	resp, err = http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), "/admin/") {
		t.Fatalf("landing page: %d %.100s", resp.StatusCode, b)
	}

	// /admin is behind login against the built-in development issuer:
	// alice (role admin) gets in, bob is refused.
	for _, tc := range []struct {
		user string
		want int
	}{{"alice", 200}, {"bob", 403}} {
		jar, _ := cookiejar.New(nil)
		client := &http.Client{Jar: jar}
		// The client follows: /admin/ → issuer's login page.
		req, _ := http.NewRequest("GET", "http://"+addr+"/admin/", nil)
		req.Header.Set("Sec-Fetch-Mode", "navigate")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(page), "not for production") {
			t.Fatalf("%s: login page: %d %.200s", tc.user, resp.StatusCode, page)
		}
		// Pressing the user's button: the same URL with login=<user>.
		req, _ = http.NewRequest("GET", resp.Request.URL.String()+"&login="+tc.user, nil)
		req.Header.Set("Accept", "text/html")
		resp, err = client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want || resp.Request.URL.Path != "/admin/" {
			t.Fatalf("%s: after login: %d at %s: %.200s", tc.user, resp.StatusCode, resp.Request.URL, body)
		}
		if tc.want == 200 && !strings.Contains(string(body), `"X-Auth-Subject": [`) {
			t.Fatalf("%s: upstream saw no identity: %.300s", tc.user, body)
		}
		// bob's 403 page says who is logged in and offers logout.
		if tc.want == 403 && (!strings.Contains(string(body), "logged in as <strong>bob</strong>") || !strings.Contains(string(body), logoutForm)) {
			t.Fatalf("bob's 403 page:\n%s", body)
		}
		// The logout URL the banner prints, opened in a browser (typed
		// into the address bar): a page with the button, not 403.
		req, _ = http.NewRequest("GET", logoutURL, nil)
		req.Header.Set("Sec-Fetch-Site", "none")
		req.Header.Set("Sec-Fetch-Mode", "navigate")
		resp, err = client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), "logged in as <strong>"+tc.user+"</strong>") || !strings.Contains(string(body), logoutForm) {
			t.Fatalf("%s: GET %s: %d\n%s", tc.user, logoutURL, resp.StatusCode, body)
		}
		// The button: the form posted from that page.
		req, _ = http.NewRequest("POST", logoutURL, nil)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		req.Header.Set("Origin", "http://"+addr)
		noFollow := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err = noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("%s: logout: %d, want 303", tc.user, resp.StatusCode)
		}
		resp, err = noFollow.Get("http://" + addr + "/admin/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("%s: /admin/ after logout: %d, want 401", tc.user, resp.StatusCode)
		}
	}
}

func TestOversizedHeadersGet431(t *testing.T) {
	_, _, base := oneUpstream(t, "", "")
	req, _ := http.NewRequest("GET", base+"/x", nil)
	req.Header.Set("X-Big", strings.Repeat("a", 80<<10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("status %d, want 431", resp.StatusCode)
	}
}

// The command line as a user meets it: help per subcommand on stdout with
// exit 0, usage errors on stderr with exit 2.
func TestCommandLineHelp(t *testing.T) {
	bin := testutil.Binary(t)
	tests := []struct {
		args      []string
		code      int
		stdout    string // substring of stdout
		stderr    string // substring of stderr
		notStdout string
	}{
		{args: []string{"help"}, stdout: "\n  run       serve with a config file\n", notStdout: "-listen"},
		{args: []string{"--help"}, stdout: "\n  validate  check a config file"},
		{args: []string{"run", "--help"}, stdout: "usage: gatehouse run [-c FILE]\n", notStdout: "-listen"},
		{args: []string{"help", "run"}, stdout: "usage: gatehouse run [-c FILE]\n", notStdout: "-listen"},
		{args: []string{"demo", "-h"}, stdout: "  -listen address\n", notStdout: "-c file"},
		{args: nil, code: 2, stderr: "usage: gatehouse <command>"},
		{args: []string{"serve"}, code: 2, stderr: `gatehouse: unknown command "serve"`},
		{args: []string{"help", "serve"}, code: 2, stderr: `unknown command "serve"`},
		{args: []string{"run", "--config", "x.yaml"}, code: 2, stderr: "gatehouse run: flag provided but not defined: -config"},
		{args: []string{"validate", "gatehouse.yaml"}, code: 2, stderr: `unexpected argument "gatehouse.yaml"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(append([]string{"gatehouse"}, tt.args...), " "), func(t *testing.T) {
			var stdout, stderr strings.Builder
			cmd := exec.Command(bin, tt.args...)
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.code || !strings.Contains(stdout.String(), tt.stdout) || !strings.Contains(stderr.String(), tt.stderr) ||
				(tt.notStdout != "" && strings.Contains(stdout.String(), tt.notStdout)) {
				t.Errorf("exit %d (want %d)\nstdout (want %q, not %q):\n%s\nstderr (want %q):\n%s",
					code, tt.code, tt.stdout, tt.notStdout, &stdout, tt.stderr, &stderr)
			}
		})
	}
}

// `gatehouse version` prints the -X main.version value when the build sets
// it (the Makefile), else what the build info says: the main module's
// version and VCS stamp, as `go version -m` reads them.
func TestVersionCommand(t *testing.T) {
	plain := testutil.Binary(t)
	info, err := exec.Command("go", "version", "-m", plain).Output()
	if err != nil {
		t.Fatalf("go version -m: %v", err)
	}
	want := "devel"
	for _, line := range strings.Split(string(info), "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == "mod" && f[1] == "gatehouse" && f[2] != "(devel)" {
			want = f[2]
		}
		if len(f) == 2 && strings.HasPrefix(f[1], "vcs.revision=") {
			want += " (rev " + strings.TrimPrefix(f[1], "vcs.revision=")[:12]
		}
	}
	out, err := exec.Command(plain, "version").Output()
	if err != nil || !strings.HasPrefix(string(out), "gatehouse "+want+" ") || !strings.HasSuffix(string(out), " go"+goVersion(t, info)+"\n") {
		t.Errorf("version without ldflags: %v %q, want gatehouse %s … (build info:\n%s)", err, out, want, info)
	}

	stamped := filepath.Join(t.TempDir(), "gatehouse")
	build := exec.Command("go", "build", "-ldflags", "-X main.version=v7.8.9-test", "-o", stamped, "./cmd/gatehouse")
	build.Dir = testutil.RepoRoot(t)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	for _, args := range [][]string{{"version"}, {"--version"}} {
		out, err := exec.Command(stamped, args...).Output()
		if err != nil || !strings.HasPrefix(string(out), "gatehouse v7.8.9-test ") {
			t.Errorf("%v with -X main.version: %v %q", args, err, out)
		}
	}
}

// goVersion is the Go version in `go version -m` output ("1.26.0").
func goVersion(t *testing.T, info []byte) string {
	first, _, _ := strings.Cut(string(info), "\n")
	i := strings.LastIndex(first, " go")
	if i < 0 {
		t.Fatalf("no Go version in %q", first)
	}
	return first[i+3:]
}
