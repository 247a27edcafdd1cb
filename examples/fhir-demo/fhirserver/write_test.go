package fhirserver

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const newObservation = `{"resourceType":"Observation","id":"ignored","status":"final",
	"code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},
	"subject":{"reference":"Patient/p2"},"valueQuantity":{"value":72.10,"unit":"/min"}}`

func TestCreate(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	rec := do(t, s, req{method: http.MethodPost, target: "/fhir/Observation", body: newObservation,
		header: map[string]string{"Content-Type": "application/fhir+json"}})
	require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
	res := decode(t, rec)
	id := res["id"].(string)
	assert.NotEqual(t, "ignored", id, "the server assigns the id")
	assert.True(t, validID(id))
	assert.Equal(t, "http://fhir.example:8081/fhir/Observation/"+id+"/_history/1", rec.Header().Get("Location"))
	assert.Equal(t, `W/"1"`, rec.Header().Get("ETag"))
	meta := res["meta"].(map[string]any)
	assert.Equal(t, "1", meta["versionId"])
	assert.Equal(t, "2026-03-10T12:00:00.000Z", meta["lastUpdated"])
	assert.Contains(t, rec.Body.String(), `"value":72.10`, "decimals are kept as sent")

	read := get(t, s, "/fhir/Observation/"+id)
	require.Equal(t, http.StatusOK, read.Code)
	assert.JSONEq(t, rec.Body.String(), read.Body.String())

	found := resourceRefs(t, decode(t, get(t, s, "/fhir/Observation?patient=p2&code=8867-4&_count=1000")))
	assert.Contains(t, found, "Observation/"+id, "created resources are indexed for search")
}

func TestCreateAssignsDistinctIDs(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	seen := map[string]bool{}
	for range 5 {
		rec := do(t, s, req{method: http.MethodPost, target: "/fhir/Patient", body: `{"resourceType":"Patient"}`})
		require.Equal(t, http.StatusCreated, rec.Code)
		id := decode(t, rec)["id"].(string)
		assert.False(t, seen[id], id)
		seen[id] = true
	}
}

func TestCreatePreferMinimal(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	rec := do(t, s, req{method: http.MethodPost, target: "/fhir/Patient", body: `{"resourceType":"Patient"}`,
		header: map[string]string{"Prefer": "return=minimal"}})
	require.Equal(t, http.StatusCreated, rec.Code)
	assert.Empty(t, rec.Body.String())
	assert.NotEmpty(t, rec.Header().Get("Location"))
	assert.Equal(t, `W/"1"`, rec.Header().Get("ETag"))
}

func TestWriteErrors(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	tests := []struct {
		name       string
		r          req
		wantStatus int
		wantCode   string
	}{
		{"bad JSON", req{method: http.MethodPost, target: "/fhir/Patient", body: `{"resourceType":`}, 400, "invalid"},
		{"not an object", req{method: http.MethodPost, target: "/fhir/Patient", body: `["Patient"]`}, 400, "invalid"},
		{"null", req{method: http.MethodPost, target: "/fhir/Patient", body: `null`}, 400, "invalid"},
		{"empty body", req{method: http.MethodPost, target: "/fhir/Patient"}, 400, "invalid"},
		{"trailing data", req{method: http.MethodPost, target: "/fhir/Patient", body: `{"resourceType":"Patient"}{}`}, 400, "invalid"},
		{"type mismatch", req{method: http.MethodPost, target: "/fhir/Patient", body: `{"resourceType":"Observation"}`}, 400, "invalid"},
		{"missing resourceType", req{method: http.MethodPost, target: "/fhir/Patient", body: `{"id":"x"}`}, 400, "invalid"},
		{"meta not an object", req{method: http.MethodPost, target: "/fhir/Patient", body: `{"resourceType":"Patient","meta":[]}`}, 400, "invalid"},
		{"xml", req{method: http.MethodPost, target: "/fhir/Patient", body: `<Patient/>`,
			header: map[string]string{"Content-Type": "application/fhir+xml"}}, 415, "not-supported"},
		{"too large", req{method: http.MethodPost, target: "/fhir/Patient",
			body: `{"resourceType":"Patient","text":"` + strings.Repeat("x", maxBody) + `"}`}, 413, "too-costly"},
		{"unknown type", req{method: http.MethodPost, target: "/fhir/Spaceship", body: `{"resourceType":"Spaceship"}`}, 404, "not-supported"},
		{"update without id", req{method: http.MethodPut, target: "/fhir/Patient/p1", body: `{"resourceType":"Patient"}`}, 400, "invalid"},
		{"update id mismatch", req{method: http.MethodPut, target: "/fhir/Patient/p1", body: `{"resourceType":"Patient","id":"p2"}`}, 400, "invalid"},
		{"update type mismatch", req{method: http.MethodPut, target: "/fhir/Patient/p1", body: `{"resourceType":"Practitioner","id":"p1"}`}, 400, "invalid"},
		{"update invalid id", req{method: http.MethodPut, target: "/fhir/Patient/a_b", body: `{"resourceType":"Patient","id":"a_b"}`}, 400, "invalid"},
		{"delete unknown", req{method: http.MethodDelete, target: "/fhir/Patient/nobody"}, 404, "not-found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			requireOutcome(t, do(t, s, tc.r), tc.wantStatus, tc.wantCode)
		})
	}
	// Nothing above changed the store.
	assert.Equal(t, `W/"1"`, get(t, s, "/fhir/Patient/p1").Header().Get("ETag"))
}

