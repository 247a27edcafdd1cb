package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// buildLog commits n events (paths /p0…) with a checkpoint every
// `every` records and closes the log.
func buildLog(t testing.TB, n, every int, mod func(*Config)) string {
	t.Helper()
	cfg := testConfig(t)
	cfg.CheckpointEvery = every
	if mod != nil {
		mod(&cfg)
	}
	l, err := New(cfg, nil, nil)
	require.NoError(t, err)
	for i := range n {
		require.NoError(t, l.Commit(context.Background(), event(fmt.Sprintf("/p%d", i))))
	}
	require.NoError(t, l.Close())
	return cfg.Dir
}

func segPath(dir string, first uint64) string { return filepath.Join(dir, segmentName(first)) }

// editLines rewrites the lines of a segment.
func editLines(t *testing.T, path string, edit func([][]byte) [][]byte) {
	t.Helper()
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	lines := bytes.SplitAfter(SegmentData(raw), []byte("\n"))
	if len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	require.NoError(t, os.WriteFile(path, bytes.Join(edit(lines), nil), 0o600))
}

// rehash rewrites the hashes file from the records as they now are, as
// someone without the key would after editing them.
func rehash(t *testing.T, dir string) {
	t.Helper()
	var hashes []tlog.Hash
	r := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = hashes[x]
		}
		return out, nil
	})
	n := int64(0)
	for rec, err := range ReadDir(dir, 0) {
		require.NoError(t, err)
		hs, err := tlog.StoredHashes(n, rec.Line, r)
		require.NoError(t, err)
		hashes = append(hashes, hs...)
		n++
	}
	var buf []byte
	for _, h := range hashes {
		buf = append(buf, h[:]...)
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, hashesName), buf, 0o600))
}

func appendCheckpointLine(t *testing.T, dir string, cp Checkpoint, s note.Signer) {
	t.Helper()
	msg, err := signCheckpoint(cp, s)
	require.NoError(t, err)
	f, err := os.OpenFile(filepath.Join(dir, checkpointsName), os.O_APPEND|os.O_WRONLY, 0o600)
	require.NoError(t, err)
	_, err = f.Write(marshalLogLine(kindCheckpoint, string(msg)))
	require.NoError(t, err)
	require.NoError(t, f.Close())
}

func TestVerifyIntactLog(t *testing.T) {
	dir := buildLog(t, 50, 10, nil)
	res, err := Verify(context.Background(), dir, VerifyOptions{Verifier: testVerifier})
	require.NoError(t, err)
	assert.Equal(t, uint64(50), res.Size)
	assert.Equal(t, uint64(50), res.Checkpointed)
	assert.Equal(t, testOrigin, res.Origin)
	cp, err := OpenCheckpoint(res.Checkpoint, testVerifier)
	require.NoError(t, err)
	assert.Equal(t, res.Root, cp.Root)

	lines, _, err := readLogLines(dir)
	require.NoError(t, err)
	assert.Len(t, lines, 5, "a checkpoint every 10 records, none extra at close")
}

