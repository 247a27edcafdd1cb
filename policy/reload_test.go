package policy

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
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
			"p_test.rego": "package chartguard\n\ntest_mrn if {\n\tdata.vip[\"Patient-MRN-4711\"]\n}\n"}, ErrTestsFailed, "policy tests failed at p_test.rego:3;", false},
		{"constant decision that can never be valid", map[string]string{"p.rego": "package chartguard\n\ndecision := {\"allow\": true, \"reasons\": \"Patient-MRN-4711\"}\n"},
			ErrShape, "policy decision malformed at p.rego:3;", false},
		{"bad redaction path", map[string]string{"p.rego": "package chartguard\n\ndecision := {\"allow\": true, \"obligations\": {\"redact\": [\"Patient.MRN-4711[x]\"]}}\n"},
			ErrRedactPath, "invalid redaction path at p.rego:3;", true},
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

// TestManagerWaitOutlastsAReload: Wait returns only once the reload under
// way has finished.
func TestManagerWaitOutlastsAReload(t *testing.T) {
	m, err := NewManager(t.Context(), Config{Dir: policyDir(t, map[string]string{"p.rego": allowPolicy("1")}), EvalTimeout: testTimeout}, nil, nil)
	require.NoError(t, err)
	m.mu.Lock() // a reload under way
	done := make(chan struct{})
	go func() { m.Wait(); close(done) }()
	select {
	case <-done:
		t.Fatal("Wait returned during a reload")
	case <-time.After(50 * time.Millisecond):
	}
	m.mu.Unlock()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not return after the reload")
	}
}
