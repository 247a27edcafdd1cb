package fhirserver

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// entryReq is one entry of a request Bundle.
type entryReq struct {
	method, url, ifMatch, fullURL string
	resource                      string // raw JSON; "" for none
}

func bundleBody(t testing.TB, kind string, entries ...entryReq) string {
	t.Helper()
	list := make([]map[string]any, 0, len(entries))
	for _, e := range entries {
		rq := map[string]any{"method": e.method, "url": e.url}
		if e.ifMatch != "" {
			rq["ifMatch"] = e.ifMatch
		}
		m := map[string]any{"request": rq}
		if e.fullURL != "" {
			m["fullUrl"] = e.fullURL
		}
		if e.resource != "" {
			m["resource"] = json.RawMessage(e.resource)
		}
		list = append(list, m)
	}
	b := map[string]any{"resourceType": "Bundle", "type": kind}
	if len(list) > 0 {
		b["entry"] = list
	}
	out, err := json.Marshal(b)
	require.NoError(t, err)
	return string(out)
}

func postBundle(t testing.TB, h http.Handler, body string, header map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	hdr := map[string]string{"Content-Type": "application/fhir+json"}
	for k, v := range header {
		hdr[k] = v
	}
	return do(t, h, req{method: http.MethodPost, target: "/fhir", body: body, header: hdr})
}

// answer is one entry of a batch-response or transaction-response.
type answer struct {
	status, location, etag string
	resource               map[string]any // nil if absent
	outcomeCode            string         // issue code of response.outcome, "" if absent
}

// answers checks the response Bundle's type and returns its entries.
func answers(t testing.TB, rec *httptest.ResponseRecorder, kind string) []answer {
	t.Helper()
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	b := decode(t, rec)
	require.Equal(t, kind, b["type"])
	var out []answer
	for _, e := range entries(t, b) {
		resp := e["response"].(map[string]any)
		a := answer{status: resp["status"].(string)}
		a.location, _ = resp["location"].(string)
		a.etag, _ = resp["etag"].(string)
		a.resource, _ = e["resource"].(map[string]any)
		if oo, ok := resp["outcome"].(map[string]any); ok {
			require.Equal(t, "OperationOutcome", oo["resourceType"])
			a.outcomeCode = oo["issue"].([]any)[0].(map[string]any)["code"].(string)
		}
		out = append(out, a)
	}
	return out
}

// storeState is a fingerprint of everything stored: any commit, rollback
// leftover or id reuse changes it.
func storeState(t testing.TB, h http.Handler) string {
	t.Helper()
	var b strings.Builder
	for _, target := range []string{"/fhir/_history?_count=5", "/fhir/Patient?_count=1000",
		"/fhir/Observation?_count=1000", "/fhir/Patient/p1/_history", "/fhir/Observation/obs-p1-1/_history"} {
		rec := get(t, h, target)
		require.Equal(t, http.StatusOK, rec.Code, target)
		b.WriteString(rec.Body.String())
	}
	return b.String()
}

const obsForP1 = `{"resourceType":"Observation","status":"final","subject":{"reference":"Patient/p1"}}`

