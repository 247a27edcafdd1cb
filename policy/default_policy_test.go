package policy

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/cover"
	"github.com/open-policy-agent/opa/v1/tester"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chartguard/chartguard/chartguard"
)

// TestDefaultPolicy decides typical requests with the shipped policy in
// configs/policy. The Rego tests there cover each rule; this table checks
// the whole path from chartguard.Input to chartguard.Decision.
func TestDefaultPolicy(t *testing.T) {
	t.Parallel()
	e := newDefaultEngine(t)

	// req is a request by a user with roles on resource.
	req := func(roles []string, r chartguard.Resource) chartguard.Input {
		in := physicianRead()
		in.User.Roles = roles
		if r.Kind == "" {
			r.Kind = chartguard.KindFHIR
		}
		if r.Phase == "" {
			r.Phase = chartguard.PhaseRequest
		}
		in.Resource = r
		return in
	}
	known := func(action, typ string) chartguard.Resource {
		return chartguard.Resource{Type: typ, ID: "r1", Action: action, Interaction: action,
			Patients: []string{"p1"}, PatientStatus: chartguard.PatientsKnown}
	}
	search := func(typ string, patients ...string) chartguard.Resource {
		r := chartguard.Resource{Type: typ, Action: "search", Interaction: "search-type",
			Patients: patients, PatientStatus: chartguard.PatientsKnown}
		if len(patients) == 0 {
			r.PatientStatus = chartguard.PatientsUnknown
		}
		return r
	}
	capabilities := chartguard.Resource{Type: "CapabilityStatement", Action: "read", Interaction: "capabilities", Patients: []string{}, PatientStatus: chartguard.PatientsNone}
	asPatient := func(r chartguard.Resource) chartguard.Input {
		in := req([]string{"patient"}, r)
		in.User.FHIRUser = "Patient/p9"
		in.User.PatientLinks = []string{"Patient/p9"}
		return in
	}
	withPatients := func(r chartguard.Resource, status string, patients ...string) chartguard.Resource {
		r.PatientStatus, r.Patients = status, patients
		return r
	}
	operation := func(op, typ string, patients ...string) chartguard.Resource {
		r := chartguard.Resource{Type: typ, Action: "operation", Interaction: "operation", Operation: op,
			Patients: patients, PatientStatus: chartguard.PatientsKnown}
		if len(patients) == 0 {
			r.PatientStatus = chartguard.PatientsUnknown
		}
		return r
	}

	tests := []struct {
		name    string
		in      chartguard.Input
		allow   bool
		reasons []string
	}{
		{"physician reads a known patient's observation", req([]string{"physician"}, known("read", "Observation")),
			true, nil},
		{"physician searches one patient's conditions", req([]string{"physician"}, search("Condition", "p1")),
			true, nil},
		// The response phase decides each entry.
		{"physician search without patient", req([]string{"physician"}, search("Observation")),
			true, nil},
		{"system-wide search", req([]string{"physician"}, chartguard.Resource{Action: "search", Interaction: "search-system", PatientStatus: chartguard.PatientsUnknown}),
			false, []string{"role physician may not search all resource types"}},
		{"history of one resource is not a search", req([]string{"physician"}, chartguard.Resource{Type: "Observation", ID: "o1",
			Action: "history", Interaction: "history-instance", PatientStatus: chartguard.PatientsUnknown}),
			true, nil},
		{"physician may not delete", req([]string{"physician"}, known("delete", "Observation")),
			false, []string{"role physician may not delete Observation"}},
		{"nurse may not delete", req([]string{"nurse"}, known("delete", "Observation")),
			false, []string{"role nurse may not delete Observation"}},
		{"nurse records an observation", req([]string{"nurse"}, known("create", "Observation")),
			true, nil},
		{"registration sees no clinical data", req([]string{"registration"}, known("read", "Observation")),
			false, []string{"role registration may not read Observation"}},
		{"billing searches claims without a patient", req([]string{"billing"}, search("Claim")),
			true, nil},
		{"pharmacist dispenses", req([]string{"pharmacist"}, known("update", "MedicationDispense")),
			true, nil},
		{"privacy officer reads audit events", req([]string{"privacy-officer"}, search("AuditEvent")),
			true, nil},
		{"it-admin sees no PHI", req([]string{"it-admin"}, known("read", "Patient")),
			false, []string{"role it-admin may not read Patient"}},
		{"practitioner lookup without patient", req([]string{"nurse"}, withPatients(search("Practitioner"), chartguard.PatientsNone)),
			true, nil},
		{"capabilities without a role", req(nil, capabilities),
			true, nil},
		{"capabilities need a subject", with(req(nil, capabilities), func(in *chartguard.Input) { in.User.Subject = "" }),
			false, []string{"not authenticated"}},
		{"no role", req(nil, known("read", "Observation")),
			false, []string{"no role"}},
		{"unknown role", req([]string{"janitor"}, known("read", "Observation")),
			false, []string{"role janitor may not read Observation"}},
		{"two roles: the union", req([]string{"nurse", "registration"}, known("create", "Patient")),
			true, nil},
		{"two roles: a reason per role", req([]string{"billing", "lab"}, known("delete", "Observation")),
			false, []string{"role billing may not delete Observation", "role lab may not delete Observation"}},
		{"patient reads own record", asPatient(withPatients(known("read", "Observation"), chartguard.PatientsKnown, "p9")),
			true, nil},
		{"patient reads another patient", asPatient(known("read", "Observation")),
			false, []string{"role patient may only access the caller's own records"}},
		// A read by id names no patient: the response phase checks the
		// resource itself.
		{"patient read by id names no patient", asPatient(withPatients(known("read", "Observation"), chartguard.PatientsUnknown)),
			true, nil},
		{"patient response phase decides on the resource", asPatient(func() chartguard.Resource {
			r := known("read", "Observation")
			r.Phase = chartguard.PhaseResponse
			return r
		}()), false, []string{"role patient may only access the caller's own records"}},
		{"patient may not write", asPatient(withPatients(known("create", "Observation"), chartguard.PatientsKnown, "p9")),
			false, []string{"role patient may not create Observation"}},
		{"physician runs $everything", req([]string{"physician"}, operation("everything", "Patient", "p1")),
			true, nil},
		{"physician may not export", req([]string{"physician"}, func() chartguard.Resource {
			r := operation("export", "Patient", "p1")
			r.Action = "export"
			return r
		}()), false, []string{"role physician may not export Patient"}},
		{"nobody exports every patient", req([]string{"him"}, func() chartguard.Resource {
			r := operation("export", "")
			r.Action = "export"
			return r
		}()), false, []string{"export must name a patient", "role him may not export all resource types"}},
		{"route uses the role table", req([]string{"physician"}, chartguard.Resource{Kind: chartguard.KindRoute, Type: "DocumentReference",
			Action: "read", Interaction: "read", Patients: []string{"p1"}, PatientStatus: chartguard.PatientsKnown}),
			true, nil},
		{"static content", req(nil, chartguard.Resource{Kind: chartguard.KindStatic, PatientStatus: chartguard.PatientsNone}),
			true, nil},
		{"unknown kind", req([]string{"physician"}, chartguard.Resource{Kind: chartguard.KindProxy}),
			false, []string{"unsupported resource kind"}},
		{"empty input", chartguard.Input{},
			false, []string{"not authenticated", "unsupported resource kind"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := e.Decide(t.Context(), &tc.in)
			require.NoError(t, err)
			assert.Equal(t, tc.allow, got.Allow, "Decide(%+v)", tc.in.Resource)
			assert.Equal(t, tc.reasons, got.Reasons, "Decide(%+v)", tc.in.Resource)
			assert.Equal(t, e.Revision(), got.Revision)
		})
	}
}

