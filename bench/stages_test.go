package bench

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const cgmod = "github.com/chartguard/chartguard/"

// sample builds a CPU sample; frames are leaf first.
func sample(label string, cpu time.Duration, frames ...string) *profile.Sample {
	s := &profile.Sample{Value: []int64{1, int64(cpu)}}
	if label != "" {
		s.Label = map[string][]string{LabelKey: {label}}
	}
	for i, f := range frames {
		fn := &profile.Function{ID: uint64(i + 1), Name: f}
		s.Location = append(s.Location, &profile.Location{ID: uint64(i + 1), Line: []profile.Line{{Function: fn}}})
	}
	return s
}

func cpuProfile(samples ...*profile.Sample) *profile.Profile {
	return &profile.Profile{
		SampleType: []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}},
		Sample:     samples,
	}
}

func TestStageOf(t *testing.T) {
	serve := []string{cgmod + "proxy.(*Proxy).ServeHTTP", "net/http.serverHandler.ServeHTTP", "net/http.(*conn).serve"}
	forward := append([]string{"net/http/httputil.(*ReverseProxy).ServeHTTP", cgmod + "proxy.(*Proxy).forward"}, serve...)
	modify := append([]string{cgmod + "proxy.(*Proxy).modifyResponse"}, forward...)
	cases := []struct {
		name   string
		frames []string
		want   string
	}{
		{"policy with its allocation", append([]string{"runtime.mallocgc",
			"github.com/open-policy-agent/opa/v1/topdown.(*eval).eval", cgmod + "policy.(*Engine).Decide",
			cgmod + "proxy.(*Proxy).authorise"}, serve...), StagePolicy},
		{"OPA stack truncated at 128 frames", []string{"github.com/open-policy-agent/opa/v1/topdown.evalTree.next"}, StagePolicy},
		{"policy input from the target", append([]string{"net/url.Values.Set", cgmod + "proxy.(*target).query",
			cgmod + "proxy.(*Proxy).authorise"}, serve...), StagePolicy},
		{"audit fsync is audit, not I/O", []string{"syscall.Syscall", "internal/poll.(*FD).Fsync", "os.(*File).Sync",
			cgmod + "audit.(*segmentWriter).sync", cgmod + "audit.(*Log).run"}, StageAudit},
		{"audit marshalling in modifyResponse", append([]string{"encoding/json.Marshal", cgmod + "audit.(*Log).prepare",
			cgmod + "audit.(*Log).Commit", cgmod + "proxy.(*Proxy).commit"}, modify...), StageAudit},
		{"metrics in commit", append([]string{"github.com/prometheus/client_golang/prometheus.(*histogram).Observe",
			cgmod + "proxy.(*metrics).observe", cgmod + "proxy.(*Proxy).commit"}, modify...), StageMetrics},
		{"normalise", append([]string{"strings.IndexByte", cgmod + "proxy.normaliseTarget"}, serve...), StageNormalise},
		{"classify", append([]string{cgmod + "proxy.(*classifier).classifyFHIR", cgmod + "proxy.(*Proxy).classify"}, serve...), StageNormalise},
		{"authenticate", append([]string{"crypto/sha256.block", cgmod + "authn.(*Bearer).Authenticate"}, serve...), StageAuthn},
		{"reverse proxy plumbing", append([]string{"net/http.Header.Clone"}, forward...), StageHTTP},
		{"response scan", append([]string{cgmod + "proxy/internal/fhirscan.(*parser).object", cgmod + "proxy/internal/fhirscan.Filter",
			cgmod + "proxy.(*Proxy).checkResponse"}, modify...), StageResponse},
		{"response-phase policy inside the scan", append([]string{"github.com/open-policy-agent/opa/v1/topdown.(*eval).eval",
			cgmod + "policy.(*Engine).Decide", cgmod + "proxy.(*Proxy).decide", cgmod + "proxy.(*Proxy).responseDecider.func1",
			cgmod + "proxy/internal/fhirscan.(*scan).decideOne", cgmod + "proxy/internal/fhirscan.Filter",
			cgmod + "proxy.(*Proxy).checkResponse"}, modify...), StagePolicy},
		{"header scrubbing", append([]string{"net/http.Header.Del", cgmod + "proxy.dropOwnSetCookies"}, modify...), StageGlue},
		{"socket write", []string{"syscall.Syscall", "internal/poll.(*FD).Write", "net.(*conn).Write",
			"net/http.(*response).finishRequest", "net/http.(*conn).serve"}, StageIO},
		{"allocation in plumbing", []string{"runtime.mallocgc", "net/http.(*conn).readRequest", "net/http.(*conn).serve"}, StageRuntime},
		{"GC worker", []string{"runtime.scanobject", "runtime.gcDrain", "runtime.gcBgMarkWorker"}, StageRuntime},
		{"scheduler", []string{"runtime.futex", "runtime.notesleep", "runtime.stopm"}, StageRuntime},
		{"netpoller", []string{"runtime.netpoll", "runtime.findRunnable", "runtime.schedule"}, StageIO},
		{"upstream handler", []string{"encoding/json.Marshal", cgmod + "examples/fhir-demo/fhirserver.(*Server).ServeHTTP"}, StageUpstream},
		{"unknown", []string{"main.main"}, StageOther},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, stageOf(sample("", 1, tc.frames...)))
		})
	}
}

