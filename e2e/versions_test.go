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

	// The type's history holds every version of every Observation: the
	// other unlabelled one of A is shown, no version of the relabelled one
	// (ChartGuard asked Medplum for the current versions by _id).
	status, body, _ = w.e.call(t, "GET", "/fhir/Observation/_history?_count=100", tok, nil, nil)
	require.Equal(t, http.StatusOK, status, body)
	var history struct {
		Entry []struct {
			Resource struct {
				ID   string `json:"id"`
				Meta struct {
					VersionID string `json:"versionId"`
				} `json:"meta"`
			} `json:"resource"`
		} `json:"entry"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &history))
	var shown []string
	for _, e := range history.Entry {
		shown = append(shown, e.Resource.ID+"/_history/"+e.Resource.Meta.VersionID)
	}
	var other struct {
		Meta struct{ VersionID string } `json:"meta"`
	}
	require.NoError(t, json.Unmarshal([]byte(mpGet(t, w.mp, "/Observation/"+w.aObs[1])), &other))
	assert.Contains(t, shown, w.aObs[1]+"/_history/"+other.Meta.VersionID, "A's other Observation, unlabelled, is shown")
	assert.NotContains(t, shown, id+"/_history/"+first.Meta.VersionID, "the version from before the label")
	for _, s := range shown {
		assert.False(t, strings.HasPrefix(s, id+"/"), "a version of the relabelled Observation: %s", s)
	}
	var searched bool
	for _, r := range w.up.saw(http.MethodGet) {
		searched = searched || strings.HasSuffix(r.Path, "/Observation") && strings.Contains(r.Query, "_id=")
	}
	assert.True(t, searched, "ChartGuard searched the current versions by _id")
}
