package fhirserver

import (
	"net/http"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRead(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	tests := []struct {
		name, target string
		wantType     string
		wantID       string
	}{
		{"patient", "/fhir/Patient/p1", "Patient", "p1"},
		{"practitioner", "/fhir/Practitioner/pr10", "Practitioner", "pr10"},
		{"observation", "/fhir/Observation/obs-p2-1", "Observation", "obs-p2-1"},
		{"condition", "/fhir/Condition/cond-p4-1", "Condition", "cond-p4-1"},
		{"encounter", "/fhir/Encounter/enc-p60-1", "Encounter", "enc-p60-1"},
		{"medication request", "/fhir/MedicationRequest/med-p9-1", "MedicationRequest", "med-p9-1"},
		{"document", "/fhir/DocumentReference/doc-p5-1", "DocumentReference", "doc-p5-1"},
		{"care team", "/fhir/CareTeam/ct-p1-1", "CareTeam", "ct-p1-1"},
		{"vread", "/fhir/Patient/p1/_history/1", "Patient", "p1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := get(t, s, tc.target)
			require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			assert.Equal(t, "application/fhir+json; charset=utf-8", rec.Header().Get("Content-Type"))
			assert.Equal(t, `W/"1"`, rec.Header().Get("ETag"))
			assert.Equal(t, "Tue, 10 Mar 2026 00:00:00 GMT", rec.Header().Get("Last-Modified"))
			res := decode(t, rec)
			assert.Equal(t, tc.wantType, res["resourceType"])
			assert.Equal(t, tc.wantID, res["id"])
			meta := res["meta"].(map[string]any)
			assert.Equal(t, "1", meta["versionId"])
			assert.Equal(t, "2026-03-10T00:00:00.000Z", meta["lastUpdated"])
			assert.Equal(t, rec.Header().Get("Content-Length"), itoa(rec.Body.Len()))
		})
	}
}

func TestHeadIsGetWithoutBody(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	rec := do(t, s, req{method: http.MethodHead, target: "/fhir/Patient/p1"})
	require.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, `W/"1"`, rec.Header().Get("ETag"))
}

func TestErrors(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	tests := []struct {
		name       string
		r          req
		wantStatus int
		wantCode   string
		wantAllow  string
	}{
		{"unknown id", req{target: "/fhir/Patient/p9999"}, 404, "not-found", ""},
		{"unknown type", req{target: "/fhir/Spaceship/1"}, 404, "not-supported", ""},
		{"unknown type search", req{target: "/fhir/Spaceship?patient=p1"}, 404, "not-supported", ""},
		{"lower-case type", req{target: "/fhir/patient/p1"}, 404, "not-supported", ""},
		{"invalid id", req{target: "/fhir/Patient/p1$x"}, 400, "invalid", ""},
		{"encoded slash stays in the id", req{target: "/fhir/Patient/p1%2F..%2Fp2"}, 400, "invalid", ""},
		{"outside base", req{target: "/other/Patient/p1"}, 404, "not-found", ""},
		{"GET base itself", req{target: "/fhir"}, 405, "not-supported", "POST"},
		{"base with slash", req{method: http.MethodPost, target: "/fhir/", body: `{"resourceType":"Bundle","type":"batch"}`}, 404, "not-found", ""},
		{"base prefix lookalike", req{target: "/fhirx/Patient/p1"}, 404, "not-found", ""},
		{"trailing slash", req{target: "/fhir/Patient/p1/"}, 404, "not-found", ""},
		{"double slash", req{target: "/fhir//Patient/p1"}, 404, "not-found", ""},
		{"operation", req{target: "/fhir/Patient/p1/$everything"}, 404, "not-supported", ""},
		{"system operation", req{target: "/fhir/$export"}, 404, "not-supported", ""},
		{"unknown version", req{target: "/fhir/Patient/p1/_history/2"}, 404, "not-found", ""},
		{"non-numeric version", req{target: "/fhir/Patient/p1/_history/x"}, 404, "not-found", ""},
		{"zero-padded version", req{target: "/fhir/Patient/p1/_history/01"}, 404, "not-found", ""},
		{"too deep", req{target: "/fhir/Patient/p1/_history/1/x"}, 404, "not-supported", ""},
		{"metadata below", req{target: "/fhir/metadata/x"}, 404, "not-found", ""},
		{"patch", req{method: http.MethodPatch, target: "/fhir/Patient/p1"}, 405, "not-supported", "GET, HEAD, PUT, DELETE"},
		{"post instance", req{method: http.MethodPost, target: "/fhir/Patient/p1"}, 405, "not-supported", "GET, HEAD, PUT, DELETE"},
		{"delete type", req{method: http.MethodDelete, target: "/fhir/Patient"}, 405, "not-supported", "GET, HEAD, POST"},
		{"post metadata", req{method: http.MethodPost, target: "/fhir/metadata"}, 405, "not-supported", "GET, HEAD"},
		{"get _search", req{target: "/fhir/Patient/_search"}, 405, "not-supported", "POST"},
		{"delete history", req{method: http.MethodDelete, target: "/fhir/_history"}, 405, "not-supported", "GET, HEAD"},
		{"put vread", req{method: http.MethodPut, target: "/fhir/Patient/p1/_history/1"}, 405, "not-supported", "GET, HEAD"},
		{"compartment outside", req{target: "/fhir/Patient/p1/Practitioner"}, 400, "not-supported", ""},
		{"compartment unknown type", req{target: "/fhir/Patient/p1/Spaceship"}, 404, "not-supported", ""},
		{"compartment on non-patient", req{target: "/fhir/Practitioner/pr1/Observation"}, 404, "not-supported", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := do(t, s, tc.r)
			requireOutcome(t, rec, tc.wantStatus, tc.wantCode)
			assert.Equal(t, tc.wantAllow, rec.Header().Get("Allow"))
		})
	}
}

