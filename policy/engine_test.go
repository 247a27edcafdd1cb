package policy

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chartguard/chartguard/chartguard"
)

// policyDir writes files to a fresh directory and returns it.
func policyDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		writeFile(t, dir, name, body)
	}
	return dir
}

func newEngine(t *testing.T, files map[string]string, cfg Config) *Engine {
	t.Helper()
	cfg.Dir = policyDir(t, files)
	if cfg.EvalTimeout == 0 {
		cfg.EvalTimeout = testTimeout
	}
	e, err := New(t.Context(), cfg, nil)
	require.NoError(t, err)
	return e
}

var decisionID = regexp.MustCompile(`^[0-9a-f]{32}$`)

// loopPolicy never finishes on its own: 2000^3 iterations.
const loopPolicy = `package chartguard

xs := numbers.range(1, 2000)

decision := {"allow": true} if {
	some a in xs
	some b in xs
	some c in xs
	a + b + c < 0
}
`

func TestDecideFailsClosed(t *testing.T) {
	canceled, cancel := context.WithCancel(t.Context())
	cancel()

	tests := []struct {
		name    string
		policy  string
		timeout time.Duration
		ctx     context.Context
		in      *chartguard.Input
		wantErr error
		reason  string
		errText string // must appear in the error
		errHide string // must not appear in the error
	}{
		{name: "undefined decision", policy: `decision := {"allow": true} if input.user.sub == "nobody"`,
			wantErr: ErrUndefined, reason: ReasonUndefined},
		{name: "allow as string", policy: `decision := {"allow": input.user.sub, "reasons": []}`,
			wantErr: ErrShape, reason: ReasonMalformed, errText: "allow is string"},
		{name: "reasons not a list", policy: `decision := {"allow": true, "reasons": input.user.sub}`,
			wantErr: ErrShape, reason: ReasonMalformed, errText: "reasons is string"},
		{name: "reasons hold a number", policy: `decision := {"allow": true, "reasons": ["ok", count(input.user.sub)]}`,
			wantErr: ErrShape, reason: ReasonMalformed, errText: "reasons[1] is number"},
		{name: "obligations wrong types", policy: `decision := {"allow": true, "obligations": {"max_count": input.user.sub}}`,
			wantErr: ErrShape, reason: ReasonMalformed, errText: "obligations.max_count"},
		{name: "decision not an object", policy: `decision := input.user.sub != ""`,
			wantErr: ErrShape, reason: ReasonMalformed, errText: "decision is boolean"},
		{name: "decision is a string", policy: `decision := concat("", ["al", "low"])`,
			wantErr: ErrShape, reason: ReasonMalformed, errText: "decision is string"},
		{name: "huge input: 100k query parameters", policy: `decision := {"allow": true}`,
			in: func() *chartguard.Input {
				in := physicianRead()
				in.Request.Query = make(map[string][]string, 100_000)
				for i := range 100_000 {
					in.Request.Query["p"+strconv.Itoa(i)] = []string{"x"}
				}
				return &in
			}(), wantErr: ErrInput, reason: ReasonInput, errText: "input too large"},
		{name: "huge input: one long string", policy: `decision := {"allow": true}`,
			in: func() *chartguard.Input {
				in := physicianRead()
				in.Request.Path = strings.Repeat("a", 2<<20)
				return &in
			}(), wantErr: ErrInput, reason: ReasonInput, errText: "input too large"},
		{name: "division by zero", policy: `decision := {"allow": 10 / input.usage.distinct_patients_window > 1}`,
			in: &chartguard.Input{}, wantErr: ErrEval, reason: ReasonError, errText: "eval_builtin_error at p.rego:3"},
		{name: "conflicting outputs", policy: "decision := {\"allow\": true} if input.user.sub != \"\"\n\ndecision := {\"allow\": false} if input.user.sub != \"\"",
			wantErr: ErrEval, reason: ReasonError, errText: "eval_conflict_error"},
		{name: "built-in errors do not echo input", policy: `decision := {"allow": to_number(input.user.sub) > 0}`,
			wantErr: ErrEval, reason: ReasonError, errText: "eval_builtin_error", errHide: "u1"},
		{name: "timeout", policy: strings.TrimPrefix(loopPolicy, "package chartguard\n"), timeout: time.Millisecond,
			wantErr: ErrTimeout, reason: ReasonTimeout},
		{name: "caller canceled", policy: strings.TrimPrefix(loopPolicy, "package chartguard\n"), ctx: canceled,
			wantErr: context.Canceled, reason: ReasonCanceled},
		{name: "nil input", policy: `decision := {"allow": true}`, in: nil,
			wantErr: ErrInput, reason: ReasonInput},
		{name: "unencodable input", policy: `decision := {"allow": true}`,
			in:      &chartguard.Input{Request: chartguard.Request{Time: time.Date(12000, 1, 1, 0, 0, 0, 0, time.UTC)}},
			wantErr: ErrInput, reason: ReasonInput, errText: "request.time"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, map[string]string{"p.rego": "package chartguard\n\n" + tc.policy + "\n"},
				Config{EvalTimeout: tc.timeout})
			ctx := tc.ctx
			if ctx == nil {
				ctx = t.Context()
			}
			in := tc.in
			if in == nil && tc.wantErr != ErrInput {
				typical := physicianRead()
				in = &typical
			}

			start := time.Now()
			got, err := e.Decide(ctx, in)

			require.ErrorIs(t, err, tc.wantErr)
			assert.Less(t, time.Since(start), 10*time.Second, "evaluation stopped")
			assert.False(t, got.Allow)
			assert.Equal(t, []string{tc.reason}, got.Reasons)
			assert.Equal(t, chartguard.BreakGlass{}, got.BreakGlass)
			assert.Equal(t, chartguard.Obligations{}, got.Obligations)
			assert.Regexp(t, decisionID, got.ID)
			assert.Equal(t, e.Revision(), got.Revision)
			if tc.errText != "" {
				assert.Contains(t, err.Error(), tc.errText)
			}
			if tc.errHide != "" {
				assert.NotContains(t, err.Error(), tc.errHide)
			}
		})
	}
}

