package proxy

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chartguard/chartguard/chartguard"
	"github.com/chartguard/chartguard/policy"
)

// carePolicy allows every request and, in the response phase, denies any
// resource of patient p2 or labelled R — a stand-in for the care-team and
// sensitivity rules.
func carePolicy(in *chartguard.Input) (chartguard.Decision, error) {
	r := in.Resource
	if r.Phase == chartguard.PhaseResponse && (slices.Contains(r.Patients, "p2") || slices.Contains(r.Labels, "R")) {
		return chartguard.Decision{Reasons: []string{"not on the patient's care team"}}, nil
	}
	return chartguard.Decision{Allow: true, Reasons: []string{}}, nil
}

// fhirUpstream answers every request with status and body as FHIR JSON.
func fhirUpstream(status int, body string, hdr ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/fhir+json;charset=utf-8")
		for i := 0; i+1 < len(hdr); i += 2 {
			w.Header().Set(hdr[i], hdr[i+1])
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}
}

const (
	obsP1 = `{"resourceType":"Observation","id":"o1","subject":{"reference":"Patient/p1"},"status":"final"}`
	obsP2 = `{"resourceType":"Observation","id":"o2","subject":{"reference":"Patient/p2"},"status":"final"}`
	obsR  = `{"resourceType":"Observation","id":"o3","meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"R"}]},"subject":{"reference":"Patient/p3"},"status":"final"}`
)

func searchset(upstreamBase string, entries ...string) string {
	var b strings.Builder
	b.WriteString(`{"resourceType":"Bundle","type":"searchset","total":` + string(rune('0'+len(entries))) +
		`,"link":[{"relation":"next","url":"` + upstreamBase + `/fhir/Observation?code=x&_offset=20"}],"entry":[`)
	for i, e := range entries {
		if i > 0 {
			b.WriteByte(',')
		}
		var r struct{ ID string }
		_ = json.Unmarshal([]byte(e), &r)
		b.WriteString(`{"fullUrl":"` + upstreamBase + `/fhir/Observation/` + r.ID + `","resource":` + e + `,"search":{"mode":"match"}}`)
	}
	b.WriteString(`]}`)
	return b.String()
}

func lastEvent(t *testing.T, h *harness) *chartguard.Event {
	t.Helper()
	evs, _ := h.audit.all()
	require.NotEmpty(t, evs)
	return evs[len(evs)-1]
}

func TestResponseSingleResource(t *testing.T) {
	tests := []struct {
		name, body   string
		status       int
		wantPatients []string
		wantLabels   []string
	}{
		{"allowed resource passes unchanged", obsP1, 200, []string{"p1"}, []string{}},
		{"another patient's resource is denied whole", obsP2, 403, nil, nil},
		{"a restricted resource is denied", obsR, 403, nil, nil},
		{"a contained resource of another patient denies its container",
			`{"resourceType":"Observation","id":"o9","contained":[` + obsP2 + `],"subject":{"reference":"Patient/p1"}}`, 403, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, carePolicy, nil, fhirUpstream(200, tt.body))
			resp := h.do(t, "GET", "/fhir/Observation/o1", good, "")
			body := readBody(t, resp)
			require.Equal(t, tt.status, resp.StatusCode, body)
			ev := lastEvent(t, h)
			assert.Equal(t, tt.status, ev.Request.Status)
			if tt.status == 200 {
				assert.Equal(t, tt.body, body, "byte for byte")
				assert.Equal(t, tt.wantPatients, ev.Resource.Patients)
				assert.Equal(t, chartguard.PatientsKnown, ev.Resource.PatientStatus)
				assert.Equal(t, tt.wantLabels, ev.Resource.Labels)
				return
			}
			assert.Contains(t, body, `"resourceType":"OperationOutcome"`)
			assert.Contains(t, body, "not on the patient")
			assert.NotContains(t, body, `"subject"`, "no byte of the denied resource")
			assert.Equal(t, chartguard.OutcomeDenied, ev.Outcome)
			assert.Equal(t, []string{"not on the patient's care team"}, ev.Decision.Reasons)
			assert.NotEmpty(t, ev.Resource.Patients, "a denied read names whose record was asked for")
		})
	}
}

