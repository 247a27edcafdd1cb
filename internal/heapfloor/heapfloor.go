// Package heapfloor owns ChartGuard's one process-wide setting of Go's
// garbage collector: a floor under the heap goal.
//
// Go collects when the heap has grown by GOGC percent (100) over what the
// last collection left live (plus the stacks and globals it scanned), and
// never below 4 MB. ChartGuard keeps little live data (a few MB: the
// compiled policy, caches, connections) and allocates a few KB per policy
// decision and far more per proxied response, so with the default it
// collects every few MB, several hundred times a second under load. On a
// two-core host each collection stalls the requests running while the
// runtime schedules its mark workers, and those stalls, not the work of
// the requests, set the tail latency (BenchmarkDecide in package policy:
// with the floor the p99 of a decision is about a third of what it is
// without).
//
// A floor of F lets the heap grow to F before a collection while the live
// heap is small: after each collection GOGC is raised so the next goal is
// F, and it falls back to Go's default once the default's goal reaches F
// (a live heap of about F/2).
//
// Risk accepted: memory. While GOGC is raised the heap may hold up to F
// where Go would have collected at twice the live heap. GOGC is re-tuned
// only after a collection, so a live heap that jumps between two would
// meet a goal set for the smaller one; a soft memory limit of 2F (or
// GOMEMLIMIT, if lower) holds while GOGC is raised and bounds that, at
// the price of back-to-back collections until the next re-tune.
//
// An operator who sets GOGC in the environment has chosen a collector
// policy: then [Set] does nothing. GOMEMLIMIT is kept.
package heapfloor

import (
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// Default is the floor serve installs unless runtime.min_heap says
// otherwise.
const Default = 64 << 20

// Max is the largest floor Set takes (the GOGC it computes must fit an
// int32, and a floor this size is already a choice to not collect).
const Max = 64 << 30

// basePercent is Go's default GOGC, the one Set starts from.
const basePercent = 100

// minHeap is Go's smallest heap goal at GOGC 100. The runtime scales it
// with GOGC (4 MB × GOGC/100), so a GOGC above floor/minHeap × 100 would
// put the goal past the floor however little is live.
const minHeap = 4 << 20

// The runtime's measures of what the last collection found: the heap it
// left live and the stacks and globals it scanned, which the goal also
// grows with.
var sampleNames = []string{"/gc/heap/live:bytes", "/gc/scan/stack:bytes", "/gc/scan/globals:bytes"}

// Percent returns the GOGC that gives a heap goal of floor after a
// collection that left live bytes of heap and scanned roots bytes of
// stacks and globals: the runtime's goal is live + (live+roots) ×
// GOGC/100. It is basePercent when that already reaches floor, and never
// puts the goal past floor: for a heap so small that the floor would need
// more, it is the GOGC whose scaled minimum heap is the floor.
func Percent(live, roots, floor int64) int {
	floor = min(floor, Max)
	ceiling := floor * 100 / minHeap
	scanned := live + roots
	switch {
	case ceiling <= basePercent || live+scanned*basePercent/100 >= floor:
		return basePercent
	case scanned <= 0:
		return int(ceiling)
	}
	p := (floor - live) * 100 / scanned
	return int(max(min(p, ceiling), basePercent))
}

// The tuner installed, if any: GOGC is one per process.
var (
	mu     sync.Mutex // serialises Set, stop and every re-tune
	active *tuner
)

// tuner re-reads what the last collection found after every collection
// and sets GOGC and the memory limit.
type tuner struct {
	floor     int64
	sample    []metrics.Sample
	prevGOGC  int   // restored by stop
	prevLimit int64 // the memory limit before Set (GOMEMLIMIT): restored, and never raised
}

// Set installs a floor of floor bytes (at most Max) under the heap goal
// for as long as the process runs or until stop is called, which restores
// the GOGC and memory limit that were in effect. A floor already
// installed is stopped first. It returns installed false, and does
// nothing, when floor is not positive or GOGC is set in the environment.
func Set(floor int64) (stop func(), installed bool) {
	if floor <= 0 || os.Getenv("GOGC") != "" {
		return func() {}, false
	}
	mu.Lock()
	defer mu.Unlock()
	if active != nil {
		active.restore()
	}
	t := &tuner{floor: min(floor, Max), sample: make([]metrics.Sample, len(sampleNames))}
	for i, n := range sampleNames {
		t.sample[i].Name = n
	}
	t.prevGOGC = debug.SetGCPercent(basePercent)
	t.prevLimit = debug.SetMemoryLimit(-1)
	active = t
	t.adjust()
	t.arm()
	return func() {
		mu.Lock()
		defer mu.Unlock()
		if active == t {
			t.restore()
		}
	}, true
}

// arm registers a cleanup on a fresh object; the collection that finds it
// unreachable runs the cleanup, which re-tunes and arms again while t is
// the active tuner. (The sentinel holds a pointer: cleanups are not
// reliable on tiny pointer-free objects, which share blocks.)
func (t *tuner) arm() {
	s := &sentinel{}
	runtime.AddCleanup(s, func(t *tuner) {
		mu.Lock()
		defer mu.Unlock()
		if active == t {
			t.adjust()
			t.arm()
		}
	}, t)
}

type sentinel struct{ _ *byte }

// adjust sets GOGC, and the memory limit, for what the last collection
// found. Called with mu held.
func (t *tuner) adjust() {
	metrics.Read(t.sample)
	var v [3]int64
	for i, s := range t.sample {
		if s.Value.Kind() == metrics.KindUint64 {
			v[i] = int64(min(s.Value.Uint64(), math.MaxInt64/200))
		}
	}
	p := Percent(v[0], v[1]+v[2], t.floor)
	debug.SetGCPercent(p)
	limit := t.prevLimit
	if p > basePercent {
		limit = min(limit, 2*t.floor)
	}
	debug.SetMemoryLimit(limit)
}

// restore puts back what Set found and makes t inactive. Called with mu
// held.
func (t *tuner) restore() {
	debug.SetGCPercent(t.prevGOGC)
	debug.SetMemoryLimit(t.prevLimit)
	active = nil
}
