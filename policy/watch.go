package policy

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watch reloads the policy directory after changes, once no change has
// come for watchDebounce. It watches the directory and its subdirectories
// (hidden ones too: a Kubernetes ConfigMap swaps a hidden ..data link),
// adding new subdirectories as they appear. A failed reload is reported
// like any other; watching goes on.
func (m *Manager) watch(ctx context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("%w: %w", errWatch, err)
	}
	defer w.Close()
	// A symlinked policy dir (a deployment's "current" link) is watched
	// where it points: WalkDir does not follow a link at its root and
	// would otherwise watch nothing, silently. The link's own directory
	// is watched too, for a deploy that swaps the link (ln -sfn, or a
	// rename over it) or a link it resolves through (a Kubernetes
	// projected volume's ..data): after any change there the link is
	// resolved again, and a new target is watched instead.
	dir, err := filepath.Abs(m.cfg.Dir)
	if err != nil {
		return fmt.Errorf("%w: %w", errWatch, err)
	}
	root, err := resolveDir(dir)
	if err != nil {
		return fmt.Errorf("%w: %w", errWatch, err)
	}
	if fi, err := os.Stat(root); err != nil || !fi.IsDir() {
		return fmt.Errorf("%w: %s is not a directory", errWatch, m.cfg.Dir)
	}
	if err := addTree(w, root); err != nil {
		return fmt.Errorf("%w: %w", errWatch, err)
	}
	parent := "" // of the link, if dir is one
	if fi, err := os.Lstat(dir); err == nil && fi.Mode()&fs.ModeSymlink != 0 && filepath.Dir(dir) != root {
		parent = filepath.Dir(dir)
		if err := w.Add(parent); err != nil {
			return fmt.Errorf("%w: %w", errWatch, err)
		}
	}

	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	// A link swapped between the load serving now and this watch: reload.
	m.mu.Lock()
	moved := m.served != root
	m.mu.Unlock()
	if moved {
		timer.Reset(watchDebounce)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if parent != "" && filepath.Dir(ev.Name) == parent {
				target, err := resolveDir(dir)
				if err != nil || target == root {
					continue // the link still leads where it did
				}
				removeTree(w, root)
				root = target
				_ = addTree(w, root)
			} else if ev.Has(fsnotify.Create) {
				_ = addTree(w, ev.Name) // a new subdirectory; not a directory: nothing to add
			}
			timer.Reset(watchDebounce)
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			// An overflow loses events: reload to be sure nothing was missed.
			m.log.Warn("policy directory watch error; reloading", "error", err)
			timer.Reset(watchDebounce)
		case <-timer.C:
			m.Reload(ctx, TriggerWatch)
		}
	}
}

// addTree watches dir and every directory below it.
func addTree(w *fsnotify.Watcher, dir string) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			if path == dir {
				return fs.SkipAll
			}
			return nil
		}
		if path != dir && strings.Count(path, string(filepath.Separator))-strings.Count(dir, string(filepath.Separator)) > 8 {
			return fs.SkipDir // bound the depth watched
		}
		return w.Add(path)
	})
}

// resolveDir is the directory dir leads to: absolute, links resolved.
func resolveDir(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	return filepath.EvalSymlinks(abs)
}

// removeTree stops watching dir and every directory below it.
func removeTree(w *fsnotify.Watcher, dir string) {
	for _, p := range w.WatchList() {
		if p == dir || strings.HasPrefix(p, dir+string(filepath.Separator)) {
			_ = w.Remove(p)
		}
	}
}
