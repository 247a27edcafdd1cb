package e2e

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chartguard/chartguard/chartguard"
	"github.com/chartguard/chartguard/examples/fhir-demo/devissuer"
)

// The demo EMR's fixed points (fhirserver doc.go): pr1 is p1's GP and
// care-team lead and on neither p2's care team nor its encounters.

type searchBundle struct {
	Total *int
	Link  []struct{ Relation, URL string }
	Entry []struct {
		FullURL  string `json:"fullUrl"`
		Resource struct {
			ResourceType string
			ID           string
			Subject      struct{ Reference string }
		}
		Search struct{ Mode string }
	}
}

func parseBundle(t *testing.T, body string) searchBundle {
	t.Helper()
	var b searchBundle
	require.NoError(t, json.Unmarshal([]byte(body), &b), body)
	return b
}

// pr1 is a physician token for Practitioner/pr1.
func pr1(t *testing.T, e *env) string {
	return e.token(t, "physician", "dr-pr1", func(r *devissuer.TokenRequest) { r.FHIRUser = "Practitioner/pr1" })
}

// panel is the set of patients whose resources pr1 may see: the patients
// of its care teams, as the demo EMR itself says.
func panel(t *testing.T, e *env, tok string) map[string]bool {
	status, body, _ := e.call(t, "GET", "/fhir/CareTeam?participant=Practitioner/pr1&_count=1000", tok, nil, nil)
	require.Equal(t, 200, status, body)
	out := map[string]bool{}
	for _, en := range parseBundle(t, body).Entry {
		if p, ok := strings.CutPrefix(en.Resource.Subject.Reference, "Patient/"); ok {
			out[p] = true
		}
	}
	require.True(t, out["p1"])
	require.False(t, out["p2"])
	return out
}

func TestResponseReadByIDIsDecidedOnTheResource(t *testing.T) {
	e := startEnv(t, envOptions{})
	tok := pr1(t, e)

	status, body, _ := e.call(t, "GET", "/fhir/Observation/obs-p1-1", tok, nil, nil)
	require.Equal(t, 200, status, body)
	assert.Contains(t, body, `"Patient/p1"`)

	status, body, _ = e.call(t, "GET", "/fhir/Observation/obs-p2-1", tok, nil, nil)
	require.Equal(t, 403, status, body)
	assert.Contains(t, body, "OperationOutcome")
	assert.Contains(t, body, "care team")
	assert.NotContains(t, body, "p2", "no byte of p2's Observation")

	evs := e.events(t)
	last := evs[len(evs)-1]
	assert.Equal(t, chartguard.OutcomeDenied, last.Outcome)
	assert.Equal(t, "obs-p2-1", last.Resource.ID)
	assert.Contains(t, last.Decision.Reasons, "not on the patient's care team")
}

func TestResponseSearchKeepsOnlyPermittedEntries(t *testing.T) {
	e := startEnv(t, envOptions{})
	tok := pr1(t, e)
	mine := panel(t, e, tok)

	status, body, _ := e.call(t, "GET", "/fhir/Observation?code=http://loinc.org|8867-4&_count=1000", tok, nil, nil)
	require.Equal(t, 200, status, body)
	b := parseBundle(t, body)
	assert.Nil(t, b.Total, "total removed once entries were withheld")
	var outcome int
	for _, en := range b.Entry {
		if en.Search.Mode == "outcome" {
			outcome++
			assert.Equal(t, "OperationOutcome", en.Resource.ResourceType)
			continue
		}
		p := strings.TrimPrefix(en.Resource.Subject.Reference, "Patient/")
		assert.True(t, mine[p], "entry of patient %s is on pr1's care teams", p)
		assert.True(t, strings.HasPrefix(en.FullURL, "https://emr.example.org/fhir/"), en.FullURL)
	}
	assert.Equal(t, 1, outcome, "one outcome entry says results were suppressed")

	evs := e.events(t)
	last := evs[len(evs)-1]
	require.NotEmpty(t, last.Resource.Patients)
	for _, p := range last.Resource.Patients {
		assert.True(t, mine[p], "the audit names the patients delivered: %s", p)
	}
}

func TestResponseIncludeAndNotModifier(t *testing.T) {
	e := startEnv(t, envOptions{})
	tok := pr1(t, e)
	mine := panel(t, e, tok)
	for _, target := range []string{
		"/fhir/Observation?code=http://loinc.org|8867-4&_include=Observation:subject&_count=1000",
		"/fhir/Observation?patient:not=p1&_count=1000",
		"/fhir/Observation?code=http://loinc.org|8867-4&_format=xml&_count=1000",
	} {
		t.Run(target, func(t *testing.T) {
			status, body, _ := e.call(t, "GET", target, tok, nil, map[string]string{"Accept-Encoding": "gzip"})
			require.Equal(t, 200, status, body)
			assert.NotContains(t, body, `"Patient/p2"`)
			assert.NotContains(t, body, `"id":"p2"`)
			for _, en := range parseBundle(t, body).Entry {
				switch en.Resource.ResourceType {
				case "Patient":
					assert.True(t, mine[en.Resource.ID], "included Patient %s", en.Resource.ID)
					assert.Equal(t, "include", en.Search.Mode)
				case "Observation":
					assert.True(t, mine[strings.TrimPrefix(en.Resource.Subject.Reference, "Patient/")])
				}
			}
		})
	}
}

