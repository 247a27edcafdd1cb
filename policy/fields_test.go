package policy

import (
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chartguard/chartguard/chartguard"
)

// compiledModules compiles one Rego v1 module (package p) for inputFields.
func compiledModules(t *testing.T, body string) map[string]*ast.Module {
	t.Helper()
	m, err := ast.ParseModuleWithOpts("p.rego", "package p\n\n"+body, ast.ParserOptions{RegoVersion: ast.RegoV1})
	require.NoError(t, err)
	src := &source{modules: map[string]*ast.Module{"p.rego": m}}
	c, err := src.compiler()
	require.NoError(t, err)
	return c.Modules
}

// paths lists what f keeps, as "a.b" strings ("*" for everything).
func paths(f *fields) []string {
	if f == nil {
		return nil
	}
	if f.all {
		return []string{"*"}
	}
	var out []string
	for k, sub := range f.sub {
		for _, p := range paths(sub) {
			if p == "*" {
				out = append(out, k)
			} else {
				out = append(out, k+"."+p)
			}
		}
	}
	return out
}

func TestInputFields(t *testing.T) {
	tests := []struct {
		name string
		rego string
		want []string
	}{
		{"no input", `x := 1`, nil},
		{"one field", `x if input.user.sub == "u1"`, []string{"user.sub"}},
		{"two parts", "x if input.user.sub == \"u1\"\ny if input.resource.kind == \"fhir\"", []string{"user.sub", "resource.kind"}},
		{"deeper refs keep the field", `x if input.user.roles[_] == "nurse"`, []string{"user.roles"}},
		{"a part as a whole", `x := input.usage`, []string{"usage"}},
		{"import alias", "import input.resource\n\nx if resource.kind == \"fhir\"", []string{"resource.kind"}},
		{"import alias as a whole", "import input.resource\n\nx := resource", []string{"resource"}},
		{"function argument", "f(r) := r[0]\n\nx := f(input.user.roles)", []string{"user.roles"}},
		{"variable key in a part", `x := input.relationship[p] if p := "p1"`, []string{"relationship"}},
		{"constant map key", `x := input.relationship.p1.care_team`, []string{"relationship.p1"}},
		{"the whole input", `x := input`, []string{"*"}},
		{"input as an argument", `x := json.marshal(input)`, []string{"*"}},
		{"variable key at the top", `x := input[k] if k := "user"`, []string{"*"}},
		{"walk", `x contains p if walk(input, [p, _])`, []string{"*"}},
		{"with target", "y := input.user.sub\n\nx if {\n\ty == \"z\" with input.user as {\"sub\": \"z\"}\n}", []string{"user"}},
		{"with the whole input", "y := input.user.sub\n\nx if {\n\ty == \"z\" with input as {}\n}", []string{"*"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := paths(inputFields(compiledModules(t, tc.rego)))
			assert.ElementsMatch(t, tc.want, got)
		})
	}
}

// project keeps the parts of v that f names.
func project(v ast.Value, f *fields) ast.Value {
	if f.all {
		return v
	}
	obj, ok := v.(ast.Object)
	if !ok {
		return v
	}
	out := ast.NewObject()
	obj.Foreach(func(k, val *ast.Term) {
		if s, ok := k.Value.(ast.String); ok {
			if sub := f.get(string(s)); sub != nil {
				out.Insert(k, ast.NewTerm(project(val.Value, sub)))
			}
		}
	})
	return out
}

