package fhirscan

import (
	"fmt"
	"sort"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// ref is a Reference to Patient/id.
func ref(id string) string { return fmt.Sprintf(`{"reference":"Patient/%s"}`, id) }

// describe runs Filter with an allow-all decide and returns what was
// delivered.
func describe(t *testing.T, body string, opts Options) []Resource {
	t.Helper()
	res, err := Filter([]byte(body), opts, func(Resource) (bool, error) { return true, nil })
	require.NoError(t, err)
	return res.Delivered
}

// TestCompartmentTypes checks, for every type of the R4 Patient compartment,
// that each element its compartment parameters select yields a patient, and
// that a Patient reference elsewhere in the resource does not. The members
// are written out by hand from the R4 search parameter expressions, not
// derived from patientElements.
func TestCompartmentTypes(t *testing.T) {
	// other is a member outside the compartment elements of every type.
	const other = `"basedOn":[{"reference":"Patient/zz"}]`
	tests := []struct {
		typ     string
		members string
		want    []string
	}{
		{"Account", `"subject":[` + ref("a") + `]`, []string{"a"}},
		{"AdverseEvent", `"subject":` + ref("a"), []string{"a"}},
		{"AllergyIntolerance", `"patient":` + ref("a") + `,"recorder":` + ref("b") + `,"asserter":` + ref("c"), []string{"a", "b", "c"}},
		{"Appointment", `"participant":[{"actor":` + ref("a") + `},{"actor":{"reference":"Practitioner/x"}}]`, []string{"a"}},
		{"AppointmentResponse", `"actor":` + ref("a"), []string{"a"}},
		{"AuditEvent", `"agent":[{"who":` + ref("a") + `}],"entity":[{"what":` + ref("b") + `}]`, []string{"a", "b"}},
		{"Basic", `"subject":` + ref("a") + `,"author":` + ref("b"), []string{"a", "b"}},
		{"BodyStructure", `"patient":` + ref("a"), []string{"a"}},
		{"CarePlan", `"subject":` + ref("a") + `,"activity":[{"detail":{"performer":[` + ref("b") + `]}}]`, []string{"a", "b"}},
		{"CareTeam", `"subject":` + ref("a") + `,"participant":[{"member":` + ref("b") + `},{"member":` + ref("c") + `}]`, []string{"a", "b", "c"}},
		{"ChargeItem", `"subject":` + ref("a"), []string{"a"}},
		{"Claim", `"patient":` + ref("a") + `,"payee":{"party":` + ref("b") + `}`, []string{"a", "b"}},
		{"ClaimResponse", `"patient":` + ref("a"), []string{"a"}},
		{"ClinicalImpression", `"subject":` + ref("a"), []string{"a"}},
		{"Communication", `"subject":` + ref("a") + `,"sender":` + ref("b") + `,"recipient":[` + ref("c") + `]`, []string{"a", "b", "c"}},
		{"CommunicationRequest", `"subject":` + ref("a") + `,"sender":` + ref("b") + `,"recipient":[` + ref("c") + `],"requester":` + ref("d"), []string{"a", "b", "c", "d"}},
		{"Composition", `"subject":` + ref("a") + `,"author":[` + ref("b") + `],"attester":[{"party":` + ref("c") + `}]`, []string{"a", "b", "c"}},
		{"Condition", `"subject":` + ref("a") + `,"asserter":` + ref("b"), []string{"a", "b"}},
		{"Consent", `"patient":` + ref("a"), []string{"a"}},
		{"Coverage", `"policyHolder":` + ref("a") + `,"subscriber":` + ref("b") + `,"beneficiary":` + ref("c") + `,"payor":[` + ref("d") + `]`, []string{"a", "b", "c", "d"}},
		{"CoverageEligibilityRequest", `"patient":` + ref("a"), []string{"a"}},
		{"CoverageEligibilityResponse", `"patient":` + ref("a"), []string{"a"}},
		{"DetectedIssue", `"patient":` + ref("a"), []string{"a"}},
		{"DeviceRequest", `"subject":` + ref("a") + `,"performer":` + ref("b"), []string{"a", "b"}},
		{"DeviceUseStatement", `"subject":` + ref("a"), []string{"a"}},
		{"DiagnosticReport", `"subject":` + ref("a"), []string{"a"}},
		{"DocumentManifest", `"subject":` + ref("a") + `,"author":[` + ref("b") + `],"recipient":[` + ref("c") + `]`, []string{"a", "b", "c"}},
		{"DocumentReference", `"subject":` + ref("a") + `,"author":[` + ref("b") + `]`, []string{"a", "b"}},
		{"Encounter", `"subject":` + ref("a"), []string{"a"}},
		{"EnrollmentRequest", `"candidate":` + ref("a"), []string{"a"}},
		{"EpisodeOfCare", `"patient":` + ref("a"), []string{"a"}},
		{"ExplanationOfBenefit", `"patient":` + ref("a") + `,"payee":{"party":` + ref("b") + `}`, []string{"a", "b"}},
		{"FamilyMemberHistory", `"patient":` + ref("a"), []string{"a"}},
		{"Flag", `"subject":` + ref("a"), []string{"a"}},
		{"Goal", `"subject":` + ref("a"), []string{"a"}},
		{"Group", `"member":[{"entity":` + ref("a") + `},{"entity":` + ref("b") + `}]`, []string{"a", "b"}},
		{"ImagingStudy", `"subject":` + ref("a"), []string{"a"}},
		{"Immunization", `"patient":` + ref("a"), []string{"a"}},
		{"ImmunizationEvaluation", `"patient":` + ref("a"), []string{"a"}},
		{"ImmunizationRecommendation", `"patient":` + ref("a"), []string{"a"}},
		{"Invoice", `"subject":` + ref("a") + `,"recipient":` + ref("b"), []string{"a", "b"}},
		{"List", `"subject":` + ref("a") + `,"source":` + ref("b"), []string{"a", "b"}},
		{"MeasureReport", `"subject":` + ref("a"), []string{"a"}},
		{"Media", `"subject":` + ref("a"), []string{"a"}},
		{"MedicationAdministration", `"subject":` + ref("a") + `,"performer":[{"actor":` + ref("b") + `}]`, []string{"a", "b"}},
		{"MedicationDispense", `"subject":` + ref("a") + `,"receiver":[` + ref("b") + `]`, []string{"a", "b"}},
		{"MedicationRequest", `"subject":` + ref("a"), []string{"a"}},
		{"MedicationStatement", `"subject":` + ref("a"), []string{"a"}},
		{"MolecularSequence", `"patient":` + ref("a"), []string{"a"}},
		{"NutritionOrder", `"patient":` + ref("a"), []string{"a"}},
		{"Observation", `"subject":` + ref("a") + `,"performer":[` + ref("b") + `]`, []string{"a", "b"}},
		{"Patient", `"id":"a","link":[{"other":` + ref("b") + `}]`, []string{"a"}},
		{"Person", `"link":[{"target":` + ref("a") + `}]`, []string{"a"}},
		{"Procedure", `"subject":` + ref("a") + `,"performer":[{"actor":` + ref("b") + `}]`, []string{"a", "b"}},
		{"Provenance", `"target":[` + ref("a") + `,{"reference":"Observation/o1"}]`, []string{"a"}},
		{"QuestionnaireResponse", `"subject":` + ref("a") + `,"author":` + ref("b"), []string{"a", "b"}},
		{"RelatedPerson", `"patient":` + ref("a"), []string{"a"}},
		{"RequestGroup", `"subject":` + ref("a") + `,"action":[{"participant":[` + ref("b") + `]}]`, []string{"a", "b"}},
		{"ResearchSubject", `"individual":` + ref("a"), []string{"a"}},
		{"RiskAssessment", `"subject":` + ref("a"), []string{"a"}},
		{"Schedule", `"actor":[` + ref("a") + `]`, []string{"a"}},
		{"ServiceRequest", `"subject":` + ref("a") + `,"performer":[` + ref("b") + `]`, []string{"a", "b"}},
		{"Specimen", `"subject":` + ref("a"), []string{"a"}},
		{"SupplyDelivery", `"patient":` + ref("a"), []string{"a"}},
		{"SupplyRequest", `"deliverTo":` + ref("a"), []string{"a"}},
		{"VisionPrescription", `"patient":` + ref("a"), []string{"a"}},
	}
	tested := map[string]bool{}
	for _, tt := range tests {
		tested[tt.typ] = true
		t.Run(tt.typ, func(t *testing.T) {
			t.Parallel()
			body := fmt.Sprintf(`{"resourceType":%q,%s,%s}`, tt.typ, tt.members, other)
			got := describe(t, body, Options{})
			require.Len(t, got, 1)
			assert.Equal(t, tt.want, got[0].Patients, "patients of %s", body)
			assert.Equal(t, PatientsKnown, got[0].PatientStatus)
		})
	}
	var missing []string
	for typ := range patientElements {
		if !tested[typ] {
			missing = append(missing, typ)
		}
	}
	sort.Strings(missing)
	assert.Empty(t, missing, "compartment types without a test case")
	assert.Len(t, patientElements, 66, "R4 Patient compartment has 66 resource types (%s)", compartmentSource)
}

func TestOutsideCompartment(t *testing.T) {
	tests := []struct{ name, body string }{
		{"Practitioner", `{"resourceType":"Practitioner","id":"x"}`},
		{"Medication", `{"resourceType":"Medication","id":"m"}`},
		{"Task with a patient reference", `{"resourceType":"Task","for":{"reference":"Patient/p1"}}`},
		{"Device with a patient reference", `{"resourceType":"Device","patient":{"reference":"Patient/p1"}}`},
		{"compartment type without references", `{"resourceType":"Observation","status":"final"}`},
		{"only non-patient references", `{"resourceType":"Observation","subject":{"reference":"Group/g1"},"performer":[{"reference":"Practitioner/x"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := describe(t, tt.body, Options{})
			require.Len(t, got, 1)
			assert.Equal(t, []string{}, got[0].Patients)
			assert.Equal(t, PatientsNone, got[0].PatientStatus)
		})
	}
}
