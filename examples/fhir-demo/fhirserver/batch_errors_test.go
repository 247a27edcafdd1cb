package fhirserver

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBundleRefused(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	create := entryReq{method: "POST", url: "Patient", resource: `{"resourceType":"Patient"}`}
	withCreate := func(kind string, bad string) string {
		// A valid create first: a bad Bundle applies none of its entries.
		return `{"resourceType":"Bundle","type":"` + kind + `","entry":[` +
			`{"request":{"method":"POST","url":"Patient"},"resource":{"resourceType":"Patient"}},` + bad + `]}`
	}
	many := make([]entryReq, maxEntries+1)
	for i := range many {
		many[i] = entryReq{method: "GET", url: "metadata"}
	}
	tests := []struct {
		name       string
		body       string
		header     map[string]string
		wantStatus int
		wantCode   string
		wantExpr   string // issue.expression, "" for none
	}{
		{"not JSON", `{"resourceType":`, nil, 400, "invalid", ""},
		{"array", `[{"resourceType":"Bundle"}]`, nil, 400, "invalid", ""},
		{"not a Bundle", `{"resourceType":"Patient","type":"batch"}`, nil, 400, "invalid", ""},
		{"searchset", bundleBody(t, "searchset", create), nil, 400, "invalid", ""},
		{"transaction-response", bundleBody(t, "transaction-response", create), nil, 400, "invalid", ""},
		{"no type", `{"resourceType":"Bundle","entry":[]}`, nil, 400, "invalid", ""},
		{"type not a string", `{"resourceType":"Bundle","type":["batch"]}`, nil, 400, "invalid", ""},
		{"entry not an array", `{"resourceType":"Bundle","type":"batch","entry":{}}`, nil, 400, "invalid", "Bundle.entry"},
		{"entry not an object", withCreate("batch", `"GET Patient/p1"`), nil, 400, "invalid", "Bundle.entry[1]"},
		{"no request", withCreate("batch", `{"resource":{"resourceType":"Patient"}}`), nil, 400, "invalid", "Bundle.entry[1].request"},
		{"null request", withCreate("transaction", `{"request":null}`), nil, 400, "invalid", "Bundle.entry[1].request"},
		{"no method", withCreate("batch", `{"request":{"url":"Patient/p1"}}`), nil, 400, "invalid", "Bundle.entry[1].request.method"},
		{"lower-case method", withCreate("batch", `{"request":{"method":"get","url":"Patient/p1"}}`), nil, 400, "invalid", "Bundle.entry[1].request.method"},
		{"other method", withCreate("batch", `{"request":{"method":"OPTIONS","url":"Patient/p1"}}`), nil, 400, "invalid", "Bundle.entry[1].request.method"},
		{"method in another case key", withCreate("batch", `{"request":{"Method":"DELETE","url":"Patient/p1"}}`), nil, 400, "invalid", "Bundle.entry[1].request.method"},
		{"no url", withCreate("batch", `{"request":{"method":"GET"}}`), nil, 400, "invalid", "Bundle.entry[1].request.url"},
		{"empty url", withCreate("transaction", `{"request":{"method":"GET","url":""}}`), nil, 400, "invalid", "Bundle.entry[1].request.url"},
		{"url not a string", withCreate("batch", `{"request":{"method":"GET","url":1}}`), nil, 400, "invalid", "Bundle.entry[1].request.url"},
		{"absolute foreign URL", withCreate("batch", `{"request":{"method":"GET","url":"http://evil.example/fhir/Patient/p1"}}`), nil, 400, "invalid", "Bundle.entry[1].request.url"},
		{"absolute URL outside the base", withCreate("batch", `{"request":{"method":"GET","url":"http://fhir.example:8081/other/Patient/p1"}}`), nil, 400, "invalid", "Bundle.entry[1].request.url"},
		{"absolute URL of the base", withCreate("batch", `{"request":{"method":"POST","url":"http://fhir.example:8081/fhir"}}`), nil, 400, "invalid", "Bundle.entry[1].request.url"},
		{"https for an http base", withCreate("transaction", `{"request":{"method":"GET","url":"https://fhir.example:8081/fhir/Patient/p1"}}`), nil, 400, "invalid", "Bundle.entry[1].request.url"},
		{"absolute path", withCreate("batch", `{"request":{"method":"GET","url":"/fhir/Patient/p1"}}`), nil, 400, "invalid", "Bundle.entry[1].request.url"},
		{"scheme-relative", withCreate("batch", `{"request":{"method":"GET","url":"//evil.example/fhir/Patient/p1"}}`), nil, 400, "invalid", "Bundle.entry[1].request.url"},
		{"urn as url", withCreate("batch", `{"request":{"method":"GET","url":"urn:uuid:0f4b8e2e-1111-4c3a-9c55-000000000001"}}`), nil, 400, "invalid", "Bundle.entry[1].request.url"},
		{"fragment", withCreate("batch", `{"request":{"method":"GET","url":"Patient/p1#x"}}`), nil, 400, "invalid", "Bundle.entry[1].request.url"},
		{"malformed escape", withCreate("batch", `{"request":{"method":"GET","url":"Patient/p%zz"}}`), nil, 400, "invalid", "Bundle.entry[1].request.url"},
		{"ifMatch not a string", withCreate("batch", `{"request":{"method":"DELETE","url":"Patient/p1","ifMatch":1}}`), nil, 400, "invalid", "Bundle.entry[1].request.ifMatch"},
		{"fullUrl not a string", withCreate("batch", `{"fullUrl":{},"request":{"method":"GET","url":"Patient/p1"}}`), nil, 400, "invalid", "Bundle.entry[1].fullUrl"},
		{"ifNoneExist", withCreate("batch", `{"request":{"method":"POST","url":"Patient","ifNoneExist":"identifier=x"},"resource":{"resourceType":"Patient"}}`), nil, 400, "not-supported", "Bundle.entry[1].request.ifNoneExist"},
		{"ifNoneMatch", withCreate("transaction", `{"request":{"method":"PUT","url":"Patient/p1","ifNoneMatch":"*"},"resource":{"resourceType":"Patient","id":"p1"}}`), nil, 400, "not-supported", "Bundle.entry[1].request.ifNoneMatch"},
		{"ifModifiedSince", withCreate("batch", `{"request":{"method":"GET","url":"Patient/p1","ifModifiedSince":"2026-01-01T00:00:00Z"}}`), nil, 400, "not-supported", "Bundle.entry[1].request.ifModifiedSince"},
		{"transaction changes a resource twice", bundleBody(t, "transaction", create,
			entryReq{method: "PUT", url: "Patient/p1", resource: putPatient("p1", "A")},
			entryReq{method: "DELETE", url: "Patient/p1"}), nil, 400, "invalid", "Bundle.entry[2].request.url"},
		{"transaction repeats a fullUrl", bundleBody(t, "transaction",
			entryReq{method: "POST", url: "Patient", fullURL: "urn:uuid:0f4b8e2e-1111-4c3a-9c55-000000000001", resource: `{"resourceType":"Patient"}`},
			entryReq{method: "POST", url: "Patient", fullURL: "urn:uuid:0f4b8e2e-1111-4c3a-9c55-000000000001", resource: `{"resourceType":"Patient"}`}),
			nil, 400, "invalid", "Bundle.entry[1].fullUrl"},
		{"too many entries", bundleBody(t, "batch", many...), nil, 413, "too-costly", ""},
		{"too large", bundleBody(t, "transaction", entryReq{method: "POST", url: "Patient",
			resource: `{"resourceType":"Patient","text":"` + strings.Repeat("x", maxBody) + `"}`}), nil, 413, "too-costly", ""},
		{"xml", `<Bundle/>`, map[string]string{"Content-Type": "application/fhir+xml"}, 415, "not-supported", ""},
	}
	before := storeState(t, s)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := postBundle(t, s, tc.body, tc.header)
			requireOutcome(t, rec, tc.wantStatus, tc.wantCode)
			issue := decode(t, rec)["issue"].([]any)[0].(map[string]any)
			if tc.wantExpr == "" {
				assert.NotContains(t, issue, "expression")
			} else {
				assert.Equal(t, []any{tc.wantExpr}, issue["expression"])
			}
			assert.NotContains(t, rec.Body.String(), "evil", "no request values echoed")
		})
	}
	assert.Equal(t, before, storeState(t, s), "no refused Bundle applied anything")
}

