package policy

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// allowPolicy allows everything; version changes its revision.
func allowPolicy(version string) string {
	return "package chartguard\n\n# version " + version + "\n\ndecision := {\"allow\": true, \"reasons\": []}\n"
}

const passingTest = `package chartguard_test

import data.chartguard

test_allows if chartguard.decision.allow
`

// reloads records what a Manager reports.
type reloads struct {
	mu  sync.Mutex
	got []Reload
}

func (r *reloads) notify(_ context.Context, x Reload) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, x)
}

func (r *reloads) all() []Reload {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Reload(nil), r.got...)
}

func TestManagerReloadDir(t *testing.T) {
	dir := policyDir(t, map[string]string{"p.rego": allowPolicy("1"), "p_test.rego": passingTest})
	var rec reloads
	m, err := NewManager(t.Context(), Config{Dir: dir, EvalTimeout: testTimeout}, nil, rec.notify)
	require.NoError(t, err)
	first := m.Revision()
	require.Len(t, rec.all(), 1)
	assert.Equal(t, Reload{Trigger: TriggerStart, Source: "dir", Outcome: OutcomeLoaded, Revision: first}, rec.all()[0])

	tests := []struct {
		name    string
		files   map[string]string
		outcome string
		errIs   error
		errText string
	}{
		{name: "unchanged", outcome: OutcomeUnchanged},
		{name: "syntax error", files: map[string]string{"p.rego": "package chartguard\n\ndecision := {\"allow\": true\n"},
			outcome: OutcomeRefused, errText: "p.rego:"},
		{name: "failing own test", files: map[string]string{"p.rego": `package chartguard

decision := {"allow": false}
`}, outcome: OutcomeRefused, errIs: ErrTestsFailed, errText: "p_test.rego:5: test_allows: fail"},
		{name: "decision rule missing", files: map[string]string{"p.rego": "package chartguard\n\nother := 1\n", "p_test.rego": "package chartguard_test\n"},
			outcome: OutcomeRefused, errIs: ErrNoRule},
		{name: "bad redaction path", files: map[string]string{"p.rego": `package chartguard

decision := {"allow": true, "obligations": {"redact": ["Patient"]}}
`, "p_test.rego": passingTest}, outcome: OutcomeRefused, errIs: ErrRedactPath},
		{name: "new revision", files: map[string]string{"p.rego": allowPolicy("2"), "p_test.rego": passingTest}, outcome: OutcomeLoaded},
	}
	serving := first
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for name, body := range tc.files {
				writeFile(t, dir, name, body)
			}
			before := m.Current()
			r := m.Reload(t.Context(), TriggerAdmin)
			assert.Equal(t, tc.outcome, r.Outcome)
			assert.Equal(t, serving, r.Previous)
			assert.Equal(t, rec.all()[len(rec.all())-1], r, "notified")
			if tc.outcome == OutcomeRefused {
				require.Error(t, r.Err)
				if tc.errIs != nil {
					require.ErrorIs(t, r.Err, tc.errIs)
				}
				assert.Contains(t, r.Err.Error(), tc.errText)
				assert.Same(t, before, m.Current(), "the old engine keeps serving")
				assert.Equal(t, serving, r.Revision)
				return
			}
			require.NoError(t, r.Err)
			if tc.outcome == OutcomeLoaded {
				assert.NotEqual(t, serving, r.Revision)
				serving = r.Revision
			}
			assert.Equal(t, serving, m.Revision())
			in := physicianRead()
			d, err := m.Current().Decide(t.Context(), &in)
			require.NoError(t, err)
			assert.Equal(t, serving, d.Revision)
		})
	}
}

// TestNewManagerRefusesFailingTests: a policy that fails its own tests
// does not start either.
func TestNewManagerRefusesFailingTests(t *testing.T) {
	dir := policyDir(t, map[string]string{"p.rego": "package chartguard\n\ndecision := {\"allow\": false}\n", "p_test.rego": passingTest})
	_, err := NewManager(t.Context(), Config{Dir: dir}, nil, nil)
	require.ErrorIs(t, err, ErrTestsFailed)
	_, err = Load(t.Context(), Config{Dir: dir}, nil)
	require.ErrorIs(t, err, ErrTestsFailed)
}

// TestManagerReloadUnchangedIsCheap: reloading a directory that still
// holds the serving policy (less its tests) answers unchanged from a
// parse, without compiling or running the tests again.
func TestManagerReloadUnchangedIsCheap(t *testing.T) {
	dir := policyDir(t, map[string]string{"p.rego": allowPolicy("1"), "p_test.rego": passingTest})
	var logs bytes.Buffer
	m, err := NewManager(t.Context(), Config{Dir: dir, EvalTimeout: testTimeout}, slog.New(slog.NewJSONHandler(&logs, nil)), nil)
	require.NoError(t, err)
	require.Equal(t, 1, strings.Count(logs.String(), `"policy loaded"`))

	r := m.Reload(t.Context(), TriggerAdmin)
	assert.Equal(t, OutcomeUnchanged, r.Outcome)
	assert.Equal(t, 1, strings.Count(logs.String(), `"policy loaded"`), "not loaded again")

	writeFile(t, dir, "p.rego", allowPolicy("2"))
	r = m.Reload(t.Context(), TriggerAdmin)
	assert.Equal(t, OutcomeLoaded, r.Outcome)
	assert.Equal(t, 2, strings.Count(logs.String(), `"policy loaded"`))
}

