package audit

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/note"
)

const (
	crashDirEnv = "CHARTGUARD_AUDIT_CRASH_DIR"
	crashKeyEnv = "CHARTGUARD_AUDIT_CRASH_KEY"
)

// crashConfig is the log the child writes and the parent reopens.
func crashConfig(t testing.TB, dir, skey string) Config {
	t.Helper()
	s, err := note.NewSigner(skey)
	require.NoError(t, err)
	var cfg Config
	cfg.SetDefaults()
	cfg.Dir, cfg.Node, cfg.Origin, cfg.Signer = dir, "node-1", testOrigin, s
	cfg.CheckpointEvery = 100
	cfg.Segment.MaxBytes = 64 << 10 // several rotations under load
	return cfg
}

// TestCrashChild is the process TestCrashRecovery kills: it commits
// events from 32 goroutines forever and prints "seq path" for each
// acknowledged one.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("run by TestCrashRecovery")
	}
	l, err := New(crashConfig(t, dir, os.Getenv(crashKeyEnv)), nil, nil)
	require.NoError(t, err)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := range 32 {
		wg.Go(func() {
			for i := 0; ; i++ {
				ev := event(fmt.Sprintf("/c%d-%d", g, i))
				if l.Commit(context.Background(), ev) != nil {
					continue
				}
				mu.Lock()
				fmt.Fprintf(os.Stdout, "ack %d %s\n", ev.Seq, ev.Request.Path)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

// TestCrashRecovery SIGKILLs a process under load, restarts the log and
// checks that it verifies and holds every acknowledged event.
func TestCrashRecovery(t *testing.T) {
	if os.Getenv(crashDirEnv) != "" {
		t.Skip("in the child")
	}
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	skey, _, err := GenerateKey(testOrigin)
	require.NoError(t, err)
	dir := filepath.Join(t.TempDir(), "audit")
	for round := range 2 { // the second round crashes a recovered log
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashKeyEnv+"="+skey)
		out, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		acks := map[uint64]string{}
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 3 || f[0] != "ack" {
				continue
			}
			seq, err := strconv.ParseUint(f[1], 10, 64)
			require.NoError(t, err)
			acks[seq] = f[2]
			if len(acks) == 3000 {
				require.NoError(t, cmd.Process.Kill()) // SIGKILL
			}
		}
		_ = cmd.Wait()
		require.GreaterOrEqual(t, len(acks), 3000, "round %d", round)

		cfg := crashConfig(t, dir, skey)
		l, err := New(cfg, nil, nil) // recovery
		require.NoError(t, err, "round %d", round)
		require.NoError(t, l.Close())
		v, err := note.NewVerifier(verifierFor(t, skey))
		require.NoError(t, err)
		res, err := Verify(context.Background(), dir, VerifyOptions{Verifier: v})
		require.NoError(t, err, "round %d", round)
		assert.Equal(t, res.Size, res.Checkpointed, "recovery signed what it recovered")

		logged := map[uint64]string{}
		for rec, err := range ReadDir(dir, 0) {
			require.NoError(t, err)
			logged[rec.Index] = rec.Event.Request.Path
		}
		missing := 0
		for seq, path := range acks {
			if logged[seq] != path {
				missing++
			}
		}
		assert.Zero(t, missing, "round %d: every acknowledged event is in the log under its seq", round)
		t.Logf("round %d: %d acknowledged, %d in the log", round, len(acks), res.Size)
	}
}

func verifierFor(t testing.TB, skey string) string {
	t.Helper()
	vkey, err := VerifierFromSignerKey(skey)
	require.NoError(t, err)
	return vkey
}
