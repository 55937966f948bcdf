//go:build integration

package integration

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"gatehouse/internal/testutil"
)

// observed starts an upstream and a gatehouse with an admin listener.
func observed(t *testing.T, extraAdmin string) (up *upstream, p *testutil.Proc, base, admin, dead string) {
	t.Helper()
	up = startUpstream(t, "app")
	dead = testutil.FreePort(t)
	addr, adminAddr := testutil.FreePort(t), testutil.FreePort(t)
	cfg := fmt.Sprintf(`
server: { listen: [%q] }
admin: { listen: %q %s }
upstreams:
  app: { targets: [%q] }
  dead: { targets: [%q] }
routes:
  - { name: app, match: { path_prefix: /app }, upstream: app }
  - { name: dead, match: { path_prefix: /dead }, upstream: dead }
`, addr, adminAddr, extraAdmin, up.Addr, dead)
	p = testutil.Start(t, cfg, addr)
	if err := testutil.WaitListening(adminAddr, 5e9, p.Done()); err != nil {
		t.Fatal(err)
	}
	return up, p, "http://" + addr, "http://" + adminAddr, dead
}

func fetch(t *testing.T, method, url string, hdr ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func scrape(t *testing.T, admin string) map[string]*family {
	t.Helper()
	_, body := fetch(t, "GET", admin+"/metrics")
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return toModel(fams)
}

// value returns the sample of family name whose labels include want.
func value(fams map[string]*family, name string, want map[string]string) (float64, bool) {
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
	for _, m := range f.Metrics {
		match := true
		for k, v := range want {
			if m.Labels[k] != v {
				match = false
			}
		}
		if match {
			return m.Value, true
		}
	}
	return 0, false
}

func TestMetricsCountKnownRequests(t *testing.T) {
	up, _, base, admin, dead := observed(t, "")
	for i := 0; i < 3; i++ {
		fetch(t, "GET", base+"/app/x")
	}
	for i := 0; i < 2; i++ {
		fetch(t, "POST", base+"/app/y")
	}
	fetch(t, "GET", base+"/nothing/here")
	fetch(t, "GET", base+"/dead/x")
	fetch(t, "BREW", base+"/app/pot")

	fams := scrape(t, admin)
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"gatehouse_http_requests_total", map[string]string{"route": "app", "method": "GET", "code": "2xx"}, 3},
		{"gatehouse_http_requests_total", map[string]string{"route": "app", "method": "POST", "code": "2xx"}, 2},
		{"gatehouse_http_requests_total", map[string]string{"route": "app", "method": "OTHER", "code": "2xx"}, 1},
		{"gatehouse_http_requests_total", map[string]string{"route": "(none)", "method": "GET", "code": "4xx"}, 1},
		{"gatehouse_http_requests_total", map[string]string{"route": "dead", "method": "GET", "code": "5xx"}, 1},
		{"gatehouse_http_request_duration_seconds_count", map[string]string{"route": "app", "method": "GET", "code": "2xx"}, 3},
		{"gatehouse_upstream_requests_total", map[string]string{"upstream": "app", "target": up.Addr, "code": "2xx"}, 6},
		{"gatehouse_upstream_response_header_seconds_count", map[string]string{"upstream": "app", "target": up.Addr}, 6},
		{"gatehouse_upstream_errors_total", map[string]string{"upstream": "dead", "target": dead, "kind": "connect"}, 1},
		{"gatehouse_upstream_connections_opened_total", map[string]string{"upstream": "app", "target": up.Addr}, 1},
		{"gatehouse_config_last_reload_success", nil, 1},
		{"gatehouse_upstream_target_up", map[string]string{"upstream": "app", "target": up.Addr}, 1},
		{"gatehouse_http_requests_in_flight", nil, 0},
	}
	for _, c := range checks {
		got, ok := value(fams, c.name, c.labels)
		if !ok || got != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	if _, ok := value(fams, "gatehouse_build_info", nil); !ok {
		t.Error("no gatehouse_build_info")
	}
	if _, ok := value(fams, "process_resident_memory_bytes", nil); !ok {
		t.Error("no process metrics")
	}
}

