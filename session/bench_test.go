package session

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkLookup measures the request hot path: id check, memory-store
// get (a deep copy), expiry with pending activity merged, and recording
// activity. Sessions is the number of live sessions in the store.
func BenchmarkLookup(b *testing.B) {
	for _, n := range []int{1_000, 100_000} {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			m, ids := benchManager(b, n)
			ctx := context.Background()
			act := Activity{Path: "/fhir/Observation"}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := m.Lookup(ctx, ids[i%len(ids)], act); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
	b.Run("parallel", func(b *testing.B) {
		m, ids := benchManager(b, 10_000)
		ctx := context.Background()
		act := Activity{Path: "/fhir/Observation"}
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				if _, err := m.Lookup(ctx, ids[i%len(ids)], act); err != nil {
					b.Error(err)
					return
				}
				i++
			}
		})
	})
}

// benchManager returns a manager with n sessions on a clock that moves
// forward 1µs per reading, so every lookup records fresh activity.
func benchManager(b *testing.B, n int) (*Manager, []string) {
	b.Helper()
	clk := newClock()
	now := func() time.Time { clk.Advance(time.Microsecond); return clk.Now() }
	m, err := NewManager(Config{Now: now, Background: []string{"/api/poll*", "/app/heartbeat*"},
		IdleTimeoutByNetwork: []NetworkTimeout{{CIDR: "10.20.0.0/16", IdleTimeout: 5 * time.Minute}}},
		NewMemory(now))
	if err != nil {
		b.Fatal(err)
	}
	ids := make([]string, n)
	for i := range ids {
		s, err := m.New(context.Background(), alice(), Login{IP: "10.20.1.1"})
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = s.ID
	}
	return m, ids
}
