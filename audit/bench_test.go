package audit

import (
	"context"
	"testing"
	"time"

	"github.com/chartguard/chartguard/chartguard"
)

// proxyEvent is shaped like the events the proxy commits for a FHIR read.
func proxyEvent() chartguard.Event {
	return chartguard.Event{
		Action:  "read",
		Outcome: chartguard.OutcomeAllowed,
		User: &chartguard.EventUser{Issuer: "https://idp.hospital.example/realms/staff", Subject: "physician-0042",
			Name: "Dr. Example", Roles: []string{"physician"}, MFA: "otp"},
		Client: chartguard.EventClient{IP: "10.0.0.1", UserAgent: "emr-client/4.2", ID: "emr-web"},
		Request: chartguard.EventRequest{ID: "0f8fad5b-d9cb-469f-a165-70867728950e", Method: "GET",
			Path: "/fhir/Observation?patient=p17", Status: 200, Bytes: 4211, DurationMS: 3.25},
		Resource: &chartguard.EventResource{Kind: chartguard.KindFHIR, Interaction: "search-type", Type: "Observation",
			Patients: []string{"p17"}, PatientStatus: chartguard.PatientsKnown},
		Decision: &chartguard.EventDecision{ID: "7c9e6679-7425-40de-944b-e07fc1f90ae7", Revision: "sha256:3f2a9c",
			Reasons: []string{}, Tags: []string{"treatment"}},
	}
}

// BenchmarkCommitDurable measures durable commits from many goroutines on
// a real file system: group commit should make fsyncs/op well below 1.
// With GOMAXPROCS 2, callers=1xP is two callers in a tight loop, the case
// where the commit delay must not wait for callers that cannot come.
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
			b.SetParallelism(bc.parallelism)
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					ev := proxyEvent()
					if err := l.Commit(ctx, &ev); err != nil {
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

// BenchmarkPrepare is the per-event CPU a caller spends in Commit before
// the handoff: envelope, id, time, JSON.
func BenchmarkPrepare(b *testing.B) {
	cfg := testConfig(b)
	l, _ := newLog(b, cfg)
	b.ReportAllocs()
	for b.Loop() {
		ev := proxyEvent()
		if _, err := l.prepare(&ev); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerify measures `audit verify` on a log the benchmark writes
// first (100k proxy-shaped events, a checkpoint every 1000): records,
// stored hashes and checkpoints all checked.
func BenchmarkVerify(b *testing.B) {
	const n = 100_000
	cfg := testConfig(b)
	cfg.Durable = false // the fixture, not what is measured
	l, err := New(cfg, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for range n {
		ev := proxyEvent()
		if err := l.Commit(ctx, &ev); err != nil {
			b.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		res, err := Verify(ctx, cfg.Dir, VerifyOptions{Verifier: testVerifier})
		if err != nil || res.Size != n {
			b.Fatal(res.Size, err)
		}
	}
	b.ReportMetric(float64(n*b.N)/time.Since(start).Seconds(), "events/s")
}
