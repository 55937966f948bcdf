//go:build e2e

// End-to-end test: Gatehouse in front of a real Next.js 15 App Router app
// (test/e2e/nextapp, basePath /admin). It needs Node.js and the app's
// dependencies:
//
//	npm ci --prefix test/e2e/nextapp
//	go test -tags e2e -count=1 -v ./test/e2e/
//
// The app is built with `next build` when .next/BUILD_ID is missing or older
// than any of its sources, then served with `next start` on a free loopback
// port; Gatehouse routes path_prefix /admin to it.
package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gatehouse/internal/testutil"
)

// The app's stream route (app/api/stream/route.js) sends streamChunks lines,
// streamDelay apart.
const (
	streamChunks = 5
	streamDelay  = 300 * time.Millisecond
)

// The header of the Next.js middleware-bypass CVE (CVE-2025-29927), with the
// value that skipped middleware in vulnerable releases.
const (
	subrequestHeader = "X-Middleware-Subrequest"
	subrequestValue  = "middleware:middleware:middleware:middleware:middleware"
)

func TestNextJS(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("skipping Next.js end-to-end test: node is not on PATH (install Node.js >= 18.18, then run `npm ci --prefix test/e2e/nextapp`)")
	}
	appDir := filepath.Join(testutil.RepoRoot(t), "test", "e2e", "nextapp")
	if _, err := os.Stat(filepath.Join(appDir, "node_modules", ".bin", "next")); err != nil {
		t.Fatalf("Next.js app dependencies are not installed (%v): run `npm ci --prefix test/e2e/nextapp` from the repository root", err)
	}

	buildNextApp(t, appDir)
	nextAddr := startNextApp(t, appDir)

	gwAddr := testutil.FreePort(t)
	config := fmt.Sprintf(`server:
  listen: [%q]
admin:
  listen: "off"
log:
  access: stdout
upstreams:
  admin-portal:
    targets: [%q]
routes:
  - name: admin
    match: { path_prefix: /admin }
    upstream: admin-portal
`, gwAddr, nextAddr)
	testutil.Start(t, config, gwAddr)

	gw := "http://" + gwAddr
	direct := "http://" + nextAddr
	client := &http.Client{
		Timeout: 30 * time.Second,
		// Every status is asserted as Gatehouse returned it.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}

	t.Run("ssr page", func(t *testing.T) {
		resp, body := get(t, client, gw+"/admin", nil)
		wantStatus(t, resp, body, http.StatusOK)
		wantContentType(t, resp, "text/html")

		// The page renders the request headers it received. Gatehouse keeps
		// the client's Host and tells the app the host and scheme the client
		// used.
		for id, want := range map[string]string{
			"host":            gwAddr,
			"forwarded-host":  gwAddr,
			"forwarded-proto": "http",
		} {
			if got := elementText(body, "dd", id); got != want {
				t.Errorf("page shows %s = %q, want %q", id, got, want)
			}
		}

		assets := staticAssets(body)
		var js, css int
		for _, a := range assets {
			switch {
			case strings.HasSuffix(a, ".js"):
				js++
			case strings.HasSuffix(a, ".css"):
				css++
			}
		}
		if js == 0 || css == 0 {
			t.Fatalf("page references %d script(s) and %d stylesheet(s) under /admin/_next/static/, want at least one of each; assets: %q", js, css, assets)
		}
		for _, a := range assets {
			t.Run(strings.TrimPrefix(a, "/admin/_next/static/"), func(t *testing.T) {
				resp, body := get(t, client, gw+a, nil)
				wantStatus(t, resp, body, http.StatusOK)
				want := "javascript"
				if strings.HasSuffix(a, ".css") {
					want = "text/css"
				}
				wantContentType(t, resp, want)
				_, directBody := get(t, client, direct+a, nil)
				if !bytes.Equal(body, directBody) {
					t.Errorf("%s through Gatehouse is %d bytes, differs from the %d bytes Next serves directly", a, len(body), len(directBody))
				}
			})
		}
	})

	t.Run("route handler", func(t *testing.T) {
		resp, body := get(t, client, gw+"/admin/api/hello", nil)
		wantStatus(t, resp, body, http.StatusOK)
		wantContentType(t, resp, "application/json")
		var got struct {
			Message    string  `json:"message"`
			Subrequest *string `json:"subrequest"`
		}
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("decoding %q: %v", body, err)
		}
		if got.Message != "hello from next" {
			t.Errorf("message = %q, want %q", got.Message, "hello from next")
		}
		if v := resp.Header.Get("X-E2e-Middleware"); v != "ran" {
			t.Errorf("X-E2e-Middleware = %q, want %q (the app's middleware.js did not run)", v, "ran")
		}
	})

	t.Run("middleware subrequest header", func(t *testing.T) {
		for _, tc := range []struct {
			name, base string
			want       *string // the header value the app saw, nil if none
		}{
			// The control proves the app reports the header when it gets it.
			{"direct to next (control)", direct, ptr(subrequestValue)},
			{"through gatehouse is stripped", gw, nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				resp, body := get(t, client, tc.base+"/admin/api/hello", http.Header{subrequestHeader: {subrequestValue}})
				wantStatus(t, resp, body, http.StatusOK)
				var got struct {
					Subrequest *string `json:"subrequest"`
				}
				if err := json.Unmarshal(body, &got); err != nil {
					t.Fatalf("decoding %q: %v", body, err)
				}
				if show(got.Subrequest) != show(tc.want) {
					t.Errorf("app received %s: %s, want %s", subrequestHeader, show(got.Subrequest), show(tc.want))
				}
				// Whatever Next does with the header, its middleware must run.
				if v := resp.Header.Get("X-E2e-Middleware"); v != "ran" {
					t.Errorf("X-E2e-Middleware = %q, want %q (middleware was skipped)", v, "ran")
				}
			})
		}
	})

	t.Run("streamed response", func(t *testing.T) {
		for _, tc := range []struct {
			name           string
			acceptEncoding string // "" lets Go's transport ask for gzip, as a browser would
		}{
			{"identity", "identity"},
			{"gzip accepted", ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				testStream(t, client, gw+"/admin/api/stream", tc.acceptEncoding)
			})
		}
	})

	t.Run("server action", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			origin string
			ok     bool
		}{
			// A browser submitting the form without JavaScript sends the
			// page's own origin: Gatehouse's address.
			{"same origin", gw, true},
			// Next compares Origin with X-Forwarded-Host/Host: this passes
			// only because Gatehouse forwards the real host.
			{"foreign origin rejected", "http://evil.example", false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				token := fmt.Sprintf("msg-%s-%d", strings.ReplaceAll(tc.name, " ", "-"), time.Now().UnixNano())
				resp, body := submitAction(t, client, gw+"/admin/action", tc.origin, token)
				saved := "<li>" + token + "</li>"
				if tc.ok {
					wantStatus(t, resp, body, http.StatusOK)
					if !bytes.Contains(body, []byte(saved)) {
						t.Errorf("action response does not list %q", token)
					}
				} else if resp.StatusCode >= 200 && resp.StatusCode < 300 {
					t.Errorf("POST with Origin %s: status %d, want a rejection", tc.origin, resp.StatusCode)
				}
				// The effect, as the next visitor sees it.
				resp, body = get(t, client, gw+"/admin/action", nil)
				wantStatus(t, resp, body, http.StatusOK)
				if got := bytes.Contains(body, []byte(saved)); got != tc.ok {
					t.Errorf("after POST with Origin %s: page lists %q = %v, want %v", tc.origin, token, got, tc.ok)
				}
			})
		}
	})
}

