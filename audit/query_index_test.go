package audit

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/chartguard/chartguard/chartguard"
)

// TestLogVerifierVerifiesItsOwnLog: Log.Verifier verifies the log's
// checkpoints, for a key file and for a throwaway key alike.
func TestLogVerifierVerifiesItsOwnLog(t *testing.T) {
	skey, _, err := GenerateKey("test/audit/n1")
	require.NoError(t, err)
	keyFile := filepath.Join(t.TempDir(), "audit.key")
	require.NoError(t, os.WriteFile(keyFile, []byte(skey+"\n"), 0o600))
	for name, set := range map[string]func(*Config){
		"key file":      func(c *Config) { c.SigningKeyFile = keyFile },
		"throwaway key": func(c *Config) { c.EphemeralKey = true },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Signer = nil
			set(&cfg)
			l, _ := newLog(t, cfg)
			require.NotNil(t, l.Verifier())
			commitPaths(t, l, 0, 3)
			require.NoError(t, l.Close())
			s, err := OpenSearcher(context.Background(), filepath.Join(t.TempDir(), "idx"), []Source{{Dir: cfg.Dir, Verifier: l.Verifier()}})
			require.NoError(t, err)
			defer s.Close()
			src := s.Sources()
			require.Len(t, src, 1)
			assert.True(t, src[0].Verified)
			assert.Equal(t, uint64(3), src[0].Size)
		})
	}
	cfg := testConfig(t) // a Signer given by the caller: no known verifier
	l, _ := newLog(t, cfg)
	assert.Nil(t, l.Verifier())
}

// editIndex changes the index file of dir directly.
func editIndex(t *testing.T, idx, dir string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	path, err := indexFile(idx, dir)
	require.NoError(t, err)
	db, err := bolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(fn))
	require.NoError(t, db.Close())
}

// TestIndexDamageIsRebuilt: an index whose state is unreadable is dropped
// whole (no stale entry comes back), and corrupt entries make the index
// rebuild instead of failing every query.
func TestIndexDamageIsRebuilt(t *testing.T) {
	root := t.TempDir()
	dir, idx, k := filepath.Join(root, "log"), filepath.Join(root, "idx"), newTestKeys(t, "n1")
	writeTestLog(t, dir, "n1", k, []chartguard.Event{access(t0, "u1", "Patient", "read", "p1"), access(t0, "u2", "Patient", "read", "p2")})
	open := func() (*Searcher, error) {
		return OpenSearcher(context.Background(), idx, []Source{{Dir: dir, Verifier: k.verifier}})
	}
	patient := func(p string) ([]Match, error) {
		s, err := open()
		if err != nil {
			return nil, err
		}
		defer s.Close()
		var out []Match
		for m, err := range s.Search(context.Background(), Query{Patient: p}) {
			if err != nil {
				return out, err
			}
			out = append(out, m)
		}
		return out, nil
	}
	got, err := patient("p1")
	require.NoError(t, err)
	require.Len(t, got, 1)

	// An entry for a patient the log never named, and a state that no
	// longer parses.
	editIndex(t, idx, dir, func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketPatients).Put(patientKey("ghost", t0.UnixNano(), 0), []byte(`{"action":"read"}`)); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keyState, []byte("{not json"))
	})
	got, err = patient("ghost")
	require.NoError(t, err)
	assert.Empty(t, got, "an entry of the dropped index came back")

	// A bad key: this query fails, the next one is answered from a rebuilt index.
	editIndex(t, idx, dir, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketPatients).Put(append([]byte("p1\x00"), 1, 2, 3), []byte("{}"))
	})
	_, err = patient("p1")
	require.ErrorIs(t, err, ErrCorrupt)
	got, err = patient("p1")
	require.NoError(t, err)
	assert.Len(t, got, 1)

	// Time blocks out of order: rebuilt at open.
	editIndex(t, idx, dir, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketBlocks).Put([]byte{0xff}, make([]byte, 16))
	})
	got, err = patient("p2")
	require.NoError(t, err)
	assert.Len(t, got, 1)
}

