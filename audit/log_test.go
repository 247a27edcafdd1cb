package audit

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chartguard/chartguard/chartguard"
)

func TestCommitFillsEnvelope(t *testing.T) {
	cfg := testConfig(t)
	l, _ := newLog(t, cfg)

	ev := event("/fhir/Patient/p1")
	require.NoError(t, l.Commit(context.Background(), ev))

	assert.Equal(t, 1, ev.V)
	assert.Regexp(t, regexp.MustCompile(`^[0-9a-f]{32}$`), ev.ID)
	assert.Equal(t, "2026-11-25T10:00:00.123456789Z", ev.Time)
	assert.Equal(t, uint64(0), ev.Seq)
	assert.Equal(t, "node-1", ev.Node)
	assert.Equal(t, 1, ev.Count)

	got := readLog(t, cfg.Dir)
	require.Len(t, got, 1)
	assert.Equal(t, *ev, got[0], "the file holds what the caller sees")
}

func TestCommitKeepsCallerIDTimeAndCount(t *testing.T) {
	l, _ := newLog(t, testConfig(t))
	ev := event("/x")
	ev.ID, ev.Time, ev.Count, ev.Node = "fixed-id", "2026-01-01T00:00:00Z", 7, "spoofed"
	require.NoError(t, l.Commit(context.Background(), ev))
	assert.Equal(t, "fixed-id", ev.ID)
	assert.Equal(t, "2026-01-01T00:00:00Z", ev.Time)
	assert.Equal(t, 7, ev.Count)
	assert.Equal(t, "node-1", ev.Node, "node is the writer's, never the caller's")
}

func TestEventIDsAreUnique(t *testing.T) {
	l, _ := newLog(t, testConfig(t))
	seen := map[string]bool{}
	for i := range 100 {
		ev := event(fmt.Sprint(i))
		require.NoError(t, l.Commit(context.Background(), ev))
		require.False(t, seen[ev.ID], "duplicate id %s", ev.ID)
		seen[ev.ID] = true
	}
}

func TestSeqDenseUnderConcurrentCommits(t *testing.T) {
	cfg := testConfig(t)
	cfg.Segment.MaxBytes = 16 << 10 // rotate several times meanwhile
	l, reg := newLog(t, cfg)
	const workers, each = 32, 40

	var wg sync.WaitGroup
	got := make(chan uint64, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				ev := event(fmt.Sprintf("/w%d/%d", w, i))
				if assert.NoError(t, l.Commit(context.Background(), ev)) {
					got <- ev.Seq
				}
			}
		})
	}
	wg.Wait()
	close(got)

	returned := map[uint64]bool{}
	for s := range got {
		assert.False(t, returned[s], "seq %d returned twice", s)
		returned[s] = true
	}
	assert.Len(t, returned, workers*each)
	logged := readLog(t, cfg.Dir)
	assert.Equal(t, denseSeqs(0, workers*each), seqs(logged), "file order is seq order, no gaps")
	assert.Greater(t, len(segments(t, cfg.Dir)), 1, "rotated")
	assert.Equal(t, float64(workers*each), metricValue(t, reg, "chartguard_audit_events_written_total", "sink", "file"))
}

