package fhirserver

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func gunzip(t testing.TB, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	require.NoError(t, err)
	out, err := io.ReadAll(zr)
	require.NoError(t, err)
	require.NoError(t, zr.Close())
	return out
}

func TestGzipAcceptEncoding(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	tests := []struct {
		name     string
		header   []string // Accept-Encoding lines; nil: absent
		wantGzip bool
	}{
		{"absent", nil, false},
		{"gzip", []string{"gzip"}, true},
		{"case-insensitive", []string{"GZip"}, true},
		{"x-gzip", []string{"x-gzip"}, true},
		{"in a list", []string{"br, deflate, gzip"}, true},
		{"with q", []string{"gzip;q=0.5, identity;q=1"}, true},
		{"q with spaces", []string{"gzip ; q=1.0"}, true},
		{"wildcard", []string{"*"}, true},
		{"wildcard with q", []string{"br;q=1, *;q=0.1"}, true},
		{"second header line", []string{"br", "gzip"}, true},
		{"identity", []string{"identity"}, false},
		{"empty", []string{""}, false},
		{"others only", []string{"br, deflate"}, false},
		{"q zero", []string{"gzip;q=0"}, false},
		{"q zero with decimals", []string{"gzip;q=0.000"}, false},
		{"gzip refused, wildcard accepted", []string{"gzip;q=0, *"}, false},
		{"wildcard q zero", []string{"*;q=0"}, false},
		{"malformed q", []string{"gzip;q=abc"}, false},
		{"q above one", []string{"gzip;q=2"}, false},
		{"unknown parameter", []string{"gzip;level=9"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/fhir/Patient/p1", nil)
			for _, v := range tc.header {
				r.Header.Add("Accept-Encoding", v)
			}
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, r)
			require.Equal(t, http.StatusOK, rec.Code)
			assert.Equal(t, "Accept-Encoding", rec.Header().Get("Vary"))
			assert.Equal(t, rec.Header().Get("Content-Length"), itoa(rec.Body.Len()))
			body := rec.Body.Bytes()
			if tc.wantGzip {
				assert.Equal(t, "gzip", rec.Header().Get("Content-Encoding"))
				body = gunzip(t, body)
			} else {
				assert.Empty(t, rec.Header().Values("Content-Encoding"))
			}
			var res map[string]any
			require.NoError(t, json.Unmarshal(body, &res))
			assert.Equal(t, "p1", res["id"])
		})
	}
}

func TestGzipResponses(t *testing.T) {
	t.Parallel()
	s := New(Options{Now: testNow, Patients: 5})
	obs := `{"resourceType":"Observation","status":"final"}`
	tests := []struct {
		name       string
		r          req
		wantStatus int
		wantBody   bool // a body, hence gzip
		safe       bool // repeatable: compare with the identity answer
	}{
		{"read", req{target: "/fhir/Patient/p1"}, 200, true, true},
		{"vread", req{target: "/fhir/Patient/p1/_history/1"}, 200, true, true},
		{"search", req{target: "/fhir/Observation?patient=p1&_include=Observation:subject"}, 200, true, true},
		{"empty search", req{target: "/fhir/Observation?patient=nope"}, 200, true, true},
		{"POST _search", req{method: http.MethodPost, target: "/fhir/Observation/_search", body: "patient=p1",
			header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}}, 200, true, true},
		{"history", req{target: "/fhir/Patient/p1/_history"}, 200, true, true},
		{"metadata", req{target: "/fhir/metadata"}, 200, true, true},
		{"error", req{target: "/fhir/Patient/nope"}, 404, true, true},
		{"bad request", req{target: "/fhir/Observation?_include=*"}, 400, true, true},
		{"method not allowed", req{method: http.MethodPatch, target: "/fhir/Patient/p1"}, 405, true, true},
		{"create", req{method: http.MethodPost, target: "/fhir/Observation", body: obs}, 201, true, false},
		{"create minimal", req{method: http.MethodPost, target: "/fhir/Observation", body: obs,
			header: map[string]string{"Prefer": "return=minimal"}}, 201, false, false},
		{"delete", req{method: http.MethodDelete, target: "/fhir/Observation/obs-p2-1"}, 204, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			zipped := tc.r
			zipped.header = map[string]string{"Accept-Encoding": "gzip"}
			for k, v := range tc.r.header {
				zipped.header[k] = v
			}
			rec := do(t, s, zipped)
			require.Equal(t, tc.wantStatus, rec.Code, rec.Body.String())
			if !tc.wantBody {
				assert.Zero(t, rec.Body.Len())
				assert.Empty(t, rec.Header().Values("Content-Encoding"))
				return
			}
			assert.Equal(t, "gzip", rec.Header().Get("Content-Encoding"))
			assert.Equal(t, "Accept-Encoding", rec.Header().Get("Vary"))
			assert.Equal(t, itoa(rec.Body.Len()), rec.Header().Get("Content-Length"), "the compressed length")
			body := gunzip(t, rec.Body.Bytes())
			assert.True(t, json.Valid(body))
			if tc.safe {
				id := do(t, s, tc.r)
				assert.Empty(t, id.Header().Values("Content-Encoding"))
				assert.Equal(t, "Accept-Encoding", id.Header().Get("Vary"))
				assert.Equal(t, id.Body.String(), string(body), "same representation, compressed")
			}
		})
	}
}