func TestResponseBundleDropsDeniedEntries(t *testing.T) {
	var upstreamURL string
	h := newHarness(t, carePolicy, nil, func(w http.ResponseWriter, r *http.Request) {
		fhirUpstream(200, searchset(upstreamURL, obsP1, obsP2, obsR))(w, r)
	})
	upstreamURL = h.upstream.URL
	resp := h.do(t, "GET", "/fhir/Observation?code=x", good, "")
	body := readBody(t, resp)
	require.Equal(t, 200, resp.StatusCode, body)

	var b struct {
		Total *int `json:"total"`
		Link  []struct{ URL string }
		Entry []struct {
			FullURL  string          `json:"fullUrl"`
			Resource json.RawMessage `json:"resource"`
			Search   struct{ Mode string }
		}
	}
	require.NoError(t, json.Unmarshal([]byte(body), &b))
	assert.Nil(t, b.Total, "total removed: it no longer matches")
	require.Len(t, b.Entry, 2)
	assert.JSONEq(t, obsP1, string(b.Entry[0].Resource))
	assert.Equal(t, "https://emr.example.org/fhir/Observation/o1", b.Entry[0].FullURL, "fullUrl points at the proxy")
	assert.Equal(t, "outcome", b.Entry[1].Search.Mode)
	assert.Contains(t, string(b.Entry[1].Resource), "suppressed")
	require.Len(t, b.Link, 1)
	assert.Equal(t, "https://emr.example.org/fhir/Observation?code=x&_offset=20", b.Link[0].URL, "paging comes back through the proxy")
	assert.NotContains(t, body, "p2")
	assert.Equal(t, int64(len(body)), resp.ContentLength)

	ev := lastEvent(t, h)
	assert.Equal(t, []string{"p1"}, ev.Resource.Patients, "only what was delivered")
	assert.Equal(t, chartguard.OutcomeAllowed, ev.Outcome)
}

func TestResponseRequestPreparedForTheCheck(t *testing.T) {
	h := newHarness(t, carePolicy, nil, fhirUpstream(200, obsP1))
	hdr := good.Clone()
	hdr.Set("Range", "bytes=0-10")
	hdr.Set("If-None-Match", `W/"1"`)
	hdr.Set("If-Modified-Since", "Wed, 21 Oct 2015 07:28:00 GMT")
	hdr.Set("Accept", "application/fhir+xml")
	hdr.Set("Accept-Encoding", "br")
	resp := h.do(t, "GET", "/fhir/Observation/o1?_format=xml&_pretty=true", hdr, "")
	require.Equal(t, 200, resp.StatusCode, readBody(t, resp))

	seen := h.seen()
	require.Len(t, seen, 1)
	assert.Equal(t, "/fhir/Observation/o1?_pretty=true", seen[0].RequestURI, "_format removed upstream")
	assert.Equal(t, "application/fhir+json", seen[0].Header.Get("Accept"))
	assert.Equal(t, "identity", seen[0].Header.Get("Accept-Encoding"))
	for _, k := range uncheckableHeaders {
		assert.Empty(t, seen[0].Header.Get(k), k)
	}
	assert.Equal(t, "/fhir/Observation/o1?_format=xml&_pretty=true", lastEvent(t, h).Request.Path, "the audit keeps what the client asked")
}

func gzipped(s string) string {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write([]byte(s))
	_ = zw.Close()
	return gz.String()
}

// An EMR that gzips although asked for identity is decoded and checked.
func TestResponseGzipIsCheckedToo(t *testing.T) {
	h := newHarness(t, carePolicy, nil, fhirUpstream(200, gzipped(obsP2), "Content-Encoding", "gzip"))
	resp := h.do(t, "GET", "/fhir/Observation/o2", good, "")
	assert.Equal(t, 403, resp.StatusCode, readBody(t, resp))
}

func TestResponseFailsClosed(t *testing.T) {
	big := `{"resourceType":"Observation","id":"o1","subject":{"reference":"Patient/p1"},"note":[{"text":"` + strings.Repeat("x", 2048) + `"}]}`
	tests := []struct {
		name     string
		upstream http.HandlerFunc
		mutate   func(*Config)
		status   int
		want     string
	}{
		{"304", fhirUpstream(304, ""), nil, 502, "not-modified"},
		{"206", fhirUpstream(206, obsP1, "Content-Range", "bytes 0-10/100"), nil, 502, "partial"},
		{"redirect to another host", fhirUpstream(302, "", "Location", "https://evil.example.com/fhir/Patient/p2"), nil, 502, "redirect"},
		{"redirect protocol-relative", fhirUpstream(302, "", "Location", "//evil.example.com/x"), nil, 502, "redirect"},
		{"XML body", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/fhir+xml")
			_, _ = w.Write([]byte(`<Observation xmlns="http://hl7.org/fhir"/>`))
		}, nil, 502, "not FHIR JSON"},
		{"unknown encoding", fhirUpstream(200, obsP1, "Content-Encoding", "br"), nil, 502, "encoding"},
		{"broken gzip", fhirUpstream(200, "not gzip", "Content-Encoding", "gzip"), nil, 502, "gzip"},
		{"gzip bomb above max_filter_body", fhirUpstream(200, gzipped(big), "Content-Encoding", "gzip"), func(c *Config) { c.Limits.MaxFilterBody = 1024 }, 502, "max_filter_body"},
		{"malformed JSON", fhirUpstream(200, `{"resourceType":"Observation",`), nil, 502, "malformed"},
		{"above max_filter_body", fhirUpstream(200, big), func(c *Config) { c.Limits.MaxFilterBody = 1024 }, 502, "max_filter_body"},
		{"HTML error page", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(500)
			_, _ = w.Write([]byte("<html>Patient p2 stack trace</html>"))
		}, nil, 502, "not FHIR JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, carePolicy, tt.mutate, tt.upstream)
			resp := h.do(t, "GET", "/fhir/Observation/o1", good, "")
			body := readBody(t, resp)
			require.Equal(t, tt.status, resp.StatusCode, body)
			assert.Contains(t, body, "OperationOutcome")
			assert.Contains(t, body, tt.want)
			assert.NotContains(t, body, "p2")
			assert.NotContains(t, body, "Observation xmlns")
			ev := lastEvent(t, h)
			assert.Equal(t, tt.status, ev.Request.Status)
			assert.Equal(t, chartguard.OutcomeError, ev.Outcome)
		})
	}
}