// TestVerifyDetectsTampering is the tamper suite: each edit is found at
// the index where it starts (TamperError.Index; see its doc for
// checkpoint-level findings).
func TestVerifyDetectsTampering(t *testing.T) {
	otherSigner, _ := mustKeyPair(testOrigin)
	tests := []struct {
		name   string
		tamper func(t *testing.T, dir string)
		index  int64
		reason string
	}{
		{"flip a byte", func(t *testing.T, dir string) {
			editLines(t, segPath(dir, 0), func(ls [][]byte) [][]byte {
				ls[23] = bytes.Replace(ls[23], []byte("/p23"), []byte("/p2X"), 1)
				return ls
			})
		}, 23, "stored hashes"},
		{"delete a line", func(t *testing.T, dir string) {
			editLines(t, segPath(dir, 0), func(ls [][]byte) [][]byte { return append(ls[:23:23], ls[24:]...) })
		}, 23, "seq 24"},
		{"insert a line", func(t *testing.T, dir string) {
			editLines(t, segPath(dir, 0), func(ls [][]byte) [][]byte {
				return append(append(ls[:31:31], ls[30]), ls[31:]...)
			})
		}, 31, "seq 30"},
		{"swap two lines", func(t *testing.T, dir string) {
			editLines(t, segPath(dir, 0), func(ls [][]byte) [][]byte { ls[23], ls[24] = ls[24], ls[23]; return ls })
		}, 23, "seq 24"},
		{"truncate the tail", func(t *testing.T, dir string) {
			editLines(t, segPath(dir, 0), func(ls [][]byte) [][]byte { return ls[:45] })
		}, 45, "ends at 45"},
		{"cut a line in half", func(t *testing.T, dir string) {
			editLines(t, segPath(dir, 0), func(ls [][]byte) [][]byte {
				ls[49] = ls[49][:len(ls[49])/2]
				return ls
			})
		}, 49, "ends at 49"},
		{"re-hash a forged log without the key", func(t *testing.T, dir string) {
			editLines(t, segPath(dir, 0), func(ls [][]byte) [][]byte {
				ls[23] = bytes.Replace(ls[23], []byte(`"outcome":"allowed"`), []byte(`"outcome":"denied"`), 1)
				return ls
			})
			rehash(t, dir)
		}, 20, "signed checkpoint of size 30"},
		{"split view", func(t *testing.T, dir string) {
			appendCheckpointLine(t, dir, Checkpoint{Origin: testOrigin, Size: 50, Root: tlog.RecordHash([]byte("other"))}, testSigner)
		}, 50, "split view"},
		{"checkpoint signed by another key", func(t *testing.T, dir string) {
			appendCheckpointLine(t, dir, Checkpoint{Origin: testOrigin, Size: 50, Root: tlog.RecordHash([]byte("x"))}, otherSigner)
		}, 50, "checkpoints line 6"},
		{"checkpoints reordered", func(t *testing.T, dir string) {
			editLines(t, filepath.Join(dir, checkpointsName), func(ls [][]byte) [][]byte { ls[1], ls[2] = ls[2], ls[1]; return ls })
		}, 20, "size 20 after a checkpoint of size 30"},
		{"hashes file deleted and records edited", func(t *testing.T, dir string) {
			require.NoError(t, os.Remove(filepath.Join(dir, hashesName)))
			editLines(t, segPath(dir, 0), func(ls [][]byte) [][]byte {
				ls[5] = bytes.Replace(ls[5], []byte("/p5"), []byte("/pX"), 1)
				return ls
			})
		}, 0, "signed checkpoint of size 10"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := buildLog(t, 50, 10, nil)
			_, err := Verify(context.Background(), dir, VerifyOptions{Verifier: testVerifier})
			require.NoError(t, err, "intact before the edit")
			tt.tamper(t, dir)
			_, err = Verify(context.Background(), dir, VerifyOptions{Verifier: testVerifier})
			require.ErrorIs(t, err, ErrTampered)
			var te *TamperError
			require.True(t, errors.As(err, &te), "%v", err)
			assert.Equal(t, tt.index, te.Index, "%v", err)
			assert.Contains(t, te.Reason, tt.reason)
		})
	}
}

func TestVerifyWithTrustedCheckpoint(t *testing.T) {
	dir := buildLog(t, 50, 10, nil)
	res, err := Verify(context.Background(), dir, VerifyOptions{Verifier: testVerifier})
	require.NoError(t, err)
	trusted := res.Checkpoint

	// Someone cuts the log back to 40 records and drops the last
	// checkpoint: locally consistent, caught by the off-box copy.
	editLines(t, segPath(dir, 0), func(ls [][]byte) [][]byte { return ls[:40] })
	editLines(t, filepath.Join(dir, checkpointsName), func(ls [][]byte) [][]byte { return ls[:4] })
	rehash(t, dir)
	_, err = Verify(context.Background(), dir, VerifyOptions{Verifier: testVerifier})
	require.NoError(t, err, "without the off-box checkpoint the cut is invisible")
	_, err = Verify(context.Background(), dir, VerifyOptions{Verifier: testVerifier, Trusted: trusted})
	var te *TamperError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, int64(40), te.Index)
}

