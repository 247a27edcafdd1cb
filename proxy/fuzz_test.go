package proxy

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzNormalise: normalising is idempotent, its output holds no dot
// segment, empty segment or raw byte the upstream could read differently.
func FuzzNormalise(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	lim := defaults().Limits
	f.Fuzz(func(t *testing.T, raw string) {
		tg, err := normaliseTarget(raw, lim)
		if err != nil {
			return
		}
		canon := tg.EscapedPath
		if tg.RawQuery != "" {
			canon += "?" + tg.RawQuery
		}
		// Re-encoding may lengthen the target (a raw '"' becomes %22), so
		// the client's length limit does not apply to the canonical form.
		relaxed := lim
		relaxed.MaxTargetLength = 0
		again, err := normaliseTarget(canon, relaxed)
		require.NoError(t, err, "canonical form %q must normalise", canon)
		require.Equal(t, tg.EscapedPath, again.EscapedPath)
		require.Equal(t, tg.RawQuery, again.RawQuery)
		require.Equal(t, tg.Path, again.Path)
		for _, seg := range strings.Split(tg.Path, "/")[1:] {
			require.NotContains(t, []string{".", ".."}, seg)
		}
		require.NotContains(t, tg.Path, "//")
		require.NotContains(t, tg.Path, "\\")
		require.NotContains(t, tg.Path, ";")
	})
}

// FuzzPipelineTarget: through the real pipeline, a request is either
// refused (nothing reaches the upstream) or the upstream receives exactly
// the canonical path and query that were classified.
func FuzzPipelineTarget(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	h := newHarness(f, nil, nil, nil)
	lim := h.proxy.cfg.Limits
	f.Fuzz(func(t *testing.T, raw string) {
		if raw == "" || strings.ContainsAny(raw, " \r\n\t") || len(raw) > 4096 {
			return // not a request line net/http would deliver
		}
		before := len(h.seen())
		resp := h.do(t, "GET", raw, good, "")
		resp.Body.Close()
		after := h.seen()
		tg, err := normaliseTarget(raw, lim)
		if err != nil || len(after) == before {
			require.Len(t, after, before, "refused target %q reached the upstream", raw)
			if err != nil {
				require.Equal(t, http.StatusBadRequest, resp.StatusCode, "target %q", raw)
			}
			return
		}
		want := tg.EscapedPath
		if tg.RawQuery != "" {
			want += "?" + tg.RawQuery
		}
		require.Equal(t, want, after[before].RequestURI, "target %q", raw)
		// The answer to a vread or an instance's history makes ChartGuard
		// read the current version (versions.go), whatever it then finds;
		// nothing else asks more (the upstream answers a Patient, never a
		// history Bundle).
		extra := after[before+1:]
		committed, _ := h.audit.all()
		ev := committed[len(committed)-1]
		if i := ev.Resource.Interaction; i == iVread || i == iHistoryInstance {
			require.Len(t, extra, 1, "target %q: the current version was not read", raw)
			require.Equal(t, "/fhir/"+ev.Resource.Type+"/"+ev.Resource.ID, extra[0].RequestURI, "target %q", raw)
		} else {
			require.Empty(t, extra, "target %q", raw)
		}
	})
}

var fuzzSeeds = []string{
	"/fhir/Patient/p1",
	"//fhir///Patient//p1/",
	"/fhir/Observation?patient=p1&code=http%3A%2F%2Floinc.org%7C1-2",
	"/fhir/Observation?patient=p1,p2&patient=p3&_count=5",
	"/fhir/%2e%2e/admin",
	"/fhir/Patient%2Fp1",
	"/fhir/Patient;x=1/p1",
	"/fhir/Observation?a=1;b=2",
	"/fhir/Patient/%252e",
	"/fhir/Patient/p1?_method=DELETE",
	"/fhir/Observation?code:text=a+b%20c",
	"/fhir/Patient/%70%31",
	"/fhir/Observation?subject=https://emr.example.org/fhir/Patient/p1",
	"/chart/p1/notes",
	"/fhir/Patient/p1/$everything",
	"/fhir?_type=Patient",
	"/fhir/Patient/p1/_history/2",
	"/fhir/Observation/_history",
	"/fhir/_history?_since=2026-01-01",
	"/fhir/Observation?x=%C3%A9",
	"/fhir/Observation?x=%ff",
	"/fhir/Observation?=",
	"/a/b/c/./d",
	"/fhir/Patient/p1#x",
}
