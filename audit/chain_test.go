package audit

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/tlog"
)

// movingClock is a settable clock.
type movingClock struct{ ns atomic.Int64 }

func newMovingClock() *movingClock {
	c := &movingClock{}
	c.ns.Store(fixedNow().UnixNano())
	return c
}
func (c *movingClock) now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *movingClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

func commitPaths(t testing.TB, l *Log, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		require.NoError(t, l.Commit(context.Background(), event(fmt.Sprintf("/p%d", i))))
	}
}

func verifyDir(t testing.TB, dir string) Verified {
	t.Helper()
	res, err := Verify(context.Background(), dir, VerifyOptions{Verifier: testVerifier})
	require.NoError(t, err)
	return res
}

func TestCheckpointsGoToStdoutSink(t *testing.T) {
	cfg := testConfig(t)
	cfg.CheckpointEvery = 3
	var out bytes.Buffer
	cfg.Stdout = &out
	cfg.Sinks = []SinkConfig{{Type: SinkStdout}}
	l, _ := newLog(t, cfg)
	commitPaths(t, l, 0, 4)
	require.NoError(t, l.Close())

	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 6, "4 events, a checkpoint after 3 and one at close")
	var kinds []string
	for _, line := range lines {
		require.True(t, strings.HasPrefix(line, `{"v":1,`), "every record carries v: %s", line)
		if cp, ok := strings.CutPrefix(line, `{"v":1,"kind":"checkpoint","checkpoint":`); ok {
			kinds = append(kinds, "checkpoint")
			assert.Contains(t, cp, testOrigin+`\n`)
			continue
		}
		kinds = append(kinds, "event")
	}
	// A checkpoint line may overtake the last events it covers: those
	// are written to the sink by their committing goroutines.
	assert.ElementsMatch(t, []string{"event", "event", "event", "checkpoint", "event", "checkpoint"}, kinds)
	assert.Equal(t, "checkpoint", kinds[5], "the one at close comes last")
	disk, err := os.ReadFile(filepath.Join(cfg.Dir, checkpointsName))
	require.NoError(t, err)
	var cps []string
	for _, line := range lines {
		if strings.Contains(line, `"kind":"checkpoint"`) {
			cps = append(cps, line+"\n")
		}
	}
	assert.Equal(t, strings.Join(cps, ""), string(disk), "the sink carries the checkpoints file's lines")
}

func TestCheckpointInterval(t *testing.T) {
	cfg := testConfig(t)
	cfg.CheckpointEvery = 1000
	cfg.CheckpointInterval = 20 * time.Millisecond
	l, reg := newLog(t, cfg)
	commitPaths(t, l, 0, 3)
	require.Eventually(t, func() bool {
		res, err := Verify(context.Background(), cfg.Dir, VerifyOptions{Verifier: testVerifier})
		return err == nil && res.Checkpointed == 3
	}, 5*time.Second, 10*time.Millisecond, "a checkpoint within the interval, without waiting for 1000 records")
	assert.Equal(t, 0.0, metricValue(t, reg, "chartguard_audit_checkpoint_age_seconds"), "everything is signed")
}