func TestBatchMixedResults(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	tests := []struct {
		name         string
		entry        entryReq
		wantStatus   string
		wantLocation string // {id} is the returned resource's id
		wantETag     string
		wantResource bool
		wantOutcome  string
	}{
		{"read", entryReq{method: "GET", url: "Patient/p1"}, "200 OK", "", `W/"1"`, true, ""},
		{"read unknown", entryReq{method: "GET", url: "Patient/nobody"}, "404 Not Found", "", "", false, "not-found"},
		{"stale ifMatch", entryReq{method: "PUT", url: "Patient/p2", ifMatch: `W/"9"`,
			resource: putPatient("p2", "Stale")}, "412 Precondition Failed", "", "", false, "conflict"},
		{"update with ifMatch", entryReq{method: "PUT", url: "Patient/p3", ifMatch: `W/"1"`,
			resource: putPatient("p3", "Batch")}, "200 OK", "Patient/p3/_history/2", `W/"2"`, true, ""},
		{"create", entryReq{method: "POST", url: "Observation", resource: newObservation},
			"201 Created", "Observation/{id}/_history/1", `W/"1"`, true, ""},
		{"delete", entryReq{method: "DELETE", url: "Observation/obs-p1-1"}, "204 No Content", "", `W/"2"`, false, ""},
		{"read after delete in the same batch", entryReq{method: "GET", url: "Observation/obs-p1-1"},
			"410 Gone", "", "", false, "deleted"},
		{"patch", entryReq{method: "PATCH", url: "Patient/p1", resource: `{"resourceType":"Binary"}`},
			"405 Method Not Allowed", "", "", false, "not-supported"},
		{"head", entryReq{method: "HEAD", url: "Patient/p1"}, "200 OK", "", `W/"1"`, false, ""},
		{"vread", entryReq{method: "GET", url: "Patient/p1/_history/1"}, "200 OK", "", `W/"1"`, true, ""},
		{"unknown type", entryReq{method: "GET", url: "Spaceship/1"}, "404 Not Found", "", "", false, "not-supported"},
		{"invalid resource", entryReq{method: "POST", url: "Patient", resource: `{"resourceType":"Observation"}`},
			"400 Bad Request", "", "", false, "invalid"},
		{"stale ifMatch on delete", entryReq{method: "DELETE", url: "Observation/obs-p1-2", ifMatch: `W/"5"`},
			"412 Precondition Failed", "", "", false, "conflict"},
	}
	reqs := make([]entryReq, len(tests))
	for i, tc := range tests {
		reqs[i] = tc.entry
	}
	got := answers(t, postBundle(t, s, bundleBody(t, "batch", reqs...), nil), "batch-response")
	require.Len(t, got, len(tests), "one answer per entry")
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := got[i]
			assert.Equal(t, tc.wantStatus, a.status)
			assert.Equal(t, tc.wantETag, a.etag)
			assert.Equal(t, tc.wantOutcome, a.outcomeCode)
			require.Equal(t, tc.wantResource, a.resource != nil)
			want := tc.wantLocation
			if a.resource != nil {
				want = strings.ReplaceAll(want, "{id}", a.resource["id"].(string))
			}
			assert.Equal(t, want, a.location)
		})
	}
	// The failed entries changed nothing; the others are applied.
	assert.Equal(t, `W/"1"`, get(t, s, "/fhir/Patient/p2").Header().Get("ETag"))
	assert.Equal(t, `W/"2"`, get(t, s, "/fhir/Patient/p3").Header().Get("ETag"))
	assert.Equal(t, http.StatusGone, get(t, s, "/fhir/Observation/obs-p1-1").Code)
	assert.Equal(t, `W/"1"`, get(t, s, "/fhir/Observation/obs-p1-2").Header().Get("ETag"))
	created := got[4].resource["id"].(string)
	assert.Equal(t, http.StatusOK, get(t, s, "/fhir/Observation/"+created).Code)
}

func TestBatchReadsMatchSingleInteractions(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	targets := []string{
		"Patient/p1",
		"Observation?patient=p1&_include=Observation:subject",
		"Observation?code=http://loinc.org|8867-4&_count=3",
		"Patient/p2/Condition",
		"Patient/p1/_history",
		"_history?_count=3",
		"metadata",
		"Observation?patient=nobody",
	}
	var reqs []entryReq
	for _, target := range targets {
		reqs = append(reqs, entryReq{method: "GET", url: target})
	}
	// An absolute URL under this server's own base is accepted too.
	reqs = append(reqs, entryReq{method: "GET", url: "http://fhir.example:8081/fhir/Patient/p1"})
	targets = append(targets, "Patient/p1")
	rec := postBundle(t, s, bundleBody(t, "batch", reqs...), nil)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	got := entries(t, decode(t, rec))
	require.Len(t, got, len(targets))
	for i, target := range targets {
		t.Run(reqs[i].url, func(t *testing.T) {
			single := get(t, s, "/fhir/"+target)
			require.Equal(t, http.StatusOK, single.Code)
			assert.Equal(t, "200 OK", got[i]["response"].(map[string]any)["status"])
			res, err := json.Marshal(got[i]["resource"])
			require.NoError(t, err)
			assert.JSONEq(t, single.Body.String(), string(res), "same JSON as the single interaction")
		})
	}
}

