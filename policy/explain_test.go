package policy

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chartguard/chartguard/chartguard"
)

const explainPolicy = `package chartguard

roles := {"physician", "nurse"}

default care_team := false

care_team if input.relationship[input.resource.patients[0]].care_team

reasons contains "not on the patient's care team" if {
	trace("checking care team")
	not care_team
}

reasons contains "no role" if count(input.user.roles) == 0

decision := {"allow": count(reasons) == 0, "reasons": reasons}
`

func TestExplainSaysWhy(t *testing.T) {
	e := newEngine(t, map[string]string{"p.rego": explainPolicy}, Config{})
	in := with(physicianRead(), func(in *chartguard.Input) { in.Relationship["p1"] = chartguard.Relationship{} })

	d, why, err := e.Explain(t.Context(), &in)
	require.NoError(t, err)
	assert.False(t, d.Allow)
	assert.Equal(t, e.Revision(), d.Revision)

	var fired []string
	for _, f := range why.Fired {
		fired = append(fired, f.String())
	}
	assert.Equal(t, []string{
		"p.rego:5: default care_team := false",
		`p.rego:9: reasons contains "not on the patient's care team"`,
		`p.rego:16: decision := {"allow": false, "reasons": {"not on the patient's care team"}}`,
	}, fired, "the rules that held, with the values they gave; constants (roles) and rules that failed (no role) are left out")
	require.Len(t, why.Notes, 1)
	assert.Equal(t, Fired{File: "p.rego", Line: 10, Rule: "checking care team"}, why.Notes[0])

	// Explain decides as Decide does.
	d2, err := e.Decide(t.Context(), &in)
	require.NoError(t, err)
	assert.Equal(t, d.Allow, d2.Allow)
	assert.Equal(t, d.Reasons, d2.Reasons)
}

func TestRunTestsWithCoverage(t *testing.T) {
	dir := policyDir(t, map[string]string{"p.rego": explainPolicy, "p_test.rego": `package chartguard_test

import data.chartguard

test_denied_without_care_team if not chartguard.decision.allow with input as {"user": {"roles": ["physician"]}, "resource": {"patients": ["p1"]}, "relationship": {}}
`})
	results, cov, err := RunTestsWithCoverage(t.Context(), dir)
	require.NoError(t, err)
	require.Len(t, results, 1)
	assert.Equal(t, TestPass, results[0].Outcome)
	assert.Greater(t, cov.Percent, 50.0)
	assert.Less(t, cov.Percent, 100.0, "the allow path is not covered")
	assert.Contains(t, cov.Files, "p.rego")
	assert.NotContains(t, cov.Files, "p_test.rego", "tests are not measured")
}

// TestExplainShowsTheDecisionRule: the rule of the decision that held is
// the explanation, even when its body is empty (a constant decision, an
// else branch); its value is printed whole, whitespace in strings kept,
// and a long one is cut between characters.
func TestExplainShowsTheDecisionRule(t *testing.T) {
	long := strings.Repeat("ü", maxExplainRule)
	cases := []struct {
		name, policy string
		want         string // a fired rule
	}{
		{"else branch", "decision := {\"allow\": true} if input.user.sub == \"nobody\"\nelse := {\"allow\": false, \"reasons\": [\"fallback\"]}",
			`p.rego:4: decision := {"allow": false, "reasons": ["fallback"]}`},
		{"constant deny", `decision := {"allow": false, "reasons": ["downtime"]}`,
			`p.rego:3: decision := {"allow": false, "reasons": ["downtime"]}`},
		{"spaces inside strings", `decision := {"allow": false, "reasons": [sprintf("role %s may not", [concat(" ", ["", "nurse"])])]}`,
			`p.rego:3: decision := {"allow": false, "reasons": ["role  nurse may not"]}`},
		{"long value", `decision := {"allow": false, "reasons": ["` + long + `"]}`, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, map[string]string{"p.rego": "package chartguard\n\n" + tc.policy + "\n"}, Config{})
			_, why, err := e.Explain(t.Context(), new(physicianRead()))
			require.NoError(t, err)
			require.NotEmpty(t, why.Fired, "a rule held")
			for _, f := range why.Fired {
				assert.True(t, utf8.ValidString(f.Rule))
				assert.LessOrEqual(t, utf8.RuneCountInString(f.Rule), maxExplainRule+1)
			}
			if tc.want != "" {
				assert.Equal(t, tc.want, why.Fired[len(why.Fired)-1].String())
			}
		})
	}
}

// TestExplainDefaultPolicyDenials: for the default policy's commonest
// denials the explanation carries the reason.
func TestExplainDefaultPolicyDenials(t *testing.T) {
	e := newDefaultEngine(t)
	for _, tc := range decideCases() {
		if !strings.HasPrefix(tc.name, "deny") {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			d, why, err := e.Explain(t.Context(), &tc.in)
			require.NoError(t, err)
			require.False(t, d.Allow)
			require.NotEmpty(t, d.Reasons)
			var all strings.Builder
			for _, f := range why.Fired {
				all.WriteString(f.Rule + "\n")
			}
			assert.Contains(t, all.String(), d.Reasons[0])
		})
	}
}
