// Package heapfloor owns ChartGuard's one process-wide setting of Go's
// garbage collector: a floor under the heap goal.
//
// Go collects when the heap has grown by GOGC percent (100) over what the
// last collection left live, and never below 4 MB. ChartGuard keeps little
// live data (a few MB: the compiled policy, caches, connections) and
// allocates a few KB per policy decision and far more per proxied
// response, so with the default it collects every few MB, several hundred
// times a second under load. On a two-core host each collection stalls the
// requests running while the runtime schedules its mark workers, and those
// stalls, not the work of the requests, set the tail latency
// (BenchmarkDecide in package policy: with the floor the p99 of a decision
// is about a third of what it is without).
//
// A floor of F lets the heap grow to F before a collection while the live
// heap is small: after each collection GOGC is raised so the next goal is
// F, and it falls back to the base GOGC once the live heap is at least
// F/2, where the base already gives a goal of F or more. The memory given
// up is at most F; GOMEMLIMIT still caps the heap as the runtime defines.
//
// An operator who sets GOGC in the environment has chosen a collector
// policy: then [Set] does nothing.
package heapfloor

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// Default is the floor serve installs unless runtime.min_heap says
// otherwise.
const Default = 64 << 20

// basePercent is Go's default GOGC, the one Set starts from.
const basePercent = 100

// minHeap is Go's smallest heap goal at GOGC 100. The runtime scales it
// with GOGC (4 MB × GOGC/100), so a GOGC above floor/minHeap × 100 would
// put the goal past the floor however little is live.
const minHeap = 4 << 20

// liveMetric is the runtime's measure of the heap the last collection
// left live.
const liveMetric = "/gc/heap/live:bytes"

// Set installs a floor of floor bytes under the heap goal for as long as
// the process runs or until stop is called, which restores the GOGC that
// was in effect. It returns installed false, and does nothing, when floor
// is not positive or GOGC is set in the environment.
func Set(floor int64) (stop func(), installed bool) {
	if floor <= 0 || os.Getenv("GOGC") != "" {
		return func() {}, false
	}
	t := &tuner{floor: floor, sample: []metrics.Sample{{Name: liveMetric}}}
	t.prev = debug.SetGCPercent(basePercent)
	t.percent = basePercent
	t.adjust()
	t.arm()
	return t.stop, true
}

// Percent returns the GOGC that gives a heap goal of floor for a live
// heap of live bytes: base when that already does. The goal is never past
// the floor: for a live heap so small that the floor would need more, the
// GOGC whose scaled minimum heap is the floor.
func Percent(live, floor int64) int {
	ceiling := floor * 100 / minHeap
	switch {
	case live >= floor/(1+basePercent/100) || ceiling <= basePercent:
		return basePercent
	case live <= 0:
		return int(ceiling)
	}
	p := (floor - live) * 100 / live
	return int(max(min(p, ceiling), basePercent))
}

// tuner re-reads the live heap after every collection and sets GOGC.
type tuner struct {
	floor int64

	mu      sync.Mutex // serialises adjust and stop
	stopped bool
	sample  []metrics.Sample
	percent int // the GOGC set
	prev    int // the GOGC before Set, restored by stop
}

// arm registers a cleanup on a fresh object; the collection that finds it
// unreachable runs the cleanup, which adjusts GOGC and arms again. (A
// cleanup cannot be attached to a tiny pointer-free object reliably, so
// the sentinel holds a pointer.)
func (t *tuner) arm() {
	s := &sentinel{}
	runtime.AddCleanup(s, func(t *tuner) {
		if t.adjust() {
			t.arm()
		}
	}, t)
}

type sentinel struct{ _ *byte }

// adjust sets GOGC for the live heap now; false once stopped.
func (t *tuner) adjust() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return false
	}
	metrics.Read(t.sample)
	var live int64
	if s := t.sample[0]; s.Value.Kind() == metrics.KindUint64 {
		live = int64(min(s.Value.Uint64(), uint64(1)<<62))
	}
	if p := Percent(live, t.floor); p != t.percent {
		debug.SetGCPercent(p)
		t.percent = p
	}
	return true
}

func (t *tuner) stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.stopped {
		t.stopped = true
		debug.SetGCPercent(t.prev)
	}
}
