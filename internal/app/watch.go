package app

import (
	"context"
	"fmt"
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
func (a *App) watch(ctx context.Context, reload <-chan struct{}) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("config watch: %w", err)
	}
	defer w.Close()
	path, err := filepath.Abs(a.opts.ConfigPath)
	if err != nil {
		return fmt.Errorf("config watch: %w", err)
	}
	if err := w.Add(filepath.Dir(path)); err != nil {
		a.events.Warn("cannot watch the config directory; reload with SIGHUP", "err", err.Error())
	}
	var timer *time.Timer
	var fire <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-reload:
			_ = a.Reload("SIGHUP")
		case ev, ok := <-w.Events:
			if !ok {
				return nil
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
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			a.events.Warn("config watch", "err", err.Error())
		}
	}
}