func TestBundleEmpty(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	for _, kind := range []string{"batch", "transaction"} {
		rec := postBundle(t, s, `{"resourceType":"Bundle","type":"`+kind+`"}`, nil)
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		b := decode(t, rec)
		assert.Equal(t, kind+"-response", b["type"])
		assert.NotContains(t, b, "entry", "FHIR JSON has no empty arrays")
	}
}

func TestBundleBaseMethods(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete, http.MethodPatch} {
		t.Run(m, func(t *testing.T) {
			rec := do(t, s, req{method: m, target: "/fhir", body: bundleBody(t, "batch")})
			require.Equal(t, http.StatusMethodNotAllowed, rec.Code)
			assert.Equal(t, "POST", rec.Header().Get("Allow"))
		})
	}
	t.Run("root base", func(t *testing.T) {
		root := New(Options{Base: "/", Now: testNow, Patients: 2})
		rec := do(t, root, req{method: http.MethodPost, target: "/",
			body: bundleBody(t, "batch", entryReq{method: "GET", url: "Patient/p1"})})
		got := answers(t, rec, "batch-response")
		require.Len(t, got, 1)
		assert.Equal(t, "200 OK", got[0].status)
	})
}

func TestBundleGzip(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	gz := map[string]string{"Accept-Encoding": "gzip"}
	reads := bundleBody(t, "batch", entryReq{method: "GET", url: "Patient/p1"},
		entryReq{method: "GET", url: "Observation?patient=p1"})
	failing := bundleBody(t, "transaction", entryReq{method: "GET", url: "Patient/nobody"})
	tests := []struct {
		name, body string
		wantStatus int
	}{
		{"batch-response", reads, http.StatusOK},
		{"transaction failure", failing, http.StatusNotFound},
		{"refused Bundle", `{"resourceType":"Bundle","type":"searchset"}`, http.StatusBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			zipped := postBundle(t, s, tc.body, gz)
			require.Equal(t, tc.wantStatus, zipped.Code)
			assert.Equal(t, "gzip", zipped.Header().Get("Content-Encoding"))
			assert.Equal(t, "Accept-Encoding", zipped.Header().Get("Vary"))
			assert.Equal(t, itoa(zipped.Body.Len()), zipped.Header().Get("Content-Length"))
			plain := postBundle(t, s, tc.body, nil)
			assert.Empty(t, plain.Header().Values("Content-Encoding"))
			assert.Equal(t, plain.Body.String(), string(gunzip(t, zipped.Body.Bytes())))
		})
	}
}

