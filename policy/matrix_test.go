package policy

import (
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chartguard/chartguard/chartguard"
)

// The dimensions of configs/policy/matrix.csv (see its header).
var (
	matrixRoles = []string{"physician", "nurse", "registration", "billing", "lab", "pharmacist",
		"privacy-officer", "it-admin", "patient", "him"}
	matrixTypes = []string{"Patient", "Observation", "Condition", "MedicationRequest",
		"DocumentReference", "Encounter", "Claim", "AuditEvent"}
	matrixActions       = []string{"read", "search", "create", "update", "delete", "export"}
	matrixRelationships = []string{"none", "care_team", "pcp", "encounter"}
	matrixLabels        = []string{"none", "R", "V", "PSY", "HIV", "VIP", "employee", "self"}
)

// matrixRow is one row of matrix.csv: five patterns, the expected outcome
// and an optional check.
type matrixRow struct {
	line     int         // the row's number among the data rows, from 1
	patterns [5][]string // nil: any value
	expect   string
	check    string
	used     bool
}

func (r *matrixRow) matches(key [5]string) bool {
	for i, p := range r.patterns {
		if p != nil && !slices.Contains(p, key[i]) {
			return false
		}
	}
	return true
}

// readMatrix parses matrix.csv, rejecting values outside the dimensions so
// that a typo cannot make a row silently match nothing.
func readMatrix(t *testing.T, path string) []*matrixRow {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	cr := csv.NewReader(f)
	cr.Comment = '#'
	cr.FieldsPerRecord = 7
	records, err := cr.ReadAll()
	require.NoError(t, err)
	require.NotEmpty(t, records)
	require.Equal(t, []string{"role", "type", "action", "relationship", "label", "expect", "check"}, records[0])
	dims := [5][]string{matrixRoles, matrixTypes, matrixActions, matrixRelationships, matrixLabels}
	var rows []*matrixRow
	for _, rec := range records[1:] {
		r := &matrixRow{line: len(rows) + 1, expect: rec[5], check: rec[6]}
		for i := range 5 {
			if rec[i] == "*" {
				continue
			}
			for v := range strings.SplitSeq(rec[i], "|") {
				require.Contains(t, dims[i], v, "matrix data row %d (%v): unknown value", r.line, rec)
				r.patterns[i] = append(r.patterns[i], v)
			}
		}
		require.Contains(t, []string{"allow", "deny", "btg"}, r.expect, "matrix data row %d (%v)", r.line, rec)
		rows = append(rows, r)
	}
	return rows
}

// matrixInput builds the input of one combination: a browser session with
// a 2-minute-old second factor, one known patient.
func matrixInput(key [5]string, phase string) chartguard.Input {
	role, typ, action, rel, label := key[0], key[1], key[2], key[3], key[4]
	patient := "pm"
	switch label {
	case "VIP":
		patient = "p7" // vip_patients in data.json
	case "employee":
		patient = "p8" // employee_patients in data.json
	}
	user := chartguard.Identity{Issuer: "https://idp.example.org", Subject: "u-matrix", Roles: []string{role},
		FHIRUser: "Practitioner/pr-matrix"}
	if role == "patient" {
		user.FHIRUser = "Patient/pz"
		user.PatientLinks = []string{"Patient/pz"}
	}
	if label == "self" {
		user.PatientLinks = append(user.PatientLinks, "Patient/"+patient)
	}
	res := chartguard.Resource{Kind: chartguard.KindFHIR, Phase: phase, Type: typ, Patients: []string{patient},
		PatientStatus: chartguard.PatientsKnown, Action: action, Interaction: action, Labels: []string{}}
	switch action {
	case "read", "update", "delete":
		res.ID = "r1"
	case "search":
		res.Interaction = "search-type"
	case "export":
		res.Interaction, res.Operation = "operation", "export"
	}
	switch label {
	case "R", "V", "PSY", "HIV":
		res.Labels = []string{label}
	}
	relationship := map[string]chartguard.Relationship{}
	switch rel {
	case "care_team":
		relationship[patient] = chartguard.Relationship{CareTeam: true}
	case "pcp":
		relationship[patient] = chartguard.Relationship{PCP: true}
	case "encounter":
		days := 30 // encounter_window_days in data.json
		relationship[patient] = chartguard.Relationship{EncounterDaysAgo: &days}
	}
	return chartguard.Input{
		User:    user,
		Token:   chartguard.Token{Kind: chartguard.TokenSession},
		Session: chartguard.SessionInfo{MFA: true, MFAMethod: "totp", MFAAgeS: 120, AuthAgeS: 900, BreakGlass: []chartguard.BTGGrant{}},
		Request: chartguard.Request{Method: "GET", Path: "/fhir/" + typ, Query: map[string][]string{}, IP: "192.0.2.10",
			Time: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)},
		Resource:     res,
		Relationship: relationship,
		Usage:        chartguard.Usage{DistinctPatientsWindow: 3},
	}
}