func TestDecideReadsPolicyAndData(t *testing.T) {
	e := newEngine(t, map[string]string{
		"p.rego": `package chartguard

decision := {
	"allow": input.user.roles[_] in data.allowed_roles,
	"reasons": [data.reason],
	"extra": "ignored",
	"obligations": {"tags": data.roles.tags, "max_count": 5},
}
`,
		"data.json":       `{"allowed_roles": ["physician"], "reason": "from data"}`,
		"roles/data.yaml": "tags: [vip, sensitive]\n",
	}, Config{})

	in := physicianRead()
	got, err := e.Decide(t.Context(), &in)
	require.NoError(t, err)
	assert.True(t, got.Allow)
	assert.Equal(t, []string{"from data"}, got.Reasons)
	assert.Equal(t, chartguard.Obligations{Tags: []string{"vip", "sensitive"}, MaxCount: 5}, got.Obligations)
	assert.Regexp(t, decisionID, got.ID)
	assert.Equal(t, e.Revision(), got.Revision)
}

func TestDecideUsesRequestTimeAsPolicyClock(t *testing.T) {
	e := newEngine(t, map[string]string{"p.rego": `package chartguard

decision := {"allow": time.now_ns() == time.parse_rfc3339_ns(input.request.time)}
`}, Config{})
	in := physicianRead()
	in.Request.Time = time.Date(2001, 2, 3, 4, 5, 6, 7, time.UTC)
	got, err := e.Decide(t.Context(), &in)
	require.NoError(t, err)
	assert.True(t, got.Allow, "time.now_ns() is the request time")
}

func TestDecideIDsAreUnique(t *testing.T) {
	e := newDefaultEngine(t)
	in := physicianRead()
	seen := map[string]bool{}
	for range 200 {
		d, err := e.Decide(t.Context(), &in)
		require.NoError(t, err)
		require.False(t, seen[d.ID], "duplicate decision id %s", d.ID)
		seen[d.ID] = true
	}
}