// retainedLog writes 40 records in small segments, ages the first three
// segments and reopens the log with a one-day retention, which removes
// them. It returns the first record kept.
func retainedLog(t *testing.T) (Config, uint64) {
	t.Helper()
	cfg := testConfig(t)
	cfg.CheckpointEvery = 4
	cfg.Segment.MaxBytes = 1500
	l, _ := newLog(t, cfg)
	commitPaths(t, l, 0, 40)
	require.NoError(t, l.Close())
	segs, err := listSegments(cfg.Dir)
	require.NoError(t, err)
	require.Greater(t, len(segs), 4)
	old := time.Now().Add(-48 * time.Hour)
	for _, s := range segs[:3] {
		require.NoError(t, os.Chtimes(s.path, old, old))
	}
	cfg.Retention = "1d"
	cfg.Now = time.Now
	l, _ = newLog(t, cfg)
	commitPaths(t, l, 40, 1)
	require.NoError(t, l.Close())
	left, err := listSegments(cfg.Dir)
	require.NoError(t, err)
	require.Equal(t, segs[3].first, left[0].first)
	return cfg, segs[3].first
}

// TestIndexBuildsOverRetainedLog: a fresh index of a log whose first
// segments retention removed verifies and answers from the first record
// kept, and a tail of it starts there too.
func TestIndexBuildsOverRetainedLog(t *testing.T) {
	cfg, first := retainedLog(t)
	require.Positive(t, first)
	s, err := OpenSearcher(context.Background(), filepath.Join(t.TempDir(), "idx"), []Source{{Dir: cfg.Dir, Verifier: testVerifier}})
	require.NoError(t, err)
	defer s.Close()
	src := s.Sources()
	require.Len(t, src, 1)
	assert.True(t, src[0].Verified)
	assert.Equal(t, uint64(41), src[0].Size)
	got := collect(t, s, Query{})
	require.Len(t, got, int(41-first))
	assert.Equal(t, first, got[0].Index)
	got = collect(t, s, Query{From: fixedNow().Add(-time.Hour)})
	assert.NotEmpty(t, got)

	pos, err := s.TailStart(100)
	require.NoError(t, err)
	var lines []string
	ctx, cancel := context.WithCancel(context.Background())
	err = Tail(ctx, pos, TailOptions{Poll: time.Millisecond}, func(l []byte) error {
		lines = append(lines, string(l))
		if bytes.Contains(l, []byte(`"checkpoint"`)) {
			cancel()
		}
		return nil
	})
	require.NoError(t, err)
	require.Len(t, lines, int(41-first)+1)
	assert.Contains(t, lines[0], `"verified":true`)
}

// TestTailChecksFirstRecords: the --last records are proved to be in the
// signed tree before they are emitted as verified.
func TestTailChecksFirstRecords(t *testing.T) {
	root := t.TempDir()
	dir, idx, k := filepath.Join(root, "log"), filepath.Join(root, "idx"), newTestKeys(t, "n1")
	writeTestLog(t, dir, "n1", k, []chartguard.Event{access(t0, "u1", "Patient", "read", "p1"), access(t0, "u2", "Patient", "read", "p1")})
	s, err := OpenSearcher(context.Background(), idx, []Source{{Dir: dir, Verifier: k.verifier}})
	require.NoError(t, err)
	pos, err := s.TailStart(2)
	require.NoError(t, err)
	require.NoError(t, s.Close())

	segs, err := filepath.Glob(filepath.Join(dir, "audit-*.log"))
	require.NoError(t, err)
	require.NotEmpty(t, segs)
	b, err := os.ReadFile(segs[0])
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(segs[0], bytes.Replace(b, []byte(`"sub":"u2"`), []byte(`"sub":"u3"`), 1), 0o600))

	var lines []string
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = Tail(ctx, pos, TailOptions{Poll: time.Millisecond}, func(l []byte) error {
		lines = append(lines, string(l))
		return nil
	})
	require.ErrorIs(t, err, ErrTampered)
	for _, l := range lines {
		assert.NotContains(t, l, `"sub":"u3"`, "a rewritten record was emitted")
	}
	require.Len(t, lines, 1)
	assert.Contains(t, lines[0], `"index":0,"verified":true`)
}