// TestPrunedInputIsAProjection: an encoder built for some fields gives
// exactly those parts of the full input, for the default policy (whose
// encoder also shares terms for its data's keys) and for hand-picked
// fields, on every shape of input.
func TestPrunedInputIsAProjection(t *testing.T) {
	e := newDefaultEngine(t)
	uses := map[string]*fields{
		"default policy": e.enc.use, // tested with the engine's encoder below
		"nothing":        {sub: map[string]*fields{}},
		"one map key": {sub: map[string]*fields{
			"relationship": {sub: map[string]*fields{"s99": allFields}},
			"request":      {sub: map[string]*fields{"query": {sub: map[string]*fields{"k\ufffd": allFields}}}},
		}},
		"session and usage": {sub: map[string]*fields{"session": allFields, "usage": allFields}},
	}
	full := newEncoder(allFields)
	inputs := []chartguard.Input{{}, physicianRead(), filled(), {
		Request:      chartguard.Request{Query: map[string][]string{"k\xff": {"v"}}},
		Relationship: map[string]chartguard.Relationship{"s99": {PCP: true}},
	}}
	for name, use := range uses {
		t.Run(name, func(t *testing.T) {
			enc := newEncoder(use)
			if name == "default policy" {
				enc = e.enc // shares terms for the keys of the policy's data
			}
			for _, in := range inputs {
				got, err := enc.input(&in)
				require.NoError(t, err)
				all, err := full.input(&in)
				require.NoError(t, err)
				want := project(all, use)
				assert.Zero(t, got.Compare(want), "input(%+v)\n got %v\nwant %v", in, got, want)
			}
		})
	}
}

// TestPrunedInputStillRejectsUnencodableTimes: whether an input is valid
// does not depend on which parts the policy reads.
func TestPrunedInputStillRejectsUnencodableTimes(t *testing.T) {
	enc := newEncoder(&fields{sub: map[string]*fields{"user": allFields}})
	late := time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, in := range []chartguard.Input{
		{Request: chartguard.Request{Time: late}},
		{Session: chartguard.SessionInfo{BreakGlass: []chartguard.BTGGrant{{ExpiresAt: late}}}},
	} {
		_, err := enc.input(&in)
		assert.Error(t, err)
	}
}

// TestDecideGivesThePolicyWhatItReads: end to end, a policy sees the
// fields it refers to, and all of them when it uses the input as a value.
func TestDecideGivesThePolicyWhatItReads(t *testing.T) {
	tests := []struct {
		name   string
		policy string
		want   string
	}{
		{"a field", `decision := {"allow": false, "reasons": [sprintf("%v", [input.usage.distinct_patients_window])]}`, "3"},
		{"a map entry", `decision := {"allow": false, "reasons": [sprintf("%v", [input.relationship.p1.care_team])]}`, "true"},
		{"the whole input", `decision := {"allow": false, "reasons": [json.marshal(input.token)]}`, `{"kind":"session","purpose_of_use":"TREAT"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, map[string]string{"p.rego": "package chartguard\n\n" + tc.policy}, Config{})
			in := physicianRead()
			d, err := e.Decide(t.Context(), &in)
			require.NoError(t, err)
			assert.Equal(t, []string{tc.want}, d.Reasons)
		})
	}
	// A policy that reads the input as a whole sees all of it.
	e := newEngine(t, map[string]string{"p.rego": "package chartguard\n\ndecision := {\"allow\": false, \"reasons\": [json.marshal(input)]}"}, Config{})
	in := physicianRead()
	d, err := e.Decide(t.Context(), &in)
	require.NoError(t, err)
	want, err := newEncoder(allFields).input(&in)
	require.NoError(t, err)
	require.Len(t, d.Reasons, 1)
	got, err := ast.ParseTerm(d.Reasons[0])
	require.NoError(t, err)
	assert.Zero(t, got.Value.Compare(want))
}

// TestDefaultPolicyReadsFewFields: the default policy reads a handful of
// fields, so Decide encodes only those (a regression here costs time on
// every request, not correctness).
func TestDefaultPolicyReadsFewFields(t *testing.T) {
	e := newDefaultEngine(t)
	assert.ElementsMatch(t, []string{
		"user.sub", "user.roles", "user.patient_links", "user.fhir_user",
		"resource.kind", "resource.phase", "resource.interaction", "resource.action", "resource.type",
		"resource.operation", "resource.patient_status", "resource.patients", "resource.labels",
		"relationship", "user.department", "token.kind", "token.scopes", "token.launch_patient",
		"token.purpose_of_use", "session.mfa", "session.mfa_age_s", "session.break_glass",
		"request.time", "usage.distinct_patients_window",
	}, paths(e.enc.use))
}