func TestSeqContinuesAcrossRestart(t *testing.T) {
	tests := []struct {
		name     string
		maxBytes int64
		damage   func(t *testing.T, dir string) // applied while closed
		wantKept int                            // records kept of the first run
	}{
		{"clean restart", 0, func(*testing.T, string) {}, 5},
		{"restart after rotation", 600, func(*testing.T, string) {}, 5},
		{"partial last line is trimmed", 0, func(t *testing.T, dir string) {
			appendTo(t, lastSegment(t, dir), `{"v":1,"id":"torn","se`)
		}, 5},
		{"preallocated space left by a crash", 0, func(t *testing.T, dir string) {
			appendTo(t, lastSegment(t, dir), strings.Repeat("\x00", 3*4096))
		}, 5},
		{"torn batch in preallocated space is trimmed", 0, func(t *testing.T, dir string) {
			// Pages of an unacknowledged batch reached the disk out of
			// order: a partial line, a page never written, then a
			// complete-looking line. The records end at the first NUL.
			appendTo(t, lastSegment(t, dir), `{"v":1,"id":"torn"`+strings.Repeat("\x00", 4096)+`{"seq":7}`+"\n"+strings.Repeat("\x00", 100))
		}, 5},
		{"empty next segment is reused", 0, func(t *testing.T, dir string) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, segmentName(5)), nil, 0o600))
		}, 5},
		{"other files are ignored", 0, func(t *testing.T, dir string) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, "checkpoint"), []byte("x"), 0o600))
		}, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Segment.MaxBytes = tt.maxBytes
			commitN(t, cfg, "first", 5)
			tt.damage(t, cfg.Dir)
			commitN(t, cfg, "second", 3)

			logged := readLog(t, cfg.Dir)
			assert.Equal(t, denseSeqs(0, tt.wantKept+3), seqs(logged))
			assert.Equal(t, "second/0", logged[tt.wantKept].Request.Path)
		})
	}
}

// TestDurableSegmentPreallocation: a durable log writes its records into
// zero-filled space ahead of them, so readers see records up to the first
// NUL; a rotated or closed segment ends with its last record.
func TestDurableSegmentPreallocation(t *testing.T) {
	for _, durable := range []bool{true, false} {
		t.Run(fmt.Sprint("durable=", durable), func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Durable = durable
			cfg.Segment.MaxBytes = 2 * preallocBytes
			l, _ := newLog(t, cfg)
			for i := range 3 {
				require.NoError(t, l.Commit(context.Background(), event(fmt.Sprint("/r/", i))))
			}
			live, err := os.ReadFile(lastSegment(t, cfg.Dir))
			require.NoError(t, err)
			records := SegmentData(live)
			assert.Equal(t, 3, bytes.Count(records, []byte("\n")))
			if durable {
				assert.Len(t, live, preallocBytes, "one preallocation step, zero-filled")
				assert.Empty(t, bytes.Trim(live[len(records):], "\x00"), "only zeros after the records")
			} else {
				assert.Equal(t, records, live, "no preallocation without fsync")
			}

			require.NoError(t, l.Close())
			closed, err := os.ReadFile(lastSegment(t, cfg.Dir))
			require.NoError(t, err)
			assert.Equal(t, records, closed, "Close removes the zero tail")
		})
	}
}

func TestRotatedSegmentHasNoZeroTail(t *testing.T) {
	cfg := testConfig(t)
	cfg.Segment.MaxBytes = 1000
	l, _ := newLog(t, cfg)
	for i := range 10 {
		require.NoError(t, l.Commit(context.Background(), event(fmt.Sprintf("/r/%02d", i))))
	}
	names := segments(t, cfg.Dir)
	require.Greater(t, len(names), 2)
	for _, name := range names[:len(names)-1] {
		b, err := os.ReadFile(filepath.Join(cfg.Dir, name))
		require.NoError(t, err)
		assert.NotContains(t, string(b), "\x00", "rotated segment %s", name)
		assert.True(t, bytes.HasSuffix(b, []byte("\n")), "rotated segment %s ends with a record", name)
	}
}

func TestCorruptLastRecordRefusesStart(t *testing.T) {
	tests := []struct {
		name string
		line string
	}{
		{"not json", "garbage\n"},
		{"no seq", `{"v":1}` + "\n"},
		{"seq before the segment's first", `{"seq":1}` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t)
			commitN(t, cfg, "a", 3)
			require.NoError(t, os.WriteFile(filepath.Join(cfg.Dir, segmentName(2)), []byte(tt.line), 0o600))
			_, err := New(cfg, nil, nil)
			assert.ErrorIs(t, err, ErrCorrupt)
		})
	}
}

