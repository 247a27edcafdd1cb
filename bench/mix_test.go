package bench

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBuildMix(t *testing.T) {
	var clinicians []clinician
	patients := map[string]bool{}
	for i := range 1000 {
		var panel []string
		for k := range 6 { // six patients each, panels overlapping
			p := fmt.Sprintf("p%d", 1+(i*3+k)%60)
			panel = append(panel, p)
			patients[p] = true
		}
		clinicians = append(clinicians, clinician{token: fmt.Sprintf("tok%d", i), patients: panel})
	}
	mix, err := buildMix(clinicians)
	require.NoError(t, err)
	panelOf := map[string][]string{}
	for _, c := range clinicians {
		panelOf["Bearer "+c.token] = c.patients
	}

	auths, reads, searches := map[string]int{}, map[string]bool{}, map[string]bool{}
	nSearch := 0
	for _, r := range mix {
		auths[r.Authorization]++
		switch {
		case strings.HasPrefix(r.Path, "/fhir/Patient/"):
			pid := strings.TrimPrefix(r.Path, "/fhir/Patient/")
			reads[pid] = true
			require.Contains(t, panelOf[r.Authorization], pid, "a clinician reads only their own patients")
		case strings.HasPrefix(r.Path, "/fhir/Observation?patient="):
			pid := strings.TrimPrefix(r.Path, "/fhir/Observation?patient=")
			searches[pid] = true
			require.Contains(t, panelOf[r.Authorization], pid, "a clinician searches only their own patients")
			nSearch++
		default:
			t.Fatalf("unexpected path %q", r.Path)
		}
	}
	assert.Len(t, auths, len(clinicians), "every token is used")
	for a, n := range auths {
		require.Equal(t, searchEvery, n, "token %s used equally often", a)
	}
	touched := map[string]bool{}
	for p := range reads {
		touched[p] = true
	}
	for p := range searches {
		touched[p] = true
	}
	assert.Len(t, touched, len(patients), "every patient of some panel is read or searched")
	assert.Greater(t, len(searches), len(patients)/2, "searches spread over the patients")
	assert.Equal(t, len(mix)/searchEvery, nSearch, "one request in five is a search")
	assert.NotEqual(t, mix[0].Authorization, mix[1].Authorization, "consecutive requests change token")
	assert.NotEqual(t, mix[0].Path, mix[1].Path, "consecutive requests change patient")
}

func TestBuildMixNeedsInput(t *testing.T) {
	_, err := buildMix(nil)
	require.Error(t, err)
	_, err = buildMix([]clinician{{token: "t"}})
	require.Error(t, err, "a clinician without patients")
}
