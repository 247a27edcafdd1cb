//go:build unix

package medplum_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chartguard/chartguard/e2e/internal/medplum"
)

// fhirClient talks to the server with plain net/http, as a proxy would.
type fhirClient struct {
	base string // FHIR base URL
	http *http.Client
}

type reply struct {
	status int
	header http.Header
	body   map[string]any
}

func newClient(t *testing.T, srv *medplum.Server) *fhirClient {
	t.Helper()
	transport := &http.Transport{}
	t.Cleanup(transport.CloseIdleConnections)
	return &fhirClient{base: srv.FHIRURL(), http: &http.Client{Transport: transport, Timeout: 10 * time.Second}}
}

// do sends a request to base+path (path is relative to the FHIR base unless
// it is an absolute URL) and decodes the JSON object it gets back.
func (c *fhirClient) do(t *testing.T, method, path, contentType, body string) reply {
	t.Helper()
	target := path
	if !strings.HasPrefix(path, "http://") {
		target = c.base + "/" + path
	}
	req, err := http.NewRequest(method, target, strings.NewReader(body))
	require.NoError(t, err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/fhir+json")
	resp, err := c.http.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Equal(t, "application/fhir+json; charset=utf-8", resp.Header.Get("Content-Type"), "%s %s", method, path)
	var decoded map[string]any
	require.NoError(t, json.Unmarshal(raw, &decoded), "%s %s: body %q", method, path, raw)
	return reply{status: resp.StatusCode, header: resp.Header, body: decoded}
}

func (c *fhirClient) create(t *testing.T, resource string) map[string]any {
	t.Helper()
	var probe struct{ ResourceType string }
	require.NoError(t, json.Unmarshal([]byte(resource), &probe))
	r := c.do(t, http.MethodPost, probe.ResourceType, "application/fhir+json", resource)
	require.Equal(t, http.StatusCreated, r.status, "create %s: %v", probe.ResourceType, r.body)
	return r.body
}

func str(t *testing.T, v any, path ...string) string {
	t.Helper()
	for _, key := range path {
		m, ok := v.(map[string]any)
		require.True(t, ok, "want an object at %q in %v", key, v)
		v = m[key]
	}
	s, ok := v.(string)
	require.True(t, ok, "want a string at %v, got %T", path, v)
	return s
}

// entries returns Bundle.entry as objects.
func entries(t *testing.T, bundle map[string]any) []map[string]any {
	t.Helper()
	raw, _ := bundle["entry"].([]any)
	out := make([]map[string]any, 0, len(raw))
	for _, e := range raw {
		m, ok := e.(map[string]any)
		require.True(t, ok)
		out = append(out, m)
	}
	return out
}

func link(bundle map[string]any, relation string) string {
	links, _ := bundle["link"].([]any)
	for _, l := range links {
		m, _ := l.(map[string]any)
		if m["relation"] == relation {
			s, _ := m["url"].(string)
			return s
		}
	}
	return ""
}

func TestStart(t *testing.T) {
	srv := medplum.Start(t)
	assert.Equal(t, "/fhir", srv.Base)
	assert.True(t, strings.HasPrefix(srv.URL, "http://127.0.0.1:"), "URL = %q", srv.URL)
	assert.Equal(t, srv.URL+"/fhir", srv.FHIRURL())
	c := newClient(t, srv)

	t.Run("metadata", func(t *testing.T) {
		r := c.do(t, http.MethodGet, "metadata", "", "")
		require.Equal(t, http.StatusOK, r.status)
		assert.Equal(t, "CapabilityStatement", r.body["resourceType"])
		assert.Equal(t, "4.0.1", r.body["fhirVersion"])
	})

	t.Run("patient and observation lifecycle", func(t *testing.T) {
		testLifecycle(t, c, srv)
	})

	t.Run("search by POST form with _include", func(t *testing.T) {
		testSearchPostInclude(t, c, srv)
	})

	t.Run("paging links", func(t *testing.T) {
		testPaging(t, c)
	})

	t.Run("errors", func(t *testing.T) {
		testErrors(t, c, srv)
	})
}

func testLifecycle(t *testing.T, c *fhirClient, srv *medplum.Server) {
	// Create: 201 with Location and ETag for the new version; a client-chosen id is ignored.
	r := c.do(t, http.MethodPost, "Patient", "application/fhir+json",
		`{"resourceType":"Patient","id":"chosen-by-client","name":[{"family":"Lifecycle","given":["Pat"]}]}`)
	require.Equal(t, http.StatusCreated, r.status, "%v", r.body)
	pid := str(t, r.body, "id")
	pvid := str(t, r.body, "meta", "versionId")
	assert.NotEqual(t, "chosen-by-client", pid)
	assert.Equal(t, srv.FHIRURL()+"/Patient/"+pid+"/_history/"+pvid, r.header.Get("Location"))
	assert.Equal(t, `W/"`+pvid+`"`, r.header.Get("ETag"))

	// Read.
	r = c.do(t, http.MethodGet, "Patient/"+pid, "", "")
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, pid, str(t, r.body, "id"))
	assert.Equal(t, `W/"`+pvid+`"`, r.header.Get("ETag"))

	// Search by _id.
	r = c.do(t, http.MethodGet, "Patient?_id="+pid, "", "")
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, "searchset", r.body["type"])
	assert.EqualValues(t, 1, r.body["total"])
	got := entries(t, r.body)
	require.Len(t, got, 1)
	assert.Equal(t, srv.FHIRURL()+"/Patient/"+pid, got[0]["fullUrl"])

	// Observations for this patient and for another one; search finds only ours.
	other := c.create(t, `{"resourceType":"Patient","name":[{"family":"Other"}]}`)
	c.create(t, `{"resourceType":"Observation","status":"final","code":{"text":"heart rate"},
		"subject":{"reference":"Patient/`+str(t, other, "id")+`"}}`)
	obs := c.create(t, `{"resourceType":"Observation","status":"final","code":{"text":"heart rate"},
		"subject":{"reference":"Patient/`+pid+`"}}`)
	oid := str(t, obs, "id")
	firstVid := str(t, obs, "meta", "versionId")

	r = c.do(t, http.MethodGet, "Observation?subject=Patient/"+pid, "", "")
	require.Equal(t, http.StatusOK, r.status)
	assert.EqualValues(t, 1, r.body["total"])
	got = entries(t, r.body)
	require.Len(t, got, 1)
	assert.Equal(t, oid, str(t, got[0], "resource", "id"))

	// Update: 200, a new version, and headers that name it.
	r = c.do(t, http.MethodPut, "Observation/"+oid, "application/fhir+json",
		`{"resourceType":"Observation","id":"`+oid+`","status":"amended","code":{"text":"heart rate"},
		"subject":{"reference":"Patient/`+pid+`"}}`)
	require.Equal(t, http.StatusOK, r.status, "%v", r.body)
	secondVid := str(t, r.body, "meta", "versionId")
	assert.NotEqual(t, firstVid, secondVid)
	assert.Equal(t, `W/"`+secondVid+`"`, r.header.Get("ETag"))
	assert.Equal(t, srv.FHIRURL()+"/Observation/"+oid+"/_history/"+secondVid, r.header.Get("Location"))

	// History: newest first, and the same order when asked again.
	for range 2 {
		r = c.do(t, http.MethodGet, "Observation/"+oid+"/_history", "", "")
		require.Equal(t, http.StatusOK, r.status)
		assert.Equal(t, "history", r.body["type"])
		assert.EqualValues(t, 2, r.body["total"])
		got = entries(t, r.body)
		require.Len(t, got, 2)
		assert.Equal(t, "amended", str(t, got[0], "resource", "status"))
		assert.Equal(t, "final", str(t, got[1], "resource", "status"))
	}

	// Vread of the first version.
	r = c.do(t, http.MethodGet, "Observation/"+oid+"/_history/"+firstVid, "", "")
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, "final", str(t, r.body, "status"))

	// Delete; then it is gone for read and search.
	r = c.do(t, http.MethodDelete, "Observation/"+oid, "", "")
	assert.Equal(t, http.StatusOK, r.status, "%v", r.body)
	r = c.do(t, http.MethodGet, "Observation/"+oid, "", "")
	assert.Contains(t, []int{http.StatusNotFound, http.StatusGone}, r.status)
	assert.Equal(t, "OperationOutcome", r.body["resourceType"])
	r = c.do(t, http.MethodGet, "Observation?subject=Patient/"+pid, "", "")
	require.Equal(t, http.StatusOK, r.status)
	assert.EqualValues(t, 0, r.body["total"])
}