func TestRecoveryRecomputesHashesAfterLastCheckpoint(t *testing.T) {
	cfg := testConfig(t)
	cfg.CheckpointEvery = 10
	l, _ := newLog(t, cfg)
	commitPaths(t, l, 0, 25)
	require.NoError(t, l.Close())

	// As a crash would leave it: the last checkpoint at 20, and hashes
	// after it not written (zeros: they are not fsynced).
	cpPath := filepath.Join(cfg.Dir, checkpointsName)
	editLines(t, cpPath, func(ls [][]byte) [][]byte { return ls[:2] })
	f, err := os.OpenFile(cpPath, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString(`{"v":1,"kind":"checkp`) // a torn append
	require.NoError(t, err)
	require.NoError(t, f.Close())
	hashes := filepath.Join(cfg.Dir, hashesName)
	raw, err := os.ReadFile(hashes)
	require.NoError(t, err)
	for i := tlog.StoredHashCount(20) * tlog.HashSize; i < int64(len(raw)); i++ {
		raw[i] = 0
	}
	require.NoError(t, os.WriteFile(hashes, raw, 0o600))

	l, _ = newLog(t, cfg)
	commitPaths(t, l, 25, 2)
	require.NoError(t, l.Close())
	res := verifyDir(t, cfg.Dir)
	assert.Equal(t, uint64(27), res.Size)
	assert.Equal(t, uint64(27), res.Checkpointed)
}

func TestRecoveryRefusesRecordsThatContradictTheCheckpoint(t *testing.T) {
	cfg := testConfig(t)
	cfg.CheckpointEvery = 5
	l, _ := newLog(t, cfg)
	commitPaths(t, l, 0, 10)
	require.NoError(t, l.Close())
	require.NoError(t, os.Remove(filepath.Join(cfg.Dir, hashesName)))
	_, err := New(cfg, nil, nil)
	assert.ErrorIs(t, err, ErrCorrupt, "hashes a checkpoint vouched for are gone")
}

func TestSegmentMaxAgeRotates(t *testing.T) {
	clock := newMovingClock()
	cfg := testConfig(t)
	cfg.Now = clock.now
	cfg.Segment.MaxAge = time.Hour
	l, _ := newLog(t, cfg)
	commitPaths(t, l, 0, 2)
	clock.advance(59 * time.Minute)
	commitPaths(t, l, 2, 1)
	assert.Len(t, segments(t, cfg.Dir), 1)
	clock.advance(2 * time.Minute)
	commitPaths(t, l, 3, 2)
	assert.Len(t, segments(t, cfg.Dir), 2, "the first record of segment 0 is over an hour old")
	require.NoError(t, l.Close())

	// After a restart the age still counts from the segment's first record.
	l, _ = newLog(t, cfg)
	clock.advance(61 * time.Minute)
	commitPaths(t, l, 5, 1)
	require.NoError(t, l.Close())
	assert.Len(t, segments(t, cfg.Dir), 3)
	assert.Equal(t, uint64(6), verifyDir(t, cfg.Dir).Size)
}

func TestRetentionRemovesOldSegmentsAndStaysVerifiable(t *testing.T) {
	cfg := testConfig(t)
	cfg.CheckpointEvery = 4
	cfg.Segment.MaxBytes = 1500
	var out bytes.Buffer
	cfg.Stdout = &out
	cfg.Sinks = []SinkConfig{{Type: SinkStdout}}
	l, _ := newLog(t, cfg)
	commitPaths(t, l, 0, 40)
	require.NoError(t, l.Close())
	segs, err := listSegments(cfg.Dir)
	require.NoError(t, err)
	require.Greater(t, len(segs), 4)

	// The first three segments were last written two days ago.
	old := time.Now().Add(-48 * time.Hour)
	for _, s := range segs[:3] {
		require.NoError(t, os.Chtimes(s.path, old, old))
	}
	cfg.Retention = "1d"
	cfg.Now = time.Now
	l, _ = newLog(t, cfg) // retention runs at startup and at each rotation
	commitPaths(t, l, 40, 1)
	require.NoError(t, l.Close())

	left, err := listSegments(cfg.Dir)
	require.NoError(t, err)
	assert.Equal(t, segs[3].first, left[0].first, "whole segments removed, oldest first")
	res := verifyDir(t, cfg.Dir)
	assert.Equal(t, segs[3].first, res.First)
	assert.Equal(t, uint64(41), res.Size)
	assert.Contains(t, out.String(), `"kind":"retention"`, "the retention note goes off-box too")
	for rec, err := range ReadDir(cfg.Dir, 0) {
		require.NoError(t, err)
		assert.Equal(t, segs[3].first, rec.Index, "reading starts at the first record kept")
		break
	}
	p, err := Prove(cfg.Dir, 40)
	require.NoError(t, err)
	_, err = VerifyProof(p, testVerifier)
	require.NoError(t, err, "proofs still work: the removed records' hashes are kept")

	// A segment deleted by hand is not retention.
	require.NoError(t, os.Remove(left[0].path))
	_, err = Verify(context.Background(), cfg.Dir, VerifyOptions{Verifier: testVerifier})
	var te *TamperError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, int64(left[0].first), te.Index)
}