func TestAnalyze(t *testing.T) {
	ms := time.Millisecond
	p := cpuProfile(
		sample(CompLoad, 10*ms, "net/http.(*Client).Do"),
		sample(CompUpstream, 20*ms, "net/http.(*conn).serve"),
		sample(CompChartGuard, 30*ms, "github.com/open-policy-agent/opa/v1/topdown.evalTree.next"),
		sample(CompChartGuard, 10*ms, "syscall.Syscall", "net.(*conn).Write"),
		sample("", 30*ms, "runtime.scanobject", "runtime.gcBgMarkWorker"),
	)
	b, err := Analyze(p)
	require.NoError(t, err)
	assert.Equal(t, 100*ms, b.Total)
	assert.Equal(t, 40*ms, b.ChartGuard)
	assert.Equal(t, []Share{
		{StageRuntime, 30 * ms, 30}, {StagePolicy, 30 * ms, 30}, {StageUpstream, 20 * ms, 20},
		{StageIO, 10 * ms, 10}, {StageLoad, 10 * ms, 10},
	}, b.Process)
	assert.Equal(t, []Share{{StagePolicy, 30 * ms, 75}, {StageIO, 10 * ms, 25}}, b.Stages)
	require.Len(t, b.Top, 2)
	assert.Equal(t, "github.com/open-policy-agent/opa/v1/topdown.evalTree.next", b.Top[0].Name)

	var out bytes.Buffer
	require.NoError(t, WriteStages(&out, b, 1000))
	assert.Contains(t, out.String(), "| policy | 75.0% | 30.0% | 30 µs |")
	assert.Contains(t, out.String(), "| **total** | 100% | 40.0% | 40 µs |")
}

func TestAnalyzeRefusesNonCPUProfiles(t *testing.T) {
	heap := &profile.Profile{SampleType: []*profile.ValueType{{Type: "alloc_space", Unit: "bytes"}},
		Sample: []*profile.Sample{{Value: []int64{1}}}}
	_, err := Analyze(heap)
	require.ErrorIs(t, err, ErrNoCPU)
	_, err = Analyze(cpuProfile())
	require.ErrorIs(t, err, ErrNoCPU)
}

func TestWriteResults(t *testing.T) {
	res := func(name string, n int) Result {
		return Result{Target: name, Requests: n, Elapsed: time.Second,
			latencies: []time.Duration{time.Millisecond, 2 * time.Millisecond}}
	}
	cases := []struct {
		name       string
		cg         int
		want, nots string
	}{
		{"meets the target", 5000, "ChartGuard/bare throughput 0.50 (target >= 0.50: meets)", "BELOW"},
		{"below the target", 4000, "ChartGuard/bare throughput 0.40 (target >= 0.50: BELOW)", "meets"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			require.NoError(t, WriteResults(&out, res(NameDirect, 20000), res(NameBare, 10000), res(NameChartGuard, tc.cg)))
			s := out.String()
			assert.Contains(t, s, tc.want)
			assert.NotContains(t, s, tc.nots)
			assert.Contains(t, s, "| bare proxy | 10000 | 0 | 10000 | 1.00 ms | 2.00 ms | 0 µs | ? | 0.50 × direct |")
			rows := 0
			for _, line := range strings.Split(s, "\n") {
				if strings.HasPrefix(line, "|") {
					rows++
				}
			}
			assert.Equal(t, 5, rows, "header, rule and three rows")
		})
	}
}