// testStream fetches the app's stream route and checks the chunks arrived one
// by one: the first long before the last was even sent.
func testStream(t *testing.T, client *http.Client, url, acceptEncoding string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if acceptEncoding != "" {
		req.Header.Set("Accept-Encoding", acceptEncoding)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d, want 200; body %q", resp.StatusCode, b)
	}

	type arrival struct {
		at   time.Time
		data string
	}
	var arrivals []arrival
	var all strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			arrivals = append(arrivals, arrival{time.Now(), string(buf[:n])})
			all.Write(buf[:n])
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("reading stream after %q: %v", all.String(), err)
		}
	}

	// Each line is "chunk <i> at <unix ms when the app sent it>".
	lines := strings.Split(strings.TrimSuffix(all.String(), "\n"), "\n")
	if len(lines) != streamChunks {
		t.Fatalf("got %d lines, want %d: %q", len(lines), streamChunks, all.String())
	}
	var lastSent time.Time
	for i, line := range lines {
		var idx int
		var ms int64
		if _, err := fmt.Sscanf(line, "chunk %d at %d", &idx, &ms); err != nil || idx != i {
			t.Fatalf("line %d = %q, want \"chunk %d at <ms>\"", i, line, i)
		}
		lastSent = time.UnixMilli(ms)
	}

	first, last := arrivals[0], arrivals[len(arrivals)-1]
	t.Logf("%d reads; first arrived %v before the last; the last chunk was sent %v after the first arrived",
		len(arrivals), last.at.Sub(first.at).Round(time.Millisecond), lastSent.Sub(first.at).Round(time.Millisecond))
	if len(arrivals) < 3 {
		t.Errorf("the %d chunks came in %d read(s), want them spread over several: the response was buffered", streamChunks, len(arrivals))
	}
	if !strings.HasPrefix(first.data, "chunk 0 ") {
		t.Errorf("first read = %q, want it to start with chunk 0", first.data)
	}
	// The app spends (streamChunks-1)*streamDelay = 1.2 s between the first
	// and last chunk; demand half of that, to tolerate a slow machine while
	// still catching a proxy that buffers the response.
	minSpread := (streamChunks - 1) * streamDelay / 2
	if spread := lastSent.Sub(first.at); spread < minSpread {
		t.Errorf("first chunk arrived only %v before the app sent the last one, want >= %v: the response was buffered", spread, minSpread)
	}
	if spread := last.at.Sub(first.at); spread < minSpread {
		t.Errorf("first and last chunk arrived %v apart, want >= %v: the response was buffered", spread, minSpread)
	}
}

