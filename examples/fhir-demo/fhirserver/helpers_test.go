package fhirserver

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// testNow is a fixed clock: 2026-03-10 12:00 UTC.
func testNow() time.Time { return time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC) }

func newTestServer(t testing.TB) *Server {
	t.Helper()
	return New(Options{Now: testNow})
}

// req describes one request in a table.
type req struct {
	method, target, body string
	header               map[string]string
}

func do(t testing.TB, h http.Handler, r req) *httptest.ResponseRecorder {
	t.Helper()
	if r.method == "" {
		r.method = http.MethodGet
	}
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	hr := httptest.NewRequest(r.method, r.target, body)
	hr.Host = "fhir.example:8081"
	for k, v := range r.header {
		hr.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, hr)
	return rec
}

func get(t testing.TB, h http.Handler, target string) *httptest.ResponseRecorder {
	t.Helper()
	return do(t, h, req{target: target})
}

func decode(t testing.TB, rec *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &m), "body: %s", rec.Body.String())
	return m
}

// entries returns a Bundle's entries.
func entries(t testing.TB, bundle map[string]any) []map[string]any {
	t.Helper()
	require.Equal(t, "Bundle", bundle["resourceType"])
	raw, _ := bundle["entry"].([]any)
	out := make([]map[string]any, 0, len(raw))
	for _, e := range raw {
		out = append(out, e.(map[string]any))
	}
	return out
}

// resourceRefs returns "Type/id" for each entry's resource.
func resourceRefs(t testing.TB, bundle map[string]any) []string {
	t.Helper()
	var out []string
	for _, e := range entries(t, bundle) {
		r := e["resource"].(map[string]any)
		out = append(out, r["resourceType"].(string)+"/"+r["id"].(string))
	}
	return out
}

// allResources fetches every live resource of typ by following next links.
func allResources(t testing.TB, h http.Handler, typ string) []map[string]any {
	t.Helper()
	var out []map[string]any
	target := "/fhir/" + typ + "?_count=100"
	for target != "" {
		rec := get(t, h, target)
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		b := decode(t, rec)
		for _, e := range entries(t, b) {
			out = append(out, e["resource"].(map[string]any))
		}
		target = strings.TrimPrefix(link(b, "next"), "http://fhir.example:8081")
	}
	return out
}

// link returns the URL of a Bundle link relation, or "".
func link(bundle map[string]any, rel string) string {
	links, _ := bundle["link"].([]any)
	for _, l := range links {
		m := l.(map[string]any)
		if m["relation"] == rel {
			return m["url"].(string)
		}
	}
	return ""
}

// refOf returns elem.reference of a resource, or "".
func refOf(res map[string]any, elem string) string {
	m, _ := res[elem].(map[string]any)
	s, _ := m["reference"].(string)
	return s
}

// labels returns "system|code" of a resource's meta.security and meta.tag.
func labels(res map[string]any) []string {
	meta, _ := res["meta"].(map[string]any)
	var out []string
	for _, k := range []string{"security", "tag"} {
		list, _ := meta[k].([]any)
		for _, c := range list {
			m := c.(map[string]any)
			out = append(out, m["system"].(string)+"|"+m["code"].(string))
		}
	}
	return out
}

func requireOutcome(t testing.TB, rec *httptest.ResponseRecorder, status int, code string) {
	t.Helper()
	require.Equal(t, status, rec.Code, rec.Body.String())
	require.Contains(t, rec.Header().Get("Content-Type"), "application/fhir+json")
	oo := decode(t, rec)
	require.Equal(t, "OperationOutcome", oo["resourceType"])
	issue := oo["issue"].([]any)[0].(map[string]any)
	require.Equal(t, "error", issue["severity"])
	require.Equal(t, code, issue["code"])
}

func itoa(n int) string { return strconv.Itoa(n) }

func idsOf(rs []map[string]any) []string {
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		out = append(out, r["id"].(string))
	}
	return out
}

// refsWhere returns "Type/id" of the resources of typ for which keep holds.
func refsWhere(t testing.TB, h http.Handler, typ string, keep func(map[string]any) bool) []string {
	t.Helper()
	var out []string
	for _, r := range allResources(t, h, typ) {
		if keep(r) {
			out = append(out, typ+"/"+r["id"].(string))
		}
	}
	return out
}

// codings returns "system|code" of a CodeableConcept element.
func codings(res map[string]any, elem string) []string {
	cc, _ := res[elem].(map[string]any)
	list, _ := cc["coding"].([]any)
	var out []string
	for _, c := range list {
		m := c.(map[string]any)
		out = append(out, m["system"].(string)+"|"+m["code"].(string))
	}
	return out
}
