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

// watch reloads on SIGHUP (reload) and when the config file changes. It
// watches the file's directory, not the file: editors and config
// management replace files by renaming a new one over them, which ends a
// watch on the old inode (Traefik's file provider does the same).
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
				return w, path
			}
			w.Close()
		}
	}
	a.events.Warn("cannot watch the config file; reload with SIGHUP", "err", err.Error())
	return nil, path
}

// watch serves reloads until ctx ends.
func (a *App) watch(ctx context.Context, w *fsnotify.Watcher, path string, reload <-chan struct{}) {
	var events <-chan fsnotify.Event
	var errs <-chan error
	if w != nil {
		defer w.Close()
		events, errs = w.Events, w.Errors
	}
	var timer *time.Timer
	var fire <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-reload:
			_ = a.Reload("SIGHUP")
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if filepath.Clean(ev.Name) != path || ev.Op == fsnotify.Chmod {
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
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			a.events.Warn("config watch", "err", err.Error())
		}
	}
}
