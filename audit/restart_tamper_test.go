package audit

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/note"
)

// tamperLog writes 10 records with a checkpoint every 5 and returns its
// config.
func tamperLog(t *testing.T, mod func(*Config)) Config {
	t.Helper()
	cfg := testConfig(t)
	cfg.CheckpointEvery = 5
	if mod != nil {
		mod(&cfg)
	}
	l, err := New(cfg, nil, nil)
	require.NoError(t, err)
	commitPaths(t, l, 0, 10)
	require.NoError(t, l.Close())
	if cfg.Signer == testSigner {
		verifyDir(t, cfg.Dir)
	}
	return cfg
}

// editRecord rewrites the path of record i (/p<i> becomes /x<i>), as
// someone without the key would.
func editRecord(t *testing.T, dir string, i int) {
	t.Helper()
	editLines(t, segPath(dir, 0), func(ls [][]byte) [][]byte {
		edited := bytes.Replace(ls[i], []byte(fmt.Sprintf(`"/p%d"`, i)), []byte(fmt.Sprintf(`"/x%d"`, i)), 1)
		require.NotEqual(t, ls[i], edited)
		ls[i] = edited
		return ls
	})
}

// keepCheckpointLines keeps the first n lines of the checkpoints file.
func keepCheckpointLines(t *testing.T, dir string, n int) {
	t.Helper()
	p := filepath.Join(dir, checkpointsName)
	raw, err := os.ReadFile(p)
	require.NoError(t, err)
	lines := bytes.SplitAfter(raw, []byte("\n"))
	require.Greater(t, len(lines), n)
	require.NoError(t, os.WriteFile(p, bytes.Join(lines[:n], nil), 0o600))
}

// checkpointSizes lists the sizes of the checkpoints in dir's file.
func checkpointSizes(t *testing.T, dir string) []int64 {
	t.Helper()
	lines, _, err := readLogLines(dir)
	require.NoError(t, err)
	var out []int64
	for _, ll := range lines {
		if ll.Kind == kindCheckpoint {
			cp, err := ParseCheckpoint(noteText(ll.Checkpoint))
			require.NoError(t, err)
			out = append(out, cp.Size)
		}
	}
	return out
}

// TestRestartRefusesTamperedLog: a node restarted over an edited log
// must not sign the edit. Each case would otherwise end with a fresh
// checkpoint over tampered records that Verify accepts.
func TestRestartRefusesTamperedLog(t *testing.T) {
	otherSigner, _ := mustKeyPair(testOrigin) // same name, another key
	withKeyFile := func(cfg *Config) {
		skey, _, err := GenerateKey(testOrigin)
		require.NoError(t, err)
		cfg.Signer = nil
		cfg.SigningKeyFile = filepath.Join(t.TempDir(), "audit.key")
		require.NoError(t, os.WriteFile(cfg.SigningKeyFile, []byte(skey+"\n"), 0o600))
	}
	cases := []struct {
		name   string
		mod    func(*Config)
		tamper func(t *testing.T, dir string)
	}{
		{"edited record, checkpoints deleted", nil, func(t *testing.T, dir string) {
			editRecord(t, dir, 7)
			require.NoError(t, os.Remove(filepath.Join(dir, checkpointsName)))
		}},
		{"edited record, checkpoints cut back before it", nil, func(t *testing.T, dir string) {
			editRecord(t, dir, 7)
			keepCheckpointLines(t, dir, 1) // the checkpoint of size 5
		}},
		{"edited first record, no checkpoint left", nil, func(t *testing.T, dir string) {
			editRecord(t, dir, 0)
			require.NoError(t, os.WriteFile(filepath.Join(dir, checkpointsName), nil, 0o600))
		}},
		{"records cut, checkpoints deleted", nil, func(t *testing.T, dir string) {
			editLines(t, segPath(dir, 0), func(ls [][]byte) [][]byte { return ls[:7] })
			require.NoError(t, os.Remove(filepath.Join(dir, checkpointsName)))
		}},
		{"records cut, checkpoints cut back before them", nil, func(t *testing.T, dir string) {
			editLines(t, segPath(dir, 0), func(ls [][]byte) [][]byte { return ls[:7] })
			keepCheckpointLines(t, dir, 1)
		}},
		{"seq not its position, hashes and checkpoints deleted", nil, func(t *testing.T, dir string) {
			editLines(t, segPath(dir, 0), func(ls [][]byte) [][]byte {
				ls[3] = bytes.Replace(ls[3], []byte(`"seq":3,`), []byte(`"seq":33,`), 1)
				return ls
			})
			require.NoError(t, os.Remove(filepath.Join(dir, checkpointsName)))
			require.NoError(t, os.Remove(filepath.Join(dir, hashesName)))
		}},
		{"checkpoint signed by another key", nil, func(t *testing.T, dir string) {
			editRecord(t, dir, 7)
			rehash(t, dir)
			keepCheckpointLines(t, dir, 0)
			c, err := openChain(dir, 10, otherSigner, nil, testOrigin)
			require.NoError(t, err)
			root, err := c.tree.root()
			c.close()
			require.NoError(t, err)
			appendCheckpointLine(t, dir, Checkpoint{Origin: testOrigin, Size: 10, Root: root}, otherSigner)
		}},
		{"checkpoint signed by another key (signing_key_file)", withKeyFile, func(t *testing.T, dir string) {
			// The node's own checkpoint, signed again by another key.
			lines, _, err := readLogLines(dir)
			require.NoError(t, err)
			cp, err := ParseCheckpoint(noteText(lines[len(lines)-1].Checkpoint))
			require.NoError(t, err)
			appendCheckpointLine(t, dir, cp, otherSigner)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tamperLog(t, tc.mod)
			tc.tamper(t, cfg.Dir)
			before := checkpointSizes(t, cfg.Dir)

			l, err := New(cfg, nil, nil)
			if err == nil {
				_ = l.Close()
			}
			require.ErrorIs(t, err, ErrCorrupt)
			assert.Contains(t, err.Error(), "chartguard audit verify")
			assert.Equal(t, before, checkpointSizes(t, cfg.Dir), "nothing was signed")
		})
	}
}

