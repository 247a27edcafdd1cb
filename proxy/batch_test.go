package proxy

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chartguard/chartguard/chartguard"
)

// batchPolicy denies anything of patient p2 in either phase, and writes
// whose patients are unknown; reads and searches of unknown patients are
// left to the response phase.
func batchPolicy(in *chartguard.Input) (chartguard.Decision, error) {
	r := in.Resource
	write := r.Action == "create" || r.Action == "update" || r.Action == "patch" || r.Action == "delete"
	if slices.Contains(r.Patients, "p2") || (write && r.PatientStatus == chartguard.PatientsUnknown) {
		return chartguard.Decision{Reasons: []string{"not on the patient's care team"}}, nil
	}
	return chartguard.Decision{Allow: true, Reasons: []string{}}, nil
}

// batchEMR answers batch and transaction Bundles entry by entry from an
// emr store, and single reads (the proofs) from the same store.
type batchEMR struct {
	*emr
	mu      sync.Mutex
	bundles []string
}

func (b *batchEMR) handler(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/fhir" {
		b.emr.handler(w, r)
		return
	}
	body, _ := io.ReadAll(r.Body)
	b.mu.Lock()
	b.bundles = append(b.bundles, string(body))
	b.mu.Unlock()
	var in struct {
		Type  string
		Entry []struct {
			Resource json.RawMessage
			Request  struct{ Method, URL, IfMatch string }
		}
	}
	if json.Unmarshal(body, &in) != nil {
		http.Error(w, "bad bundle", http.StatusBadRequest)
		return
	}
	var out []string
	for _, e := range in.Entry {
		switch e.Request.Method {
		case "GET":
			id := strings.TrimPrefix(e.Request.URL, "Observation/")
			b.emr.mu.Lock()
			res := b.emr.resources[id]
			b.emr.mu.Unlock()
			out = append(out, `{"resource":`+res+`,"response":{"status":"200 OK"}}`)
		case "POST":
			out = append(out, `{"resource":`+string(e.Resource)+`,"response":{"status":"201 Created"}}`)
		default:
			out = append(out, `{"resource":`+string(e.Resource)+`,"response":{"status":"200 OK","etag":"`+strings.ReplaceAll(e.Request.IfMatch, `"`, `\"`)+`"}}`)
		}
	}
	w.Header().Set("Content-Type", "application/fhir+json")
	_, _ = io.WriteString(w, `{"resourceType":"Bundle","type":"`+in.Type+`-response","entry":[`+strings.Join(out, ",")+`]}`)
}

func (b *batchEMR) forwarded() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.bundles)
}

func bundle(kind string, entries ...string) string {
	return `{"resourceType":"Bundle","type":"` + kind + `","entry":[` + strings.Join(entries, ",") + `]}`
}

const (
	getO1      = `{"request":{"method":"GET","url":"Observation/o1"}}`
	getO2      = `{"request":{"method":"GET","url":"Observation/o2"}}`
	createP2   = `{"resource":{"resourceType":"Observation","subject":{"reference":"Patient/p2"},"status":"final"},"request":{"method":"POST","url":"Observation"}}`
	createP1   = `{"resource":{"resourceType":"Observation","subject":{"reference":"Patient/p1"},"status":"final"},"request":{"method":"POST","url":"Observation"}}`
	updateO1P1 = `{"resource":{"resourceType":"Observation","id":"o1","subject":{"reference":"Patient/p1"},"status":"amended"},"request":{"method":"PUT","url":"Observation/o1"}}`
)

type batchResponse struct {
	Type  string
	Entry []struct {
		Resource json.RawMessage
		Response struct {
			Status  string
			Outcome json.RawMessage
		}
	}
}

func TestTransactionWithADeniedEntryIsRefusedWhole(t *testing.T) {
	up := &batchEMR{emr: newEMR()}
	h := newHarness(t, batchPolicy, nil, up.handler)
	resp := h.do(t, "POST", "/fhir", good, bundle("transaction", createP1, createP2, getO1))
	body := readBody(t, resp)
	require.Equal(t, http.StatusForbidden, resp.StatusCode, body)
	assert.Contains(t, body, "transaction refused whole")
	assert.Contains(t, body, "entry 1: not on the patient")
	assert.NotContains(t, body, "entry 0")
	assert.Empty(t, up.forwarded(), "nothing of the transaction reached the EMR")
	ev := lastEvent(t, h)
	assert.Equal(t, chartguard.OutcomeDenied, ev.Outcome)
	assert.ElementsMatch(t, []string{"p1", "p2"}, ev.Resource.Patients)
}

