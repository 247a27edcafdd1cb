package bench

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBuildMix(t *testing.T) {
	var tokens, patients []string
	for i := range 1000 {
		tokens = append(tokens, fmt.Sprintf("tok%d", i))
	}
	for i := 1; i <= 60; i++ {
		patients = append(patients, fmt.Sprintf("p%d", i))
	}
	mix, err := buildMix(tokens, patients)
	require.NoError(t, err)

	auths, reads, searches := map[string]int{}, map[string]bool{}, map[string]bool{}
	nSearch := 0
	for _, r := range mix {
		auths[r.Authorization]++
		switch {
		case strings.HasPrefix(r.Path, "/fhir/Patient/"):
			reads[strings.TrimPrefix(r.Path, "/fhir/Patient/")] = true
		case strings.HasPrefix(r.Path, "/fhir/Observation?patient="):
			searches[strings.TrimPrefix(r.Path, "/fhir/Observation?patient=")] = true
			nSearch++
		default:
			t.Fatalf("unexpected path %q", r.Path)
		}
	}
	assert.Len(t, auths, len(tokens), "every token is used")
	for a, n := range auths {
		require.Equal(t, searchEvery, n, "token %s used equally often", a)
	}
	assert.Len(t, reads, len(patients), "every patient is read")
	assert.Len(t, searches, len(patients), "every patient is searched")
	assert.Equal(t, len(mix)/searchEvery, nSearch, "one request in five is a search")
	assert.NotEqual(t, mix[0].Authorization, mix[1].Authorization, "consecutive requests change token")
	assert.NotEqual(t, mix[0].Path, mix[1].Path, "consecutive requests change patient")
}

func TestBuildMixNeedsInput(t *testing.T) {
	_, err := buildMix(nil, []string{"p1"})
	require.Error(t, err)
	_, err = buildMix([]string{"t"}, nil)
	require.Error(t, err)
}
