package fhirserver

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// discard is a ResponseWriter that keeps nothing, so benchmarks measure the
// server rather than a recorder.
type discard struct {
	h      http.Header
	status int
	n      int
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) WriteHeader(status int)      { d.status = status }
func (d *discard) Write(p []byte) (int, error) { d.n += len(p); return len(p), nil }

func benchmark(b *testing.B, target string, header ...string) {
	s := New(Options{Now: testNow})
	r := httptest.NewRequest(http.MethodGet, target, nil)
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	w := &discard{h: http.Header{}}
	s.ServeHTTP(w, r)
	require.Equal(b, http.StatusOK, w.status)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		clear(w.h)
		s.ServeHTTP(w, r)
	}
}

func BenchmarkRead(b *testing.B) { benchmark(b, "/fhir/Patient/p1") }

func BenchmarkSearch(b *testing.B) {
	b.Run("patient", func(b *testing.B) { benchmark(b, "/fhir/Observation?patient=p1") })
	b.Run("compartment", func(b *testing.B) { benchmark(b, "/fhir/Patient/p1/Condition") })
	b.Run("page of 50", func(b *testing.B) { benchmark(b, "/fhir/Observation") })
	b.Run("page of 50 gzip", func(b *testing.B) { benchmark(b, "/fhir/Observation", "Accept-Encoding", "gzip") })
	b.Run("include", func(b *testing.B) {
		benchmark(b, "/fhir/Observation?patient=p1&_include=Observation:subject&_include=Observation:encounter")
	})
	b.Run("revinclude", func(b *testing.B) { benchmark(b, "/fhir/Patient?_id=p1&_revinclude=Observation:subject") })
}

func TestAppendJSONString(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, in string }{
		{"plain", "http://fhir.example:8081/fhir"},
		{"quote and backslash", `a"b\c`},
		{"control", "a\x00b\nc\x1f"},
		{"html", "<a href='x'>&amp;</a>"},
		{"unicode", "Müller 東京 🙂"},
		{"line separators", "a\u2028b\u2029c"},
		{"invalid utf-8", "a\xffb\xc3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := appendJSONString(nil, tc.in)
			want, err := json.Marshal(tc.in)
			require.NoError(t, err)
			var gotS, wantS string
			require.NoError(t, json.Unmarshal(got, &gotS), "%s", got)
			require.NoError(t, json.Unmarshal(want, &wantS))
			assert.Equal(t, wantS, gotS)
			assert.NotContains(t, string(got), "<")
		})
	}
}