func TestPermissions(t *testing.T) {
	cfg := testConfig(t)
	commitN(t, cfg, "a", 1)
	info, err := os.Stat(cfg.Dir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), info.Mode().Perm(), "dir")
	for _, name := range segments(t, cfg.Dir) {
		info, err := os.Stat(filepath.Join(cfg.Dir, name))
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), info.Mode().Perm(), name)
	}
}

func TestRefusesSharedDir(t *testing.T) {
	for _, mode := range []os.FileMode{0o750, 0o705, 0o777, 0o710} {
		t.Run(mode.String(), func(t *testing.T) {
			cfg := testConfig(t)
			require.NoError(t, os.Mkdir(cfg.Dir, 0o700))
			require.NoError(t, os.Chmod(cfg.Dir, mode))
			_, err := New(cfg, nil, nil)
			require.Error(t, err)
			assert.Contains(t, err.Error(), "audit.dir")
		})
	}
}

func TestRotation(t *testing.T) {
	cfg := testConfig(t)
	cfg.Segment.MaxBytes = 1000
	l, _ := newLog(t, cfg)
	for i := range 20 {
		require.NoError(t, l.Commit(context.Background(), event(fmt.Sprintf("/r/%02d", i))))
	}

	names := segments(t, cfg.Dir)
	require.Greater(t, len(names), 2)
	next := uint64(0)
	for _, name := range names {
		first, _ := parseSegmentName(name)
		assert.Equal(t, next, first, "segment %s is named after its first seq", name)
		b, err := os.ReadFile(filepath.Join(cfg.Dir, name))
		require.NoError(t, err)
		assert.LessOrEqual(t, len(b), 1000, "segment %s", name)
		next += uint64(bytes.Count(b, []byte("\n")))
	}
	assert.Equal(t, denseSeqs(0, 20), seqs(readLog(t, cfg.Dir)))
}

func TestOversizedRecordGetsItsOwnSegment(t *testing.T) {
	cfg := testConfig(t)
	cfg.Segment.MaxBytes = 300
	l, _ := newLog(t, cfg)
	require.NoError(t, l.Commit(context.Background(), event("/small")))
	require.NoError(t, l.Commit(context.Background(), event("/"+strings.Repeat("x", 400))))
	require.NoError(t, l.Commit(context.Background(), event("/small2")))
	assert.Equal(t, []string{segmentName(0), segmentName(1), segmentName(2)}, segments(t, cfg.Dir))
	assert.Equal(t, denseSeqs(0, 3), seqs(readLog(t, cfg.Dir)))
}

func TestDurableGroupCommit(t *testing.T) {
	cfg := testConfig(t)
	fl := &faults{}
	cfg.OpenSegment = fl.open
	l, _ := newLog(t, cfg)
	const n = 200

	// Hold the first fsync until every other Commit is queued behind it,
	// so the rest must share fsyncs rather than race them.
	release := make(chan struct{})
	var once sync.Once
	fl.setSyncHook(func() { once.Do(func() { <-release }) })

	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { assert.NoError(t, l.Commit(context.Background(), event(fmt.Sprint(i)))) })
	}
	waitFor(t, func() bool { return fl.syncs.Load() == 1 && int64(len(l.reqs)) == n-fl.lines.Load() })
	close(release)
	wg.Wait()

	syncs := fl.syncs.Load()
	assert.Less(t, syncs, int64(n), "fsyncs shared by group commit")
	assert.Equal(t, int64(2), syncs, "one fsync for the first commit, one for everyone queued behind it")
	assert.Equal(t, denseSeqs(0, n), seqs(readLog(t, cfg.Dir)))
}