var actionIDRe = regexp.MustCompile(`name="(\$ACTION_ID_[0-9a-f]+)"`)

// submitAction loads the form page at url and posts it as a browser without
// JavaScript does: multipart/form-data with the hidden $ACTION_ID_ field and
// an Origin header.
func submitAction(t *testing.T, client *http.Client, url, origin, message string) (*http.Response, []byte) {
	t.Helper()
	resp, page := get(t, client, url, nil)
	wantStatus(t, resp, page, http.StatusOK)
	m := actionIDRe.FindSubmatch(page)
	if m == nil {
		t.Fatalf("no $ACTION_ID_ input in the form page: %s", page)
	}

	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	for _, f := range [][2]string{{string(m[1]), ""}, {"message", message}} {
		if err := mw.WriteField(f[0], f[1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, url, &form)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Origin", origin)
	req.Header.Set("Referer", url)
	req.Header.Set("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

var staticAssetRe = regexp.MustCompile(`(?:src|href)="(/admin/_next/static/[^"]+)"`)

// staticAssets returns the distinct /admin/_next/static/ URLs that the HTML
// loads through src= or href= attributes.
func staticAssets(html []byte) []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range staticAssetRe.FindAllSubmatch(html, -1) {
		if u := string(m[1]); !seen[u] {
			seen[u] = true
			out = append(out, u)
		}
	}
	return out
}

// elementText returns the text of the first <tag id="id">, or "" if absent.
func elementText(html []byte, tag, id string) string {
	re := regexp.MustCompile(`<` + tag + ` id="` + regexp.QuoteMeta(id) + `">([^<]*)</` + tag + `>`)
	m := re.FindSubmatch(html)
	if m == nil {
		return ""
	}
	return string(m[1])
}

func get(t *testing.T, client *http.Client, url string, h http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range h {
		req.Header[k] = vs
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", url, err)
	}
	return resp, body
}

func wantStatus(t *testing.T, resp *http.Response, body []byte, want int) {
	t.Helper()
	if resp.StatusCode != want {
		if len(body) > 2000 {
			body = append(body[:2000:2000], "..."...)
		}
		t.Fatalf("%s %s: status %d, want %d; body: %s", resp.Request.Method, resp.Request.URL, resp.StatusCode, want, body)
	}
}

func wantContentType(t *testing.T, resp *http.Response, want string) {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); !strings.Contains(ct, want) {
		t.Errorf("%s: Content-Type = %q, want it to contain %q", resp.Request.URL, ct, want)
	}
}

func ptr(s string) *string { return &s }

func show(s *string) string {
	if s == nil {
		return "(none)"
	}
	return strconv.Quote(*s)
}

// buildNextApp runs `next build` unless .next/BUILD_ID is newer than every
// source file of the app.
func buildNextApp(t *testing.T, appDir string) {
	t.Helper()
	fresh, why := buildFresh(appDir)
	if fresh {
		t.Logf("using the existing Next.js build: %s", why)
		return
	}
	t.Logf("building the Next.js app: %s", why)
	start := time.Now()
	cmd := exec.Command(filepath.Join(appDir, "node_modules", ".bin", "next"), "build")
	cmd.Dir = appDir
	cmd.Env = append(os.Environ(), "NEXT_TELEMETRY_DISABLED=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("next build: %v\n%s", err, out)
	}
	t.Logf("next build took %v", time.Since(start).Round(time.Second))
}

func buildFresh(appDir string) (bool, string) {
	id, err := os.Stat(filepath.Join(appDir, ".next", "BUILD_ID"))
	if err != nil {
		return false, "no .next/BUILD_ID"
	}
	var newest string
	err = filepath.WalkDir(appDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if name := d.Name(); path != appDir && (name == "node_modules" || name == ".next") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil // e.g. a symlinked node_modules
		}
		if d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if !info.ModTime().Before(id.ModTime()) && newest == "" {
			newest, _ = filepath.Rel(appDir, path)
			return fs.SkipAll
		}
		return nil
	})
	if err != nil {
		return false, err.Error()
	}
	if newest != "" {
		return false, newest + " is newer than .next/BUILD_ID"
	}
	return true, ".next/BUILD_ID is newer than all sources"
}

