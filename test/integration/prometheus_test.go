//go:build integration

package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"gatehouse/internal/testutil"
)

// TestPrometheusScrapesGatehouse runs the real Prometheus server (Debian's
// package) against Gatehouse's admin listener, answers the request-rate
// query from what it scraped, checks every query of the shipped Grafana
// dashboard parses and runs, and lints the exposition with promtool.
func TestPrometheusScrapesGatehouse(t *testing.T) {
	promBin := testutil.NeedTool(t, "prometheus", "prometheus")
	promtool := testutil.NeedTool(t, "promtool", "prometheus")
	_, _, base, admin, _ := observed(t, "")
	adminHost := strings.TrimPrefix(admin, "http://")

	// promtool check metrics: naming conventions and format.
	_, body := fetch(t, "GET", admin+"/metrics")
	lint := exec.Command(promtool, "check", "metrics")
	lint.Stdin = strings.NewReader(body)
	if out, err := lint.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}

	dir := t.TempDir()
	cfg := fmt.Sprintf("global: { scrape_interval: 1s, evaluation_interval: 1s }\nscrape_configs:\n  - job_name: gatehouse\n    static_configs: [{ targets: [%q] }]\n", adminHost)
	os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644)
	promAddr := testutil.FreePort(t)
	cmd := exec.Command(promBin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+promAddr)
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-done })
	if err := testutil.WaitListening(promAddr, 30*time.Second, done); err != nil {
		t.Fatalf("prometheus: %v\n%s", err, out)
	}

	query := func(q string) (status string, result []any, errText string) {
		resp, err := http.Get("http://" + promAddr + "/api/v1/query?query=" + url.QueryEscape(q))
		if err != nil {
			return "error", nil, err.Error()
		}
		defer resp.Body.Close()
		var r struct {
			Status string `json:"status"`
			Error  string `json:"error"`
			Data   struct {
				Result []any `json:"result"`
			} `json:"data"`
		}
		json.NewDecoder(resp.Body).Decode(&r)
		return r.Status, r.Data.Result, r.Error
	}
	// Traffic while Prometheus scrapes, until it sees a request rate.
	ok := testutil.WaitFor(60*time.Second, func() bool {
		for i := 0; i < 20; i++ {
			fetch(t, "GET", base+"/app/x")
		}
		st, res, _ := query(`sum(rate(gatehouse_http_requests_total{route="app"}[10s])) > 0`)
		return st == "success" && len(res) == 1
	})
	if !ok {
		t.Fatalf("Prometheus never answered the request-rate query\n%s", out)
	}

	// Every query in the shipped dashboard is valid PromQL that runs.
	dash, err := os.ReadFile(filepath.Join(testutil.RepoRoot(t), "deploy", "grafana", "gatehouse.json"))
	if err != nil {
		t.Fatal(err)
	}
	exprs := regexp.MustCompile(`"expr": "((?:[^"\\]|\\.)*)"`).FindAllStringSubmatch(string(dash), -1)
	if len(exprs) < 10 {
		t.Fatalf("dashboard has %d queries", len(exprs))
	}
	for _, m := range exprs {
		var q string
		json.Unmarshal([]byte(`"`+m[1]+`"`), &q)
		q = strings.ReplaceAll(q, "$job", ".+")
		if st, _, e := query(q); st != "success" {
			t.Errorf("dashboard query fails: %s\n  %s", e, q)
		}
	}
}
