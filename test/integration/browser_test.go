//go:build integration

package integration

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"gatehouse/internal/testutil"
)

// TestStatusPageInChromium loads the admin status page in headless
// Chromium (playwright-core) while traffic flows, and saves a screenshot to
// $GATEHOUSE_ARTIFACTS (default: the test's temp dir).
func TestStatusPageInChromium(t *testing.T) {
	node := testutil.NeedTool(t, "node", "nodejs")
	chromium := testutil.NeedTool(t, "chromium", "chromium")
	dir := filepath.Join(testutil.RepoRoot(t), "test", "browser")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core")); err != nil {
		t.Fatalf("run `npm ci --prefix test/browser` first: %v", err)
	}
	_, _, base, admin, _ := observed(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { // steady traffic, so the page has rates to show
		for ctx.Err() == nil {
			if resp, err := http.Get(base + "/app/x"); err == nil {
				resp.Body.Close()
			}
			if resp, err := http.Get(base + "/dead/x"); err == nil {
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
	cmd.Env = append(os.Environ(), "STATUS_URL="+admin+"/", "SCREENSHOT="+shot, "CHROMIUM="+chromium)
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("status page check failed: %v", err)
	}
	if fi, err := os.Stat(shot); err != nil || fi.Size() < 1000 {
		t.Fatalf("no screenshot: %v", err)
	}
	t.Logf("screenshot: %s", shot)
}