// TestMetricsCardinalityIsBounded sends 10,000 requests with distinct
// paths, user ids and tokens; the number of series must not change.
func TestMetricsCardinalityIsBounded(t *testing.T) {
	_, _, base, admin, _ := observed(t, "")
	fetch(t, "GET", base+"/app/warm")
	fetch(t, "GET", base+"/nope")
	series := func() int {
		n := 0
		for name, f := range scrape(t, admin) {
			if strings.HasPrefix(name, "gatehouse_") {
				n += len(f.Metrics)
			}
		}
		return n
	}
	before := series()
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Go(func() {
			c := &http.Client{}
			for i := w; i < 10000; i += 4 {
				path := fmt.Sprintf("/app/users/%d/orders/%x", i, i*7919)
				if i%2 == 1 {
					path = fmt.Sprintf("/unrouted-%d", i)
				}
				req, _ := http.NewRequest("GET", base+path+fmt.Sprintf("?user=%d", i), nil)
				req.Header.Set("Authorization", fmt.Sprintf("Bearer token-%d", i))
				req.Header.Set("X-User-Id", fmt.Sprint(i))
				resp, err := c.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	if after := series(); after != before {
		t.Fatalf("series grew from %d to %d over 10,000 distinct requests", before, after)
	}
	_, body := fetch(t, "GET", admin+"/metrics")
	for _, leak := range []string{"users/", "unrouted-", "token-", "user="} {
		if strings.Contains(body, leak) {
			t.Errorf("/metrics contains request data %q", leak)
		}
	}
}

func TestAdminEndpoints(t *testing.T) {
	up, _, base, admin, _ := observed(t, "")
	fetch(t, "GET", base+"/app/x")
	tests := []struct {
		path     string
		want     int
		contains string
	}{
		{"/healthz", 200, "ok"},
		{"/readyz", 200, `"ready": true`},
		{"/config", 200, "path_prefix: /app"},
		{"/upstreams", 200, up.Addr},
		{"/status.json", 200, `"name": "app"`},
		{"/", 200, "Gatehouse status"},
		{"/metrics", 200, "gatehouse_http_requests_total"},
		{"/debug/pprof/", 404, ""},
	}
	for _, tt := range tests {
		code, body := fetch(t, "GET", admin+tt.path)
		if code != tt.want || !strings.Contains(body, tt.contains) {
			t.Errorf("GET %s: %d, want %d containing %q:\n%.300s", tt.path, code, tt.want, tt.contains, body)
		}
	}
	_, _, _, admin2, _ := observed(t, ", pprof: true")
	if code, _ := fetch(t, "GET", admin2+"/debug/pprof/"); code != 200 {
		t.Errorf("pprof enabled: %d", code)
	}
}

// A web page that makes its own name resolve to 127.0.0.1 (DNS
// rebinding) and then fetches the admin listener from the operator's
// browser sends that name as Host: the loopback admin listener refuses
// it on every path, and answers the loopback names.
func TestAdminRefusesRebindingHostNames(t *testing.T) {
	_, _, _, admin, _ := observed(t, "")
	addr := strings.TrimPrefix(admin, "http://")
	_, port, _ := net.SplitHostPort(addr)
	for _, path := range []string{"/config", "/metrics", "/status.json", "/upstreams", "/", "/healthz"} {
		for host, want := range map[string]int{
			"rebind.example:" + port:        403,
			"rebind.example":                403,
			"127.0.0.1.nip.example:" + port: 403,
			"localhost:" + port:             200,
			"127.0.0.1:" + port:             200,
			"[::1]:" + port:                 200,
			"LOCALHOST:1":                   200, // neither port nor case compared
		} {
			resp, body, _, _ := exchange(t, addr, "GET "+path+" HTTP/1.1\r\nHost: "+host+"\r\nConnection: close\r\n\r\n")
			if code := resp.StatusCode; code != want {
				t.Errorf("GET %s, Host %s: %d, want %d", path, host, code, want)
			}
			if want == 403 && (strings.Contains(body, "upstreams") || strings.Contains(body, "gatehouse_")) {
				t.Errorf("GET %s, Host %s: refused but shows %.200q", path, host, body)
			}
		}
	}
}

// No Host or path trick on the public listener reaches an admin page.
func TestAdminPathsNotOnPublicListener(t *testing.T) {
	_, _, base, admin, _ := observed(t, "")
	adminHost := strings.TrimPrefix(admin, "http://")
	markers := []string{"gatehouse_build_info", "Gatehouse status", `"ready"`, "upstreams:", "path_prefix", "goroutine"}
	for _, path := range []string{"/metrics", "/healthz", "/readyz", "/config", "/upstreams", "/status.json", "/", "/debug/pprof/",
		"//metrics", "/%6detrics", "/./metrics", "/app/../metrics", "/app/..%2fmetrics"} {
		for _, host := range []string{"", adminHost, "localhost", "127.0.0.1:9901"} {
			req, _ := http.NewRequest("GET", base+"/", nil)
			req.URL.Opaque = path
			if host != "" {
				req.Host = host
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for _, m := range markers {
				if strings.Contains(string(b), m) {
					t.Errorf("public %s (Host %q) answered %d with admin content %q", path, host, resp.StatusCode, m)
				}
			}
		}
	}
}

// Secrets sent by clients never reach logs, metrics or the status page.
func TestSecretsStayOutOfLogsAndMetrics(t *testing.T) {
	_, p, base, admin, _ := observed(t, "")
	fetch(t, "GET", base+"/app/x?access_token=SECRET-QUERY-1", "Authorization", "Bearer SECRET-TOKEN-2", "Cookie", "session=SECRET-COOKIE-3")
	fetch(t, "GET", base+"/nope?code=SECRET-QUERY-4", "Authorization", "Basic SECRET-BASIC-5")
	if !p.WaitLog(`"path":"/nope"`, 5e9) {
		t.Fatal("no access line")
	}
	_, metrics := fetch(t, "GET", admin+"/metrics")
	_, status := fetch(t, "GET", admin+"/status.json")
	for what, text := range map[string]string{"logs": p.Output(), "metrics": metrics, "status": status} {
		if strings.Contains(text, "SECRET") {
			t.Errorf("a secret reached the %s", what)
		}
	}
}

func TestRateLimitsInMetricsAndStatus(t *testing.T) {
	up := startUpstream(t, "app")
	addr, adminAddr := testutil.FreePort(t), testutil.FreePort(t)
	testutil.Start(t, fmt.Sprintf(`
server: { listen: [%q], rate_limits: [per-ip] }
admin: { listen: %q }
rate_limits:
  per-ip: { rate: 1/m, burst: 2 }
upstreams: { app: { targets: [%q] } }
routes: [{ name: app, match: { path_prefix: / }, upstream: app }]
`, addr, adminAddr, up.Addr), addr)
	testutil.WaitListening(adminAddr, 5e9, nil)
	var codes []int
	for i := 0; i < 4; i++ {
		c, _ := fetch(t, "GET", "http://"+addr+"/x")
		codes = append(codes, c)
	}
	if fmt.Sprint(codes) != "[200 200 429 429]" {
		t.Fatalf("codes %v", codes)
	}
	fams := scrape(t, "http://"+adminAddr)
	for result, want := range map[string]float64{"allowed": 2, "limited": 2} {
		if got, _ := value(fams, "gatehouse_ratelimit_decisions_total", map[string]string{"policy": "per-ip", "result": result}); got != want {
			t.Errorf("%s = %v, want %v", result, got, want)
		}
	}
	if _, status := fetch(t, "GET", "http://"+adminAddr+"/status.json"); !strings.Contains(status, `"per-ip": 2`) {
		t.Errorf("status.json lacks the limited count:\n%.400s", status)
	}
}

// logrotate's default mode renames the access log file, then sends
// SIGHUP: the lines after it go to a new file at the configured path, not
// on into the renamed one for good.
func TestAccessLogReopenedOnSIGHUP(t *testing.T) {
	up := startUpstream(t, "app")
	addr := testutil.FreePort(t)
	logPath := filepath.Join(t.TempDir(), "access.log")
	p := testutil.Start(t, fmt.Sprintf(`
server: { listen: [%q] }
log: { access: %q }
upstreams: { app: { targets: [%q] } }
routes: [{ name: app, match: { path_prefix: / }, upstream: app }]
`, addr, logPath, up.Addr), addr)
	has := func(path, what string) bool {
		b, _ := os.ReadFile(path)
		return strings.Contains(string(b), what)
	}
	fetch(t, "GET", "http://"+addr+"/before")
	if !testutil.WaitFor(10*time.Second, func() bool { return has(logPath, `"path":"/before"`) }) {
		t.Fatal("no access line in the file")
	}
	if err := os.Rename(logPath, logPath+".1"); err != nil {
		t.Fatal(err)
	}
	p.Signal(syscall.SIGHUP)
	if !p.WaitLog("access log reopened", 10*time.Second) {
		t.Fatalf("no reopen:\n%s", p.Output())
	}
	fetch(t, "GET", "http://"+addr+"/after")
	if !testutil.WaitFor(10*time.Second, func() bool { return has(logPath, `"path":"/after"`) }) {
		t.Fatal("the line after SIGHUP is not in the new file")
	}
	if has(logPath+".1", `"path":"/after"`) || !has(logPath+".1", `"path":"/before"`) {
		t.Error("the renamed file got the line after SIGHUP, or lost the one before")
	}
}
