package app

import (
	"context"
	"hash/maphash"
	"os"
	"path/filepath"
	"time"

	"gatehouse/internal/config"
)

// pollInterval is how often the watched files are looked at. A change is
// reloaded at the first poll that finds the files as the one before left
// them: a burst of writes (an editor's save, a file written in place a
// piece at a time) is one reload, of its end, 0.5 to 1 s after it.
const pollInterval = 500 * time.Millisecond

// A watcher reloads on SIGHUP and when the config file or a file it names
// (certificates, keys) changes.
//
// It polls: every pollInterval it stats the watched files and compares
// identity (os.SameFile), size, modification time and a hash of the
// content with what it saw last. A directory watch (inotify through fsnotify, as Traefik's file
// provider does) wakes the process on every write to any file in the
// directory: an access log or any busy file beside gatehouse.yaml cost
// up to 30 % of a core in the bench harness. Polling costs a few stats a
// second, whatever else the directory holds, and sees what matters: a file
// edited in place, and one replaced by renaming a new one over it (editors,
// config management, Kubernetes ConfigMap symlink swaps).
type watcher struct {
	path    string               // the config file, absolute
	stamps  map[string]fileStamp // the watched files as last seen
	pending bool                 // a change seen, not yet settled
}

// fileStamp is what a change to a file changes; a nil fi: missing. sum,
// a hash of the content of files up to maxHashed, catches a rewrite of the
// same size within one tick of a coarse modification time (some network
// and FAT file systems keep seconds).
type fileStamp struct {
	fi  os.FileInfo
	sum uint64
}

// maxHashed bounds the files whose content is hashed at each poll; config
// and certificate files are a few KiB.
const maxHashed = 1 << 20

// stampSeed keys the content hashes (they never leave the process).
var stampSeed = maphash.MakeSeed()

func stampOf(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	st := fileStamp{fi: fi}
	if fi.Mode().IsRegular() && fi.Size() <= maxHashed {
		if b, err := os.ReadFile(path); err == nil {
			st.sum = maphash.Bytes(stampSeed, b)
		}
	}
	return st
}

// differs reports whether b is another state of the file than a.
func (a fileStamp) differs(b fileStamp) bool {
	switch {
	case a.fi == nil || b.fi == nil:
		return (a.fi == nil) != (b.fi == nil)
	case !os.SameFile(a.fi, b.fi): // replaced (renamed over, or a symlink moved)
		return true
	}
	return a.fi.Size() != b.fi.Size() || !a.fi.ModTime().Equal(b.fi.ModTime()) || a.sum != b.sum
}

// newWatcher takes the first look at the watched files before Run reports
// ready, so no change made after that can be missed.
func (a *App) newWatcher() *watcher {
	path, err := filepath.Abs(a.opts.ConfigPath)
	if err != nil {
		path = a.opts.ConfigPath
	}
	w := &watcher{path: path, stamps: map[string]fileStamp{}}
	w.follow(a.watchedFiles(path), false)
	return w
}

// follow makes files the watched set, keeping what was seen of files
// already watched (a change since is still noticed) and stamping new ones.
// After a rejected reload (unseen), new files count as missing, so one
// that appeared at any time after the attempt triggers another; at worst
// that is one more attempt that fails the same way.
func (w *watcher) follow(files map[string]bool, unseen bool) {
	for f := range w.stamps {
		if !files[f] {
			delete(w.stamps, f)
		}
	}
	for f := range files {
		if _, ok := w.stamps[f]; !ok {
			if unseen {
				w.stamps[f] = fileStamp{}
			} else {
				w.stamps[f] = stampOf(f)
			}
		}
	}
}

// poll looks at every watched file and reports whether any changed.
// settled polls, and reports whether a change seen by an earlier poll
// has stopped: the files are as the last poll left them. A file still
// changing (half written in place: a route cut off, an auth block not
// there yet) may parse, and would be served until the next poll.
func (w *watcher) settled() bool {
	if w.poll() {
		w.pending = true
		return false
	}
	was := w.pending
	w.pending = false
	return was
}

func (w *watcher) poll() bool {
	changed := false
	for f, old := range w.stamps {
		if now := stampOf(f); old.differs(now) {
			w.stamps[f] = now
			changed = true
		}
	}
	return changed
}

// watchedFiles are the files whose change reloads the config: the config
// file, and the certificates, keys and client CAs named by the running
// config and by the file as it is now. The second set matters after a
// rejected reload: a config that names a certificate not written yet is
// applied when the certificate appears.
func (a *App) watchedFiles(path string) map[string]bool {
	files := map[string]bool{path: true}
	a.mu.Lock()
	doc := a.doc
	a.mu.Unlock()
	if t := doc.Config.Server.TLS; t != nil {
		for _, c := range t.Certificates {
			files[filepath.Clean(c.Cert)] = true
			files[filepath.Clean(c.Key)] = true
		}
		for _, ca := range t.ClientAuth {
			if ca != nil && ca.CA != "" {
				files[filepath.Clean(ca.CA)] = true
			}
		}
	}
	for _, f := range config.Files(path) {
		files[f] = true
	}
	return files
}

// watch serves reloads until ctx ends.
func (a *App) watch(ctx context.Context, w *watcher, reload <-chan struct{}) {
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-reload:
			err := a.Reload("SIGHUP")
			w.follow(a.watchedFiles(w.path), err != nil)
		case <-tick.C:
			if !w.settled() {
				continue
			}
			err := a.Reload("file changed")
			w.follow(a.watchedFiles(w.path), err != nil) // the new config may name other files
		}
	}
}
