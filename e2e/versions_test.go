//go:build unix

package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMedplumOldVersionsCarryTheCurrentLabel: an Observation labelled
// restricted after it was written keeps its first version from a
// physician on the care team too, by vread and in its history, since
// FHIR labels are per version (versions.go).
func TestMedplumOldVersionsCarryTheCurrentLabel(t *testing.T) {
	w := startMedplumWorld(t)
	tok := pr1(t, w.e)
	id := w.aObs[0]

	var first struct {
		Meta struct{ VersionID string } `json:"meta"`
	}
	require.NoError(t, json.Unmarshal([]byte(mpGet(t, w.mp, "/Observation/"+id)), &first))
	require.NotEmpty(t, first.Meta.VersionID)
	v1 := "/fhir/Observation/" + id + "/_history/" + first.Meta.VersionID

	status, body, _ := w.e.call(t, "GET", v1, tok, nil, nil)
	require.Equal(t, http.StatusOK, status, "before the label: %s", body)

	labelled := strings.Replace(heartRateObs(w.A, 70, "R"), `{"resourceType":"Observation",`, `{"resourceType":"Observation","id":"`+id+`",`, 1)
	req, err := http.NewRequest(http.MethodPut, w.mp.FHIRURL()+"/Observation/"+id, strings.NewReader(labelled))
	require.NoError(t, err)
	req.Header.Set("Content-Type", fhirJSONType)
	resp, err := client.Do(req)
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))

	status, body, _ = w.e.call(t, "GET", v1, tok, nil, nil)
	assert.Equal(t, http.StatusForbidden, status, body)
	assert.Contains(t, body, "restricted record")
	assert.NotContains(t, body, `"valueQuantity"`)
	ev := lastEvent(t, w.e)
	assert.Equal(t, "denied", ev.Outcome)

	status, body, _ = w.e.call(t, "GET", "/fhir/Observation/"+id+"/_history", tok, nil, nil)
	assert.Contains(t, []int{http.StatusOK, http.StatusForbidden}, status, body)
	assert.NotContains(t, body, `"valueQuantity"`, "no version of it is shown")
}