func TestErrorsEchoNoRequestValues(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	const secret = "SECRETVALUE"
	for _, target := range []string{
		"/fhir/Patient/" + secret,
		"/fhir/" + secret + "/x",
		"/fhir/Observation?patient:x" + secret + "=1",
		"/fhir/Observation?_include=Observation:" + secret + ":x:y",
		"/fhir/Observation?_include:" + secret + "=Observation:subject",
		"/fhir/Observation?_count=" + secret,
	} {
		rec := get(t, s, target)
		require.GreaterOrEqual(t, rec.Code, 400, target)
		assert.NotContains(t, rec.Body.String(), secret, target)
	}
}

func TestCapabilityStatement(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	rec := get(t, s, "/fhir/metadata")
	require.Equal(t, http.StatusOK, rec.Code)
	cs := decode(t, rec)
	assert.Equal(t, "CapabilityStatement", cs["resourceType"])
	assert.Equal(t, "4.0.1", cs["fhirVersion"])
	rest := cs["rest"].([]any)[0].(map[string]any)
	types := map[string]bool{}
	for _, r := range rest["resource"].([]any) {
		types[r.(map[string]any)["type"].(string)] = true
	}
	for _, want := range []string{"Patient", "Practitioner", "Observation", "Condition", "Encounter",
		"MedicationRequest", "DocumentReference", "CareTeam"} {
		assert.True(t, types[want], want)
		// Every advertised type is actually served.
		assert.Equal(t, http.StatusOK, get(t, s, "/fhir/"+want+"?_count=1").Code, want)
	}
}

func TestOnRequestSeesWhatTheUpstreamReceives(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var uris, auth []string
	s := New(Options{Now: testNow, OnRequest: func(r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		uris = append(uris, r.RequestURI)
		auth = append(auth, r.Header.Get("X-Chartguard-Assertion"))
	}})
	do(t, s, req{target: "/fhir/Observation?patient=p1&_count=2",
		header: map[string]string{"X-Chartguard-Assertion": "a.b.c"}})
	do(t, s, req{target: "/nowhere"})
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []string{"/fhir/Observation?patient=p1&_count=2", "/nowhere"}, uris)
	assert.Equal(t, []string{"a.b.c", ""}, auth)
}

func TestBaseOption(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, base, target string
	}{
		{"custom", "/api/r4", "/api/r4/Patient/p1"},
		{"trailing slash dropped", "/api/r4/", "/api/r4/Patient/p1"},
		{"no leading slash", "r4", "/r4/Patient/p1"},
		{"root", "/", "/Patient/p1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := New(Options{Base: tc.base, Now: testNow, Patients: 2})
			assert.Equal(t, http.StatusOK, get(t, s, tc.target).Code)
			assert.Equal(t, http.StatusNotFound, get(t, s, "/fhir/Patient/p1").Code)
		})
	}
}

func TestPatientIDs(t *testing.T) {
	t.Parallel()
	s := New(Options{Now: testNow, Patients: 3})
	assert.Equal(t, []string{"p1", "p2", "p3"}, s.PatientIDs())
	require.Equal(t, http.StatusNoContent, do(t, s, req{method: http.MethodDelete, target: "/fhir/Patient/p2"}).Code)
	assert.Equal(t, []string{"p1", "p3"}, s.PatientIDs())
}

func TestConcurrentReadsAndWrites(t *testing.T) {
	t.Parallel()
	s := New(Options{Now: testNow, Patients: 5})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for range 50 {
				if w%2 == 0 {
					get(t, s, "/fhir/Observation?patient=p1")
					get(t, s, "/fhir/Patient/p1")
				} else {
					do(t, s, req{method: http.MethodPost, target: "/fhir/Observation",
						body: `{"resourceType":"Observation","status":"final","subject":{"reference":"Patient/p1"}}`})
				}
			}
		})
	}
	wg.Wait()
	rec := get(t, s, "/fhir/Observation?patient=p1&_count=0")
	seeded := 0
	for _, id := range idsOf(allResources(t, s, "Observation")) {
		if len(id) > 7 && id[:7] == "obs-p1-" {
			seeded++
		}
	}
	assert.EqualValues(t, seeded+2*50, decode(t, rec)["total"])
}
