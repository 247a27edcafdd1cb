package fhirscan

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPatients(t *testing.T) {
	opts := Options{Bases: []string{"https://up.example/fhir", "http://up:8081/fhir"}}
	obs := func(subject string) string {
		return `{"resourceType":"Observation","id":"o1","subject":` + subject + `}`
	}
	tests := []struct {
		name   string
		body   string
		want   []string
		status string
	}{
		{"relative", obs(ref("p1")), []string{"p1"}, PatientsKnown},
		{"versioned", obs(`{"reference":"Patient/p1/_history/3"}`), []string{"p1"}, PatientsKnown},
		{"escaped reference string", obs(`{"reference":"Patient\/p\u0031"}`), []string{"p1"}, PatientsKnown},
		{"id with dots and dashes", obs(`{"reference":"Patient/a-b.C-9"}`), []string{"a-b.C-9"}, PatientsKnown},
		{"absolute under a base", obs(`{"reference":"https://up.example/fhir/Patient/p1"}`), []string{"p1"}, PatientsKnown},
		{"absolute under the second base, versioned", obs(`{"reference":"http://up:8081/fhir/Patient/p2/_history/1"}`), []string{"p2"}, PatientsKnown},
		{"absolute under a base, other type", obs(`{"reference":"https://up.example/fhir/Group/g1"}`), []string{}, PatientsNone},
		{"base prefix but another path", obs(`{"reference":"https://up.example/fhir2/Patient/p1"}`), []string{}, PatientsUnknown},
		{"base with a different scheme", obs(`{"reference":"http://up.example/fhir/Patient/p1"}`), []string{}, PatientsUnknown},
		{"base with dot segments", obs(`{"reference":"https://up.example/fhir/../fhir/Patient/p1"}`), []string{}, PatientsUnknown},
		{"foreign patient", obs(`{"reference":"https://other.example/fhir/Patient/p1"}`), []string{}, PatientsUnknown},
		{"foreign patient, other case", obs(`{"reference":"https://other.example/fhir/patient/p1"}`), []string{}, PatientsUnknown},
		{"foreign practitioner", `{"resourceType":"Observation","subject":` + ref("p1") + `,"performer":[{"reference":"https://other.example/fhir/Practitioner/x"}]}`, []string{"p1"}, PatientsKnown},
		{"foreign practitioner with a query", `{"resourceType":"Observation","subject":` + ref("p1") + `,"performer":[{"reference":"https://other.example/fhir/Practitioner/x?a=b"}]}`, []string{"p1"}, PatientsUnknown},
		{"urn:uuid", obs(`{"reference":"urn:uuid:9d1f6b2e-7a4b-4c4e-9f3e-1a2b3c4d5e6f"}`), []string{}, PatientsUnknown},
		{"urn:oid", obs(`{"reference":"urn:oid:1.2.3"}`), []string{}, PatientsUnknown},
		{"bad history", obs(`{"reference":"Patient/p1/_hist/2"}`), []string{}, PatientsUnknown},
		{"history without version", obs(`{"reference":"Patient/p1/_history"}`), []string{}, PatientsUnknown},
		{"query", obs(`{"reference":"Patient?identifier=123"}`), []string{}, PatientsUnknown},
		{"type only", obs(`{"reference":"Patient"}`), []string{}, PatientsUnknown},
		{"id too long", obs(`{"reference":"Patient/` + string(make65()) + `"}`), []string{}, PatientsUnknown},
		{"id with a bad character", obs(`{"reference":"Patient/p 1"}`), []string{}, PatientsUnknown},
		{"lower-case type", obs(`{"reference":"patient/p1"}`), []string{}, PatientsUnknown},
		{"empty reference", obs(`{"reference":""}`), []string{}, PatientsUnknown},
		{"reference not a string", obs(`{"reference":42}`), []string{}, PatientsUnknown},
		{"identifier only", obs(`{"identifier":{"system":"urn:mrn","value":"123"}}`), []string{}, PatientsUnknown},
		{"display only", obs(`{"display":"Jane Doe"}`), []string{}, PatientsUnknown},
		{"identifier of a declared non-patient", obs(`{"type":"Group","identifier":{"value":"g"}}`), []string{}, PatientsNone},
		{"identifier of a declared patient", obs(`{"type":"Patient","identifier":{"value":"123"}}`), []string{}, PatientsUnknown},
		{"type does not override the reference", obs(`{"reference":"Patient/p1","type":"Group"}`), []string{"p1"}, PatientsKnown},
		{"element is a string", obs(`"Patient/p1"`), []string{}, PatientsUnknown},
		{"element is null", obs(`null`), []string{}, PatientsNone},
		{"array of references, deduplicated and sorted", `{"resourceType":"Observation","performer":[` + ref("p2") + `,` + ref("p1") + `,` + ref("p2") + `]}`, []string{"p1", "p2"}, PatientsKnown},
		{"array element not an object", `{"resourceType":"Observation","performer":[` + ref("p1") + `,7]}`, []string{"p1"}, PatientsUnknown},
		{"backbone element as an object", `{"resourceType":"CareTeam","participant":{"member":` + ref("p1") + `}}`, []string{"p1"}, PatientsKnown},
		{"backbone element not an object", `{"resourceType":"CareTeam","participant":["x"]}`, []string{}, PatientsUnknown},
		{"proven ids kept when another is unknown", `{"resourceType":"Observation","subject":` + ref("p1") + `,"performer":[{"reference":"urn:uuid:x"}]}`, []string{"p1"}, PatientsUnknown},
		{"patient resource", `{"resourceType":"Patient","id":"p1"}`, []string{"p1"}, PatientsKnown},
		{"patient links are not its patients", `{"resourceType":"Patient","id":"p1","link":[{"other":` + ref("p2") + `,"type":"seealso"}]}`, []string{"p1"}, PatientsKnown},
		{"patient without an id", `{"resourceType":"Patient","name":[{"family":"Doe"}]}`, []string{}, PatientsUnknown},
		{"patient with an invalid id", `{"resourceType":"Patient","id":"p/1"}`, []string{}, PatientsUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := describe(t, tt.body, opts)
			require.NotEmpty(t, got)
			assert.Equal(t, tt.want, got[0].Patients, "patients")
			assert.Equal(t, tt.status, got[0].PatientStatus, "status")
		})
	}
}

