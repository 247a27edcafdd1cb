package policy

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestManagerWatch: a change in the policy directory is picked up without
// being asked for; a broken change is refused and the old one serves.
func TestManagerWatch(t *testing.T) {
	dir := policyDir(t, map[string]string{"p.rego": allowPolicy("1"), "sub/data.json": `{"x": 1}`})
	var rec reloads
	m, err := NewManager(t.Context(), Config{Dir: dir, EvalTimeout: testTimeout}, nil, rec.notify)
	require.NoError(t, err)
	first := m.Revision()
	runWatch(t, m)

	// waitFor writes the files until the watch reports outcome: the watch
	// is set up asynchronously, so the first writes may go unseen. Writes
	// are spaced wider than the debounce.
	waitFor := func(outcome string, files map[string]string) Reload {
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) {
			for name, body := range files {
				writeFile(t, dir, name, body)
			}
			for range 50 {
				time.Sleep(20 * time.Millisecond)
				for _, r := range rec.all() {
					if r.Trigger == TriggerWatch && r.Outcome == outcome {
						return r
					}
				}
			}
		}
		t.Fatalf("no %s reload seen", outcome)
		return Reload{}
	}

	r := waitFor(OutcomeRefused, map[string]string{"p.rego": allowPolicy("1-broken")[:30]})
	assert.Equal(t, first, m.Revision())
	assert.Equal(t, first, r.Revision)

	r = waitFor(OutcomeLoaded, map[string]string{"sub/data.json": `{"x": 2}`, "p.rego": allowPolicy("2")})
	assert.NotEqual(t, first, r.Revision)
	assert.Equal(t, r.Revision, m.Revision())
}

// TestManagerWatchSymlinkedDir: a policy dir that is a symlink (a
// deployment's "current" link) is watched where it points, and a deploy
// that swaps the link (ln -sfn: a new link renamed over it) loads the new
// target, which is then watched in turn.
func TestManagerWatchSymlinkedDir(t *testing.T) {
	real := policyDir(t, map[string]string{"p.rego": allowPolicy("1")})
	base := t.TempDir()
	link := filepath.Join(base, "current")
	require.NoError(t, os.Symlink(real, link))
	var rec reloads
	m, err := NewManager(t.Context(), Config{Dir: link, EvalTimeout: testTimeout}, nil, rec.notify)
	require.NoError(t, err)
	first := m.Revision()
	runWatch(t, m)

	require.Eventually(t, func() bool {
		writeFile(t, real, "p.rego", allowPolicy("2")) // until the watch is up
		return m.Revision() != first
	}, 15*time.Second, 400*time.Millisecond, "a change behind the link reloads")
	time.Sleep(2 * watchDebounce) // let the writes above settle

	next := policyDir(t, map[string]string{"p.rego": allowPolicy("3")})
	want := revisionOf(t, next)
	tmp := filepath.Join(base, "current.new")
	require.NoError(t, os.Symlink(next, tmp))
	require.NoError(t, os.Rename(tmp, link))
	require.Eventually(t, func() bool { return m.Revision() == want },
		15*time.Second, 100*time.Millisecond, "swapping the link loads its new target")

	require.Eventually(t, func() bool {
		writeFile(t, next, "p.rego", allowPolicy("4"))
		return m.Revision() != want
	}, 15*time.Second, 400*time.Millisecond, "the new target is watched")
}

// TestManagerWatchNestedLinks: a Kubernetes projected volume links the
// policy dir through ..data (policy -> ..data/policy, ..data -> ..v1) and
// updates by swapping ..data; every update loads. The dir is configured
// by a relative path.
func TestManagerWatchNestedLinks(t *testing.T) {
	base := t.TempDir()
	version := func(n string) string {
		d := filepath.Join(base, "..v"+n)
		writeFile(t, d, "policy/p.rego", allowPolicy(n))
		return d
	}
	version("1")
	require.NoError(t, os.Symlink("..v1", filepath.Join(base, "..data")))
	require.NoError(t, os.Symlink("..data/policy", filepath.Join(base, "policy")))
	t.Chdir(base)
	m, err := NewManager(t.Context(), Config{Dir: "policy", EvalTimeout: testTimeout}, nil, nil)
	require.NoError(t, err)
	runWatch(t, m)

	for _, n := range []string{"2", "3"} {
		want := revisionOf(t, filepath.Join(version(n), "policy"))
		// Swapped again until seen: the watch is set up asynchronously.
		require.Eventually(t, func() bool {
			tmp := filepath.Join(base, "..data_tmp")
			require.NoError(t, os.Symlink("..v"+n, tmp))
			require.NoError(t, os.Rename(tmp, filepath.Join(base, "..data")))
			return m.Revision() == want
		}, 15*time.Second, 400*time.Millisecond, "update %s loads", n)
	}
}