func TestBatchPreferHeader(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	body := bundleBody(t, "batch",
		entryReq{method: "POST", url: "Observation", resource: obsForP1},
		entryReq{method: "PUT", url: "Patient/p1", resource: putPatient("p1", "Minimal")},
		entryReq{method: "GET", url: "Patient/p1"},
		entryReq{method: "GET", url: "Observation?patient=p1&bogus=1"},
	)
	got := answers(t, postBundle(t, s, body, map[string]string{"Prefer": "return=minimal, handling=strict"}), "batch-response")
	require.Len(t, got, 4)
	assert.Equal(t, "201 Created", got[0].status)
	assert.Nil(t, got[0].resource, "return=minimal: no resource for a create")
	assert.True(t, strings.HasPrefix(got[0].location, "Observation/"), got[0].location)
	assert.Equal(t, `W/"1"`, got[0].etag)
	assert.Equal(t, "200 OK", got[1].status)
	assert.Nil(t, got[1].resource, "return=minimal: no resource for an update")
	assert.Equal(t, "Patient/p1/_history/2", got[1].location)
	require.NotNil(t, got[2].resource, "reads still return the resource")
	assert.Equal(t, "Minimal", got[2].resource["name"].([]any)[0].(map[string]any)["family"])
	assert.Equal(t, "400 Bad Request", got[3].status, "handling=strict applies to search entries")
	assert.Equal(t, "invalid", got[3].outcomeCode)
}

func TestTransactionApplies(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	const patientURN = "urn:uuid:7e0b4bc4-5d6d-4b1f-9a52-0d3f2c1c1a01"
	const obsURN = "urn:uuid:7e0b4bc4-5d6d-4b1f-9a52-0d3f2c1c1a02"
	body := bundleBody(t, "transaction",
		// Listed first, run last (R4 order): it sees the delete below.
		entryReq{method: "GET", url: "Observation?patient=p2&_count=1000"},
		entryReq{method: "POST", url: "Observation", fullURL: obsURN,
			resource: `{"resourceType":"Observation","status":"final","subject":{"reference":"` + patientURN + `"},
				"valueQuantity":{"value":98.60}}`},
		entryReq{method: "PUT", url: "Observation/tx-obs", ifMatch: "",
			resource: `{"resourceType":"Observation","id":"tx-obs","status":"final",
				"subject":{"reference":"` + patientURN + `"},"hasMember":[{"reference":"` + obsURN + `"}]}`},
		entryReq{method: "POST", url: "Patient", fullURL: patientURN, resource: `{"resourceType":"Patient","active":true}`},
		entryReq{method: "PUT", url: "Patient/p3", ifMatch: `W/"1"`, resource: putPatient("p3", "Tx")},
		entryReq{method: "DELETE", url: "Observation/obs-p2-1", ifMatch: `W/"1"`},
	)
	got := answers(t, postBundle(t, s, body, nil), "transaction-response")
	require.Len(t, got, 6)

	statuses := []string{}
	for _, a := range got {
		statuses = append(statuses, a.status)
	}
	assert.Equal(t, []string{"200 OK", "201 Created", "201 Created", "201 Created", "200 OK", "204 No Content"}, statuses,
		"answers follow the request's entry order")
	patientID := got[3].resource["id"].(string)
	obsID := got[1].resource["id"].(string)
	assert.Equal(t, "Patient/"+patientID+"/_history/1", got[3].location)
	assert.Equal(t, "Observation/"+obsID+"/_history/1", got[1].location)
	assert.Equal(t, "Observation/tx-obs/_history/1", got[2].location)
	assert.Equal(t, "Patient/p3/_history/2", got[4].location)
	assert.Equal(t, `W/"2"`, got[5].etag)

	// urn:uuid references point at the created resources.
	assert.Equal(t, "Patient/"+patientID, refOf(got[1].resource, "subject"))
	assert.Equal(t, "Patient/"+patientID, refOf(got[2].resource, "subject"))
	assert.Equal(t, "Observation/"+obsID, got[2].resource["hasMember"].([]any)[0].(map[string]any)["reference"])
	stored := get(t, s, "/fhir/Observation/"+obsID)
	assert.Contains(t, stored.Body.String(), `"value":98.60`, "decimals are kept through the rewrite")
	assert.Equal(t, "Patient/"+patientID, refOf(decode(t, stored), "subject"))
	assert.ElementsMatch(t, []string{"Observation/" + obsID, "Observation/tx-obs"},
		resourceRefs(t, decode(t, get(t, s, "/fhir/Observation?patient="+patientID))), "indexed by the resolved reference")

	// The search ran after the delete.
	found := resourceRefs(t, got[0].resource)
	assert.NotContains(t, found, "Observation/obs-p2-1")
	assert.Contains(t, found, "Observation/obs-p2-2")
	assert.Equal(t, http.StatusGone, get(t, s, "/fhir/Observation/obs-p2-1").Code)
}

