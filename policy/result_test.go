package policy

import (
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
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