func TestBatchAnswersDeniedEntriesInPlace(t *testing.T) {
	up := &batchEMR{emr: newEMR()}
	h := newHarness(t, batchPolicy, nil, up.handler)
	getO1Public := `{"request":{"method":"GET","url":"https://emr.example.org/fhir/Observation/o1"}}`
	resp := h.do(t, "POST", "/fhir", good, bundle("batch", getO1Public, createP2, updateO1P1, getO2))
	body := readBody(t, resp)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)

	fw := up.forwarded()
	require.Len(t, fw, 1)
	assert.NotContains(t, fw[0], "Patient/p2", "the denied entry never reached the EMR")
	assert.Contains(t, fw[0], `"ifMatch":"W/\"3\""`, "the update goes out on the version decided")
	assert.Contains(t, fw[0], `"url":"Observation/o1"`, "an absolute entry URL goes out relative")
	assert.NotContains(t, fw[0], "emr.example.org")

	var got batchResponse
	require.NoError(t, json.Unmarshal([]byte(body), &got))
	assert.Equal(t, "batch-response", got.Type)
	require.Len(t, got.Entry, 4, "one answer per request entry, in order")
	assert.Equal(t, "200 OK", got.Entry[0].Response.Status)
	assert.Contains(t, string(got.Entry[0].Resource), `"id":"o1"`)
	assert.Equal(t, "403 Forbidden", got.Entry[1].Response.Status)
	assert.Contains(t, string(got.Entry[1].Response.Outcome), "not on the patient")
	assert.Equal(t, "200 OK", got.Entry[2].Response.Status)
	assert.NotEqual(t, "200 OK", got.Entry[3].Response.Status, "o2 belongs to p2: withheld by the response check")
	assert.NotContains(t, body, "Patient/p2")

	ev := lastEvent(t, h)
	assert.Equal(t, 200, ev.Request.Status)
	assert.Contains(t, ev.Resource.Patients, "p1")
}

func TestTransactionURNReferencesResolve(t *testing.T) {
	up := &batchEMR{emr: newEMR()}
	h := newHarness(t, batchPolicy, nil, up.handler)
	putP2 := `{"fullUrl":"urn:uuid:9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d","resource":{"resourceType":"Patient","id":"p2"},"request":{"method":"PUT","url":"Patient/p2"}}`
	obsNew := `{"fullUrl":"urn:uuid:1c6c2a5e-0000-4000-8000-000000000001","resource":{"resourceType":"Observation","subject":{"reference":"urn:uuid:9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d"}},"request":{"method":"POST","url":"Observation"}}`
	resp := h.do(t, "POST", "/fhir", good, bundle("transaction", obsNew, putP2))
	body := readBody(t, resp)
	require.Equal(t, http.StatusForbidden, resp.StatusCode, body)
	assert.Contains(t, body, "entry 0", "the Observation's urn:uuid subject is p2")

	// An unresolvable urn:uuid leaves the patient unknown: a write is denied.
	obsLost := strings.Replace(obsNew, "9b1deb4d", "00000000", 1)
	resp = h.do(t, "POST", "/fhir", good, bundle("transaction", obsLost))
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, readBody(t, resp))
}

func TestBatchBadInput(t *testing.T) {
	tests := []struct {
		name, body string
		mutate     func(*Config)
		status     int
		want       string
	}{
		{"not a Bundle", `{"resourceType":"Observation"}`, nil, 400, "batch or transaction"},
		{"a searchset", bundle("searchset"), nil, 400, "batch or transaction"},
		{"an entry without request", bundle("batch", `{"resource":{"resourceType":"Patient"}}`), nil, 400, "entry 0"},
		{"too large", bundle("batch", getO1, getO1, getO1), func(c *Config) { c.Limits.MaxBatchBody = 64 }, 413, "max_batch_body"},
		{"absolute entry URL elsewhere", bundle("transaction", `{"request":{"method":"GET","url":"https://evil.example.com/fhir/Observation/o1"}}`), nil, 403, "relative"},
		{"nested batch", bundle("transaction", `{"request":{"method":"POST","url":""}}`), nil, 400, "request.url"},
		{"conditional create in a transaction", bundle("transaction", strings.Replace(createP1, `"url":"Observation"`, `"url":"Observation","ifNoneExist":"identifier=x"`, 1)), nil, 403, "entry 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := &batchEMR{emr: newEMR()}
			h := newHarness(t, batchPolicy, tt.mutate, up.handler)
			resp := h.do(t, "POST", "/fhir", good, tt.body)
			body := readBody(t, resp)
			require.Equal(t, tt.status, resp.StatusCode, body)
			assert.Contains(t, body, tt.want)
			assert.Empty(t, up.forwarded())
			assert.Equal(t, tt.status, lastEvent(t, h).Request.Status)
		})
	}
}
