package bench

import (
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestHarnessSmoke runs the real harness briefly: every target answers a
// few hundred requests of the mix with 200, and ChartGuard's durable audit
// log holds exactly one event per request it answered.
func TestHarnessSmoke(t *testing.T) {
	const n = 300
	auditDir := filepath.Join(t.TempDir(), "audit")
	h, err := Start(t.Context(), Options{AuditDir: auditDir, EvalTimeout: testEvalTimeout})
	require.NoError(t, err)
	t.Cleanup(func() { _ = h.Close() })
	require.GreaterOrEqual(t, len(h.Mix), DefaultTokens)

	for _, target := range h.Targets() {
		t.Run(target.Name, func(t *testing.T) {
			l, err := NewLoader(target, h.Mix, 8)
			require.NoError(t, err)
			defer l.Close()
			res, err := l.Run(t.Context(), time.Minute, n)
			require.NoError(t, err)
			require.NoError(t, res.Err())
			assert.Equal(t, n, res.Requests, "requests answered 200")
			assert.Positive(t, res.Throughput())
			assert.Positive(t, res.Percentile(0.5))
			assert.LessOrEqual(t, res.Percentile(0.5), res.Percentile(0.99))
		})
	}

	require.NoError(t, h.Close())
	counts, err := AuditStatuses(auditDir)
	require.NoError(t, err)
	assert.Equal(t, map[int]int{200: n}, counts, "audit events by status")
}

// testEvalTimeout replaces the 50ms policy timeout in tests, which run
// under -race on a shared CI machine (see Options.EvalTimeout).
const testEvalTimeout = 10 * time.Second

func BenchmarkDirect(b *testing.B) {
	benchTarget(b, func(h *Harness) Target { return h.Direct })
}

func BenchmarkBareProxy(b *testing.B) {
	benchTarget(b, func(h *Harness) Target { return h.Bare })
}

func BenchmarkChartGuard(b *testing.B) {
	benchTarget(b, func(h *Harness) Target { return h.ChartGuard })
}

// benchTarget starts the harness once, warms the target up with one pass
// over the mix, then measures the mix with 16 goroutines per core through
// real loopback connections. The sub-benchmark keeps the expensive start
// out of the b.N ramp-up.
func benchTarget(b *testing.B, pick func(*Harness) Target) {
	h, err := Start(b.Context(), Options{AuditDir: filepath.Join(b.TempDir(), "audit")})
	require.NoError(b, err)
	b.Cleanup(func() { _ = h.Close() })
	const perCore = 16
	l, err := NewLoader(pick(h), h.Mix, perCore*runtime.GOMAXPROCS(0))
	require.NoError(b, err)
	b.Cleanup(l.Close)
	warm, err := l.Run(b.Context(), time.Minute, len(h.Mix))
	require.NoError(b, err)
	require.NoError(b, warm.Err())

	b.Run("mix", func(b *testing.B) {
		var failed atomic.Int64
		ctx := b.Context()
		b.SetParallelism(perCore)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				r := l.mix[(l.next.Add(1)-1)%uint64(len(l.mix))]
				if err := l.do(ctx, r); err != nil {
					failed.Add(1)
				}
			}
		})
		b.StopTimer()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		if n := failed.Load(); n > 0 {
			b.Fatalf("%d of %d requests did not answer 200", n, b.N)
		}
	})
}