// TestTransactionIsAtomic runs transactions that create two Patients with
// one identifier, half of them failing, against concurrent searches: a
// search sees both Patients of a transaction or neither.
func TestTransactionIsAtomic(t *testing.T) {
	t.Parallel()
	s := New(Options{Now: testNow, Patients: 5})
	const rounds = 200
	patient := `{"resourceType":"Patient","identifier":[{"system":"urn:test","value":"tx"}]}`
	pair := []entryReq{{method: "POST", url: "Patient", resource: patient},
		{method: "POST", url: "Patient", resource: patient}}
	ok := bundleBody(t, "transaction", pair...)
	failing := bundleBody(t, "transaction", append(pair, entryReq{method: "GET", url: "Patient/nobody"})...)
	var wg sync.WaitGroup
	done := make(chan struct{})
	seen := make(chan float64, 1024)
	wg.Go(func() {
		defer close(done)
		for i := range rounds {
			body, want := ok, http.StatusOK
			if i%2 == 1 {
				body, want = failing, http.StatusNotFound
			}
			if rec := do(t, s, req{method: http.MethodPost, target: "/fhir", body: body}); rec.Code != want {
				t.Errorf("round %d: status %d", i, rec.Code)
			}
		}
	})
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				rec := httptest.NewRecorder()
				s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/fhir/Patient?identifier=urn:test|tx&_count=0", nil))
				var b struct{ Total float64 }
				if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &b) != nil {
					t.Errorf("search failed: %d", rec.Code)
					return
				}
				total := b.Total
				select {
				case seen <- total:
				default:
				}
			}
		})
	}
	wg.Wait()
	close(seen)
	for total := range seen {
		assert.Zero(t, int(total)%2, "a search saw half a transaction")
	}
	final := decode(t, get(t, s, "/fhir/Patient?identifier=urn:test|tx&_count=0"))["total"]
	assert.EqualValues(t, rounds, final, "the successful half applied two Patients each")
}