func TestNotDurableSkipsFsync(t *testing.T) {
	cfg := testConfig(t)
	cfg.Durable = false
	fl := &faults{}
	cfg.OpenSegment = fl.open
	l, err := New(cfg, nil, nil)
	require.NoError(t, err)
	for i := range 10 {
		require.NoError(t, l.Commit(context.Background(), event(fmt.Sprint(i))))
	}
	assert.Zero(t, fl.syncs.Load(), "no fsync per commit")
	assert.Len(t, readLog(t, cfg.Dir), 10, "written before Commit returned")
	require.NoError(t, l.Close())
	assert.Equal(t, int64(1), fl.syncs.Load(), "Close fsyncs")
}

func TestPatientsTruncation(t *testing.T) {
	tests := []struct {
		name          string
		patients      []string
		want          []string
		wantTruncated bool
	}{
		{"none", nil, []string{}, false},
		{"under the cap", []string{"a", "b"}, []string{"a", "b"}, false},
		{"at the cap", []string{"a", "b", "c"}, []string{"a", "b", "c"}, false},
		{"over the cap", []string{"a", "b", "c", "d", "e"}, []string{"a", "b", "c"}, true},
	}
	cfg := testConfig(t)
	cfg.MaxPatientsPerEvent = 3
	l, _ := newLog(t, cfg)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := event("/p")
			ev.Resource = &chartguard.EventResource{Kind: chartguard.KindFHIR, Patients: tt.patients}
			require.NoError(t, l.Commit(context.Background(), ev))
			logged := readLog(t, cfg.Dir)
			got := logged[len(logged)-1].Resource
			assert.Equal(t, tt.want, got.Patients)
			assert.Equal(t, tt.wantTruncated, got.PatientsTruncated)
		})
	}
}