// TestManagerWatchStartsAfterASwap: a link swapped after the policy
// loaded but before the watch began is caught when the watch begins.
func TestManagerWatchStartsAfterASwap(t *testing.T) {
	v1 := policyDir(t, map[string]string{"p.rego": allowPolicy("1")})
	v2 := policyDir(t, map[string]string{"p.rego": allowPolicy("2")})
	link := filepath.Join(t.TempDir(), "current")
	require.NoError(t, os.Symlink(v1, link))
	m, err := NewManager(t.Context(), Config{Dir: link, EvalTimeout: testTimeout}, nil, nil)
	require.NoError(t, err)
	require.NoError(t, os.Remove(link))
	require.NoError(t, os.Symlink(v2, link))

	runWatch(t, m)
	want := revisionOf(t, v2)
	require.Eventually(t, func() bool { return m.Revision() == want }, 15*time.Second, 50*time.Millisecond)
}

// runWatch runs m's watch until the test ends.
func runWatch(t *testing.T, m *Manager) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })
}

// watchUp edits p.rego in dir until the watch loads it: the watch is set
// up asynchronously. It returns the revision then serving.
func watchUp(t *testing.T, m *Manager, dir, version string) string {
	t.Helper()
	before := m.Revision()
	require.Eventually(t, func() bool {
		writeFile(t, dir, "p.rego", allowPolicy(version))
		return m.Revision() != before
	}, 15*time.Second, 400*time.Millisecond, "the watch is up")
	time.Sleep(2 * watchDebounce) // let the writes above settle
	return m.Revision()
}

// TestManagerWatchStartsAfterAnEdit: an edit between the load and the
// start of the watch is loaded when the watch starts.
func TestManagerWatchStartsAfterAnEdit(t *testing.T) {
	dir := policyDir(t, map[string]string{"p.rego": allowPolicy("1")})
	m, err := NewManager(t.Context(), Config{Dir: dir, EvalTimeout: testTimeout}, nil, nil)
	require.NoError(t, err)
	writeFile(t, dir, "p.rego", allowPolicy("2"))
	want := revisionOf(t, dir)
	runWatch(t, m)
	require.Eventually(t, func() bool { return m.Revision() == want }, 15*time.Second, 50*time.Millisecond)
}

// TestManagerWatchReplacedDir: a policy directory replaced by another (a
// rename over it; rm -rf and a new one) is loaded and watched in turn.
func TestManagerWatchReplacedDir(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "policy")
	writeFile(t, dir, "p.rego", allowPolicy("1"))
	m, err := NewManager(t.Context(), Config{Dir: dir, EvalTimeout: testTimeout}, nil, nil)
	require.NoError(t, err)
	runWatch(t, m)
	watchUp(t, m, dir, "2")

	// A rename over it.
	writeFile(t, filepath.Join(base, "next"), "p.rego", allowPolicy("3"))
	require.NoError(t, os.Rename(dir, filepath.Join(base, "old")))
	require.NoError(t, os.Rename(filepath.Join(base, "next"), dir))
	want := revisionOf(t, dir)
	require.Eventually(t, func() bool { return m.Revision() == want }, 15*time.Second, 50*time.Millisecond, "the new directory loads")
	writeFile(t, filepath.Join(base, "old"), "p.rego", allowPolicy("old"))
	watchUp(t, m, dir, "4") // the new directory is watched
	assert.Equal(t, revisionOf(t, dir), m.Revision(), "not the old one")

	// rm -rf and a new one.
	require.NoError(t, os.RemoveAll(dir))
	time.Sleep(2 * watchDebounce)
	writeFile(t, dir, "p.rego", allowPolicy("5"))
	want = revisionOf(t, dir)
	require.Eventually(t, func() bool { return m.Revision() == want }, 15*time.Second, 50*time.Millisecond, "the recreated directory loads")
	watchUp(t, m, dir, "6")
}

