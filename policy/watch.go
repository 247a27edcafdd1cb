package policy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watch reloads the policy directory after changes, once no change has
// come for watchDebounce (and at most watchMaxWait after the first). It
// watches the directory and its subdirectories (hidden ones too: a
// Kubernetes ConfigMap swaps a hidden ..data link), adding new
// subdirectories as they appear, and ignores files the load would skip
// (an editor's swap file, notes.txt). A failed reload is reported like
// any other; watching goes on.
func (m *Manager) watch(ctx context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("%w: %w", errWatch, err)
	}
	defer w.Close()
	// The directory's parent is watched too, for a deploy that replaces
	// the directory (a rename over it, rm and recreate) or swaps a link
	// (ln -sfn, a rename over the link, or a link dir resolves through,
	// such as a Kubernetes projected volume's ..data). After a change
	// there, dir is resolved again and watched afresh. A symlinked dir is
	// watched where it points: WalkDir does not follow a link at its root
	// and would otherwise watch nothing, silently.
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
	// The parents of dir and of where it leads: a change there that names
	// either (a rename over it, rm and recreate, a swapped link) re-adds
	// the tree.
	parents := map[string]bool{}
	watchParent := func(d string) error {
		if p := filepath.Dir(d); !parents[p] {
			if err := w.Add(p); err != nil {
				return err
			}
			parents[p] = true
		}
		return nil
	}
	if err := errors.Join(watchParent(dir), watchParent(root)); err != nil {
		return fmt.Errorf("%w: %w", errWatch, err)
	}

	// A change between the load serving now and this watch (an edit, a
	// swapped link) would go unseen: reload once now. An unchanged
	// directory costs a parse (reloadDir) and is not audited.
	p := pending{timer: time.NewTimer(watchDebounce), since: time.Now()}
	for {
		select {
		case <-ctx.Done():
			p.timer.Stop()
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if parents[filepath.Dir(ev.Name)] {
				target, err := resolveDir(dir)
				if ev.Name != dir && ev.Name != root && (err != nil || target == root) {
					continue // a sibling, or the link still leads where it did
				}
				removeTree(w, root)
				if err == nil {
					root = target
					if err := errors.Join(addTree(w, root), watchParent(root)); err != nil {
						m.log.Warn("policy directory watch incomplete", "error", err)
					}
				}
			} else if !relevant(ev) {
				continue
			} else if ev.Has(fsnotify.Create) {
				_ = addTree(w, ev.Name) // a new subdirectory; not a directory: nothing to add
			}
			p.reset(time.Now())
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			// An overflow loses events: reload to be sure nothing was missed.
			m.log.Warn("policy directory watch error; reloading", "error", err)
			p.reset(time.Now())
		case <-p.timer.C:
			p.done()
			// Not canceled by shutdown half way: a reload is bounded
			// (loadTimeout), and one cut short would be refused, logged
			// and audited as an error.
			m.Reload(context.WithoutCancel(ctx), TriggerWatch)
		}
	}
}

// watchMaxWait bounds how long a stream of changes can put a reload off.
const watchMaxWait = 2 * time.Second

// pending is the debounce of watch: a reload watchDebounce after the last
// change, and no later than watchMaxWait after the first.
type pending struct {
	timer *time.Timer
	since time.Time // of the first change not yet reloaded; zero if none
}

func (p *pending) reset(now time.Time) {
	if p.since.IsZero() {
		p.since = now
	}
	p.timer.Reset(min(watchDebounce, max(watchMaxWait-now.Sub(p.since), 0)))
}

func (p *pending) done() { p.since = time.Time{} }

// relevant reports whether ev may change what a load reads: a policy or
// data file, a directory or a link (hidden ones included: ..data), or a
// name that is gone and may have been one. Files the load skips (hidden
// files, other extensions) are not.
func relevant(ev fsnotify.Event) bool {
	base := filepath.Base(ev.Name)
	fi, err := os.Lstat(ev.Name)
	switch {
	case err != nil: // gone: it may have been a policy file or a directory (team.d)
		return !strings.HasPrefix(base, ".")
	case fi.IsDir() || fi.Mode()&fs.ModeSymlink != 0:
		return true
	default:
		return !strings.HasPrefix(base, ".") && isPolicyFile(base, true)
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
