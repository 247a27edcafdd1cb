package policy

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
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

// TestReloadLogsNoLoadErrorText: the messages of load_errors may quote the
// policy's data (patient and user ids), so the operational log gets only
// their count; the reload's error, for the admin and the audit log, keeps
// them.
func TestReloadLogsNoLoadErrorText(t *testing.T) {
	dir := policyDir(t, map[string]string{"p.rego": allowPolicy("1") +
		"\nload_errors contains sprintf(\"vip_patients.%s must be true\", [k]) if {\n\tsome k, v in data.vip_patients\n\tv != true\n}\n"})
	var logs bytes.Buffer
	m, err := NewManager(t.Context(), Config{Dir: dir, EvalTimeout: testTimeout}, slog.New(slog.NewJSONHandler(&logs, nil)), nil)
	require.NoError(t, err)

	writeFile(t, dir, "data.json", `{"vip_patients": {"Patient-MRN-4711": "yes"}}`)
	r := m.Reload(t.Context(), TriggerAdmin)
	assert.Equal(t, OutcomeRefused, r.Outcome)
	require.ErrorIs(t, r.Err, ErrLoadErrors)
	assert.Contains(t, r.Err.Error(), "vip_patients.Patient-MRN-4711 must be true")
	assert.Contains(t, logs.String(), "policy reports load errors (1)")
	assert.NotContains(t, logs.String(), "MRN-4711")
}
