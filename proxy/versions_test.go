package proxy

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestOldVersionsCarryTheCurrentLabels: a version from before the record
// was labelled restricted is decided with the current version's labels,
// in a vread and in the instance's history; a deleted resource's versions
// with their own; and a current version that cannot be read refuses the
// response.
func TestOldVersionsCarryTheCurrentLabels(t *testing.T) {
	const (
		v1 = `{"resourceType":"Observation","id":"o1","meta":{"versionId":"1"},"subject":{"reference":"Patient/p1"},"status":"final"}`
		v2 = `{"resourceType":"Observation","id":"o1","meta":{"versionId":"2","security":[{"code":"R"}]},"subject":{"reference":"Patient/p1"},"status":"final"}`
	)
	history := `{"resourceType":"Bundle","type":"history","entry":[{"resource":` + v2 + `},{"resource":` + v1 + `}]}`
	cases := []struct {
		name    string
		current int // status of the current version's read
		path    string
		status  int
		shows   bool // the unlabelled version 1 is delivered
	}{
		{"vread of a version before the label", 200, "/fhir/Observation/o1/_history/1", 403, false},
		{"history of the instance", 200, "/fhir/Observation/o1/_history", 200, false},
		{"vread of a deleted resource's version", 410, "/fhir/Observation/o1/_history/1", 200, true},
		{"the current version cannot be read", 503, "/fhir/Observation/o1/_history/1", 502, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, carePolicy, nil, func(w http.ResponseWriter, r *http.Request) {
				switch r.URL.Path {
				case "/fhir/Observation/o1":
					fhirUpstream(tc.current, v2)(w, r)
				case "/fhir/Observation/o1/_history/1":
					fhirUpstream(200, v1)(w, r)
				case "/fhir/Observation/o1/_history":
					fhirUpstream(200, history)(w, r)
				default:
					http.NotFound(w, r)
				}
			})
			resp := h.do(t, "GET", tc.path, good, "")
			body := readBody(t, resp)
			require.Equal(t, tc.status, resp.StatusCode, body)
			if tc.shows {
				assert.Contains(t, body, `"versionId":"1"`)
			} else {
				assert.NotContains(t, body, `"versionId":"1"`, "no byte of the old version")
			}
		})
	}

	// Other interactions read nothing more.
	h := newHarness(t, carePolicy, nil, fhirUpstream(200, obsP1))
	resp := h.do(t, "GET", "/fhir/Observation/o1", good, "")
	readBody(t, resp)
	assert.Len(t, h.seen(), 1)
}
