package policy

import (
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chartguard/chartguard/chartguard"
)

func TestParseDecision(t *testing.T) {
	tests := []struct {
		name string
		rego string // a Rego term
		want chartguard.Decision
	}{
		{"minimal allow", `{"allow": true}`, chartguard.Decision{Allow: true}},
		{"minimal deny", `{"allow": false}`, chartguard.Decision{}},
		{"full contract", `{
			"allow": true,
			"reasons": ["r1", "r2"],
			"break_glass": {"allowed": true, "reasons": ["ETREAT", "BTG"]},
			"require_mfa_within_s": 300,
			"obligations": {"redact": ["Patient.telecom"], "block_export": true, "max_count": 100, "tags": ["vip"]}
		}`, chartguard.Decision{
			Allow:             true,
			Reasons:           []string{"r1", "r2"},
			BreakGlass:        chartguard.BreakGlass{Allowed: true, Reasons: []string{"ETREAT", "BTG"}},
			RequireMFAWithinS: 300,
			Obligations: chartguard.Obligations{
				Redact: []string{"Patient.telecom"}, BlockExport: true, MaxCount: 100, Tags: []string{"vip"},
			},
		}},
		{"extra keys ignored", `{"allow": false, "reasons": ["x"], "debug": {"a": 1}, "rule": "r7"}`,
			chartguard.Decision{Reasons: []string{"x"}}},
		{"sets read as sorted lists", `{"allow": false, "reasons": {"b", "a"}, "obligations": {"tags": {"z", "y"}}}`,
			chartguard.Decision{Reasons: []string{"a", "b"}, Obligations: chartguard.Obligations{Tags: []string{"y", "z"}}}},
		{"empty lists read as nil", `{"allow": false, "reasons": [], "break_glass": {"reasons": []}, "obligations": {"redact": [], "tags": set()}}`,
			chartguard.Decision{}},
		{"zero numbers", `{"allow": true, "require_mfa_within_s": 0, "obligations": {"max_count": 0}}`,
			chartguard.Decision{Allow: true}},
		{"integral float accepted", `{"allow": true, "require_mfa_within_s": 60.0}`,
			chartguard.Decision{Allow: true, RequireMFAWithinS: 60}},
		{"exponent form accepted", `{"allow": true, "obligations": {"max_count": 2e2}}`,
			chartguard.Decision{Allow: true, Obligations: chartguard.Obligations{MaxCount: 200}}},
		{"largest count", `{"allow": true, "obligations": {"max_count": 2147483647}}`,
			chartguard.Decision{Allow: true, Obligations: chartguard.Obligations{MaxCount: 2147483647}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseDecision(ast.MustParseTerm(tc.rego).Value)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got, "parseDecision(%s)", tc.rego)
		})
	}
}

func TestParseDecisionRejectsWrongShapes(t *testing.T) {
	tests := []struct {
		name string
		rego string
		want string // in the error message
	}{
		{"not an object", `true`, "decision is boolean"},
		{"array", `[{"allow": true}]`, "decision is array"},
		{"no allow", `{"reasons": []}`, "no allow"},
		{"allow as string", `{"allow": "true"}`, "allow is string"},
		{"allow as number", `{"allow": 1}`, "allow is number"},
		{"allow null", `{"allow": null}`, "allow is null"},
		{"reasons as string", `{"allow": false, "reasons": "no"}`, "reasons is string"},
		{"reasons with a number", `{"allow": false, "reasons": ["ok", 7]}`, "reasons[1] is number"},
		{"reasons as object", `{"allow": false, "reasons": {"a": "b"}}`, "reasons is object"},
		{"break_glass not object", `{"allow": false, "break_glass": true}`, "break_glass is boolean"},
		{"break_glass.allowed string", `{"allow": false, "break_glass": {"allowed": "yes"}}`, "break_glass.allowed is string"},
		{"break_glass.reasons numbers", `{"allow": false, "break_glass": {"reasons": [1]}}`, "break_glass.reasons[0] is number"},
		{"mfa as string", `{"allow": true, "require_mfa_within_s": "60"}`, "require_mfa_within_s is string"},
		{"mfa negative", `{"allow": true, "require_mfa_within_s": -1}`, "require_mfa_within_s is not an integer"},
		{"mfa fraction", `{"allow": true, "require_mfa_within_s": 1.5}`, "require_mfa_within_s is not an integer"},
		{"mfa huge", `{"allow": true, "require_mfa_within_s": 1e300}`, "require_mfa_within_s is not an integer"},
		{"mfa just above int32", `{"allow": true, "require_mfa_within_s": 2147483648}`, "require_mfa_within_s is not an integer"},
		{"obligations not object", `{"allow": true, "obligations": []}`, "obligations is array"},
		{"redact not list", `{"allow": true, "obligations": {"redact": "Patient.telecom"}}`, "obligations.redact is string"},
		{"block_export string", `{"allow": true, "obligations": {"block_export": "true"}}`, "obligations.block_export is string"},
		{"max_count string", `{"allow": true, "obligations": {"max_count": "10"}}`, "obligations.max_count is string"},
		{"max_count negative", `{"allow": true, "obligations": {"max_count": -10}}`, "obligations.max_count is not an integer"},
		{"tags with null", `{"allow": true, "obligations": {"tags": [null]}}`, "obligations.tags[0] is null"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseDecision(ast.MustParseTerm(tc.rego).Value)
			require.ErrorIs(t, err, ErrShape)
			assert.Contains(t, err.Error(), tc.want)
			assert.Equal(t, chartguard.Decision{}, got, "a malformed decision converts to the zero (deny) value")
		})
	}
}

