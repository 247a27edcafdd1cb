package heapfloor

import (
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPercent(t *testing.T) {
	const mb = 1 << 20
	tests := []struct {
		name               string
		live, roots, floor int64
		want               int
	}{
		{"small live heap: goal raised to the floor", 4 * mb, 0, 64 * mb, 1500},
		{"roots scanned grow the goal too", 4 * mb, 4 * mb, 64 * mb, 750},
		{"goal exactly the floor", 16 * mb, 0, 64 * mb, 300},
		{"just under half the floor", 31 * mb, 0, 64 * mb, 106},
		{"half the floor: the default already reaches it", 32 * mb, 0, 64 * mb, 100},
		{"roots make the default reach it sooner", 24 * mb, 16 * mb, 64 * mb, 100},
		{"live heap above the floor", 200 * mb, 0, 64 * mb, 100},
		{"tiny live heap: Go's scaled minimum heap is the floor", 1024, 0, 64 * mb, 1600},
		{"nothing measured yet", 0, 0, 64 * mb, 1600},
		{"floor below Go's minimum heap: nothing to raise", 1 * mb, 0, 3 * mb, 100},
		{"a floor past Max is Max", 1 * mb, 0, 1 << 50, Max * 100 / minHeap},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, Percent(tc.live, tc.roots, tc.floor))
		})
	}
}

// goal is the runtime's heap goal (mgcpacer.go, gcControllerState.commit)
// after a collection that left live and scanned roots, under gogc.
func goal(live, roots int64, gogc int) int64 {
	return max(live+(live+roots)*int64(gogc)/100, minHeap*int64(gogc)/100)
}

// TestPercentReachesFloor: with the GOGC Percent gives, the runtime's goal
// is the floor (within rounding) when Go's default gives less, never past
// it, and never less than the default's.
func TestPercentReachesFloor(t *testing.T) {
	for _, floor := range []int64{8 << 20, 64 << 20, 1 << 30} {
		for _, roots := range []int64{0, 1 << 20, 6 << 20} {
			for live := int64(0); live < 4*floor; live += floor/97 + 1 {
				p := Percent(live, roots, floor)
				g, base := goal(live, roots, p), goal(live, roots, basePercent)
				require.GreaterOrEqual(t, p, basePercent, "live %d", live)
				require.LessOrEqual(t, p, math.MaxInt32)
				require.GreaterOrEqual(t, g, base, "live %d roots %d: goal below Go's default", live, roots)
				if base < floor {
					require.InDelta(t, floor, g, float64(floor)/100, "live %d roots %d: goal not the floor", live, roots)
					require.LessOrEqual(t, g, floor, "live %d roots %d: goal past the floor", live, roots)
				}
			}
		}
	}
}

func read(name string) int64 {
	s := []metrics.Sample{{Name: name}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64())
}

func gogc() int64     { return read("/gc/gogc:percent") }
func heapGoal() int64 { return read("/gc/heap/goal:bytes") }
func memLimit() int64 { return read("/gc/gomemlimit:bytes") }

// The re-tune runs after a collection, on the runtime's cleanup goroutine.
const (
	timeout = 5 * time.Second
	tick    = 10 * time.Millisecond
)

// noLimit lifts a GOMEMLIMIT from the environment for the test, so the
// heap goal is GOGC's.
func noLimit(t *testing.T) {
	t.Setenv("GOGC", "") // unset for Set's purpose
	prev := debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
}

func TestSetFollowsTheLiveHeapAndStopRestores(t *testing.T) {
	noLimit(t)
	before := gogc()
	const floor = 128 << 20
	stop, ok := Set(floor)
	require.True(t, ok)
	defer stop()

	// Little live: GOGC raised, goal the floor, memory limit twice it.
	runtime.GC()
	require.Eventually(t, func() bool { return gogc() > 1000 }, timeout, tick, "GOGC %d", gogc())
	assert.InDelta(t, floor, heapGoal(), floor/10, "heap goal not the floor")
	assert.Equal(t, int64(2*floor), memLimit())

	// A third of the floor live: collections after it bring GOGC down
	// (each re-tune comes from the cleanup of the one before).
	keep := make([]byte, floor/3)
	for i := range keep {
		keep[i] = byte(i)
	}
	runtime.GC()
	runtime.GC()
	require.Eventually(t, func() bool { return gogc() < 200 }, timeout, tick, "GOGC %d with a third of the floor live", gogc())
	assert.Greater(t, gogc(), int64(basePercent))
	runtime.KeepAlive(keep)

	// Over half the floor live: Go's default, and no limit of ours.
	more := make([]byte, floor/3)
	for i := range more {
		more[i] = byte(i)
	}
	runtime.GC()
	runtime.GC()
	require.Eventually(t, func() bool { return gogc() == basePercent }, timeout, tick, "GOGC %d", gogc())
	assert.Equal(t, int64(math.MaxInt64), memLimit())
	runtime.KeepAlive(keep)
	runtime.KeepAlive(more)

	stop()
	assert.Equal(t, before, gogc())
	runtime.GC()
	runtime.GC()
	time.Sleep(50 * time.Millisecond) // a re-tune would have landed by now
	assert.Equal(t, before, gogc(), "a stopped floor must not come back")
	assert.Equal(t, int64(math.MaxInt64), memLimit())
	assert.Less(t, heapGoal(), int64(floor)/2)
}

// TestSetTwice: a second Set replaces the first; stopping the first then
// changes nothing, and stopping the second restores what was there before
// either.
func TestSetTwice(t *testing.T) {
	noLimit(t)
	before := gogc()
	stopA, ok := Set(64 << 20)
	require.True(t, ok)
	stopB, ok := Set(256 << 20)
	require.True(t, ok)
	runtime.GC()
	require.Eventually(t, func() bool { return heapGoal() > 200<<20 }, timeout, tick, "the second floor is in force")
	stopA()
	assert.Greater(t, heapGoal(), int64(200<<20), "stopping a replaced floor changes nothing")
	stopB()
	assert.Equal(t, before, gogc())
	assert.Equal(t, int64(math.MaxInt64), memLimit())
}

func TestSetKeepsALowerMemoryLimit(t *testing.T) {
	noLimit(t)
	debug.SetMemoryLimit(100 << 20) // as GOMEMLIMIT=100MiB would
	stop, ok := Set(64 << 20)
	require.True(t, ok)
	runtime.GC()
	assert.Equal(t, int64(100<<20), memLimit(), "the operator's lower limit stays")
	stop()
	assert.Equal(t, int64(100<<20), memLimit())
}

func TestSetLeavesOperatorsChoice(t *testing.T) {
	t.Run("GOGC set", func(t *testing.T) {
		before := gogc()
		t.Setenv("GOGC", "150")
		_, ok := Set(Default)
		assert.False(t, ok)
		assert.Equal(t, before, gogc())
	})
	t.Run("floor off", func(t *testing.T) {
		before := gogc()
		t.Setenv("GOGC", "")
		_, ok := Set(0)
		assert.False(t, ok)
		assert.Equal(t, before, gogc())
	})
}