func TestStdoutSink(t *testing.T) {
	cfg := testConfig(t)
	var out bytes.Buffer
	cfg.Stdout = &out
	cfg.Sinks = []SinkConfig{{Type: SinkStdout, Format: FormatJSON}}
	l, reg := newLog(t, cfg)

	require.NoError(t, l.Commit(context.Background(), event("/a")))
	require.NoError(t, l.Commit(context.Background(), event("/b")))

	file, err := os.ReadFile(filepath.Join(cfg.Dir, segmentName(0)))
	require.NoError(t, err)
	assert.Equal(t, string(SegmentData(file)), out.String(), "stdout carries the file's lines byte for byte")
	assert.Equal(t, 2.0, metricValue(t, reg, "chartguard_audit_events_written_total", "sink", "stdout"))
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

func TestStdoutSinkFailureIsNotFatal(t *testing.T) {
	cfg := testConfig(t)
	cfg.Stdout = failingWriter{}
	cfg.Sinks = []SinkConfig{{Type: SinkStdout}}
	l, reg := newLog(t, cfg)

	require.NoError(t, l.Commit(context.Background(), event("/a")))
	assert.Len(t, readLog(t, cfg.Dir), 1)
	assert.Equal(t, 1.0, metricValue(t, reg, "chartguard_audit_events_failed_total", "sink", "stdout"))
	assert.NoError(t, l.Ready())
}

func TestMetricsExportedFromStart(t *testing.T) {
	cfg := testConfig(t)
	cfg.Sinks = []SinkConfig{{Type: SinkStdout}}
	_, reg := newLog(t, cfg)
	assert.Equal(t, 0.0, metricValue(t, reg, "chartguard_audit_events_lost_total"))
	assert.Equal(t, 0.0, metricValue(t, reg, "chartguard_audit_queue_length"))
	for _, sink := range []string{"file", "stdout"} {
		assert.Equal(t, 0.0, metricValue(t, reg, "chartguard_audit_events_written_total", "sink", sink))
		assert.Equal(t, 0.0, metricValue(t, reg, "chartguard_audit_events_failed_total", "sink", sink))
	}
}

func TestCloseThenCommit(t *testing.T) {
	cfg := testConfig(t)
	l, reg := newLog(t, cfg)
	require.NoError(t, l.Commit(context.Background(), event("/a")))
	require.NoError(t, l.Close())
	require.NoError(t, l.Close(), "idempotent")

	err := l.Commit(context.Background(), event("/b"))
	assert.ErrorIs(t, err, ErrUnavailable)
	assert.ErrorIs(t, l.Ready(), ErrUnavailable)
	l.Defer(event("/c"))
	assert.Equal(t, 1.0, metricValue(t, reg, "chartguard_audit_events_lost_total"), "defer after close is lost")
	assert.Len(t, readLog(t, cfg.Dir), 1)
}

func TestCommitContextCancelled(t *testing.T) {
	cfg := testConfig(t)
	fl := &faults{}
	cfg.OpenSegment = fl.open
	l, _ := newLog(t, cfg)

	release := make(chan struct{})
	var once sync.Once
	fl.setSyncHook(func() { once.Do(func() { <-release }) })
	first := make(chan error, 1)
	go func() { first <- l.Commit(context.Background(), event("/first")) }()
	waitFor(t, func() bool { return fl.syncs.Load() == 1 }) // writer stuck in fsync

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := l.Commit(ctx, event("/gave-up"))
	assert.ErrorIs(t, err, context.Canceled)
	close(release)
	require.NoError(t, <-first)
	require.NoError(t, l.Commit(context.Background(), event("/after")))
	assert.Equal(t, []string{"/first", "/after"}, paths(readLog(t, cfg.Dir)), "an abandoned event is not logged")
}

func TestNilEvent(t *testing.T) {
	l, reg := newLog(t, testConfig(t))
	assert.ErrorIs(t, l.Commit(context.Background(), nil), ErrInvalidEvent)
	l.Defer(nil)
	assert.Equal(t, 0.0, metricValue(t, reg, "chartguard_audit_events_lost_total"))
}

// commitN opens the log, commits n events and closes it.
func commitN(t *testing.T, cfg Config, prefix string, n int) {
	t.Helper()
	l, err := New(cfg, nil, nil)
	require.NoError(t, err)
	for i := range n {
		require.NoError(t, l.Commit(context.Background(), event(fmt.Sprintf("%s/%d", prefix, i))))
	}
	require.NoError(t, l.Close())
}

func lastSegment(t *testing.T, dir string) string {
	names := segments(t, dir)
	require.NotEmpty(t, names)
	return filepath.Join(dir, names[len(names)-1])
}

func appendTo(t *testing.T, path, s string) {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0o600)
	require.NoError(t, err)
	_, err = f.WriteString(s)
	require.NoError(t, err)
	require.NoError(t, f.Close())
}

// waitFor polls cond until it holds or a deadline passes.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, 10*time.Second, time.Millisecond)
}

func TestEventIDsFromRand(t *testing.T) {
	stream := make([]byte, 3*idBatch*16)
	for i := range stream {
		stream[i] = byte(i * 7)
	}
	tests := []struct {
		name string
		rand io.Reader
	}{
		{"whole reads", bytes.NewReader(stream)},
		{"one byte per read", iotest.OneByteReader(bytes.NewReader(stream))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Rand = tt.rand
			l, _ := newLog(t, cfg)
			for i := range idBatch + 3 { // crosses a refill
				ev := event(fmt.Sprint(i))
				require.NoError(t, l.Commit(context.Background(), ev))
				assert.Equal(t, hex.EncodeToString(stream[16*i:16*(i+1)]), ev.ID, "event %d", i)
			}
		})
	}
}

func TestEventIDRandFailure(t *testing.T) {
	cfg := testConfig(t)
	cfg.Rand = iotest.ErrReader(errors.New("entropy gone"))
	l, _ := newLog(t, cfg)
	err := l.Commit(context.Background(), event("/a"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "event id")
	assert.Empty(t, readLog(t, cfg.Dir), "no event without an id")
	assert.NoError(t, l.Ready(), "the file log itself is fine")
}