// A number the parser would refuse can still come out of evaluation; it must
// be refused in bounded time.
func TestParseDecisionRejectsHugeExponent(t *testing.T) {
	obj := ast.NewObject(
		[2]*ast.Term{ast.StringTerm("allow"), ast.BooleanTerm(true)},
		[2]*ast.Term{ast.StringTerm("require_mfa_within_s"), ast.NumberTerm("1e999999999")},
	)
	_, err := parseDecision(obj)
	require.ErrorIs(t, err, ErrShape)
}

// TestConstantDecisions checks the decisions a policy writes as constants:
// they are parsed once at load, each Decide gets its own copy, and a
// computed decision is still parsed from its result.
func TestConstantDecisions(t *testing.T) {
	e := newEngine(t, map[string]string{"p.rego": `package chartguard

decision := {
	"allow": true,
	"reasons": [],
	"obligations": {"redact": ["Patient.identifier"], "tags": ["vip"]},
} if {
	input.resource.type == "Patient"
} else := {"allow": false, "reasons": [sprintf("no %s", [input.resource.type])]}
`}, Config{})
	require.Len(t, e.constants, 1, "the first head is ground, the else head is not")

	in := physicianRead()
	in.Resource.Type = "Patient"
	d, err := e.Decide(t.Context(), &in)
	require.NoError(t, err)
	assert.True(t, d.Allow)
	assert.Equal(t, []string{"Patient.identifier"}, d.Obligations.Redact)
	assert.Equal(t, []string{"vip"}, d.Obligations.Tags)
	assert.Equal(t, e.Revision(), d.Revision)
	assert.Regexp(t, decisionID, d.ID)

	// A caller that changes its decision does not change the next one.
	d.Obligations.Redact[0], d.Obligations.Tags[0] = "changed", "changed"
	again, err := e.Decide(t.Context(), &in)
	require.NoError(t, err)
	assert.Equal(t, []string{"Patient.identifier"}, again.Obligations.Redact)
	assert.Equal(t, []string{"vip"}, again.Obligations.Tags)
	assert.NotEqual(t, d.ID, again.ID)

	in.Resource.Type = "Observation"
	d, err = e.Decide(t.Context(), &in)
	require.NoError(t, err)
	assert.False(t, d.Allow)
	assert.Equal(t, []string{"no Observation"}, d.Reasons)
}

// TestConstantDecisionsRefuseBadHeads: a ground head that breaks the
// contract could never be a valid decision, so the policy is refused at
// load with its file:line (`chartguard policy check` says so), whether it
// is the rule's value or an else branch's.
func TestConstantDecisionsRefuseBadHeads(t *testing.T) {
	rules := ast.MustParseModule(`package chartguard
decision := {"allow": true} if input.c
`).Rules
	c, err := constantDecisions(rules)
	require.NoError(t, err)
	assert.Equal(t, chartguard.Decision{Allow: true}, c[rules[0].Head.Value])

	cases := map[string]string{
		"allow is a string":   `decision := {"allow": "yes"} if input.a`,
		"no allow":            `decision := {"reasons": ["no allow"]} if input.b`,
		"the decision string": `decision := "allow"`,
		"an else branch":      "decision := {\"allow\": true} if input.a\nelse := {\"allow\": false, \"reasons\": \"x\"}",
	}
	for name, policy := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := New(t.Context(), Config{Dir: policyDir(t, map[string]string{"p.rego": "package chartguard\n\n" + policy + "\n"})}, nil)
			require.ErrorIs(t, err, ErrShape)
			assert.ErrorContains(t, err, "data.chartguard.decision can never be a valid decision: p.rego:")
		})
	}
}

// TestDefaultPolicyCommonAllowIsConstant holds the default policy's
// commonest allow to the constant path: OPA gives back the head term the
// compiled policy holds. If an OPA upgrade copied it instead, Decide would
// still be right, only slower; this test says so.
func TestDefaultPolicyCommonAllowIsConstant(t *testing.T) {
	e := newDefaultEngine(t)
	in := physicianRead()
	input, err := e.enc.input(&in)
	require.NoError(t, err)
	rs, err := e.query.Eval(t.Context(), rego.EvalParsedInput(input))
	require.NoError(t, err)
	require.Len(t, rs, 1)
	d, ok := e.constants[rs[0].Expressions[0].Value.(*ast.Term)]
	require.True(t, ok, "the fast allow's head should be served parsed")
	assert.True(t, d.Allow)
}

// FuzzParseDecision feeds policy results of every shape to parseDecision:
// it never panics, it either gives a decision or an ErrShape error, and its
// errors never quote a value (values may echo input, and errors are
// logged).
func FuzzParseDecision(f *testing.F) {
	for _, seed := range []string{
		`{"allow": true}`,
		`{"allow": false, "reasons": ["r"], "break_glass": {"allowed": true, "reasons": ["BTG"]}, "require_mfa_within_s": 300, "obligations": {"redact": ["Patient.identifier"], "block_export": true, "max_count": 50, "tags": {"vip"}}}`,
		`{"allow": "SECRET"}`,
		`{"allow": true, "reasons": ["a", 1]}`,
		`{"allow": true, "require_mfa_within_s": 1.5}`,
		`{"allow": true, "obligations": {"max_count": -1}}`,
		`{"allow": true, "break_glass": ["SECRET"]}`,
		`{1: true, "allow": false}`,
		`["allow", true]`,
		`null`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, text string) {
		term, err := ast.ParseTerm(text)
		if err != nil || !term.IsGround() {
			return
		}
		d, err := parseDecision(term.Value)
		if err != nil {
			require.ErrorIs(t, err, ErrShape)
			require.NotContains(t, err.Error(), "SECRET", "an error quotes a value")
			return
		}
		obj := term.Value.(ast.Object)
		assert.Equal(t, ast.Boolean(d.Allow), obj.Get(ast.StringTerm("allow")).Value)
	})
}
