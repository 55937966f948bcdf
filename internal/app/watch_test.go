package app

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The watcher notices the changes that matter, and nothing else: a busy
// file beside the config (an access log) is not a change.
func TestWatcherPoll(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "gatehouse.yaml")
	logf := filepath.Join(dir, "access.log")
	write := func(path, s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Modification times are coarse (a kernel tick); move them on
	// explicitly so same-size rewrites are told apart deterministically.
	stamp := time.Now().Add(-time.Hour)
	touch := func(path string) {
		t.Helper()
		stamp = stamp.Add(time.Second)
		if err := os.Chtimes(path, stamp, stamp); err != nil {
			t.Fatal(err)
		}
	}
	write(cfg, "a: 1\n")
	touch(cfg)
	w := &watcher{path: cfg, stamps: map[string]fileStamp{}}
	w.follow(map[string]bool{cfg: true}, false)
	if w.poll() {
		t.Fatal("unchanged file reported as changed")
	}

	for i := range 20 { // a busy neighbour
		write(logf, string(rune('a'+i)))
	}
	if w.poll() {
		t.Fatal("a write to another file in the directory counted as a change")
	}

	write(cfg, "a: 2\n") // in place, same size
	touch(cfg)
	if !w.poll() {
		t.Fatal("an in-place edit was missed")
	}
	if w.poll() {
		t.Fatal("one change reported twice")
	}

	tmp := filepath.Join(dir, ".gatehouse.yaml.tmp") // an editor's save: rename over
	write(tmp, "a: 3\n")
	if err := os.Chtimes(tmp, stamp, stamp); err != nil { // same size and time: only the file is new
		t.Fatal(err)
	}
	if err := os.Rename(tmp, cfg); err != nil {
		t.Fatal(err)
	}
	if !w.poll() {
		t.Fatal("a file replaced by rename was missed")
	}

	os.Remove(cfg)
	if !w.poll() {
		t.Fatal("a deleted file was missed")
	}
	write(cfg, "a: 4\n")
	if !w.poll() {
		t.Fatal("a recreated file was missed")
	}

	// A same-size rewrite within one tick of the modification time (a
	// coarse file system): the content tells.
	write(cfg, "a: 7\n")
	touch(cfg)
	w.poll()
	write(cfg, "a: 8\n")
	if err := os.Chtimes(cfg, stamp, stamp); err != nil {
		t.Fatal(err)
	}
	if !w.poll() {
		t.Fatal("a same-size rewrite with the same modification time was missed")
	}

	// follow keeps what it saw of files still watched, so a change made
	// between a reload and follow is not lost.
	write(cfg, "a: 55\n")
	w.follow(map[string]bool{cfg: true, logf: true}, false)
	if !w.poll() {
		t.Fatal("a change made before follow was lost")
	}

	// After a rejected reload, a newly named file counts as missing: if it
	// appeared meanwhile, the next poll tries again.
	cert := filepath.Join(dir, "new.crt")
	write(cert, "pem")
	w.follow(map[string]bool{cfg: true, cert: true}, true)
	if !w.poll() {
		t.Fatal("a file named by a rejected config, already present, did not trigger another attempt")
	}
	if w.poll() {
		t.Fatal("the retry repeats")
	}
}

// A change is reloaded once a poll finds the files as the one before
// left them: a file written in place a piece at a time, each piece seen
// by a poll, is reloaded once, when the writes have stopped, never in
// between (where it may parse, with a route cut off).
func TestWatcherWaitsForTheWritesToSettle(t *testing.T) {
	t.Parallel()
	cfg := filepath.Join(t.TempDir(), "gatehouse.yaml")
	stamp := time.Now().Add(-time.Hour)
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(cfg, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		stamp = stamp.Add(time.Second)
		if err := os.Chtimes(cfg, stamp, stamp); err != nil {
			t.Fatal(err)
		}
	}
	write("routes: []\n")
	w := &watcher{path: cfg, stamps: map[string]fileStamp{}}
	w.follow(map[string]bool{cfg: true}, false)
	if w.settled() {
		t.Fatal("a reload with nothing changed")
	}
	write("routes:\n  - { name: public }\n")                      // the first piece
	write("routes:\n  - { name: public }\n  - { name: admin }\n") // the second, before a poll
	if w.settled() {
		t.Fatal("reloaded at the poll that saw the change")
	}
	write("routes:\n  - { name: public }\n  - { name: admin, auth: required }\n") // the last piece
	if w.settled() {
		t.Fatal("reloaded while the file was still being written")
	}
	if !w.settled() {
		t.Fatal("not reloaded once the writes stopped")
	}
	if w.settled() {
		t.Fatal("one change reloaded twice")
	}
}
