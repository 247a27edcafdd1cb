package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chartguard/chartguard/audit"
	"github.com/chartguard/chartguard/chartguard"
)

// writeAuditKey creates dir/audit.key and dir/audit.key.pub with
// `chartguard audit keygen`.
func writeAuditKey(t *testing.T, dir string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run([]string{"audit", "keygen", "--name", "emr.example.org/audit/node-1", "--out", filepath.Join(dir, "audit.key")}, &out, &errb)
	require.Equal(t, 0, code, errb.String())
	require.Contains(t, out.String(), "emr.example.org/audit/node-1+")
}

// cliLog writes a log of n events signed with dir/audit.key into dir/<name>
// and returns the log dir and what the stdout sink carried.
func cliLog(t *testing.T, dir, name string, n int) (string, string) {
	t.Helper()
	var sink bytes.Buffer
	var cfg audit.Config
	cfg.SetDefaults()
	cfg.Dir = filepath.Join(dir, name)
	cfg.SigningKeyFile = filepath.Join(dir, "audit.key")
	cfg.Origin = "emr.example.org/audit/" + name
	cfg.CheckpointEvery = 4
	cfg.Sinks = []audit.SinkConfig{{Type: audit.SinkStdout}}
	cfg.Stdout = &sink
	l, err := audit.New(cfg, nil, nil)
	require.NoError(t, err)
	for i := range n {
		ev := &chartguard.Event{Action: "read", Outcome: chartguard.OutcomeAllowed,
			Request: chartguard.EventRequest{Method: "GET", Path: fmt.Sprintf("/fhir/Patient/p%d", i), Status: 200}}
		require.NoError(t, l.Commit(context.Background(), ev))
	}
	require.NoError(t, l.Close())
	return cfg.Dir, sink.String()
}

func runCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func flipRecord(t *testing.T, dir string, from, to string) {
	t.Helper()
	seg := filepath.Join(dir, "audit-00000000000000000000.log")
	raw, err := os.ReadFile(seg)
	require.NoError(t, err)
	require.Contains(t, string(raw), from)
	require.NoError(t, os.WriteFile(seg, bytes.Replace(raw, []byte(from), []byte(to), 1), 0o600))
}

func TestAuditVerifyCLI(t *testing.T) {
	dir := t.TempDir()
	writeAuditKey(t, dir)
	pub := filepath.Join(dir, "audit.key.pub")
	good, _ := cliLog(t, dir, "node-a", 10)
	bad, _ := cliLog(t, dir, "node-b", 10)
	flipRecord(t, bad, "/fhir/Patient/p6", "/fhir/Patient/pX")

	tests := []struct {
		name string
		args []string
		code int
		out  []string
	}{
		{"intact log", []string{"audit", "verify", good, "--key", pub}, 0, []string{good + ": ok", "10 records", "checkpoint size 10"}},
		{"edited record", []string{"audit", "verify", bad, "--key", pub}, 3, []string{bad + ": FAILED", "at index 6"}},
		{"several replicas, one bad", []string{"audit", "verify", good, bad, "--key", pub}, 3, []string{good + ": ok", bad + ": FAILED"}},
		{"no key", []string{"audit", "verify", good}, 2, nil},
		{"wrong key file", []string{"audit", "verify", good, "--key", filepath.Join(dir, "audit.key")}, 2, nil},
		{"missing dir", []string{"audit", "verify", filepath.Join(dir, "nope"), "--key", pub}, 1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(tt.args...)
			assert.Equal(t, tt.code, code, "stdout: %s\nstderr: %s", out, errOut)
			for _, s := range tt.out {
				assert.Contains(t, out, s)
			}
		})
	}
}

func TestAuditVerifyCLIWithOffBoxCheckpointAndConfigKey(t *testing.T) {
	dir := setupDirs(t)
	logDir, sink := cliLog(t, dir, "node-1", 12)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "siem.jsonl"), []byte(sink), 0o600))
	assert.Contains(t, sink, `{"v":1,"kind":"checkpoint","checkpoint":"emr.example.org/audit/node-1\n12\n`)

	code, out, errOut := runCLI("audit", "verify", logDir, "-c", filepath.Join("testdata", "good.yaml"),
		"--checkpoint", filepath.Join(dir, "siem.jsonl"))
	require.Equal(t, 0, code, out+errOut)

	// Cut the log back to 8 records with its checkpoints and hashes: only
	// the off-box copy shows it.
	seg := filepath.Join(logDir, "audit-00000000000000000000.log")
	raw, err := os.ReadFile(seg)
	require.NoError(t, err)
	lines := strings.SplitAfter(string(raw), "\n")
	require.NoError(t, os.WriteFile(seg, []byte(strings.Join(lines[:8], "")), 0o600))
	cps, err := os.ReadFile(filepath.Join(logDir, "checkpoints"))
	require.NoError(t, err)
	cpLines := strings.SplitAfter(string(cps), "\n")
	require.NoError(t, os.WriteFile(filepath.Join(logDir, "checkpoints"), []byte(strings.Join(cpLines[:2], "")), 0o600))
	hashes, err := os.ReadFile(filepath.Join(logDir, "hashes"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(logDir, "hashes"), hashes[:15*32], 0o600)) // StoredHashCount(8) = 15

	code, out, _ = runCLI("audit", "verify", logDir, "-c", filepath.Join("testdata", "good.yaml"))
	assert.Equal(t, 0, code, "locally consistent: %s", out)
	code, out, _ = runCLI("audit", "verify", logDir, "-c", filepath.Join("testdata", "good.yaml"),
		"--checkpoint", filepath.Join(dir, "siem.jsonl"))
	assert.Equal(t, 3, code, out)
	assert.Contains(t, out, "at index 8")
}