func TestResponsePagingComesBackThroughTheProxy(t *testing.T) {
	e := startEnv(t, envOptions{})
	tok := pr1(t, e)
	mine := panel(t, e, tok)
	target := "/fhir/Observation?code=http://loinc.org|8867-4&_count=5"
	pages := 0
	for target != "" && pages < 50 {
		pages++
		status, body, _ := e.call(t, "GET", target, tok, nil, nil)
		require.Equal(t, 200, status, body)
		b := parseBundle(t, body)
		for _, en := range b.Entry {
			if en.Resource.ResourceType == "Observation" {
				assert.True(t, mine[strings.TrimPrefix(en.Resource.Subject.Reference, "Patient/")])
			}
		}
		target = ""
		for _, l := range b.Link {
			if l.Relation == "next" {
				rest, ok := strings.CutPrefix(l.URL, "https://emr.example.org")
				require.True(t, ok, "next link points at the proxy: %s", l.URL)
				target = rest
			}
		}
	}
	assert.Greater(t, pages, 1, "the search was paged")
}

func TestResponseFailsClosedOnWhatItCannotCheck(t *testing.T) {
	tests := []struct {
		name   string
		answer func(w http.ResponseWriter)
	}{
		{"304", func(w http.ResponseWriter) { w.WriteHeader(http.StatusNotModified) }},
		{"redirect to another host", func(w http.ResponseWriter) {
			w.Header().Set("Location", "https://elsewhere.example.com/fhir/Observation/obs-p2-1")
			w.WriteHeader(http.StatusFound)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := startEnv(t, envOptions{wrapUpstream: func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if strings.HasSuffix(r.URL.Path, "/obs-p1-2") {
						tt.answer(w)
						return
					}
					next.ServeHTTP(w, r)
				})
			}})
			tok := pr1(t, e)
			status, body, _ := e.call(t, "GET", "/fhir/Observation/obs-p1-2", tok, nil, map[string]string{"If-None-Match": `W/"1"`})
			assert.Equal(t, http.StatusBadGateway, status, body)
			assert.Contains(t, body, "cannot be checked")
			evs := e.events(t)
			assert.Equal(t, chartguard.OutcomeError, evs[len(evs)-1].Outcome)
		})
	}
}

func TestWritesAndBundlesAreDecidedOnWhatTheyTouch(t *testing.T) {
	e := startEnv(t, envOptions{})
	tok := pr1(t, e)

	// p2's Observation, rewritten to name p1: the current version decides.
	status, body, _ := e.call(t, "PUT", "/fhir/Observation/obs-p2-1", tok,
		strings.NewReader(`{"resourceType":"Observation","id":"obs-p2-1","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p1"}}`),
		map[string]string{"Content-Type": "application/fhir+json"})
	assert.Equal(t, 403, status, body)

	// Its own patient's Observation goes through, on the version decided.
	status, body, _ = e.call(t, "PUT", "/fhir/Observation/obs-p1-1", tok,
		strings.NewReader(`{"resourceType":"Observation","id":"obs-p1-1","status":"amended","code":{"text":"x"},"subject":{"reference":"Patient/p1"}}`),
		map[string]string{"Content-Type": "application/fhir+json"})
	assert.Equal(t, 200, status, body)
	var ifMatch []string
	for _, r := range e.upstreamSaw() {
		if r.Method == "PUT" {
			ifMatch = append(ifMatch, r.Header.Get("If-Match"))
		}
	}
	require.Len(t, ifMatch, 1, "only the permitted write reached the EMR")
	assert.True(t, strings.HasPrefix(ifMatch[0], `W/"`), ifMatch[0])

	obs := func(p string) string {
		return `{"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/` + p + `"}},"request":{"method":"POST","url":"Observation"}}`
	}
	tx := `{"resourceType":"Bundle","type":"transaction","entry":[` + obs("p1") + `,` + obs("p2") + `]}`
	status, body, _ = e.call(t, "POST", "/fhir", tok, strings.NewReader(tx), map[string]string{"Content-Type": "application/fhir+json"})
	assert.Equal(t, 403, status, body)
	assert.Contains(t, body, "entry 1")

	batch := strings.Replace(tx, `"transaction"`, `"batch"`, 1)
	status, body, _ = e.call(t, "POST", "/fhir", tok, strings.NewReader(batch), map[string]string{"Content-Type": "application/fhir+json"})
	if status == http.StatusNotFound {
		t.Skip("the demo EMR does not take batches")
	}
	require.Equal(t, 200, status, body)
	var resp struct {
		Entry []struct{ Response struct{ Status string } }
	}
	require.NoError(t, json.Unmarshal([]byte(body), &resp))
	require.Len(t, resp.Entry, 2, body)
	assert.True(t, strings.HasPrefix(resp.Entry[0].Response.Status, "201"), body)
	assert.Equal(t, "403 Forbidden", resp.Entry[1].Response.Status)
	assert.False(t, slices.ContainsFunc(e.upstreamSaw(), func(r *http.Request) bool { return r.Method == "POST" && r.URL.Path == "/fhir/Observation" }))
}