func putPatient(id, family string) string {
	return `{"resourceType":"Patient","id":"` + id + `","name":[{"family":"` + family + `"}]}`
}

func TestUpdateAndIfMatch(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	steps := []struct {
		name       string
		ifMatch    string
		family     string
		wantStatus int
		wantETag   string
	}{
		{"plain update", "", "Update1", 200, `W/"2"`},
		{"matching weak etag", `W/"2"`, "Update2", 200, `W/"3"`},
		{"matching strong form", `"3"`, "Update3", 200, `W/"4"`},
		{"star matches a live resource", `*`, "Update4", 200, `W/"5"`},
		{"stale etag", `W/"2"`, "Stale", 412, ""},
		{"future etag", `W/"9"`, "Future", 412, ""},
		{"malformed etag", `v5`, "Bad", 400, ""},
		{"non-numeric etag", `W/"five"`, "Bad", 400, ""},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			h := map[string]string{}
			if st.ifMatch != "" {
				h["If-Match"] = st.ifMatch
			}
			rec := do(t, s, req{method: http.MethodPut, target: "/fhir/Patient/p1", body: putPatient("p1", st.family), header: h})
			require.Equal(t, st.wantStatus, rec.Code, rec.Body.String())
			if st.wantStatus != 200 {
				requireOutcome(t, rec, st.wantStatus, map[int]string{412: "conflict", 400: "invalid"}[st.wantStatus])
				return
			}
			assert.Equal(t, st.wantETag, rec.Header().Get("ETag"))
			res := decode(t, rec)
			assert.Equal(t, st.family, res["name"].([]any)[0].(map[string]any)["family"])
			assert.Equal(t, strings.Trim(st.wantETag, `W/"`), res["meta"].(map[string]any)["versionId"])
		})
	}
	// Old versions stay readable; the current one is the last success.
	v1 := decode(t, get(t, s, "/fhir/Patient/p1/_history/1"))
	assert.NotEqual(t, "Update1", v1["name"].([]any)[0].(map[string]any)["family"])
	v2 := decode(t, get(t, s, "/fhir/Patient/p1/_history/2"))
	assert.Equal(t, "Update1", v2["name"].([]any)[0].(map[string]any)["family"])
	cur := get(t, s, "/fhir/Patient/p1")
	assert.Equal(t, `W/"5"`, cur.Header().Get("ETag"))
}

func TestUpdateCreates(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	tests := []struct {
		name       string
		id         string
		ifMatch    string
		wantStatus int
	}{
		{"new id", "new-1", "", 201},
		{"if-match on a missing resource", "new-2", `W/"1"`, 412},
		{"star on a missing resource", "new-3", `*`, 412},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := map[string]string{}
			if tc.ifMatch != "" {
				h["If-Match"] = tc.ifMatch
			}
			rec := do(t, s, req{method: http.MethodPut, target: "/fhir/Patient/" + tc.id, body: putPatient(tc.id, "X"), header: h})
			require.Equal(t, tc.wantStatus, rec.Code, rec.Body.String())
			wantRead := http.StatusNotFound
			if tc.wantStatus == 201 {
				wantRead = http.StatusOK
				assert.Equal(t, "http://fhir.example:8081/fhir/Patient/"+tc.id+"/_history/1", rec.Header().Get("Location"))
			}
			assert.Equal(t, wantRead, get(t, s, "/fhir/Patient/"+tc.id).Code)
		})
	}
}

