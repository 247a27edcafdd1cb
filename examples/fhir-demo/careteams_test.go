package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chartguard/chartguard/examples/fhir-demo/fhirserver"
)

// dataJSON is the default policy's data, which holds the demo's static
// care teams.
var dataJSON = filepath.Join("..", "..", "configs", "policy", "data.json")

// careTeams maps a care-team member ("Practitioner/prN") to the set of
// patient ids whose team they are on: the shape of care_teams in data.json.
type careTeams map[string]map[string]bool

// TestPolicyCareTeamsMatchDemo keeps data.json's static care_teams equal to
// the CareTeam resources of the demo EMR as `go run ./examples/fhir-demo`
// starts it (default seed and patient count), so the default policy's
// care-team rule and the demo never drift apart. On a mismatch it prints
// the care_teams object to paste into data.json.
func TestPolicyCareTeamsMatchDemo(t *testing.T) {
	t.Parallel()
	srv := fhirserver.New(fhirserver.Options{
		Seed:     fhirserver.DefaultSeed,
		Patients: fhirserver.DefaultPatients,
		Now:      func() time.Time { return time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC) },
	})
	want := demoCareTeams(t, srv)
	require.NotEmpty(t, want)
	// Fixed points the policy tests rely on (fhirserver doc.go).
	require.True(t, want["Practitioner/pr1"]["p1"], "pr1 is on p1's care team")
	require.False(t, want["Practitioner/pr1"]["p2"], "pr1 is not on p2's care team")

	raw, err := os.ReadFile(dataJSON)
	require.NoError(t, err)
	var data struct {
		ChartGuard struct {
			CareTeams careTeams `json:"care_teams"`
		} `json:"chartguard_data"`
	}
	require.NoError(t, json.Unmarshal(raw, &data))

	if !assert.Equal(t, want, data.ChartGuard.CareTeams, "care_teams in %s", dataJSON) {
		regenerated, err := json.MarshalIndent(map[string]careTeams{"care_teams": want}, "    ", "  ")
		require.NoError(t, err)
		t.Logf("care_teams for %s (replace the existing key):\n    %s", dataJSON, regenerated)
	}
}

// demoCareTeams searches every CareTeam of srv, following next links, and
// returns who is on which patient's active team.
func demoCareTeams(t *testing.T, srv *fhirserver.Server) careTeams {
	t.Helper()
	teams := careTeams{}
	next := "/fhir/CareTeam?_count=1000"
	for page := 0; next != ""; page++ {
		require.Less(t, page, 100, "too many pages")
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, next, nil))
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		var bundle struct {
			Link []struct {
				Relation string `json:"relation"`
				URL      string `json:"url"`
			} `json:"link"`
			Entry []struct {
				Resource struct {
					Status      string    `json:"status"`
					Subject     reference `json:"subject"`
					Participant []struct {
						Member reference `json:"member"`
					} `json:"participant"`
				} `json:"resource"`
			} `json:"entry"`
		}
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &bundle))
		for _, e := range bundle.Entry {
			ct := e.Resource
			if ct.Status != "active" {
				continue
			}
			patient, ok := strings.CutPrefix(ct.Subject.Reference, "Patient/")
			require.True(t, ok, "CareTeam subject %q", ct.Subject.Reference)
			for _, p := range ct.Participant {
				member := p.Member.Reference
				require.True(t, strings.HasPrefix(member, "Practitioner/"), "CareTeam member %q", member)
				if teams[member] == nil {
					teams[member] = map[string]bool{}
				}
				teams[member][patient] = true
			}
		}
		next = ""
		for _, l := range bundle.Link {
			if l.Relation == "next" {
				u, err := url.Parse(l.URL)
				require.NoError(t, err)
				next = u.RequestURI()
			}
		}
	}
	return teams
}

type reference struct {
	Reference string `json:"reference"`
}
