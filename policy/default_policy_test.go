package policy

import (
	"testing"

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
	capabilities := chartguard.Resource{Action: "read", Interaction: "capabilities", PatientStatus: chartguard.PatientsNone}
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
		{"nobody exports", req([]string{"physician"}, operation("export", "")),
			false, []string{"operation must name a patient", "role physician may not run operation $export on all resource types"}},
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
			want := chartguard.Decision{Allow: tc.allow, Reasons: tc.reasons, ID: got.ID, Revision: e.Revision()}
			assert.Equal(t, want, got, "Decide(%+v)", tc.in.Resource)
		})
	}
}