// TestManagerWatch: a change in the policy directory is picked up without
// being asked for; a broken change is refused and the old one serves.
func TestManagerWatch(t *testing.T) {
	dir := policyDir(t, map[string]string{"p.rego": allowPolicy("1"), "sub/data.json": `{"x": 1}`})
	var rec reloads
	m, err := NewManager(t.Context(), Config{Dir: dir, EvalTimeout: testTimeout}, nil, rec.notify)
	require.NoError(t, err)
	first := m.Revision()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })

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
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })

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
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })

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

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })
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

// revisionOf is the revision of the policy in dir.
func revisionOf(t *testing.T, dir string) string {
	t.Helper()
	e, err := New(t.Context(), Config{Dir: dir, EvalTimeout: testTimeout}, nil)
	require.NoError(t, err)
	return e.Revision()
}

func TestRedactURLQuery(t *testing.T) {
	const u = "https://bundles.example.org/b.tar.gz?token=s3cret"
	got := redactURLQuery(`Get "`+u+`": dial tcp: connection refused`, u)
	assert.NotContains(t, got, "s3cret")
	assert.Contains(t, got, "https://bundles.example.org/b.tar.gz?…")
	assert.Equal(t, "no url here", redactURLQuery("no url here", "https://x/b"))
}

// TestReloadLogsNoPolicyContent: a refused policy's error can quote its
// source and data (patient and user ids). The operational log gets its
// class, file:line and codes; the reload's error, for the admin and the
// audit log, keeps the text.
func TestReloadLogsNoPolicyContent(t *testing.T) {
	loadErrs := "\nload_errors contains sprintf(\"vip_patients.%s must be true\", [k]) if {\n\tsome k, v in data.vip_patients\n\tv != true\n}\n"
	cases := []struct {
		name    string
		files   map[string]string
		wantErr error
		wantLog string // in the log
		quoted  bool   // the error's text quotes the id
	}{
		{"load_errors quote data", map[string]string{"p.rego": allowPolicy("2") + loadErrs,
			"data.json": `{"vip_patients": {"Patient-MRN-4711": "yes"}}`}, ErrLoadErrors, "policy reports load errors (1)", true},
		{"parse error prints the line", map[string]string{"p.rego": "package chartguard\n\nvips := {\"Patient-MRN-4711\", \n"},
			nil, "p.rego:4: rego_parse_error", true},
		{"data files in conflict", map[string]string{"p.rego": allowPolicy("2"), "a.json": `{"vip": {"Patient-MRN-4711": true}}`,
			"b.yaml": "vip:\n  Patient-MRN-4711: false\n"}, nil, "merge error", true},
		{"compile error quotes the rule", map[string]string{"p.rego": allowPolicy("2") + "\nx := \"Patient-MRN-4711\" + 1\n"},
			nil, "p.rego:7: rego_type_error", false},
		{"failing test quotes its name only", map[string]string{"p.rego": allowPolicy("2"),
			"p_test.rego": "package chartguard\n\ntest_mrn if {\n\tdata.vip[\"Patient-MRN-4711\"]\n}\n"}, ErrTestsFailed, "policy tests failed", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := policyDir(t, map[string]string{"p.rego": allowPolicy("1")})
			var logs bytes.Buffer
			m, err := NewManager(t.Context(), Config{Dir: dir, EvalTimeout: testTimeout}, slog.New(slog.NewJSONHandler(&logs, nil)), nil)
			require.NoError(t, err)
			for name, body := range tc.files {
				writeFile(t, dir, name, body)
			}
			r := m.Reload(t.Context(), TriggerAdmin)
			assert.Equal(t, OutcomeRefused, r.Outcome)
			if tc.wantErr != nil {
				require.ErrorIs(t, r.Err, tc.wantErr)
			}
			if tc.quoted {
				assert.Contains(t, r.Err.Error(), "MRN-4711", "the admin's answer and the audit event keep the text")
			}
			assert.Contains(t, logs.String(), tc.wantLog)
			assert.Contains(t, logs.String(), "policy check")
			assert.NotContains(t, logs.String(), "MRN-4711")
		})
	}
}

// TestLogSafe: errors that carry no policy content reach the log whole;
// evaluation errors only by code and line.
func TestLogSafe(t *testing.T) {
	assert.Empty(t, LogSafe(nil))
	cfgErr := fmt.Errorf("policy: eval_timeout %s is negative", -time.Second)
	assert.Equal(t, cfgErr.Error(), LogSafe(cfgErr), "config errors name the key")
	dl := fmt.Errorf("%w: Get \"https://b.example.org/b.tar.gz\": connection refused", errBundleDownload)
	assert.Equal(t, dl.Error(), LogSafe(dl))
	_, err := New(t.Context(), Config{Dir: filepath.Join(t.TempDir(), "missing")}, nil)
	assert.Contains(t, LogSafe(err), "no such file or directory", "an unreadable directory is named")

	e := newEngine(t, map[string]string{"p.rego": "package chartguard\n\n" +
		"decision := {\"allow\": true, \"reasons\": [input.user.sub]} if input.user.sub != \"\"\n\n" +
		"decision := {\"allow\": false, \"reasons\": [\"MRN-4711\"]} if input.user.sub != \"\"\n"}, Config{})
	_, err = e.Decide(t.Context(), new(physicianRead()))
	require.ErrorIs(t, err, ErrEval)
	assert.Contains(t, err.Error(), "eval_conflict_error")
	t.Log(err)
	assert.Equal(t, "policy evaluation failed: eval_conflict_error at p.rego:5", LogSafe(err))
}