func TestTransactionFailureChangesNothing(t *testing.T) {
	t.Parallel()
	// Writes of every kind, before the failing entry in both entry and
	// R4 order: creates (POST and update-as-create), an update, a delete.
	writes := []entryReq{
		{method: "POST", url: "Patient", fullURL: "urn:uuid:0f4b8e2e-1111-4c3a-9c55-000000000001",
			resource: `{"resourceType":"Patient"}`},
		{method: "POST", url: "Observation", resource: `{"resourceType":"Observation","status":"final",
			"subject":{"reference":"urn:uuid:0f4b8e2e-1111-4c3a-9c55-000000000001"}}`},
		{method: "PUT", url: "Patient/brand-new", resource: putPatient("brand-new", "New")},
		{method: "PUT", url: "Patient/p1", ifMatch: `W/"1"`, resource: putPatient("p1", "Changed")},
		{method: "DELETE", url: "Observation/obs-p1-1"},
	}
	tests := []struct {
		name       string
		failing    entryReq
		wantStatus int
		wantCode   string
	}{
		{"read of an unknown resource", entryReq{method: "GET", url: "Patient/nobody"}, 404, "not-found"},
		{"stale ifMatch", entryReq{method: "PUT", url: "Patient/p2", ifMatch: `W/"3"`, resource: putPatient("p2", "X")}, 412, "conflict"},
		{"invalid resource", entryReq{method: "POST", url: "Patient", resource: `{"resourceType":"Patient","meta":[]}`}, 400, "invalid"},
		{"patch", entryReq{method: "PATCH", url: "Patient/p2", resource: `{"resourceType":"Binary"}`}, 405, "not-supported"},
		{"delete of an unknown resource", entryReq{method: "DELETE", url: "Patient/nobody"}, 404, "not-found"},
		{"unknown type", entryReq{method: "POST", url: "Spaceship", resource: `{"resourceType":"Spaceship"}`}, 404, "not-supported"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newTestServer(t)
			before := storeState(t, s)
			entries := append(append([]entryReq{}, writes...), tc.failing)
			rec := postBundle(t, s, bundleBody(t, "transaction", entries...), nil)
			requireOutcome(t, rec, tc.wantStatus, tc.wantCode)
			issue := decode(t, rec)["issue"].([]any)[0].(map[string]any)
			assert.Equal(t, []any{"Bundle.entry[" + itoa(len(writes)) + "]"}, issue["expression"])
			assert.True(t, strings.HasPrefix(issue["diagnostics"].(string), "transaction not applied: "))

			assert.Equal(t, before, storeState(t, s), "the store is unchanged")
			assert.Equal(t, http.StatusNotFound, get(t, s, "/fhir/Patient/brand-new").Code, "never existed")
			// Ids are not burnt: the next create gets what it would
			// have got on an untouched server.
			fresh := newTestServer(t)
			create := req{method: http.MethodPost, target: "/fhir/Patient", body: `{"resourceType":"Patient"}`}
			assert.Equal(t, decode(t, do(t, fresh, create))["id"], decode(t, do(t, s, create))["id"])
		})
	}
}

func TestBundleReadBudget(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	const target = "_history?_count=1000"
	size := get(t, s, "/fhir/"+target).Body.Len()
	fit := maxReadBytes / size
	var reads []entryReq
	for range fit + 2 {
		reads = append(reads, entryReq{method: "GET", url: target})
	}

	t.Run("batch", func(t *testing.T) {
		got := answers(t, postBundle(t, s, bundleBody(t, "batch", reads...), nil), "batch-response")
		require.Len(t, got, len(reads))
		for i, a := range got {
			if i < fit {
				assert.Equal(t, "200 OK", a.status, i)
			} else {
				assert.Equal(t, "400 Bad Request", a.status, i)
				assert.Equal(t, "too-costly", a.outcomeCode, i)
			}
		}
	})
	t.Run("transaction", func(t *testing.T) {
		before := storeState(t, s)
		create := entryReq{method: "POST", url: "Patient", resource: `{"resourceType":"Patient"}`}
		rec := postBundle(t, s, bundleBody(t, "transaction", append(reads, create)...), nil)
		requireOutcome(t, rec, http.StatusBadRequest, "too-costly")
		assert.Equal(t, before, storeState(t, s))
	})
}