func TestVerifyManySegmentsAndDeletedSegment(t *testing.T) {
	dir := buildLog(t, 60, 7, func(c *Config) { c.Segment.MaxBytes = 2000 })
	segs, err := listSegments(dir)
	require.NoError(t, err)
	require.Greater(t, len(segs), 3)
	res, err := Verify(context.Background(), dir, VerifyOptions{Verifier: testVerifier})
	require.NoError(t, err)
	assert.Equal(t, uint64(60), res.Size)

	require.NoError(t, os.Remove(segs[1].path))
	_, err = Verify(context.Background(), dir, VerifyOptions{Verifier: testVerifier})
	var te *TamperError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, int64(segs[1].first), te.Index)

	require.NoError(t, os.Remove(segs[0].path))
	_, err = Verify(context.Background(), dir, VerifyOptions{Verifier: testVerifier})
	require.ErrorAs(t, err, &te)
	assert.Equal(t, int64(0), te.Index, "the first segment gone without a retention note")
}

func TestVerifyEmptyAndUncheckpointedTail(t *testing.T) {
	cfg := testConfig(t)
	res, err := Verify(context.Background(), t.TempDir(), VerifyOptions{Verifier: testVerifier})
	require.NoError(t, err)
	assert.Equal(t, uint64(0), res.Size)

	// A live log: 15 records, a checkpoint at 10, 5 not yet signed.
	cfg.CheckpointEvery = 10
	l, reg := newLog(t, cfg)
	for i := range 15 {
		require.NoError(t, l.Commit(context.Background(), event(fmt.Sprintf("/p%d", i))))
	}
	res, err = Verify(context.Background(), cfg.Dir, VerifyOptions{Verifier: testVerifier})
	require.NoError(t, err)
	assert.Equal(t, uint64(15), res.Size)
	assert.Equal(t, uint64(10), res.Checkpointed)
	assert.Positive(t, metricValue(t, reg, "chartguard_audit_checkpoint_age_seconds")+1, "exported")
	require.NoError(t, l.Close())
	res, err = Verify(context.Background(), cfg.Dir, VerifyOptions{Verifier: testVerifier})
	require.NoError(t, err)
	assert.Equal(t, uint64(15), res.Checkpointed, "Close signs the rest")
}

func TestProveAndVerifyProof(t *testing.T) {
	dir := buildLog(t, 37, 10, nil)
	for _, idx := range []uint64{0, 1, 17, 36} {
		p, err := Prove(dir, idx)
		require.NoError(t, err)
		rec, err := VerifyProof(p, testVerifier)
		require.NoError(t, err)
		assert.Equal(t, idx, rec.Index)
		assert.Contains(t, string(rec.Line), fmt.Sprintf(`"path":"/p%d"`, idx))
		assert.Equal(t, uint64(37), rec.Size)
	}
	_, err := Prove(dir, 37)
	assert.ErrorContains(t, err, "not covered")

	p, err := Prove(dir, 17)
	require.NoError(t, err)
	forged := bytes.Replace(p, []byte(`"index": 17`), []byte(`"index": 18`), 1)
	_, err = VerifyProof(forged, testVerifier)
	assert.ErrorIs(t, err, ErrTampered)
	_, other := mustKeyPair(testOrigin)
	_, err = VerifyProof(p, other)
	assert.ErrorIs(t, err, ErrTampered, "another key")

	// A record edited in the log cannot be proven.
	editLines(t, segPath(dir, 0), func(ls [][]byte) [][]byte {
		ls[17] = bytes.Replace(ls[17], []byte("/p17"), []byte("/pXX"), 1)
		return ls
	})
	_, err = Prove(dir, 17)
	assert.ErrorIs(t, err, ErrTampered)
}