// startNextApp runs `next start` on a free loopback port in its own process
// group (killed whole at cleanup) and waits until the app answers. It returns
// the app's address.
func startNextApp(t *testing.T, appDir string) string {
	t.Helper()
	addr := testutil.FreePort(t)
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	var out lockedBuffer
	cmd := exec.Command(filepath.Join(appDir, "node_modules", ".bin", "next"), "start", "-p", port, "-H", "127.0.0.1")
	cmd.Dir = appDir
	cmd.Env = append(os.Environ(), "NEXT_TELEMETRY_DISABLED=1")
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("next start: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		pgid := cmd.Process.Pid // Setpgid: the group id is the leader's pid
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-exited
		}
		// node children that outlived the leader
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		if t.Failed() {
			t.Logf("next start output:\n%s", out.String())
		}
	})

	url := "http://" + addr + "/admin/api/hello"
	probe := &http.Client{Timeout: 2 * time.Second}
	ready := func() bool {
		select {
		case <-exited:
			return true // stop polling; reported below
		default:
		}
		resp, err := probe.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	if !testutil.WaitFor(60*time.Second, ready) {
		t.Fatalf("next start did not answer 200 on %s within 60s\n%s", url, out.String())
	}
	select {
	case <-exited:
		t.Fatalf("next start exited early: %v\n%s", cmd.ProcessState, out.String())
	default:
	}
	return addr
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
