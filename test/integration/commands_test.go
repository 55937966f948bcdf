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
		resp, err = client.Get(resp.Request.URL.String() + "&login=" + tc.user)
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