// TestManagerWatchIgnoresOtherFiles: files the load skips (an editor's
// swap file, notes) do not reload; a stream of changes puts a reload off
// by at most watchMaxWait.
func TestManagerWatchIgnoresOtherFiles(t *testing.T) {
	dir := policyDir(t, map[string]string{"p.rego": allowPolicy("1")})
	var rec reloads
	m, err := NewManager(t.Context(), Config{Dir: dir, EvalTimeout: testTimeout}, nil, rec.notify)
	require.NoError(t, err)
	runWatch(t, m)
	watchUp(t, m, dir, "2")
	watched := func() int {
		n := 0
		for _, r := range rec.all() {
			if r.Trigger == TriggerWatch {
				n++
			}
		}
		return n
	}

	n := watched()
	for i := range 5 {
		writeFile(t, dir, ".p.rego.swp", strconv.Itoa(i))
		writeFile(t, dir, "notes.txt", strconv.Itoa(i))
		time.Sleep(watchDebounce)
	}
	time.Sleep(2 * watchDebounce)
	assert.Equal(t, n, watched(), "no reload for files the load skips")

	stop := time.Now().Add(watchMaxWait + 2*time.Second)
	for time.Now().Before(stop) && watched() == n {
		writeFile(t, dir, "p.rego", allowPolicy("2")) // a change every 100ms, never quiet
		time.Sleep(100 * time.Millisecond)
	}
	assert.Greater(t, watched(), n, "a reload within watchMaxWait of a stream of changes")
}

// TestManagerWatchLinkTargetRecreated: the directory a policy link leads
// to, removed and created again (elsewhere, or beside the link), is
// loaded and watched again.
func TestManagerWatchLinkTargetRecreated(t *testing.T) {
	for name, sibling := range map[string]bool{"elsewhere": false, "beside the link": true} {
		t.Run(name, func(t *testing.T) {
			base := t.TempDir()
			target := filepath.Join(t.TempDir(), "v1")
			if sibling {
				target = filepath.Join(base, "v1")
			}
			writeFile(t, target, "p.rego", allowPolicy("1"))
			link := filepath.Join(base, "current")
			require.NoError(t, os.Symlink(target, link))
			m, err := NewManager(t.Context(), Config{Dir: link, EvalTimeout: testTimeout}, nil, nil)
			require.NoError(t, err)
			runWatch(t, m)
			watchUp(t, m, target, "2")

			require.NoError(t, os.RemoveAll(target))
			time.Sleep(2 * watchDebounce)
			writeFile(t, target, "p.rego", allowPolicy("3"))
			want := revisionOf(t, target)
			require.Eventually(t, func() bool { return m.Revision() == want }, 15*time.Second, 50*time.Millisecond,
				"the recreated target loads")
			watchUp(t, m, target, "4") // and is watched
		})
	}
}

// TestManagerWatchDottedSubdirMovedOut: a subdirectory whose name has a
// dot (team.d), moved out of the policy directory, takes its data with it.
func TestManagerWatchDottedSubdirMovedOut(t *testing.T) {
	dir := policyDir(t, map[string]string{"p.rego": allowPolicy("1"), "team.d/data.json": `{"team": {"x": 1}}`})
	m, err := NewManager(t.Context(), Config{Dir: dir, EvalTimeout: testTimeout}, nil, nil)
	require.NoError(t, err)
	runWatch(t, m)
	watchUp(t, m, dir, "2")
	require.NoError(t, os.Rename(filepath.Join(dir, "team.d"), filepath.Join(t.TempDir(), "team.d")))
	want := revisionOf(t, dir)
	require.Eventually(t, func() bool { return m.Revision() == want }, 15*time.Second, 50*time.Millisecond)
}
