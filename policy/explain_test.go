package policy

import (
	"testing"

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
