package policy

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chartguard/chartguard/chartguard"
)

// testTimeout replaces the 50ms default evaluation timeout in tests that
// are not about timeouts: under -race on a busy machine an evaluation can
// take longer, and these tests check decisions, not latency.
const testTimeout = 10 * time.Second

func newDefaultEngine(tb testing.TB) *Engine {
	tb.Helper()
	e, err := New(tb.Context(), Config{Dir: defaultDir, EvalTimeout: testTimeout}, nil)
	require.NoError(tb, err)
	return e
}

// physicianRead is a typical request: a physician's browser session reading
// one observation of a known patient.
func physicianRead() chartguard.Input {
	return chartguard.Input{
		User: chartguard.Identity{
			Issuer:   "https://idp.example.org",
			Subject:  "u1",
			Name:     "Dr. Example",
			Roles:    []string{"physician"},
			Groups:   []string{"emr-physicians"},
			FHIRUser: "Practitioner/pr1",
		},
		Token:   chartguard.Token{Kind: chartguard.TokenSession, PurposeOfUse: "TREAT"},
		Session: chartguard.SessionInfo{MFA: true, MFAMethod: "totp", MFAAgeS: 120, AuthAgeS: 900},
		Request: chartguard.Request{
			Method: "GET",
			Path:   "/fhir/Observation/o1",
			Query:  map[string][]string{},
			IP:     "192.0.2.10",
			Time:   time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC),
		},
		Resource: chartguard.Resource{
			Kind:          chartguard.KindFHIR,
			Phase:         chartguard.PhaseRequest,
			Type:          "Observation",
			ID:            "o1",
			Patients:      []string{"p1"},
			PatientStatus: chartguard.PatientsKnown,
			Action:        "read",
			Interaction:   "read",
			Labels:        []string{},
		},
		Relationship: map[string]chartguard.Relationship{"p1": {CareTeam: true}},
		Usage:        chartguard.Usage{DistinctPatientsWindow: 3},
	}
}

// with returns in changed by f.
func with(in chartguard.Input, f func(*chartguard.Input)) chartguard.Input {
	f(&in)
	return in
}
