package policy

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chartguard/chartguard/chartguard"
)

func TestParseRedactPath(t *testing.T) {
	good := []struct {
		path string
		want RedactPath
	}{
		{"Patient.telecom", RedactPath{Type: "Patient", Elements: []RedactElement{{Name: "telecom"}}}},
		{"Patient.identifier[system=http://hl7.org/fhir/sid/us-ssn]", RedactPath{Type: "Patient",
			Elements: []RedactElement{{Name: "identifier", FilterKey: "system", FilterValue: "http://hl7.org/fhir/sid/us-ssn"}}}},
		{"Patient.contact.telecom[system=phone]", RedactPath{Type: "Patient",
			Elements: []RedactElement{{Name: "contact"}, {Name: "telecom", FilterKey: "system", FilterValue: "phone"}}}},
		{"Observation.code.coding[code=1234-5].display", RedactPath{Type: "Observation",
			Elements: []RedactElement{{Name: "code"}, {Name: "coding", FilterKey: "code", FilterValue: "1234-5"}, {Name: "display"}}}},
		{"Observation.meta.security[system=http://terminology.hl7.org/CodeSystem/v3-Confidentiality]", RedactPath{Type: "Observation",
			Elements: []RedactElement{{Name: "meta"}, {Name: "security", FilterKey: "system", FilterValue: "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"}}}},
	}
	for _, tc := range good {
		t.Run(tc.path, func(t *testing.T) {
			got, err := ParseRedactPath(tc.path)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}

	bad := []string{
		"", "Patient", "Patient.", "patient.telecom", "Patient..telecom", "Patient.telecom.",
		"Patient.Telecom", "Patient.tele-com", "Patient.name[system=x]", // name is a HumanName
		"Patient.identifier[code=x]",  // Identifier has no code
		"Patient.telecom[use=home]",   // only system or code
		"Patient.identifier[system=]", // empty value
		"Patient.identifier[system=x", // unclosed
		"Patient.identifier[system=x]x", "Patient.identifier[system=x][system=y]",
		"Patient.identifier[system= x]", "Patient.identifier[system=a[b]",
		"Patient.identifier[system]", "*.telecom", "Patient.*", "Patient.telecom[0]",
	}
	for _, path := range bad {
		t.Run("bad "+path, func(t *testing.T) {
			_, err := ParseRedactPath(path)
			require.ErrorIs(t, err, ErrRedactPath)
		})
	}
}

// TestLoadRefusesBadRedactPaths: a malformed redaction path written in the
// policy or its data fails the load, naming where it is.
func TestLoadRefusesBadRedactPaths(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		where string
	}{
		{"object literal", map[string]string{"p.rego": `package chartguard

decision := {"allow": true, "obligations": {"redact": ["Patient.telecom", "Patient.name[system=x]"]}}
`}, "p.rego:3"},
		{"partial set rule", map[string]string{"p.rego": `package chartguard

decision := {"allow": true, "obligations": {"redact": redact}}

redact contains "Patient.telecom"

redact contains "patient telecom" if input.user.sub == "u1"
`}, "p.rego:7"},
		{"a named rule", map[string]string{"p.rego": `package chartguard

decision := {"allow": true, "obligations": {"redact": redact_paths}} if input.user.sub != ""

redact_paths := ["Patient.telecom[use=home]"]
`}, "p.rego:5"},
		{"a named rule in another module", map[string]string{"p.rego": `package chartguard

decision := {"allow": true, "obligations": {"redact": data.chartguard.paths}}
`, "q.rego": `package chartguard

paths contains "Patient..name"
`}, "q.rego:3"},
		{"data", map[string]string{"p.rego": `package chartguard

decision := {"allow": true, "obligations": {"redact": data.vip.redact}}
`, "vip/data.json": `{"redact": ["Patient.identifier[system=]"]}`}, "data.vip.redact[0]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(t.Context(), Config{Dir: policyDir(t, tc.files)}, nil)
			require.ErrorIs(t, err, ErrRedactPath)
			assert.Contains(t, err.Error(), tc.where)
		})
	}

	e := newEngine(t, map[string]string{"p.rego": `package chartguard

decision := {"allow": true, "obligations": {"redact": ["Patient.identifier[system=http://hl7.org/fhir/sid/us-ssn]", "Patient.telecom"]}}
`}, Config{})
	in := physicianRead()
	d, err := e.Decide(t.Context(), &in)
	require.NoError(t, err)
	assert.True(t, d.Allow)
	assert.Equal(t, []string{"Patient.identifier[system=http://hl7.org/fhir/sid/us-ssn]", "Patient.telecom"}, d.Obligations.Redact)
}

// TestLoadChecksOnlyTheNamedRedactRule: a rule of the same name in another
// package is not a redaction rule.
func TestLoadChecksOnlyTheNamedRedactRule(t *testing.T) {
	_, err := New(t.Context(), Config{Dir: policyDir(t, map[string]string{
		"p.rego": "package chartguard\n\ndecision := {\"allow\": true, \"obligations\": {\"redact\": paths}}\n\npaths := [\"Patient.telecom\"]\n",
		"r.rego": "package routes\n\npaths := [\"/chart/notes\"]\n",
	})}, nil)
	require.NoError(t, err)
}

// TestDecideDeniesComputedBadRedactPath: a path built at evaluation time
// cannot be checked at load; the decision carrying it denies.
func TestDecideDeniesComputedBadRedactPath(t *testing.T) {
	e := newEngine(t, map[string]string{"p.rego": `package chartguard

decision := {"allow": true, "obligations": {"redact": [concat(".", ["Patient", input.user.sub, "x["])]}}
`}, Config{})
	in := physicianRead()
	d, err := e.Decide(t.Context(), &in)
	require.ErrorIs(t, err, ErrShape)
	require.ErrorIs(t, err, ErrRedactPath)
	assert.False(t, d.Allow)
	assert.Equal(t, []string{ReasonRedactPath}, d.Reasons)
	assert.Equal(t, chartguard.Obligations{}, d.Obligations)
	assert.Equal(t, e.Revision(), d.Revision)
	assert.NotContains(t, err.Error(), "u1", "the error does not echo input")
}

func FuzzParseRedactPath(f *testing.F) {
	for _, s := range []string{"Patient.telecom", "Patient.identifier[system=http://x/y]",
		"Observation.code.coding[code=1].display", "Patient.identifier[system=x", "P.a[b=c]", "Patient..x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseRedactPath(s)
		if err != nil {
			require.ErrorIs(t, err, ErrRedactPath)
			return
		}
		// A parsed path prints back to itself.
		out := p.Type
		for _, e := range p.Elements {
			out += "." + e.Name
			if e.FilterKey != "" {
				out += "[" + e.FilterKey + "=" + e.FilterValue + "]"
			}
		}
		require.Equal(t, s, out)
	})
}