func TestDecideConcurrently(t *testing.T) {
	e := newDefaultEngine(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8*50)
	for g := range 8 {
		wg.Go(func() {
			in := physicianRead()
			p := "p" + string(rune('a'+g))
			in.Resource.Patients = []string{p}
			in.Relationship = map[string]chartguard.Relationship{p: {CareTeam: true}}
			for range 50 {
				d, err := e.Decide(context.Background(), &in)
				if err == nil && !d.Allow {
					err = assert.AnError
				}
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestNewErrors(t *testing.T) {
	const ok = "package chartguard\n\ndecision := {\"allow\": false}\n"
	tests := []struct {
		name    string
		files   map[string]string
		cfg     Config
		wantErr error  // if set, errors.Is must hold
		want    string // in the error message
	}{
		{name: "syntax error names file and line",
			files: map[string]string{"ok.rego": ok, "sub/bad.rego": "package chartguard\n\nx := 1\n\ny := ]\n"},
			want:  "sub/bad.rego:5"},
		{name: "v0 syntax rejected",
			files: map[string]string{"v0.rego": "package chartguard\n\ndecision = {\"allow\": true} { true }\n"},
			want:  "v0.rego:3: rego_parse_error"},
		{name: "v0 rule body rejected even with future imports",
			files: map[string]string{"v0.rego": "package chartguard\n\nimport future.keywords.if\n\ndeny[x] { x := 1 }\n"},
			want:  "v0.rego:5: rego_parse_error"},
		{name: "compile error names file and line",
			files: map[string]string{"p.rego": "package chartguard\n\ndecision := {\"allow\": x}\n"},
			want:  "p.rego:3: rego_unsafe_var_error"},
		{name: "network built-ins refused",
			files: map[string]string{"p.rego": "package chartguard\n\ndecision := http.send({\"method\": \"get\", \"url\": \"http://x\"}).body\n"},
			want:  "http.send"},
		{name: "DNS built-in refused",
			files: map[string]string{"p.rego": "package chartguard\n\ndecision := {\"allow\": count(net.lookup_ip_addr(\"x\")) > 0}\n"},
			want:  "net.lookup_ip_addr"},
		{name: "no modules", files: map[string]string{"data.json": "{}", "p_test.rego": ok}, wantErr: ErrNoModules},
		{name: "query names no rule",
			files: map[string]string{"p.rego": "package other\n\ndecision := {\"allow\": true}\n"}, wantErr: ErrNoRule},
		{name: "query not a reference",
			files: map[string]string{"p.rego": ok}, cfg: Config{Query: "1 + 1"}, wantErr: ErrNoRule},
		{name: "query not under data",
			files: map[string]string{"p.rego": ok}, cfg: Config{Query: "input.decision"}, wantErr: ErrNoRule},
		{name: "negative timeout",
			files: map[string]string{"p.rego": ok}, cfg: Config{EvalTimeout: -time.Second}, want: "eval_timeout"},
		{name: "data files conflict",
			files: map[string]string{"p.rego": ok, "a/data.json": `{"x": 1}`, "a/data.yaml": "x: 2\n"},
			want:  "merge error"},
		{name: "bad JSON names file",
			files: map[string]string{"p.rego": ok, "data.json": `{"x": `}, want: "data.json"},
		{name: "load_errors reported",
			files:   map[string]string{"p.rego": ok + "\nload_errors contains \"table x is wrong\" if data.x == 1\n", "data.json": `{"x": 1}`},
			wantErr: ErrLoadErrors, want: "(1): table x is wrong"},
		{name: "load_errors capped",
			files:   map[string]string{"p.rego": ok + "\nload_errors contains sprintf(\"e%02d\", [i]) if some i in numbers.range(1, 12)\n"},
			wantErr: ErrLoadErrors, want: "(12): e01; e02; e03; e04; e05; e06; e07; e08; e09; e10; and 2 more"},
		{name: "load_errors of the wrong type",
			files:   map[string]string{"p.rego": ok + "\nload_errors := 1\n"},
			wantErr: ErrShape, want: "data.chartguard.load_errors"},
		{name: "load_errors failing",
			files: map[string]string{"p.rego": ok + "\nload_errors contains x if x := to_number(\"a\")\n"},
			want:  "data.chartguard.load_errors"},
		{name: "oversized file",
			files: map[string]string{"p.rego": ok, "big.json": `{"x": "` + strings.Repeat("a", maxFileBytes) + `"}`},
			want:  "big.json: too large"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Dir = policyDir(t, tc.files)
			e, err := New(t.Context(), tc.cfg, nil)
			require.Error(t, err)
			assert.Nil(t, e)
			if tc.wantErr != nil {
				assert.ErrorIs(t, err, tc.wantErr)
			}
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

// TestNewAcceptsEmptyLoadErrors: load_errors that is empty or undefined
// does not stop a policy loading.
func TestNewAcceptsEmptyLoadErrors(t *testing.T) {
	const decision = "package chartguard\n\ndecision := {\"allow\": true}\n"
	for name, rule := range map[string]string{
		"empty set":   "load_errors contains \"x\" if data.x == 2\n",
		"empty array": "load_errors := []\n",
		"undefined":   "load_errors := [] if data.x == 2\n",
		"elsewhere":   "package other\n\nload_errors := {\"not ours\"}\n",
	} {
		t.Run(name, func(t *testing.T) {
			files := map[string]string{"p.rego": decision + "\n" + rule, "data.json": `{"x": 1}`}
			if name == "elsewhere" {
				files = map[string]string{"p.rego": decision, "q.rego": rule}
			}
			e := newEngine(t, files, Config{})
			in := physicianRead()
			d, err := e.Decide(t.Context(), &in)
			require.NoError(t, err)
			assert.True(t, d.Allow)
		})
	}
}

// TestDefaultPolicyRefusesOldData: the default policy's load_errors
// refuses data.json in the list shape of earlier versions, in which its
// lookups would fail open.
func TestDefaultPolicyRefusesOldData(t *testing.T) {
	files := map[string]string{"data.json": `{"chartguard_data": {"self_only_roles": ["patient", "proxy"], "clinical_types": ["Observation"]}}`}
	rego, err := filepath.Glob(filepath.Join(defaultDir, "*.rego"))
	require.NoError(t, err)
	for _, f := range rego {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		files[filepath.Base(f)] = string(b)
	}
	_, err = New(t.Context(), Config{Dir: policyDir(t, files)}, nil)
	require.ErrorIs(t, err, ErrLoadErrors)
	assert.Contains(t, err.Error(), "data.chartguard_data.self_only_roles must be an object")
	assert.Contains(t, err.Error(), "data.chartguard_data.clinical_types must be an object")
}

func TestNewMissingDir(t *testing.T) {
	_, err := New(t.Context(), Config{Dir: filepath.Join(t.TempDir(), "nope")}, nil)
	assert.ErrorIs(t, err, fs.ErrNotExist)
}

func TestNewRefusesSymlinkOutOfDir(t *testing.T) {
	outside := policyDir(t, map[string]string{"evil.rego": "package chartguard\n\ndecision := {\"allow\": true}\n"})
	dir := policyDir(t, map[string]string{"p.rego": "package chartguard\n\nx := 1\n"})
	require.NoError(t, os.Symlink(filepath.Join(outside, "evil.rego"), filepath.Join(dir, "evil.rego")))
	_, err := New(t.Context(), Config{Dir: dir}, nil)
	assert.Error(t, err)
}

func TestNewIgnores(t *testing.T) {
	const decision = "package chartguard\n\ndecision := {\"allow\": true}\n"
	e := newEngine(t, map[string]string{
		"p.rego":            decision,
		"broken_test.rego":  "package chartguard_test\n\ntest_x if {\n",
		".hidden.rego":      "not rego at all",
		".git/HEAD.rego":    "not rego either",
		"README.md":         "# notes",
		"bundle.tar.gz":     "not a tarball",
		"notes/readme.txt":  "text",
		"sub/.swap.json":    "{",
		"sub/settings.yaml": "a: 1\n",
	}, Config{})
	in := physicianRead()
	d, err := e.Decide(t.Context(), &in)
	require.NoError(t, err)
	assert.True(t, d.Allow)
}

func TestRevision(t *testing.T) {
	base := map[string]string{
		"p.rego":    "package chartguard\n\ndecision := {\"allow\": false}\n",
		"data.json": `{"a": [1, 2]}`,
	}
	changed := func(name, body string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		m[name] = body
		return m
	}
	rev := func(files map[string]string) string {
		return newEngine(t, files, Config{}).Revision()
	}
	r := rev(base)
	assert.Regexp(t, `^[0-9a-f]{16}$`, r)

	tests := []struct {
		name  string
		files map[string]string
		same  bool
	}{
		{"same files elsewhere", base, true},
		{"test file added", changed("p_test.rego", "package chartguard_test\n\ntest_x if true\n"), true},
		{"data reformatted", changed("data.json", "{\n  \"a\": [1,2]\n}\n"), true},
		{"rego comment changed", changed("p.rego", "package chartguard\n\n# note\ndecision := {\"allow\": false}\n"), false},
		{"data value changed", changed("data.json", `{"a": [1, 3]}`), false},
		{"module added", changed("q.rego", "package chartguard\n\ny := 1\n"), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.same {
				assert.Equal(t, r, rev(tc.files))
			} else {
				assert.NotEqual(t, r, rev(tc.files))
			}
		})
	}
}

func TestConfigSetDefaults(t *testing.T) {
	var c Config
	c.SetDefaults()
	assert.Equal(t, "configs/policy", c.Dir)
	assert.Equal(t, "data.chartguard.decision", c.Query)
	assert.Equal(t, 50*time.Millisecond, c.EvalTimeout)
	assert.Equal(t, BundleConfig{Poll: BundlePollConfig{Min: 30 * time.Second, Max: 120 * time.Second}}, c.Bundle,
		"no bundle by default; poll 30s..120s")
	require.NoError(t, c.Bundle.Validate())

	set := Config{Dir: "d", Query: "data.x.y", EvalTimeout: time.Second,
		Bundle: BundleConfig{URL: "https://b.example/x.tar.gz", Poll: BundlePollConfig{Min: 5 * time.Second, Max: 9 * time.Second}}}
	c = set
	c.SetDefaults()
	assert.Equal(t, set.Dir, c.Dir, "set fields are kept")
	assert.Equal(t, set.Query, c.Query)
	assert.Equal(t, set.EvalTimeout, c.EvalTimeout)
	assert.Equal(t, set.Bundle, c.Bundle)
}

// TestLateDecisionDenies: a decision that finishes after its deadline is a
// timeout, however fast the evaluation was — never an allow by a race.
func TestLateDecisionDenies(t *testing.T) {
	cfg := Config{Dir: defaultDir, EvalTimeout: time.Nanosecond}
	cfg.SetDefaults()
	e, err := New(t.Context(), cfg, nil)
	require.NoError(t, err)
	for range 50 {
		in := physicianRead()
		d, err := e.Decide(t.Context(), &in)
		require.ErrorIs(t, err, ErrTimeout)
		assert.False(t, d.Allow)
		assert.Equal(t, []string{ReasonTimeout}, d.Reasons)
	}
}

// TestLoadRefusesRuleOverData: data and a rule at one path are refused, as
// `opa eval -d` refuses them, rather than the rule silently winning.
func TestLoadRefusesRuleOverData(t *testing.T) {
	_, err := New(t.Context(), Config{Dir: policyDir(t, map[string]string{
		"p.rego":    "package chartguard\n\ndecision := {\"allow\": false, \"reasons\": [\"x\"]}\n",
		"data.json": `{"chartguard": {"decision": {"allow": true}}}`,
	})}, nil)
	require.Error(t, err)
	assert.ErrorContains(t, err, "conflict")
}