// TestMatrix decides every combination of matrix.csv's dimensions with the
// default policy and checks the outcome against the first matching row.
func TestMatrix(t *testing.T) {
	t.Parallel()
	e := newDefaultEngine(t)
	rows := readMatrix(t, filepath.Join(defaultDir, "matrix.csv"))
	failures := 0
	n := 0
	for _, role := range matrixRoles {
		for _, typ := range matrixTypes {
			for _, action := range matrixActions {
				for _, rel := range matrixRelationships {
					for _, label := range matrixLabels {
						key := [5]string{role, typ, action, rel, label}
						i := slices.IndexFunc(rows, func(r *matrixRow) bool { return r.matches(key) })
						if !assert.GreaterOrEqual(t, i, 0, "no row of matrix.csv covers %v", key) {
							failures++
							continue
						}
						row := rows[i]
						row.used = true
						for _, phase := range []string{chartguard.PhaseRequest, chartguard.PhaseResponse} {
							n++
							in := matrixInput(key, phase)
							d, err := e.Decide(t.Context(), &in)
							require.NoError(t, err)
							if msg := matrixMismatch(row, d); msg != "" {
								failures++
								assert.Fail(t, "matrix mismatch", "%v phase %s, data row %d: %s (reasons %q)", key, phase, row.line, msg, d.Reasons)
							}
							if failures > 40 {
								t.Fatal("too many failures")
							}
						}
					}
				}
			}
		}
	}
	for _, r := range rows {
		assert.True(t, r.used, "matrix data row %d matches no combination (shadowed by an earlier row?)", r.line)
	}
	t.Logf("%d decisions checked against %d rows", n, len(rows))
}

// matrixMismatch says how d differs from row, or "" if it does not.
func matrixMismatch(row *matrixRow, d chartguard.Decision) string {
	got := "deny"
	switch {
	case d.Allow:
		got = "allow"
	case d.BreakGlass.Allowed:
		got = "btg"
	}
	if got != row.expect {
		return fmt.Sprintf("got %s, want %s", got, row.expect)
	}
	if row.expect == "btg" && d.RequireMFAWithinS == 0 {
		return "break-the-glass offered without asking for a second factor"
	}
	if !d.Allow && len(d.Reasons) == 0 {
		return "deny without a reason"
	}
	switch name, value, _ := strings.Cut(row.check, "="); name {
	case "":
	case "tag":
		if !slices.Contains(d.Obligations.Tags, value) {
			return fmt.Sprintf("tags %q lack %q", d.Obligations.Tags, value)
		}
	case "redact":
		if !slices.Contains(d.Obligations.Redact, ssnPath) {
			return fmt.Sprintf("redact %q lacks the SSN", d.Obligations.Redact)
		}
	case "no-redact":
		if len(d.Obligations.Redact) != 0 {
			return fmt.Sprintf("redact %q, want none", d.Obligations.Redact)
		}
	case "mfa":
		want, err := strconv.ParseInt(value, 10, 64)
		if err != nil || d.RequireMFAWithinS != want {
			return fmt.Sprintf("require_mfa_within_s %d, want %s", d.RequireMFAWithinS, value)
		}
	default:
		return "unknown check " + row.check
	}
	return ""
}
