//go:build unix

package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chartguard/chartguard/e2e/internal/medplum"
)

// TestMedplumThroughChartGuard runs the FHIR REST interactions through
// ChartGuard against Medplum's FHIR router — a real FHIR server nobody here
// wrote — and checks each leaves its audit event. The physician is on the
// care team of one patient, seeded in Medplum directly as the EMR's own
// administrator would; another patient, not theirs, has an Observation too.
func TestMedplumThroughChartGuard(t *testing.T) {
	mp := medplum.Start(t)
	pid := mpCreate(t, mp, "Patient", `{"resourceType":"Patient","name":[{"family":"Okafor","given":["Ada"]}]}`)
	other := mpCreate(t, mp, "Patient", `{"resourceType":"Patient","name":[{"family":"Lindqvist"}]}`)
	otherObs := mpCreate(t, mp, "Observation", heartRateObs(other, 64, ""))
	e := startEnv(t, envOptions{upstreamURL: mp.URL, policyDir: policyWithCareTeam(t, "Practitioner/pr1", pid)})
	doc := e.token(t, "physician", "doc-medplum")
	fhirJSON := map[string]string{"Content-Type": "application/fhir+json"}

	// A new patient is on nobody's care team yet: the create happens, and
	// its echo is an informational OperationOutcome instead of the record.
	status, body, _ := e.call(t, "POST", "/fhir/Patient", doc,
		strings.NewReader(`{"resourceType":"Patient","name":[{"family":"Mensah","given":["Kofi"]}]}`), fhirJSON)
	require.Equal(t, 201, status, body)
	assert.Contains(t, body, `"OperationOutcome"`)
	assert.Contains(t, body, `"information"`)
	assert.NotContains(t, body, "Mensah")

	status, body, _ = e.call(t, "GET", "/fhir/Patient/"+pid, doc, nil, nil)
	require.Equal(t, 200, status, body)
	assert.Contains(t, body, "Okafor")

	obs := heartRateObs(pid, 72, "")
	status, body, _ = e.call(t, "POST", "/fhir/Observation", doc, strings.NewReader(obs), fhirJSON)
	require.Equal(t, 201, status, body)
	oid := resourceID(t, body)

	status, body, _ = e.call(t, "GET", "/fhir/Observation?subject=Patient/"+pid, doc, nil, nil)
	require.Equal(t, 200, status, body)
	var bundle struct {
		ResourceType string `json:"resourceType"`
		Total        int    `json:"total"`
		Entry        []struct {
			Resource struct{ ID string } `json:"resource"`
		} `json:"entry"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &bundle))
	assert.Equal(t, "Bundle", bundle.ResourceType)
	require.Len(t, bundle.Entry, 1)
	assert.Equal(t, oid, bundle.Entry[0].Resource.ID)

	updated := strings.Replace(obs, `"value":72`, `"value":75`, 1)
	updated = strings.Replace(updated, `{"resourceType":"Observation",`, `{"resourceType":"Observation","id":"`+oid+`",`, 1)
	status, body, _ = e.call(t, "PUT", "/fhir/Observation/"+oid, doc, strings.NewReader(updated), fhirJSON)
	require.Equal(t, 200, status, body)

	status, body, _ = e.call(t, "GET", "/fhir/Observation/"+oid+"/_history", doc, nil, nil)
	require.Equal(t, 200, status, body)
	require.NoError(t, json.Unmarshal([]byte(body), &bundle))
	assert.Len(t, bundle.Entry, 2, "two versions in the history")

	status, body, _ = e.call(t, "GET", "/fhir/Patient/"+pid+"/_history", doc, nil, nil)
	require.Equal(t, 200, status, body)

	// A search that cannot prove its patient goes to Medplum and comes back
	// filtered: the other patient's Observation is dropped.
	status, body, _ = e.call(t, "GET", "/fhir/Observation?code="+heartRate, doc, nil, nil)
	require.Equal(t, 200, status, body)
	filtered := parseBundle(t, body)
	ids, _, outcomes := observationsOf(t, filtered)
	assert.Equal(t, []string{oid}, ids)
	assert.Equal(t, 1, outcomes, "an outcome entry says results were suppressed")
	assert.Nil(t, filtered.Total)
	assertNoneOf(t, body, other, otherObs)

	// Nobody deletes as shipped (a correction is an amendment, or status
	// entered-in-error): not a physician, not health information
	// management. Medplum never sees the DELETE.
	status, _, _ = e.call(t, "DELETE", "/fhir/Observation/"+oid, doc, nil, nil)
	assert.Equal(t, 403, status)
	him := e.token(t, "him", "doc-medplum")
	status, body, _ = e.call(t, "DELETE", "/fhir/Observation/"+oid, him, nil, nil)
	require.Equal(t, 403, status, body)
	status, _, _ = e.call(t, "GET", "/fhir/Observation/"+oid, doc, nil, nil)
	assert.Equal(t, 200, status, "the Observation is still there")

	e.stop()
	var actions []string
	evs := e.events(t)
	for _, ev := range evs {
		actions = append(actions, fmt.Sprintf("%s:%d", ev.Action, ev.Request.Status))
		assert.Equal(t, "doc-medplum", ev.User.Subject)
	}
	require.Len(t, actions, 11, "one event per request")
	assert.Equal(t, []string{pid}, evs[7].Resource.Patients, "the filtered search delivered only the physician's patient")
	assert.Equal(t, []string{"create:201", "read:200", "create:201", "search:200", "update:200",
		"history:200", "history:200", "search:200", "delete:403"}, actions[:9])
	assert.Equal(t, []string{"delete:403", "read:200"}, actions[9:])
}

func resourceID(t *testing.T, body string) string {
	t.Helper()
	var r struct{ ID string }
	require.NoError(t, json.Unmarshal([]byte(body), &r), body)
	require.NotEmpty(t, r.ID)
	return r.ID
}
