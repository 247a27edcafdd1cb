package bench

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNewLoaderRefusesNonLoopback(t *testing.T) {
	mix := []Request{{Path: "/fhir/Patient/p1"}}
	cases := []struct {
		name, url string
		ok        bool
	}{
		{"ipv4 loopback", "http://127.0.0.1:8080", true},
		{"other loopback address", "http://127.0.0.2:8080", true},
		{"ipv6 loopback", "http://[::1]:8080", true},
		{"private address", "http://10.0.0.1:8080", false},
		{"public address", "http://93.184.216.34:80", false},
		{"host name", "http://localhost:8080", false},
		{"https", "https://127.0.0.1:8443", false},
		{"with path", "http://127.0.0.1:8080/fhir", false},
		{"no port", "http://127.0.0.1", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l, err := NewLoader(Target{Name: "t", URL: tc.url}, mix, 1)
			if tc.ok {
				require.NoError(t, err)
				l.Close()
				return
			}
			require.ErrorIs(t, err, ErrNotLoopback)
		})
	}
}

func TestNewLoaderRefusesEmptyMix(t *testing.T) {
	_, err := NewLoader(Target{URL: "http://127.0.0.1:1"}, nil, 1)
	require.Error(t, err)
}

// TestLoaderCountsFailures: every non-200 counts as an error, the rest as
// requests, and the run is bounded by the request count.
func TestLoaderCountsFailures(t *testing.T) {
	var seen atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Add(1)
		if r.Header.Get("Authorization") != "Bearer ok" || strings.Contains(r.URL.Path, "bad") {
			http.Error(w, "no", http.StatusForbidden)
			return
		}
		_, _ = w.Write([]byte(`{"resourceType":"Patient"}`))
	}))
	defer srv.Close()
	mix := []Request{
		{Path: "/fhir/Patient/p1", Authorization: "Bearer ok"},
		{Path: "/fhir/Patient/p2", Authorization: "Bearer ok"},
		{Path: "/fhir/Patient/p3", Authorization: "Bearer ok"},
		{Path: "/fhir/Patient/bad?patient=p9", Authorization: "Bearer ok"},
	}
	l, err := NewLoader(Target{Name: "fake", URL: srv.URL}, mix, 4)
	require.NoError(t, err)
	defer l.Close()

	res, err := l.Run(t.Context(), time.Minute, 100)
	require.NoError(t, err)
	assert.Equal(t, int64(100), seen.Load(), "requests sent")
	assert.Equal(t, 75, res.Requests)
	assert.Equal(t, 25, res.Errors)
	require.ErrorIs(t, res.Err(), ErrFailedRun)
	assert.Contains(t, res.FirstError, "status 403")
	assert.NotContains(t, res.FirstError, "p9", "errors name no ids")
}

func TestLoaderStopsAtDuration(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer srv.Close()
	l, err := NewLoader(Target{URL: srv.URL}, []Request{{Path: "/"}}, 2)
	require.NoError(t, err)
	defer l.Close()
	res, err := l.Run(t.Context(), 50*time.Millisecond, 0)
	require.NoError(t, err)
	require.NoError(t, res.Err())
	assert.Positive(t, res.Requests)
	assert.Less(t, res.Elapsed, 5*time.Second)
}

func TestPercentile(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	r := Result{Requests: 100, Elapsed: 2 * time.Second}
	for i := 1; i <= 100; i++ {
		r.latencies = append(r.latencies, ms(i))
	}
	cases := []struct {
		name string
		q    float64
		want time.Duration
	}{
		{"median", 0.5, ms(50)},
		{"p99", 0.99, ms(99)},
		{"max", 1, ms(100)},
		{"tiny", 0.001, ms(1)},
		{"zero", 0, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, r.Percentile(tc.q))
		})
	}
	assert.InDelta(t, 50, r.Throughput(), 1e-9)
	assert.Zero(t, Result{}.Percentile(0.5))
	assert.Zero(t, Result{}.Throughput())
}

func TestResultMerge(t *testing.T) {
	a := Result{Target: "x", Requests: 2, Elapsed: time.Second, latencies: []time.Duration{3, 5}}
	b := Result{Target: "x", Requests: 2, Errors: 1, FirstError: "boom", Elapsed: time.Second,
		latencies: []time.Duration{1, 4}}
	a.Merge(b)
	assert.Equal(t, 4, a.Requests)
	assert.Equal(t, 1, a.Errors)
	assert.Equal(t, "boom", a.FirstError)
	assert.Equal(t, []time.Duration{1, 3, 4, 5}, a.latencies)
	assert.InDelta(t, 2, a.Throughput(), 1e-9)
}

func TestResourceType(t *testing.T) {
	cases := map[string]string{
		"/fhir/Patient/p1":             "/fhir/Patient",
		"/fhir/Observation?patient=p1": "/fhir/Observation",
		"/fhir/metadata":               "/fhir/metadata",
	}
	for in, want := range cases {
		assert.Equal(t, want, resourceType(in), in)
	}
}