func TestDelete(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	// Stale If-Match: nothing is deleted.
	requireOutcome(t, do(t, s, req{method: http.MethodDelete, target: "/fhir/Observation/obs-p1-1",
		header: map[string]string{"If-Match": `W/"7"`}}), 412, "conflict")
	require.Equal(t, http.StatusOK, get(t, s, "/fhir/Observation/obs-p1-1").Code)

	rec := do(t, s, req{method: http.MethodDelete, target: "/fhir/Observation/obs-p1-1",
		header: map[string]string{"If-Match": `W/"1"`}})
	require.Equal(t, http.StatusNoContent, rec.Code)
	assert.Equal(t, `W/"2"`, rec.Header().Get("ETag"))

	requireOutcome(t, get(t, s, "/fhir/Observation/obs-p1-1"), http.StatusGone, "deleted")
	requireOutcome(t, get(t, s, "/fhir/Observation/obs-p1-1/_history/2"), http.StatusGone, "deleted")
	assert.Equal(t, http.StatusOK, get(t, s, "/fhir/Observation/obs-p1-1/_history/1").Code, "old versions stay readable")
	assert.NotContains(t, resourceRefs(t, decode(t, get(t, s, "/fhir/Observation?patient=p1"))), "Observation/obs-p1-1")

	// Deleting again is a no-op; with If-Match it fails (nothing current).
	assert.Equal(t, http.StatusNoContent, do(t, s, req{method: http.MethodDelete, target: "/fhir/Observation/obs-p1-1"}).Code)
	requireOutcome(t, do(t, s, req{method: http.MethodDelete, target: "/fhir/Observation/obs-p1-1",
		header: map[string]string{"If-Match": `W/"2"`}}), 412, "conflict")

	// An update brings it back as a new version.
	rec = do(t, s, req{method: http.MethodPut, target: "/fhir/Observation/obs-p1-1",
		body: `{"resourceType":"Observation","id":"obs-p1-1","status":"amended","subject":{"reference":"Patient/p1"}}`})
	require.Equal(t, http.StatusCreated, rec.Code)
	assert.Equal(t, `W/"3"`, rec.Header().Get("ETag"))
	assert.Contains(t, resourceRefs(t, decode(t, get(t, s, "/fhir/Observation?patient=p1"))), "Observation/obs-p1-1")
}

func TestHistory(t *testing.T) {
	t.Parallel()
	clock := testNow()
	s := New(Options{Patients: 3, Now: func() time.Time { return clock }})
	seeded := decode(t, get(t, s, "/fhir/_history?_count=0"))["total"].(float64)

	clock = clock.Add(time.Minute)
	require.Equal(t, 200, do(t, s, req{method: http.MethodPut, target: "/fhir/Patient/p2", body: putPatient("p2", "Two")}).Code)
	require.Equal(t, 204, do(t, s, req{method: http.MethodDelete, target: "/fhir/Patient/p2"}).Code)
	created := decode(t, do(t, s, req{method: http.MethodPost, target: "/fhir/Patient", body: `{"resourceType":"Patient"}`}))

	type entryWant struct{ method, url, status, etag, fullURL string }
	summarize := func(b map[string]any) []entryWant {
		var out []entryWant
		for _, e := range entries(t, b) {
			rq := e["request"].(map[string]any)
			rs := e["response"].(map[string]any)
			out = append(out, entryWant{rq["method"].(string), rq["url"].(string), rs["status"].(string),
				rs["etag"].(string), e["fullUrl"].(string)})
			assert.Equal(t, "2026-03-10T12:01:00.000Z", rs["lastModified"])
			if rq["method"] == "DELETE" {
				assert.NotContains(t, e, "resource")
			} else {
				assert.Contains(t, e, "resource")
			}
		}
		return out
	}
	base := "http://fhir.example:8081/fhir/"
	tests := []struct {
		name, target string
		wantTotal    float64
		wantFirst    []entryWant // newest first
	}{
		{"instance", "/fhir/Patient/p2/_history", 3, []entryWant{
			{"DELETE", "Patient/p2", "204 No Content", `W/"3"`, base + "Patient/p2"},
			{"PUT", "Patient/p2", "200 OK", `W/"2"`, base + "Patient/p2"},
		}},
		{"type", "/fhir/Patient/_history", 3 + 3, []entryWant{
			{"POST", "Patient", "201 Created", `W/"1"`, base + "Patient/" + created["id"].(string)},
			{"DELETE", "Patient/p2", "204 No Content", `W/"3"`, base + "Patient/p2"},
		}},
		{"system", "/fhir/_history", seeded + 3, []entryWant{
			{"POST", "Patient", "201 Created", `W/"1"`, base + "Patient/" + created["id"].(string)},
			{"DELETE", "Patient/p2", "204 No Content", `W/"3"`, base + "Patient/p2"},
			{"PUT", "Patient/p2", "200 OK", `W/"2"`, base + "Patient/p2"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := len(tc.wantFirst)
			rec := get(t, s, tc.target+"?_count="+itoa(n))
			require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			b := decode(t, rec)
			assert.Equal(t, "history", b["type"])
			assert.Equal(t, tc.wantTotal, b["total"])
			assert.Equal(t, tc.wantFirst, summarize(b))
			assert.NotEmpty(t, link(b, "next"))
		})
	}
	requireOutcome(t, get(t, s, "/fhir/Patient/nobody/_history"), http.StatusNotFound, "not-found")
	// The seeded version 1 of p2 is the oldest entry of its history.
	b := decode(t, get(t, s, "/fhir/Patient/p2/_history?_offset=2"))
	es := entries(t, b)
	require.Len(t, es, 1)
	assert.Equal(t, "POST", es[0]["request"].(map[string]any)["method"])
	assert.Equal(t, "1", es[0]["resource"].(map[string]any)["meta"].(map[string]any)["versionId"])
}
