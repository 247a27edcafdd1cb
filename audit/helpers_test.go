package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"golang.org/x/mod/sumdb/note"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/chartguard/chartguard/chartguard"
)

// faults controls every segment file opened through its open method.
type faults struct {
	failWrite    atomic.Bool // Write returns ENOSPC
	partialWrite atomic.Bool // with failWrite: write half the bytes first
	failSync     atomic.Bool // Sync returns EIO (after the write landed)
	syncs        atomic.Int64
	lines        atomic.Int64 // records written successfully
	opens        atomic.Int64

	mu       sync.Mutex
	syncHook func() // runs inside Sync, before the real fsync
}

func (fl *faults) open(path string) (SegmentFile, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	fl.opens.Add(1)
	return &faultFile{f: f, fl: fl}, nil
}

func (fl *faults) setSyncHook(h func()) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	fl.syncHook = h
}

type faultFile struct {
	f  *os.File
	fl *faults
}

func (ff *faultFile) WriteAt(p []byte, off int64) (int, error) {
	if ff.fl.failWrite.Load() {
		if ff.fl.partialWrite.Load() {
			n, _ := ff.f.WriteAt(p[:len(p)/2], off)
			return n, syscall.ENOSPC
		}
		return 0, syscall.ENOSPC
	}
	n, err := ff.f.WriteAt(p, off)
	ff.fl.lines.Add(int64(bytes.Count(p[:n], []byte("\n"))))
	return n, err
}

func (ff *faultFile) Truncate(size int64) error { return ff.f.Truncate(size) }

func (ff *faultFile) Sync() error {
	ff.fl.syncs.Add(1)
	ff.fl.mu.Lock()
	hook := ff.fl.syncHook
	ff.fl.mu.Unlock()
	if hook != nil {
		hook()
	}
	if ff.fl.failSync.Load() {
		return syscall.EIO
	}
	return ff.f.Sync()
}

func (ff *faultFile) Close() error { return ff.f.Close() }

// fixedNow is a clock for deterministic timestamps.
func fixedNow() time.Time { return time.Date(2026, 11, 25, 10, 0, 0, 123456789, time.UTC) }

// testConfig is a durable, fail-closed config on a fresh private dir.
func testConfig(t testing.TB) Config {
	t.Helper()
	var cfg Config
	cfg.SetDefaults()
	cfg.Dir = filepath.Join(t.TempDir(), "audit")
	cfg.Node = "node-1"
	cfg.Now = fixedNow
	cfg.Origin = testOrigin
	cfg.Signer = testSigner
	return cfg
}

// testOrigin names the test logs; testSigner and testVerifier are one key
// pair for all tests.
const testOrigin = "emr.example.org/audit/node-1"

var testSigner, testVerifier = mustKeyPair(testOrigin)

func mustKeyPair(name string) (note.Signer, note.Verifier) {
	skey, vkey, err := GenerateKey(name)
	if err != nil {
		panic(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		panic(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		panic(err)
	}
	return s, v
}

func newRegistry() *prometheus.Registry { return prometheus.NewRegistry() }

func newLog(t testing.TB, cfg Config) (*Log, *prometheus.Registry) {
	t.Helper()
	reg := newRegistry()
	l, err := New(cfg, nil, reg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	return l, reg
}

func event(path string) *chartguard.Event {
	return &chartguard.Event{
		Action:  "read",
		Outcome: chartguard.OutcomeAllowed,
		Client:  chartguard.EventClient{IP: "10.0.0.1"},
		Request: chartguard.EventRequest{ID: "req", Method: "GET", Path: path, Status: 200, Bytes: -1},
	}
}

// segments returns the segment file names in dir, in order.
func segments(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		if _, ok := parseSegmentName(e.Name()); ok {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names
}

// readLog decodes every record of every segment in order. It fails the
// test if a segment does not end in a complete line.
func readLog(t testing.TB, dir string) []chartguard.Event {
	t.Helper()
	var out []chartguard.Event
	for _, name := range segments(t, dir) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		require.NoError(t, err)
		b = SegmentData(b)
		if len(b) > 0 {
			require.Equal(t, byte('\n'), b[len(b)-1], "segment %s ends in a partial line", name)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var ev chartguard.Event
			require.NoError(t, json.Unmarshal(sc.Bytes(), &ev), "segment %s line %q", name, sc.Text())
			out = append(out, ev)
		}
		require.NoError(t, sc.Err())
	}
	return out
}

func seqs(evs []chartguard.Event) []uint64 {
	out := make([]uint64, len(evs))
	for i, ev := range evs {
		out[i] = ev.Seq
	}
	return out
}

func paths(evs []chartguard.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.Request.Path
	}
	return out
}

func denseSeqs(from, n int) []uint64 {
	out := make([]uint64, n)
	for i := range out {
		out[i] = uint64(from + i)
	}
	return out
}

// metricValue reads a counter or gauge from reg; label pairs select the
// series. It fails if the series is not exported.
func metricValue(t testing.TB, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if !hasLabels(m, labels) {
				continue
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	require.Failf(t, "metric not exported", "%s%v", name, labels)
	return 0
}

func hasLabels(m *dto.Metric, pairs []string) bool {
	for i := 0; i+1 < len(pairs); i += 2 {
		found := false
		for _, lp := range m.GetLabel() {
			if lp.GetName() == pairs[i] && lp.GetValue() == pairs[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}