func TestAuditProveCLI(t *testing.T) {
	dir := t.TempDir()
	writeAuditKey(t, dir)
	pub := filepath.Join(dir, "audit.key.pub")
	logDir, _ := cliLog(t, dir, "node-1", 9)
	code, _, errOut := runCLI("audit", "keygen", "--name", "alice", "--out", filepath.Join(dir, "alice.key"))
	require.Equal(t, 0, code, errOut)
	offline := []string{"--dir", logDir, "--key", pub, "--offline-reason", "dispute 7", "--offline-key", filepath.Join(dir, "alice.key")}
	prove := func(index string, extra ...string) (int, string, string) {
		return runCLI(append([]string{"audit", "prove", "--index", index}, extra...)...)
	}

	code, _, _ = prove("5", "--dir", logDir)
	assert.Equal(t, 2, code, "offline needs a reason and the auditor's key")
	code, proof, errOut := prove("5", offline...)
	require.Equal(t, 0, code, errOut)
	recs, err := audit.ReadOfflineAccess(logDir)
	require.NoError(t, err)
	require.Len(t, recs, 1, "the offline read is recorded in the copy")
	assert.Equal(t, "prove index=5", recs[0].Query)
	assert.Equal(t, "dispute 7", recs[0].Reason)
	proofFile := filepath.Join(dir, "proof.json")
	require.NoError(t, os.WriteFile(proofFile, []byte(proof), 0o600))

	code, out, errOut := runCLI("audit", "verify-proof", proofFile, "--key", pub)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "ok: record 5 is in emr.example.org/audit/node-1 at tree size 9")
	assert.Contains(t, out, `"path":"/fhir/Patient/p5"`)

	root := newRoot(&bytes.Buffer{}, &bytes.Buffer{})
	var stdinOut bytes.Buffer
	root.SetOut(&stdinOut)
	root.SetIn(strings.NewReader(proof))
	root.SetArgs([]string{"audit", "verify-proof", "-", "--key", pub})
	require.NoError(t, root.Execute(), "the proof verifies from stdin")

	forged := strings.Replace(proof, `"index": 5`, `"index": 4`, 1)
	require.NoError(t, os.WriteFile(proofFile, []byte(forged), 0o600))
	code, _, _ = runCLI("audit", "verify-proof", proofFile, "--key", pub)
	assert.Equal(t, 3, code)

	code, _, errOut = prove("9", offline...)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "not covered")
	code, _, _ = runCLI("audit", "prove", "--index", "1")
	assert.Equal(t, 2, code, "-c, --admin-url or --dir required")

	// Live: the admin API answers with the same proof.
	var asked string
	admin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked = r.URL.RequestURI() + " " + r.Header.Get("Authorization")
		_, _ = io.WriteString(w, proof)
	}))
	defer admin.Close()
	tok := filepath.Join(dir, "admin-token")
	require.NoError(t, os.WriteFile(tok, []byte("0123456789abcdef0123\n"), 0o600))
	code, out, errOut = runCLI("audit", "prove", "--index", "5", "--admin-url", admin.URL, "--token-file", tok)
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, proof, out)
	assert.Equal(t, "/admin/audit/prove?index=5 Bearer 0123456789abcdef0123", asked)

	flipRecord(t, logDir, "/fhir/Patient/p5", "/fhir/Patient/pX")
	code, _, _ = prove("5", offline...)
	assert.Equal(t, 3, code, "an edited record cannot be proven")
}

func TestAuditKeygenNeverOverwrites(t *testing.T) {
	dir := t.TempDir()
	writeAuditKey(t, dir)
	before, err := os.ReadFile(filepath.Join(dir, "audit.key"))
	require.NoError(t, err)
	info, err := os.Stat(filepath.Join(dir, "audit.key"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	code, _, errOut := runCLI("audit", "keygen", "--name", "x", "--out", filepath.Join(dir, "audit.key"))
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "never overwritten")
	after, err := os.ReadFile(filepath.Join(dir, "audit.key"))
	require.NoError(t, err)
	assert.Equal(t, before, after)
	code, _, _ = runCLI("audit", "keygen", "--name", "bad name", "--out", filepath.Join(dir, "k2"))
	assert.Equal(t, 2, code)
}
