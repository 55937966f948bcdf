//go:build integration

package integration

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gatehouse/internal/testutil"
)

// TestStatusPageInChromium loads the admin status page in headless
// Chromium (playwright-core) while traffic flows, checks it updates by
// itself and shows a target going down when its process is stopped, and
// saves a screenshot to $GATEHOUSE_ARTIFACTS (default: a temp dir).
func TestStatusPageInChromium(t *testing.T) {
	node := testutil.NeedTool(t, "node", "nodejs")
	chromium := testutil.NeedTool(t, "chromium", "chromium")
	dir := filepath.Join(testutil.RepoRoot(t), "test", "browser")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core")); err != nil {
		t.Fatalf("run `npm ci --prefix test/browser` first: %v", err)
	}
	a, b := startUpstream(t, "a"), startUpstream(t, "b")
	_, base, admin, _, _ := poolGate(t, []string{a.Addr, b.Addr}, `
    health:
      active: { type: tcp, interval: 200ms, timeout: 100ms, rise: 1, fall: 2 }`)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { // steady traffic, so the page has rates to show
		for ctx.Err() == nil {
			if resp, err := http.Get(base + "/x"); err == nil {
				resp.Body.Close()
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	artifacts := os.Getenv("GATEHOUSE_ARTIFACTS")
	if artifacts == "" {
		artifacts = t.TempDir()
	}
	os.MkdirAll(artifacts, 0o755)
	shot := filepath.Join(artifacts, "status-page.png")
	cmd := exec.Command(node, "status-page.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "STATUS_URL="+admin+"/", "SCREENSHOT="+shot, "CHROMIUM="+chromium, "WAIT_DOWN="+b.Addr)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		out.WriteString(line + "\n")
		if line == "stop "+b.Addr {
			b.kill()
			io.WriteString(stdin, "stopped\n")
		}
	}
	err := cmd.Wait()
	t.Logf("%s", out.String())
	if err != nil {
		t.Fatalf("status page check failed: %v", err)
	}
	if !strings.Contains(out.String(), `"sawDown":"down"`) {
		t.Fatal("the page never showed the stopped target down")
	}
	if fi, err := os.Stat(shot); err != nil || fi.Size() < 1000 {
		t.Fatalf("no screenshot: %v", err)
	}
	t.Logf("screenshot: %s", shot)
}
