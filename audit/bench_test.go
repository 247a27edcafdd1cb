package audit

import (
	"context"
	"testing"
	"time"
)

// BenchmarkCommitDurable measures durable commits from many goroutines on
// a real file system: group commit should make fsyncs/op well below 1.
func BenchmarkCommitDurable(b *testing.B) {
	for _, bc := range []struct {
		name        string
		parallelism int // goroutines per GOMAXPROCS
	}{
		{"callers=1xP", 1},
		{"callers=64xP", 64},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := testConfig(b)
			fl := &faults{}
			cfg.OpenSegment = fl.open
			l, _ := newLog(b, cfg)
			ev := event("/fhir/Observation?patient=p1")
			b.SetParallelism(bc.parallelism)
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					e := *ev
					if err := l.Commit(ctx, &e); err != nil {
						b.Error(err)
						return
					}
				}
			})
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
			b.ReportMetric(float64(fl.syncs.Load())/float64(b.N), "fsyncs/op")
		})
	}
}
