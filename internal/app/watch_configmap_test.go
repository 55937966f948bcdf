package app

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A Kubernetes ConfigMap mounted as a directory is a tree of symlinks the
// kubelet swaps atomically (its AtomicWriter):
//
//	gatehouse.yaml -> ..data/gatehouse.yaml
//	..data -> ..2026_01_01_00_00_00.000000001
//	..2026_01_01_00_00_00.000000001/gatehouse.yaml
//
// An update writes a new timestamped directory, points a temporary link at
// it, renames that over ..data and removes the old directory. The watched
// path never changes; the file it resolves to does, and the watcher sees
// it even when the new file has the same size and modification time.
func TestWatcherConfigMapSwap(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	stamp := time.Now().Add(-time.Hour)
	version := func(name, body string) {
		t.Helper()
		d := filepath.Join(dir, name)
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(d, "gatehouse.yaml")
		if err := os.WriteFile(f, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(f, stamp, stamp); err != nil { // same time for every version
			t.Fatal(err)
		}
	}
	point := func(target string) { // the kubelet's swap of ..data
		t.Helper()
		tmp := filepath.Join(dir, "..data_tmp")
		if err := os.Symlink(target, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	version("..v1", "a: 1\n")
	point("..v1")
	cfg := filepath.Join(dir, "gatehouse.yaml")
	if err := os.Symlink(filepath.Join("..data", "gatehouse.yaml"), cfg); err != nil {
		t.Fatal(err)
	}

	w := &watcher{path: cfg, stamps: map[string]fileStamp{}}
	w.follow(map[string]bool{cfg: true}, false)
	if w.poll() {
		t.Fatal("an unchanged ConfigMap reported as changed")
	}

	version("..v2", "a: 2\n") // same size, same time: only the file is new
	if w.poll() {
		t.Fatal("a new version not yet linked counted as a change")
	}
	point("..v2")
	if err := os.RemoveAll(filepath.Join(dir, "..v1")); err != nil {
		t.Fatal(err)
	}
	if !w.poll() {
		t.Fatal("the ConfigMap's ..data swap was missed")
	}
	if w.poll() {
		t.Fatal("one swap reported twice")
	}
	if got, err := os.ReadFile(cfg); err != nil || string(got) != "a: 2\n" {
		t.Fatalf("reading through the links: %q, %v", got, err)
	}
}