func TestRetentionKeepsSegmentsNoCheckpointCovers(t *testing.T) {
	cfg := testConfig(t)
	cfg.Segment.MaxBytes = 1500
	l, _ := newLog(t, cfg)
	commitPaths(t, l, 0, 20)
	require.NoError(t, l.Close())
	segs, err := listSegments(cfg.Dir)
	require.NoError(t, err)
	require.Greater(t, len(segs), 2)
	// Remove the final checkpoint: no signed statement covers the
	// records, so nothing may be deleted.
	require.NoError(t, os.WriteFile(filepath.Join(cfg.Dir, checkpointsName), nil, 0o600))
	require.NoError(t, os.Truncate(filepath.Join(cfg.Dir, hashesName), 0))
	old := time.Now().Add(-48 * time.Hour)
	for _, s := range segs {
		require.NoError(t, os.Chtimes(s.path, old, old))
	}
	c, err := openChain(cfg.Dir, 20, testSigner, nil, testOrigin)
	require.NoError(t, err)
	defer c.close()
	c.retention = 24 * time.Hour
	require.NoError(t, c.applyRetention(""))
	left, err := listSegments(cfg.Dir)
	require.NoError(t, err)
	assert.Len(t, left, len(segs))
}

func TestDiskReadyAndFreeSpaceMetric(t *testing.T) {
	cfg := testConfig(t)
	cfg.MinFree = 1 << 62
	l, reg := newLog(t, cfg)
	assert.ErrorContains(t, l.DiskReady(), "audit.min_free")
	assert.NoError(t, l.Ready(), "low disk drains the replica; it does not refuse requests by itself")
	assert.Positive(t, metricValue(t, reg, "chartguard_audit_disk_free_bytes"))

	cfg = testConfig(t)
	cfg.MinFree = 1 << 20
	l, _ = newLog(t, cfg)
	assert.NoError(t, l.DiskReady())
	cfg = testConfig(t)
	cfg.MinFree = 0 // disabled, even on a full disk
	l, _ = newLog(t, cfg)
	assert.NoError(t, l.DiskReady())
}

func TestEphemeralKeyAndOrigin(t *testing.T) {
	cfg := testConfig(t)
	cfg.Signer, cfg.Origin, cfg.EphemeralKey = nil, "", true
	l, _ := newLog(t, cfg)
	commitPaths(t, l, 0, 1)
	require.NoError(t, l.Close())
	lines, _, err := readLogLines(cfg.Dir)
	require.NoError(t, err)
	require.Len(t, lines, 1)
	assert.True(t, strings.HasPrefix(lines[0].Checkpoint, "localhost/audit/node-1\n1\n"))

	cfg.EphemeralKey = false
	_, err = New(cfg, nil, nil)
	assert.ErrorContains(t, err, "audit.signing_key_file")

	cfg = testConfig(t)
	cfg.Signer, cfg.SigningKeyFile = nil, filepath.Join(t.TempDir(), "missing.key")
	_, err = New(cfg, nil, nil)
	assert.ErrorContains(t, err, "audit.signing_key_file")
}

func TestOriginMismatchRefused(t *testing.T) {
	cfg := testConfig(t)
	l, _ := newLog(t, cfg)
	commitPaths(t, l, 0, 1)
	require.NoError(t, l.Close())
	cfg.Origin = "other.example.org/audit/node-1"
	_, err := New(cfg, nil, nil)
	assert.ErrorContains(t, err, "origin")
}