// TestRestartAfterCrashStillRecovers: what a crash leaves (a torn last
// record, hashes past the records, lost checkpoints of an intact log) is
// still recovered and signed.
func TestRestartAfterCrashStillRecovers(t *testing.T) {
	cases := []struct {
		name   string
		tamper func(t *testing.T, dir string)
		size   uint64
	}{
		{"checkpoints lost, records intact", func(t *testing.T, dir string) {
			require.NoError(t, os.Remove(filepath.Join(dir, checkpointsName)))
		}, 10},
		{"torn last record with its hashes written", func(t *testing.T, dir string) {
			editLines(t, segPath(dir, 0), func(ls [][]byte) [][]byte {
				ls[9] = ls[9][:len(ls[9])/2] // no newline: a partial line
				return ls
			})
			keepCheckpointLines(t, dir, 1)
		}, 9},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tamperLog(t, nil)
			tc.tamper(t, cfg.Dir)
			l, err := New(cfg, nil, nil)
			require.NoError(t, err)
			require.NoError(t, l.Close())
			res := verifyDir(t, cfg.Dir)
			assert.Equal(t, tc.size, res.Size)
			assert.Equal(t, tc.size, res.Checkpointed)
		})
	}
}

// foreignRetention removes the first segment of a 2+ segment log and
// appends a retention note for it that names another log's origin, signed
// with the same key (replicas sharing audit.signing_key_file).
func foreignRetention(t *testing.T) Config {
	t.Helper()
	cfg := testConfig(t)
	cfg.Segment.MaxBytes = 600
	l, _ := newLog(t, cfg)
	commitPaths(t, l, 0, 8)
	require.NoError(t, l.Close())
	segs, err := listSegments(cfg.Dir)
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(segs), 2)
	require.NoError(t, os.Remove(segs[0].path))
	msg, err := note.Sign(&note.Note{Text: retentionNote{Origin: "other.example/audit/node-2", First: int64(segs[1].first)}.String()}, testSigner)
	require.NoError(t, err)
	f, err := os.OpenFile(filepath.Join(cfg.Dir, checkpointsName), os.O_APPEND|os.O_WRONLY, 0o600)
	require.NoError(t, err)
	_, err = f.Write(marshalLogLine(kindRetention, string(msg)))
	require.NoError(t, err)
	require.NoError(t, f.Close())
	return cfg
}

func TestVerifyRejectsForeignRetentionNote(t *testing.T) {
	cfg := foreignRetention(t)
	_, err := Verify(context.Background(), cfg.Dir, VerifyOptions{Verifier: testVerifier})
	var te *TamperError
	require.ErrorAs(t, err, &te)
	assert.Contains(t, err.Error(), "other.example/audit/node-2")
}

func TestRestartRefusesForeignRetentionNote(t *testing.T) {
	cfg := foreignRetention(t)
	_, err := New(cfg, nil, nil)
	require.ErrorIs(t, err, ErrCorrupt)
	assert.Contains(t, err.Error(), "other.example/audit/node-2")
}

// TestNonDurableNeverSignsUnsyncedRecords: records of a non-durable log
// written before a failure closed the segment were never fsynced; no
// checkpoint may cover them until a sync succeeds.
func TestNonDurableNeverSignsUnsyncedRecords(t *testing.T) {
	for _, recovered := range []bool{false, true} {
		t.Run(fmt.Sprintf("recovered=%v", recovered), func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Durable = false
			fl := &faults{}
			cfg.OpenSegment = fl.open
			l, reg := newLog(t, cfg)
			commitPaths(t, l, 0, 3)
			fl.failSync.Store(true)
			fl.failWrite.Store(true)
			require.Error(t, l.Commit(context.Background(), event("/fail")))
			if !recovered {
				err := l.Close()
				require.Error(t, err)
				assert.Contains(t, err.Error(), "could not be made durable")
				assert.GreaterOrEqual(t, metricValue(t, reg, "chartguard_audit_checkpoint_failures_total"), 1.0)
				for _, s := range checkpointSizes(t, cfg.Dir) {
					assert.Less(t, s, int64(3), "a checkpoint covers records never fsynced")
				}
				return
			}
			fl.failSync.Store(false)
			fl.failWrite.Store(false)
			commitPaths(t, l, 3, 1) // reopens the segment
			require.NoError(t, l.Close())
			sizes := checkpointSizes(t, cfg.Dir)
			require.NotEmpty(t, sizes)
			assert.Equal(t, int64(4), sizes[len(sizes)-1])
			assert.Equal(t, uint64(4), verifyDir(t, cfg.Dir).Checkpointed)
		})
	}
}
