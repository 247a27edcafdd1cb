package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chartguard/chartguard/chartguard"
)

// failThenDefer does what the proxy does when Commit fails closed: answer
// 503, amend the event and defer it.
func failThenDefer(t *testing.T, l *Log, path string) {
	t.Helper()
	ev := event(path)
	err := l.Commit(context.Background(), ev)
	require.ErrorIs(t, err, ErrUnavailable)
	ev.Request.Status = 503
	ev.Outcome = chartguard.OutcomeError
	l.Defer(ev)
}

func TestFailClosedAndRecover(t *testing.T) {
	tests := []struct {
		name     string
		fault    func(*faults)
		wantErr  error
		recovery string // "ready" or "commit"
	}{
		{"ENOSPC, recovered by Ready", func(f *faults) { f.failWrite.Store(true) }, syscall.ENOSPC, "ready"},
		{"ENOSPC, recovered by Commit", func(f *faults) { f.failWrite.Store(true) }, syscall.ENOSPC, "commit"},
		{"torn write", func(f *faults) { f.failWrite.Store(true); f.partialWrite.Store(true) }, syscall.ENOSPC, "commit"},
		{"fsync fails after the write landed", func(f *faults) { f.failSync.Store(true) }, syscall.EIO, "ready"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t)
			fl := &faults{}
			cfg.OpenSegment = fl.open
			l, reg := newLog(t, cfg)
			require.NoError(t, l.Commit(context.Background(), event("/ok-0")))
			require.NoError(t, l.Commit(context.Background(), event("/ok-1")))

			tt.fault(fl)
			err := l.Commit(context.Background(), event("/probe-err"))
			require.ErrorIs(t, err, ErrUnavailable)
			assert.ErrorIs(t, err, tt.wantErr)
			assert.ErrorIs(t, l.Ready(), ErrUnavailable, "Ready while the disk is bad")
			failThenDefer(t, l, "/denied-0")
			failThenDefer(t, l, "/denied-1")
			assert.Equal(t, 2.0, metricValue(t, reg, "chartguard_audit_queue_length"))
			assert.GreaterOrEqual(t, metricValue(t, reg, "chartguard_audit_events_failed_total", "sink", "file"), 3.0)

			*fl = faults{} // the disk is fine again
			want := []string{"/ok-0", "/ok-1", "/denied-0", "/denied-1"}
			if tt.recovery == "ready" {
				require.NoError(t, l.Ready())
			} else {
				require.NoError(t, l.Commit(context.Background(), event("/after")))
				want = append(want, "/after")
			}
			require.NoError(t, l.Ready())

			logged := readLog(t, cfg.Dir) // also proves no torn line remains
			assert.Equal(t, want, paths(logged), "failed originals removed, deferred copies in order")
			assert.Equal(t, denseSeqs(0, len(want)), seqs(logged))
			for _, ev := range logged[2:4] {
				assert.Equal(t, 503, ev.Request.Status)
				assert.Equal(t, chartguard.OutcomeError, ev.Outcome)
			}
			assert.Equal(t, 0.0, metricValue(t, reg, "chartguard_audit_events_lost_total"))
			assert.Equal(t, 0.0, metricValue(t, reg, "chartguard_audit_queue_length"))
		})
	}
}

func TestQueueOverflowCountsLost(t *testing.T) {
	cfg := testConfig(t)
	cfg.QueueSize = 2
	fl := &faults{}
	cfg.OpenSegment = fl.open
	l, reg := newLog(t, cfg)

	fl.failWrite.Store(true)
	for _, p := range []string{"/d0", "/d1", "/d2", "/d3", "/d4"} {
		failThenDefer(t, l, p)
	}
	assert.Equal(t, 3.0, metricValue(t, reg, "chartguard_audit_events_lost_total"))
	assert.Equal(t, 2.0, metricValue(t, reg, "chartguard_audit_queue_length"))

	fl.failWrite.Store(false)
	require.NoError(t, l.Ready())
	assert.Equal(t, []string{"/d0", "/d1"}, paths(readLog(t, cfg.Dir)), "the oldest are kept")
}

func TestFailOpenDefersItself(t *testing.T) {
	cfg := testConfig(t)
	cfg.FailClosed = false
	var out bytes.Buffer
	cfg.Stdout = &out
	cfg.Sinks = []SinkConfig{{Type: SinkStdout}}
	fl := &faults{}
	cfg.OpenSegment = fl.open
	l, reg := newLog(t, cfg)

	fl.failWrite.Store(true)
	require.NoError(t, l.Commit(context.Background(), event("/served-anyway")))
	assert.ErrorIs(t, l.Ready(), ErrUnavailable)
	assert.Equal(t, 1.0, metricValue(t, reg, "chartguard_audit_queue_length"))
	var onStdout chartguard.Event
	require.NoError(t, json.Unmarshal(out.Bytes(), &onStdout), "the SIEM gets it while the file is down")
	assert.Equal(t, "/served-anyway", onStdout.Request.Path)

	fl.failWrite.Store(false)
	require.NoError(t, l.Commit(context.Background(), event("/next")))
	assert.Equal(t, []string{"/served-anyway", "/next"}, paths(readLog(t, cfg.Dir)))
	assert.Equal(t, 0.0, metricValue(t, reg, "chartguard_audit_events_lost_total"))
}

func TestDeferWhileHealthyIsWritten(t *testing.T) {
	cfg := testConfig(t)
	l, _ := newLog(t, cfg)
	l.Defer(event("/deferred"))
	waitFor(t, func() bool { return len(readLog(t, cfg.Dir)) == 1 })
	assert.Equal(t, []string{"/deferred"}, paths(readLog(t, cfg.Dir)))
}

// TestDevFull uses the kernel's real ENOSPC: every write to /dev/full fails.
func TestDevFull(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full")
	}
	cfg := testConfig(t)
	cfg.OpenSegment = func(string) (SegmentFile, error) {
		return os.OpenFile("/dev/full", os.O_WRONLY, 0)
	}
	reg := newRegistry()
	l, err := New(cfg, nil, reg)
	require.NoError(t, err)
	require.NoError(t, l.Ready(), "healthy until a write fails")

	err = l.Commit(context.Background(), event("/x"))
	require.ErrorIs(t, err, ErrUnavailable)
	assert.ErrorIs(t, err, syscall.ENOSPC)
	assert.ErrorIs(t, l.Ready(), ErrUnavailable)

	l.Defer(event("/x"))
	require.NoError(t, l.Close(), "closing is fine; the queued event is not")
	assert.Equal(t, 1.0, metricValue(t, reg, "chartguard_audit_events_lost_total"), "unflushable queue counted lost at close")
}