// TestGzipOverHTTP checks the wire format against net/http's client, which
// asks for gzip itself and decodes it transparently; and HEAD, which the
// server answers with the identity representation's headers and no body.
func TestGzipOverHTTP(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	client := srv.Client()

	identity := func(method, path string) *http.Response {
		r, err := http.NewRequest(method, srv.URL+path, nil)
		require.NoError(t, err)
		r.Header.Set("Accept-Encoding", "identity") // keeps the transport from adding gzip
		resp, err := client.Do(r)
		require.NoError(t, err)
		t.Cleanup(func() { _ = resp.Body.Close() })
		return resp
	}
	for _, path := range []string{"/fhir/Patient/p1", "/fhir/Observation?patient=p1&_include=Observation:subject"} {
		t.Run(path, func(t *testing.T) {
			resp, err := client.Get(srv.URL + path)
			require.NoError(t, err)
			defer resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode)
			assert.True(t, resp.Uncompressed, "the transport received gzip")
			got, err := io.ReadAll(resp.Body)
			require.NoError(t, err)

			plain := identity(http.MethodGet, path)
			want, err := io.ReadAll(plain.Body)
			require.NoError(t, err)
			assert.Equal(t, string(want), string(got))

			for _, ae := range []string{"gzip", "identity"} {
				r, err := http.NewRequest(http.MethodHead, srv.URL+path, nil)
				require.NoError(t, err)
				r.Header.Set("Accept-Encoding", ae)
				head, err := client.Do(r)
				require.NoError(t, err)
				body, err := io.ReadAll(head.Body)
				require.NoError(t, err)
				_ = head.Body.Close()
				assert.Equal(t, http.StatusOK, head.StatusCode)
				assert.Empty(t, body)
				assert.Empty(t, head.Header.Values("Content-Encoding"), "HEAD describes the identity representation")
				assert.Equal(t, "Accept-Encoding", head.Header.Get("Vary"))
				assert.Equal(t, itoa(len(want)), head.Header.Get("Content-Length"))
				assert.Equal(t, plain.Header.Get("Content-Type"), head.Header.Get("Content-Type"))
			}
		})
	}
}

func TestGzipConcurrent(t *testing.T) {
	t.Parallel()
	s := New(Options{Now: testNow, Patients: 10})
	targets := []string{"/fhir/Patient/p1", "/fhir/Observation?patient=p2", "/fhir/metadata", "/fhir/Patient?_count=10"}
	want := map[string]string{}
	for _, target := range targets {
		want[target] = get(t, s, target).Body.String()
	}
	var wg sync.WaitGroup
	errs := make(chan string, 4*50)
	for w := range 4 {
		wg.Go(func() {
			for i := range 50 {
				target := targets[(w+i)%len(targets)]
				r := httptest.NewRequest(http.MethodGet, target, nil)
				r.Host = "fhir.example:8081"
				r.Header.Set("Accept-Encoding", "gzip")
				rec := httptest.NewRecorder()
				s.ServeHTTP(rec, r)
				zr, err := gzip.NewReader(rec.Body)
				if err != nil {
					errs <- target + ": " + err.Error()
					continue
				}
				got, err := io.ReadAll(zr)
				if err != nil || string(got) != want[target] {
					errs <- target + ": body differs"
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
