package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/stretchr/testify/require"

	"github.com/chartguard/chartguard/chartguard"
	"github.com/chartguard/chartguard/internal/heapfloor"
)

// BenchmarkDecide measures one decision of the default policy on typical
// inputs, one goroutine, through New and Engine.Decide (setup outside the
// timer), in a process whose collector is set as chartguard serve sets
// it by default: a heap floor of runtime.min_heap (package heapfloor;
// with GOGC set in the environment, as serve, it leaves the collector to
// that, so GOGC=100 measures Go's default). Besides ns/op it reports the
// median and 99th percentile of the individual decisions (p50-µs,
// p99-µs), the garbage collections per 1000 decisions (gc/1k-op) and the
// floor (heap-floor-MiB, 0 when none). Targets: median ≤ 120 µs, p99 ≤
// 500 µs.
func BenchmarkDecide(b *testing.B) {
	benchmarkDecide(b, newDefaultEngine(b))
}

// BenchmarkDecideScale runs the cases of BenchmarkDecide on the shipped
// data and on a copy with 10,000 more care-team links and 1,000 VIP
// patients: the median may grow by at most 1.25× (compare the p50-µs of
// shipped/... and large/...).
func BenchmarkDecideScale(b *testing.B) {
	b.Run("shipped", func(b *testing.B) {
		benchmarkDecide(b, newDefaultEngine(b))
	})
	b.Run("large", func(b *testing.B) {
		dir := copyDefaultPolicy(b, func(d map[string]any) {
			teams := d["care_teams"].(map[string]any)
			for i := range 100 {
				panel := map[string]any{}
				for j := range 100 {
					panel[fmt.Sprintf("px%d", i*100+j)] = true
				}
				teams[fmt.Sprintf("Practitioner/prx%d", i)] = panel
			}
			vip := d["vip_patients"].(map[string]any)
			for i := range 1000 {
				vip[fmt.Sprintf("pv%d", i)] = true
			}
		})
		e, err := New(b.Context(), Config{Dir: dir, EvalTimeout: testTimeout}, nil)
		require.NoError(b, err)
		benchmarkDecide(b, e)
	})
}

// decideCases are the inputs of the benchmarks: the common allow (a
// physician's session reading one observation of a care-team patient), a
// search, an allow through a relationship from the EMR in the response
// phase (the general path), a deny offering break-the-glass, and a
// table deny.
func decideCases() []struct {
	name string
	in   chartguard.Input
} {
	return []struct {
		name string
		in   chartguard.Input
	}{
		{"allow", physicianRead()},
		{"allow-bearer", with(physicianRead(), func(in *chartguard.Input) {
			in.Token = chartguard.Token{Kind: "bearer", ClientID: "emr-app", Scopes: []string{"openid", "user/*.rs"}}
		})},
		{"search", with(physicianRead(), func(in *chartguard.Input) {
			in.Resource.ID = ""
			in.Resource.Action, in.Resource.Interaction = "search", "search-type"
			in.Request.Query = map[string][]string{"patient": {"p1"}, "_count": {"50"}}
		})},
		{"allow-relationship", with(physicianRead(), func(in *chartguard.Input) {
			in.User.FHIRUser = "Practitioner/pr2"
			in.Resource.Phase = chartguard.PhaseResponse
			in.Resource.Labels = []string{"N"}
		})},
		{"deny-break-glass", with(physicianRead(), func(in *chartguard.Input) {
			in.Resource.Patients = []string{"p2"}
			in.Relationship = map[string]chartguard.Relationship{}
		})},
		{"deny", with(physicianRead(), func(in *chartguard.Input) {
			in.User.Roles = []string{"nurse"}
			in.Resource.Action, in.Resource.Interaction = "delete", "delete"
		})},
	}
}

func benchmarkDecide(b *testing.B, e *Engine) {
	var floor float64
	if stop, ok := heapfloor.Set(heapfloor.Default); ok {
		b.Cleanup(stop)
		floor = heapfloor.Default >> 20
	}
	for _, tc := range decideCases() {
		b.Run(tc.name, func(b *testing.B) {
			in := tc.in
			lat := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			gcs := numGC()
			for b.Loop() {
				start := time.Now()
				if _, err := e.Decide(b.Context(), &in); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			reportPercentiles(b, lat)
			reportGCs(b, numGC()-gcs, len(lat))
			b.ReportMetric(floor, "heap-floor-MiB")
		})
	}
}

// reportPercentiles reports the median and 99th percentile of lat in µs.
func reportPercentiles(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	at := func(q float64) float64 {
		return float64(lat[int(q*float64(len(lat)-1))]) / float64(time.Microsecond)
	}
	b.ReportMetric(at(0.50), "p50-µs")
	b.ReportMetric(at(0.99), "p99-µs")
}

// reportGCs reports how many garbage collections ran per 1000 decisions
// (gc/1k-op). Each one can hold up a decision for a few hundred µs on a
// two-core machine, so the p99 follows it more than the policy's own
// cost: it is bytes per decision over the heap's headroom.
func reportGCs(b *testing.B, gcs uint32, n int) {
	if n > 0 {
		b.ReportMetric(float64(gcs)*1000/float64(n), "gc/1k-op")
	}
}

func numGC() uint32 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.NumGC
}

// BenchmarkInputValue compares ways to turn an Input into the policy input:
// the direct builder Decide uses (with the default policy's fields, as
// Decide builds it, and whole), and the JSON round trips it replaces.
func BenchmarkInputValue(b *testing.B) {
	in := physicianRead()
	b.Run("direct/default-policy-fields", func(b *testing.B) {
		enc := newDefaultEngine(b).enc
		b.ReportAllocs()
		for b.Loop() {
			if _, err := enc.input(&in); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("direct", func(b *testing.B) {
		enc := newEncoder(allFields)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := enc.input(&in); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json+ValueFromReader", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf, err := json.Marshal(&in)
			require.NoError(b, err)
			if _, err := ast.ValueFromReader(bytes.NewReader(buf)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("InterfaceToValue", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ast.InterfaceToValue(&in); err != nil {
				b.Fatal(err)
			}
		}
	})
}