func testSearchPostInclude(t *testing.T, c *fhirClient, srv *medplum.Server) {
	pat := c.create(t, `{"resourceType":"Patient","name":[{"family":"Included"}]}`)
	pid := str(t, pat, "id")
	obs := c.create(t, `{"resourceType":"Observation","status":"final","code":{"text":"bp"},
		"subject":{"reference":"Patient/`+pid+`"}}`)

	form := url.Values{"subject": {"Patient/" + pid}, "_include": {"Observation:subject"}}
	r := c.do(t, http.MethodPost, "Observation/_search", "application/x-www-form-urlencoded", form.Encode())
	require.Equal(t, http.StatusOK, r.status, "%v", r.body)
	assert.EqualValues(t, 1, r.body["total"], "total counts matches, not includes")
	assert.True(t, strings.HasPrefix(link(r.body, "self"), srv.FHIRURL()+"/Observation?"), "self link %q", link(r.body, "self"))

	modes := map[string]string{}
	for _, e := range entries(t, r.body) {
		ref := str(t, e, "resource", "resourceType") + "/" + str(t, e, "resource", "id")
		modes[ref] = str(t, e, "search", "mode")
		assert.Equal(t, srv.FHIRURL()+"/"+ref, e["fullUrl"])
	}
	assert.Equal(t, map[string]string{
		"Observation/" + str(t, obs, "id"): "match",
		"Patient/" + pid:                   "include",
	}, modes)
}

