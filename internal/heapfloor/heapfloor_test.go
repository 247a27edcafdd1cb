package heapfloor

import (
	"runtime"
	"runtime/metrics"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPercent(t *testing.T) {
	const mb = 1 << 20
	tests := []struct {
		name        string
		live, floor int64
		want        int
	}{
		{"small live heap: goal raised to the floor", 4 * mb, 64 * mb, 1500},
		{"goal exactly the floor", 16 * mb, 64 * mb, 300},
		{"just under half the floor", 31 * mb, 64 * mb, 106},
		{"half the floor: the base already reaches it", 32 * mb, 64 * mb, 100},
		{"live heap above the floor", 200 * mb, 64 * mb, 100},
		{"tiny live heap: Go's scaled minimum heap is the floor", 1024, 64 * mb, 1600},
		{"no live heap measured yet", 0, 64 * mb, 1600},
		{"floor below Go's minimum heap: nothing to raise", 1 * mb, 3 * mb, 100},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, Percent(tc.live, tc.floor))
		})
	}
}

// goal is the runtime's heap goal for a live heap and GOGC (mgcpacer.go):
// GOGC percent over the live heap, and at least 4 MB scaled by GOGC.
func goal(live int64, gogc int) int64 {
	return max(live+live*int64(gogc)/100, minHeap*int64(gogc)/100)
}

// TestPercentReachesFloor: with the GOGC Percent gives, the runtime's goal
// is the floor (within rounding) when Go's default gives less, never past
// it, and never less than the default's.
func TestPercentReachesFloor(t *testing.T) {
	for _, floor := range []int64{8 << 20, 64 << 20, 1 << 30} {
		for live := int64(0); live < 4*floor; live += floor/97 + 1 {
			p := Percent(live, floor)
			g, base := goal(live, p), goal(live, basePercent)
			require.GreaterOrEqual(t, p, basePercent, "live %d", live)
			require.GreaterOrEqual(t, g, base, "live %d: goal below Go's default", live)
			if base < floor {
				require.InDelta(t, floor, g, float64(floor)/100, "live %d: goal not the floor", live)
				require.LessOrEqual(t, g, floor, "live %d: goal past the floor", live)
			}
		}
	}
}

func gogc() int64 {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64())
}

func heapGoal() int64 {
	s := []metrics.Sample{{Name: "/gc/heap/goal:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64())
}

// The cleanup that adjusts GOGC runs after a collection, on the runtime's
// cleanup goroutine.
const (
	timeout = 5 * time.Second
	tick    = 10 * time.Millisecond
)

func TestSetRaisesGoalAndStopRestores(t *testing.T) {
	t.Setenv("GOGC", "") // unset for Set's purpose
	before := gogc()
	const floor = 256 << 20
	stop, ok := Set(floor)
	require.True(t, ok)
	defer stop()

	runtime.GC()
	runtime.GC() // the cleanup of the first collection re-armed; this one adjusts again
	require.Eventually(t, func() bool { return gogc() > basePercent }, timeout, tick,
		"GOGC stays %d after collections with a small live heap", gogc())
	assert.InDelta(t, floor, heapGoal(), floor/10, "heap goal not the floor")

	stop()
	assert.Equal(t, before, gogc())
	runtime.GC()
	runtime.GC()
	assert.Equal(t, before, gogc(), "a stopped floor must not come back")
	assert.Less(t, heapGoal(), int64(floor)/2)
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