func TestResponseLocationsPointAtTheProxy(t *testing.T) {
	var upstreamURL string
	h := newHarness(t, carePolicy, nil, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", upstreamURL+"/fhir/Observation/o1/_history/1")
		w.Header().Set("Content-Location", upstreamURL+"/fhir/Observation/o1/_history/1")
		fhirUpstream(201, obsP1)(w, r)
	})
	upstreamURL = h.upstream.URL
	resp := h.do(t, "POST", "/fhir/Observation", good, obsP1)
	require.Equal(t, 201, resp.StatusCode, readBody(t, resp))
	assert.Equal(t, "https://emr.example.org/fhir/Observation/o1/_history/1", resp.Header.Get("Location"))
	assert.Equal(t, "https://emr.example.org/fhir/Observation/o1/_history/1", resp.Header.Get("Content-Location"))

	// A redirect within the FHIR base is rewritten, then allowed.
	h2 := newHarness(t, carePolicy, nil, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", upstreamURL+"/fhir/Observation/o1")
		w.WriteHeader(http.StatusFound)
	})
	upstreamURL = h2.upstream.URL
	resp = h2.do(t, "GET", "/fhir/Observation/o9", good, "")
	assert.Equal(t, http.StatusFound, resp.StatusCode, readBody(t, resp))
	assert.Equal(t, "https://emr.example.org/fhir/Observation/o1", resp.Header.Get("Location"))
}

func TestResponseOfMetadataIsNotChecked(t *testing.T) {
	h := newHarness(t, func(in *chartguard.Input) (chartguard.Decision, error) {
		if in.Resource.Phase == chartguard.PhaseResponse {
			return chartguard.Decision{Reasons: []string{"no"}}, nil
		}
		return chartguard.Decision{Allow: true}, nil
	}, nil, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/fhir+xml")
		_, _ = w.Write([]byte(`<CapabilityStatement/>`))
	})
	resp := h.do(t, "GET", "/fhir/metadata", good, "")
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, `<CapabilityStatement/>`, readBody(t, resp))
}

// A write that was decided and applied keeps its status even when the
// stored resource the EMR echoes may not be shown.
func TestResponseOfAWriteIsWithheldNotRefused(t *testing.T) {
	h := newHarness(t, carePolicy, nil, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", "Observation/o2/_history/1")
		fhirUpstream(201, obsP2)(w, r)
	})
	// carePolicy lets the request phase through and denies p2 in the response.
	resp := h.do(t, "POST", "/fhir/Observation", good, obsP2)
	body := readBody(t, resp)
	require.Equal(t, 201, resp.StatusCode, body)
	assert.Contains(t, body, "the write was applied")
	assert.Contains(t, body, `"severity":"information"`)
	assert.NotContains(t, body, "p2")
	assert.Equal(t, "Observation/o2/_history/1", resp.Header.Get("Location"))
	assert.Equal(t, chartguard.OutcomeAllowed, lastEvent(t, h).Outcome)
}

// TestResponseDecidesEachResourceOnItsOwn runs a real policy that reads
// the resource id: of three Observations alike in everything else, the
// one it refuses is withheld and the others are delivered. (Decisions
// are reused only between resources the policy cannot tell apart.)
func TestResponseDecidesEachResourceOnItsOwn(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "p.rego"), []byte(`package chartguard

decision := {"allow": true} if {
	not input.resource.id == "o2"
} else := {"allow": false, "reasons": ["this resource is withheld"]}
`), 0o600))
	engine, err := policy.New(t.Context(), policy.Config{Dir: dir}, nil)
	require.NoError(t, err)
	obs := func(id string) string { return strings.Replace(obsP1, `"id":"o1"`, `"id":"`+id+`"`, 1) }
	var upstreamURL string
	h := newHarnessDecider(t, engine, nil, func(w http.ResponseWriter, r *http.Request) {
		fhirUpstream(200, searchset(upstreamURL, obs("o1"), obs("o2"), obs("o3")))(w, r)
	})
	upstreamURL = h.upstream.URL

	resp := h.do(t, "GET", "/fhir/Observation?patient=p1", good, "")
	body := readBody(t, resp)
	require.Equal(t, 200, resp.StatusCode, body)
	assert.Contains(t, body, `"id":"o1"`)
	assert.NotContains(t, body, `"id":"o2"`)
	assert.Contains(t, body, `"id":"o3"`)
	assert.Contains(t, body, "suppressed")
}