// ssnPath is the redaction the default policy asks of everyone but
// registration.
const ssnPath = "Patient.identifier[system=http://hl7.org/fhir/sid/us-ssn]"

// TestDefaultPolicyObligations checks what comes with a decision beyond
// allow and reasons: redaction, export blocking, counts, tags, the
// break-the-glass offer and step-up.
func TestDefaultPolicyObligations(t *testing.T) {
	t.Parallel()
	e := newDefaultEngine(t)
	later := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	patientRead := func(roles ...string) chartguard.Input {
		return with(physicianRead(), func(in *chartguard.Input) {
			in.User.Roles = roles
			in.Resource.Type, in.Resource.ID = "Patient", "p1"
		})
	}
	of := func(p string, labels ...string) func(*chartguard.Input) {
		return func(in *chartguard.Input) {
			in.Resource.Patients = []string{p}
			in.Resource.Labels = append([]string{}, labels...)
			in.Relationship = map[string]chartguard.Relationship{p: {CareTeam: true}}
		}
	}
	grant := func(p string) func(*chartguard.Input) {
		return func(in *chartguard.Input) {
			in.Session.BreakGlass = []chartguard.BTGGrant{{Grant: "g1", Patient: p, Reason: "ETREAT", ExpiresAt: later}}
		}
	}
	export := func(in *chartguard.Input) {
		in.User.Roles = []string{"him"}
		in.Resource.Type, in.Resource.ID = "Patient", "p1"
		in.Resource.Action, in.Resource.Interaction, in.Resource.Operation = "export", "operation", "export"
	}
	noOffer := chartguard.BreakGlass{}
	offer := chartguard.BreakGlass{Allowed: true, Reasons: []string{"BTG", "ETREAT"}}
	tests := []struct {
		name  string
		in    chartguard.Input
		allow bool
		bg    chartguard.BreakGlass
		mfa   int64
		obl   chartguard.Obligations
	}{
		{"physician reads an observation", physicianRead(), true, noOffer, 0,
			chartguard.Obligations{BlockExport: true}},
		{"physician reads a Patient: SSN redacted", patientRead("physician"), true, noOffer, 0,
			chartguard.Obligations{Redact: []string{ssnPath}, BlockExport: true}},
		{"registration keeps the SSN", patientRead("registration"), true, noOffer, 0,
			chartguard.Obligations{BlockExport: true}},
		{"search is capped", with(physicianRead(), func(in *chartguard.Input) {
			in.Resource.Action, in.Resource.Interaction = "search", "search-type"
		}), true, noOffer, 0, chartguard.Obligations{Redact: []string{ssnPath}, BlockExport: true, MaxCount: 1000}},
		{"him may export", with(physicianRead(), export), true, noOffer, 300,
			chartguard.Obligations{Redact: []string{ssnPath}}},
		{"export with a stale second factor", with(with(physicianRead(), export), func(in *chartguard.Input) {
			in.Session.MFAAgeS = 3600
		}), false, noOffer, 300, chartguard.Obligations{}},
		{"no relationship: break-the-glass offered", with(physicianRead(), func(in *chartguard.Input) {
			in.Resource.Patients = []string{"p2"}
		}), false, offer, 300, chartguard.Obligations{}},
		{"VIP with a relationship: offered, tagged", with(physicianRead(), of("p7")), false, offer, 300,
			chartguard.Obligations{Tags: []string{"vip"}}},
		{"VIP under a grant: allowed, tagged", with(with(physicianRead(), of("p7")), grant("p7")), true, noOffer, 0,
			chartguard.Obligations{BlockExport: true, Tags: []string{"break-glass", "vip"}}},
		{"employee-patient under a grant", with(with(physicianRead(), of("p8")), grant("p8")), true, noOffer, 0,
			chartguard.Obligations{BlockExport: true, Tags: []string{"break-glass", "employee"}}},
		{"restricted record under a grant", with(with(physicianRead(), of("p3", "R")), grant("p3")), true, noOffer, 0,
			chartguard.Obligations{BlockExport: true, Tags: []string{"break-glass", "sensitive"}}},
		{"expired grant", with(with(physicianRead(), of("p7")), func(in *chartguard.Input) {
			in.Session.BreakGlass = []chartguard.BTGGrant{{Grant: "g1", Patient: "p7", ExpiresAt: in.Request.Time}}
		}), false, offer, 300, chartguard.Obligations{Tags: []string{"vip"}}},
		{"own record: no offer", with(physicianRead(), func(in *chartguard.Input) {
			in.User.PatientLinks = []string{"Patient/p1"}
		}), false, noOffer, 0, chartguard.Obligations{}},
		{"privacy officer may not break glass", with(patientRead("privacy-officer"), of("p3", "R")), false, noOffer, 0,
			chartguard.Obligations{Tags: []string{"sensitive"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := e.Decide(t.Context(), &tc.in)
			require.NoError(t, err)
			assert.Equal(t, tc.allow, got.Allow, "reasons %q", got.Reasons)
			assert.Equal(t, tc.bg, got.BreakGlass)
			assert.Equal(t, tc.mfa, got.RequireMFAWithinS)
			assert.Equal(t, tc.obl, got.Obligations)
			assert.Equal(t, !tc.allow, len(got.Reasons) > 0, "a deny and only a deny has reasons")
		})
	}
}

// TestDefaultPolicyRoleNamesAreExact: a role that differs from the table
// in case or whitespace is no role of the table and grants nothing.
func TestDefaultPolicyRoleNamesAreExact(t *testing.T) {
	t.Parallel()
	e := newDefaultEngine(t)
	for _, role := range []string{"Physician", " physician", "physician ", "PHYSICIAN", "physician\n", "phys ician"} {
		t.Run(role, func(t *testing.T) {
			in := physicianRead()
			in.User.Roles = []string{role}
			got, err := e.Decide(t.Context(), &in)
			require.NoError(t, err)
			assert.False(t, got.Allow)
			assert.Equal(t, []string{"role " + role + " may not read Observation"}, got.Reasons)
			assert.False(t, got.BreakGlass.Allowed)
		})
	}
}

// TestDefaultPolicyWrongShapedInput: inputs that are well-typed Go but not
// what ChartGuard sends deny with a reason (the Rego robustness tests
// cover JSON of the wrong types).
func TestDefaultPolicyWrongShapedInput(t *testing.T) {
	t.Parallel()
	e := newDefaultEngine(t)
	tests := map[string]func(*chartguard.Input){
		"no token kind":        func(in *chartguard.Input) { in.Token.Kind = "" },
		"unknown token kind":   func(in *chartguard.Input) { in.Token.Kind = "cookie" },
		"bearer without scope": func(in *chartguard.Input) { in.Token.Kind = chartguard.TokenBearer },
		"no kind":              func(in *chartguard.Input) { in.Resource.Kind = "" },
		"no action":            func(in *chartguard.Input) { in.Resource.Action = "" },
		"unknown action":       func(in *chartguard.Input) { in.Resource.Action = "purge" },
		"empty patient id": func(in *chartguard.Input) {
			in.Resource.Phase, in.Resource.Patients = chartguard.PhaseResponse, []string{""}
		},
		"patients but status none": func(in *chartguard.Input) {
			in.Resource.Phase, in.Resource.PatientStatus = chartguard.PhaseResponse, chartguard.PatientsNone
		},
		"empty role":   func(in *chartguard.Input) { in.User.Roles = []string{""} },
		"nil roles":    func(in *chartguard.Input) { in.User.Roles = nil },
		"no subject":   func(in *chartguard.Input) { in.User.Subject = "" },
		"no fhir_user": func(in *chartguard.Input) { in.User.FHIRUser = "" },
		"grant without expiry": func(in *chartguard.Input) {
			in.Resource.Patients = []string{"p2"}
			in.Session.BreakGlass = []chartguard.BTGGrant{{Grant: "g", Patient: "p2"}}
		},
	}
	for name, f := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			in := with(physicianRead(), f)
			in.Relationship = nil // only the static care team may prove p1
			got, err := e.Decide(t.Context(), &in)
			require.NoError(t, err)
			assert.False(t, got.Allow)
			assert.NotEmpty(t, got.Reasons)
		})
	}
}

