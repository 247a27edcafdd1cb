package fhirserver

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func not(f func(map[string]any) bool) func(map[string]any) bool {
	return func(r map[string]any) bool { return !f(r) }
}

func TestSearchModifiers(t *testing.T) {
	t.Parallel()
	s := New(Options{Now: testNow, Patients: 12})
	create := func(typ, body string) string {
		rec := do(t, s, req{method: http.MethodPost, target: "/fhir/" + typ, body: body})
		require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
		return typ + "/" + decode(t, rec)["id"].(string)
	}
	// Resources without the searched elements: :not must find them.
	bareObs := create("Observation", `{"resourceType":"Observation","status":"final"}`)
	create("Observation", `{"resourceType":"Observation","status":"final","subject":{"reference":"Group/g1"}}`)
	barePatient := create("Patient", `{"resourceType":"Patient","active":true}`)
	heartRate := hasCoding("code", "http://loinc.org|8867-4")
	hb := hasCoding("code", "http://loinc.org|718-7")
	gpIs := func(ref string) func(map[string]any) bool {
		return func(r map[string]any) bool {
			gp, _ := r["generalPractitioner"].([]any)
			return len(gp) > 0 && gp[0].(map[string]any)["reference"] == ref
		}
	}

	tests := []struct {
		name, target, typ string
		want              func(map[string]any) bool
		mustHave          string // a resource without the element, or ""
	}{
		{"reference :not", "/fhir/Observation?patient:not=p1", "Observation", not(subjectIs("Patient/p1")), bareObs},
		{"reference :not typed", "/fhir/Observation?subject:not=Patient/p1", "Observation", not(subjectIs("Patient/p1")), bareObs},
		{"reference :not list", "/fhir/Observation?subject:not=Patient/p1,Patient/p2", "Observation",
			not(subjectIs("Patient/p1", "Patient/p2")), bareObs},
		{"reference :not of a non-patient", "/fhir/Observation?subject:not=Group/g1", "Observation",
			func(r map[string]any) bool { return refOf(r, "subject") != "Group/g1" }, bareObs},
		{"patient :not ignores non-patient subjects", "/fhir/Observation?patient:not=p1", "Observation",
			func(r map[string]any) bool { return refOf(r, "subject") != "Patient/p1" }, bareObs},
		{"reference :not with a positive filter", "/fhir/Observation?patient=p1,p2&subject:not=p2", "Observation",
			subjectIs("Patient/p1"), ""},
		{"encounter :not", "/fhir/Observation?encounter:not=enc-p1-1", "Observation",
			func(r map[string]any) bool { return refOf(r, "encounter") != "Encounter/enc-p1-1" }, bareObs},
		{"general practitioner :not", "/fhir/Patient?general-practitioner:not=pr1", "Patient",
			not(gpIs("Practitioner/pr1")), barePatient},
		{"token :not", "/fhir/Observation?code:not=http://loinc.org|8867-4", "Observation", not(heartRate), bareObs},
		{"token :not without system", "/fhir/Observation?code:not=8867-4,718-7", "Observation",
			func(r map[string]any) bool { return !heartRate(r) && !hb(r) }, bareObs},
		{"token :not system only", "/fhir/Observation?code:not=http://loinc.org|", "Observation",
			func(r map[string]any) bool { return len(codings(r, "code")) == 0 }, bareObs},
		{"token :not and reference", "/fhir/Observation?patient=p1&code:not=8867-4", "Observation",
			func(r map[string]any) bool { return subjectIs("Patient/p1")(r) && !heartRate(r) }, ""},
		{"two :not are ANDed", "/fhir/Observation?code:not=8867-4&code:not=718-7", "Observation",
			func(r map[string]any) bool { return !heartRate(r) && !hb(r) }, bareObs},
		{"_id :not", "/fhir/Patient?_id:not=p1,p2", "Patient",
			func(r map[string]any) bool { return r["id"] != "p1" && r["id"] != "p2" }, barePatient},
		{"compartment :not", "/fhir/Patient/p1/Observation?code:not=8867-4", "Observation",
			func(r map[string]any) bool { return subjectIs("Patient/p1")(r) && !heartRate(r) }, ""},
		{"empty :not value ignored", "/fhir/Observation?patient:not=", "Observation",
			func(map[string]any) bool { return true }, bareObs},
		{"type modifier", "/fhir/Observation?subject:Patient=p1", "Observation", subjectIs("Patient/p1"), ""},
		{"type modifier with typed value", "/fhir/Observation?subject:Patient=Patient/p1", "Observation", subjectIs("Patient/p1"), ""},
		{"type modifier list", "/fhir/Observation?subject:Patient=p1,p2", "Observation", subjectIs("Patient/p1", "Patient/p2"), ""},
		{"type modifier other type", "/fhir/Observation?subject:Group=g1", "Observation",
			func(r map[string]any) bool { return refOf(r, "subject") == "Group/g1" }, ""},
		{"type modifier mismatch", "/fhir/Observation?subject:Patient=Group/g1", "Observation",
			func(map[string]any) bool { return false }, ""},
		{"type modifier on a narrowed parameter", "/fhir/Observation?patient:Group=g1", "Observation",
			func(map[string]any) bool { return false }, ""},
		{"participant type modifier", "/fhir/CareTeam?participant:Practitioner=pr1", "CareTeam",
			hasParticipant("member", "Practitioner/pr1"), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rs := where(t, s, tc.typ, tc.want)
			want := refList(tc.typ, rs)
			rec := get(t, s, tc.target+"&_count=1000")
			require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			b := decode(t, rec)
			assert.ElementsMatch(t, want, resourceRefs(t, b))
			assert.EqualValues(t, len(want), b["total"])
			if tc.mustHave != "" {
				assert.Contains(t, resourceRefs(t, b), tc.mustHave, "a resource without the element matches :not")
			}
		})
	}
}

func TestSearchModifiersRefused(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	for _, target := range []string{
		"/fhir/Observation?patient:missing=true",
		"/fhir/Observation?code:text=heart",
		"/fhir/Observation?code:exact=8867-4",
		"/fhir/Observation?code:in=http://example.org/vs",
		"/fhir/Observation?code:not-in=http://example.org/vs",
		"/fhir/Observation?code:above=8867-4",
		"/fhir/Observation?code:of-type=x",
		"/fhir/Observation?patient:identifier=x|1",
		"/fhir/Observation?code:Patient=p1",
		"/fhir/Patient?_id:Patient=p1",
		"/fhir/Observation?patient:not:Patient=p1",
		"/fhir/Observation?patient:=p1",
		"/fhir/Observation?patient:patient=p1",
	} {
		t.Run(target, func(t *testing.T) {
			requireOutcome(t, get(t, s, target), 400, "invalid")
		})
	}
}
