package app

import (
	"context"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// debounce collapses the burst of events an editor's save makes (write,
// chmod, rename over) into one reload; the latest state of the file wins.
const debounce = 250 * time.Millisecond

// watch reloads on SIGHUP (reload) and when the config file or a file it
// names (certificates, keys, CA roots) changes. It watches the files'
// directories, not the files: editors and config management replace files
// by renaming a new one over them, which ends a watch on the old inode
// (Traefik's file provider does the same).
//
// newWatcher sets the watch up before Run reports ready, so no change made
// after that can be missed. If watching is impossible it returns nil and
// only SIGHUP reloads.
func (a *App) newWatcher() (*fsnotify.Watcher, string) {
	path, err := filepath.Abs(a.opts.ConfigPath)
	if err == nil {
		var w *fsnotify.Watcher
		if w, err = fsnotify.NewWatcher(); err == nil {
			if err = w.Add(filepath.Dir(path)); err == nil {
				a.watchFiles(w, path)
				return w, path
			}
			w.Close()
		}
	}
	a.events.Warn("cannot watch the config file; reload with SIGHUP", "err", err.Error())
	return nil, path
}

// watchedFiles are the files whose change reloads the config.
func (a *App) watchedFiles(config string) map[string]bool {
	files := map[string]bool{config: true}
	a.mu.Lock()
	doc := a.doc
	a.mu.Unlock()
	if t := doc.Config.Server.TLS; t != nil {
		for _, c := range t.Certificates {
			files[filepath.Clean(c.Cert)] = true
			files[filepath.Clean(c.Key)] = true
		}
	}
	return files
}

// watchFiles adds the directories of the watched files and returns them.
func (a *App) watchFiles(w *fsnotify.Watcher, config string) map[string]bool {
	files := a.watchedFiles(config)
	for f := range files {
		if err := w.Add(filepath.Dir(f)); err != nil {
			a.events.Warn("cannot watch a file; reload with SIGHUP after changing it", "file", f, "err", err.Error())
		}
	}
	return files
}

// watch serves reloads until ctx ends.
func (a *App) watch(ctx context.Context, w *fsnotify.Watcher, path string, reload <-chan struct{}) {
	var events <-chan fsnotify.Event
	var errs <-chan error
	files := map[string]bool{path: true}
	if w != nil {
		defer w.Close()
		events, errs = w.Events, w.Errors
		files = a.watchedFiles(path)
	}
	var timer *time.Timer
	var fire <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-reload:
			_ = a.Reload("SIGHUP")
			if w != nil {
				files = a.watchFiles(w, path)
			}
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if !files[filepath.Clean(ev.Name)] || ev.Op == fsnotify.Chmod {
				continue
			}
			if timer == nil {
				timer = time.NewTimer(debounce)
			} else {
				timer.Reset(debounce)
			}
			fire = timer.C
		case <-fire:
			fire = nil
			_ = a.Reload("file changed")
			files = a.watchFiles(w, path) // the new config may name other files
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			a.events.Warn("config watch", "err", err.Error())
		}
	}
}