func make65() []byte {
	b := make([]byte, 65)
	for i := range b {
		b[i] = 'a'
	}
	return b
}

func TestContainedReferences(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		want   []string
		status string
		// per contained resource, in order
		contained []string
	}{
		{
			name:      "contained related person counts for the container",
			body:      `{"resourceType":"Observation","contained":[{"resourceType":"RelatedPerson","id":"rp","patient":` + ref("p1") + `}],"performer":[{"reference":"#rp"}]}`,
			want:      []string{"p1"},
			status:    PatientsKnown,
			contained: []string{PatientsKnown},
		},
		{
			name:      "contained practitioner adds nothing",
			body:      `{"resourceType":"Observation","contained":[{"resourceType":"Practitioner","id":"pr"}],"subject":` + ref("p1") + `,"performer":[{"reference":"#pr"}]}`,
			want:      []string{"p1"},
			status:    PatientsKnown,
			contained: []string{PatientsNone},
		},
		{
			name:      "contained patient has no server identity",
			body:      `{"resourceType":"Observation","contained":[{"resourceType":"Patient","id":"p1"}],"subject":{"reference":"#p1"}}`,
			want:      []string{},
			status:    PatientsUnknown,
			contained: []string{PatientsUnknown},
		},
		{
			name:   "missing contained resource",
			body:   `{"resourceType":"Observation","subject":{"reference":"#nope"}}`,
			want:   []string{},
			status: PatientsUnknown,
		},
		{
			name:   "bare hash",
			body:   `{"resourceType":"Observation","subject":{"reference":"#"}}`,
			want:   []string{},
			status: PatientsUnknown,
		},
		{
			name:      "ambiguous contained ids",
			body:      `{"resourceType":"Observation","contained":[{"resourceType":"Practitioner","id":"x"},{"resourceType":"RelatedPerson","id":"x","patient":` + ref("p9") + `}],"subject":{"reference":"#x"}}`,
			want:      []string{},
			status:    PatientsUnknown,
			contained: []string{PatientsNone, PatientsKnown},
		},
		{
			name:      "contained resources resolve siblings",
			body:      `{"resourceType":"Observation","contained":[{"resourceType":"Observation","id":"a","subject":{"reference":"#b"}},{"resourceType":"RelatedPerson","id":"b","patient":` + ref("p2") + `}],"subject":{"reference":"#a"}}`,
			want:      []string{"p2"},
			status:    PatientsKnown,
			contained: []string{PatientsKnown, PatientsKnown},
		},
		{
			name:      "reference cycle",
			body:      `{"resourceType":"Observation","contained":[{"resourceType":"Observation","id":"a","subject":{"reference":"#b"}},{"resourceType":"Observation","id":"b","subject":{"reference":"#a"}}],"subject":{"reference":"#a"}}`,
			want:      []string{},
			status:    PatientsUnknown,
			contained: []string{PatientsUnknown, PatientsUnknown},
		},
		{
			name:      "a nested resource that is not contained cannot be referenced",
			body:      `{"resourceType":"Observation","extension":[{"url":"x","valueX":{"resourceType":"RelatedPerson","id":"rp","patient":` + ref("p1") + `}}],"subject":{"reference":"#rp"}}`,
			want:      []string{},
			status:    PatientsUnknown,
			contained: []string{PatientsKnown},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := describe(t, tt.body, Options{})
			require.Len(t, got, 1+len(tt.contained))
			assert.Equal(t, tt.want, got[0].Patients, "container patients")
			assert.Equal(t, tt.status, got[0].PatientStatus, "container status")
			for i, st := range tt.contained {
				assert.Equal(t, st, got[1+i].PatientStatus, "status of nested resource %d", i)
			}
		})
	}
}

func TestLabels(t *testing.T) {
	tests := []struct {
		name string
		meta string
		want []string
	}{
		{"none", `{}`, []string{}},
		{"sorted and deduplicated", `{"security":[{"system":"s","code":"R"},{"code":"PSY"},{"system":"other","code":"R"}]}`, []string{"PSY", "R"}},
		{"system ignored", `{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"V"}]}`, []string{"V"}},
		{"non-string codes ignored", `{"security":[{"code":1},{"code":null},{"display":"x"},"R"]}`, []string{}},
		{"single coding instead of an array", `{"security":{"code":"R"}}`, []string{"R"}},
		{"tags are not security labels", `{"tag":[{"code":"R"}]}`, []string{}},
		{"escaped code", `{"security":[{"code":"E\u0054H"}]}`, []string{"ETH"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := describe(t, `{"resourceType":"Observation","meta":`+tt.meta+`}`, Options{})
			require.Len(t, got, 1)
			assert.Equal(t, tt.want, got[0].Labels)
		})
	}
}