func testPaging(t *testing.T, c *fhirClient) {
	for range 3 {
		c.create(t, `{"resourceType":"Patient","name":[{"family":"Pageable"}]}`)
	}
	r := c.do(t, http.MethodGet, "Patient?family=Pageable&_count=2", "", "")
	require.Equal(t, http.StatusOK, r.status)
	assert.EqualValues(t, 3, r.body["total"])
	assert.Len(t, entries(t, r.body), 2)
	next := link(r.body, "next")
	require.NotEmpty(t, next, "first page needs a next link")

	r = c.do(t, http.MethodGet, next, "", "")
	require.Equal(t, http.StatusOK, r.status)
	assert.Len(t, entries(t, r.body), 1)
	assert.Empty(t, link(r.body, "next"), "last page has no next link")
	assert.NotEmpty(t, link(r.body, "previous"))
}

func testErrors(t *testing.T, c *fhirClient, srv *medplum.Server) {
	tests := []struct {
		name        string
		method      string
		path        string
		contentType string
		body        string
		want        int
	}{
		{"bad JSON", http.MethodPost, "Patient", "application/fhir+json", `{"resourceType":`, http.StatusBadRequest},
		{"JSON that is not an object", http.MethodPost, "Patient", "application/fhir+json", `[1,2]`, http.StatusBadRequest},
		{"empty create body", http.MethodPost, "Patient", "application/fhir+json", "", http.StatusBadRequest},
		{"type mismatch", http.MethodPost, "Patient", "application/fhir+json", `{"resourceType":"Observation"}`, http.StatusBadRequest},
		{"update id mismatch", http.MethodPut, "Patient/a", "application/fhir+json", `{"resourceType":"Patient","id":"b"}`, http.StatusBadRequest},
		{"unknown id", http.MethodGet, "Patient/does-not-exist", "", "", http.StatusNotFound},
		{"bad date search", http.MethodGet, "Patient?birthdate=yesterday", "", "", http.StatusBadRequest},
		{"search POST as JSON", http.MethodPost, "Patient/_search", "application/json", `{}`, http.StatusUnsupportedMediaType},
		{"outside the FHIR base", http.MethodGet, srv.URL + "/not-fhir/Patient", "", "", http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := c.do(t, tt.method, tt.path, tt.contentType, tt.body)
			assert.Equal(t, tt.want, r.status, "%s %s = %d, want %d: %v", tt.method, tt.path, r.status, tt.want, r.body)
			assert.Equal(t, "OperationOutcome", r.body["resourceType"])
			assert.NotEmpty(t, r.body["issue"])
		})
	}
	// The server survives all of the above.
	r := c.do(t, http.MethodGet, "metadata", "", "")
	assert.Equal(t, http.StatusOK, r.status)
}

func TestStartCleanupStopsServer(t *testing.T) {
	var fhirURL string
	t.Run("running", func(t *testing.T) {
		srv := medplum.Start(t)
		fhirURL = srv.FHIRURL()
		r := newClient(t, srv).do(t, http.MethodGet, "metadata", "", "")
		require.Equal(t, http.StatusOK, r.status)
	})
	require.NotEmpty(t, fhirURL)

	// The subtest's cleanup has run: nothing listens on the port any more.
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get(fhirURL + "/metadata")
	if err == nil {
		resp.Body.Close()
	}
	require.Error(t, err, "server still answering after cleanup")
}