// TestDefaultPolicyBadData: a data.json whose values have the wrong types
// fails to load with the policy's own load errors, naming the key.
func TestDefaultPolicyBadData(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(map[string]any)
		want   string
	}{
		{"list instead of lookup object", func(d map[string]any) { d["vip_patients"] = []any{"p7"} },
			"data.chartguard_data.vip_patients must be an object"},
		{"string instead of true", func(d map[string]any) { d["care_team_roles"] = map[string]any{"nurse": "yes"} },
			"data.chartguard_data.care_team_roles.nurse must be true"},
		{"missing sensitivity set", func(d map[string]any) { delete(d, "sensitive_labels") },
			"data.chartguard_data.sensitive_labels is required"},
		{"number as string", func(d map[string]any) { d["encounter_window_days"] = "30" },
			"data.chartguard_data.encounter_window_days must be a whole number of at least 0"},
		{"unknown action", func(d map[string]any) {
			d["roles"].(map[string]any)["nurse"].(map[string]any)["reed"] = map[string]any{"Observation": true}
		}, "data.chartguard_data.roles.nurse.reed: unknown action"},
		{"break-glass codes as a list", func(d map[string]any) { d["break_glass_roles"] = map[string]any{"nurse": []any{"BTG"}} },
			"data.chartguard_data.break_glass_roles.nurse must be an object"},
		{"redact not a list", func(d map[string]any) { d["redact"] = ssnPath },
			"data.chartguard_data.redact must be a list of strings"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := copyDefaultPolicy(t, tc.change)
			_, err := New(t.Context(), Config{Dir: dir, EvalTimeout: testTimeout}, nil)
			require.ErrorIs(t, err, ErrLoadErrors)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

// TestDefaultPolicyCoverage: the Rego tests in configs/policy evaluate at
// least 95% of the policy's lines (test modules excluded), as
// `opa test --coverage` counts them.
func TestDefaultPolicyCoverage(t *testing.T) {
	t.Parallel()
	modules, store, err := tester.LoadWithRegoVersion([]string{defaultDir}, nil, ast.RegoV1)
	require.NoError(t, err)
	cov := cover.New()
	ch, err := tester.NewRunner().
		SetDefaultRegoVersion(ast.RegoV1).
		SetStore(store).
		SetCoverageQueryTracer(cov).
		SetModules(modules).
		// The agreement tests evaluate hundreds of inputs each; under
		// -race on a busy machine they need more than OPA's 5 s default.
		SetTimeout(2*time.Minute).
		RaiseBuiltinErrors(true).
		RunTests(t.Context(), nil)
	require.NoError(t, err)
	n := 0
	for r := range ch {
		n++
		assert.True(t, r.Pass(), "%s.%s failed (error %v)", r.Package, r.Name, r.Error)
	}
	require.Greater(t, n, 100, "the Rego tests ran")
	// The report counts every file the tests touched, test modules too:
	// add up the policy's own.
	rep := cov.Report(modules)
	covered, total := 0, 0
	for name, f := range rep.Files {
		if strings.HasSuffix(name, "_test.rego") {
			continue
		}
		t.Logf("%s: %.1f%%", filepath.Base(name), f.Coverage)
		covered += f.CoveredLines
		total += f.CoveredLines + f.NotCoveredLines
	}
	require.Positive(t, total)
	percent := 100 * float64(covered) / float64(total)
	t.Logf("default policy: %.1f%% of %d lines", percent, total)
	assert.GreaterOrEqual(t, percent, 95.0, "coverage of the default policy by its Rego tests")
}

// copyDefaultPolicy copies the default policy's modules (without tests)
// and data.json to a temporary directory, changing chartguard_data with
// change first.
func copyDefaultPolicy(tb testing.TB, change func(map[string]any)) string {
	tb.Helper()
	dir := tb.TempDir()
	files, err := filepath.Glob(filepath.Join(defaultDir, "*.rego"))
	require.NoError(tb, err)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.rego") {
			continue
		}
		b, err := os.ReadFile(f)
		require.NoError(tb, err)
		require.NoError(tb, os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o600))
	}
	raw, err := os.ReadFile(filepath.Join(defaultDir, "data.json"))
	require.NoError(tb, err)
	var doc map[string]map[string]any
	require.NoError(tb, json.Unmarshal(raw, &doc))
	if change != nil {
		change(doc["chartguard_data"])
	}
	out, err := json.Marshal(doc)
	require.NoError(tb, err)
	require.NoError(tb, os.WriteFile(filepath.Join(dir, "data.json"), out, 0o600))
	return dir
}

// TestDefaultPolicyCompilesConcurrently compiles the default policy on
// several goroutines at once, many times. Under -race (as CI runs it) this
// catches a construct that makes OPA's type checker write to shared
// state: in OPA 1.22 an else chain whose heads mix object literals and
// object.union results writes to object.union's global result type at
// every compile.
func TestDefaultPolicyCompilesConcurrently(t *testing.T) {
	src, err := loadDir(defaultDir, false)
	require.NoError(t, err)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 4 {
				_, err := src.compiler()
				assert.NoError(t, err)
			}
		})
	}
	wg.Wait()
}
