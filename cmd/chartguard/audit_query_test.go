package main

import (
	"context"
	"encoding/csv"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chartguard/chartguard/audit"
	"github.com/chartguard/chartguard/chartguard"
)

// patientLog writes a signed log with accesses to pt-1 and pt-2 into dir/log
// and returns its dir. Keys: dir/audit.key(.pub) for the node,
// dir/alice.key(.pub) for the auditor.
func patientLog(t *testing.T, dir string) string {
	t.Helper()
	writeAuditKey(t, dir)
	code, _, errs := runCLI("audit", "keygen", "--name", "alice", "--out", filepath.Join(dir, "alice.key"))
	require.Equal(t, 0, code, errs)
	var cfg audit.Config
	cfg.SetDefaults()
	cfg.Dir = filepath.Join(dir, "log")
	cfg.SigningKeyFile = filepath.Join(dir, "audit.key")
	cfg.Origin = "emr.example.org/audit/node-1"
	cfg.Node = "node-1"
	cfg.MinFree = 0
	l, err := audit.New(cfg, nil, nil)
	require.NoError(t, err)
	t0 := time.Date(2026, 3, 8, 4, 59, 0, 0, time.UTC) // 23:59 on the 7th in New York
	for i, ps := range [][]string{{"pt-1"}, {"pt-1", "pt-2"}, {"pt-2"}, {"pt-1"}} {
		ev := &chartguard.Event{Time: t0.Add(time.Duration(i) * time.Minute).Format(time.RFC3339Nano),
			Action: "read", Outcome: chartguard.OutcomeAllowed,
			User:     &chartguard.EventUser{Issuer: "https://idp", Subject: "u1", Name: "=Dr One", Roles: []string{"physician"}},
			Request:  chartguard.EventRequest{Method: "GET", Path: "/fhir/Observation", Status: 200},
			Resource: &chartguard.EventResource{Kind: "fhir", Interaction: "read", Type: "Observation", Patients: ps, PatientStatus: "known"}}
		require.NoError(t, l.Commit(context.Background(), ev))
	}
	require.NoError(t, l.Close())
	return cfg.Dir
}

func TestAuditReportOffline(t *testing.T) {
	dir := t.TempDir()
	logDir := patientLog(t, dir)
	base := []string{"audit", "report", "--patient", "pt-1", "--dir", logDir, "--key", filepath.Join(dir, "audit.key.pub"),
		"--index-dir", filepath.Join(dir, "idx")}

	for name, args := range map[string][]string{
		"no reason":     append(append([]string{}, base...), "--offline-key", filepath.Join(dir, "alice.key")),
		"no key":        append(append([]string{}, base...), "--offline-reason", "complaint 42"),
		"dir and admin": append(append([]string{}, base...), "--offline-reason", "r", "--offline-key", filepath.Join(dir, "alice.key"), "--admin-url", "http://x"),
		"bad format":    append(append([]string{}, base...), "--offline-reason", "r", "--offline-key", filepath.Join(dir, "alice.key"), "--format", "pdf"),
		"bad tz":        append(append([]string{}, base...), "--offline-reason", "r", "--offline-key", filepath.Join(dir, "alice.key"), "--tz", "Mars/Base"),
	} {
		code, out, _ := runCLI(args...)
		assert.Equal(t, 2, code, name)
		assert.Empty(t, out, name)
	}
	recs, err := audit.ReadOfflineAccess(logDir)
	require.NoError(t, err)
	assert.Empty(t, recs, "refused invocations record nothing and read nothing")

	args := append(append([]string{}, base...), "--offline-reason", "patient complaint 42", "--offline-key", filepath.Join(dir, "alice.key"),
		"--auditor", "alice", "--reindex", "--format", "csv", "--tz", "America/New_York", "--from", "2026-03-08", "--to", "2026-03-08")
	code, out, errs := runCLI(args...)
	require.Equal(t, 0, code, errs)
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	require.NoError(t, err)
	require.Len(t, rows, 4, out) // header, 2 accesses on the 8th in New York, checkpoint
	assert.Equal(t, "2026-03-08", rows[1][0])
	assert.Equal(t, "'=Dr One", rows[1][3])
	assert.NotContains(t, out, "pt-2") // ids with "-" cannot occur in base64 roots
	assert.Equal(t, "#checkpoint", rows[3][0])

	code, out, errs = runCLI("audit", "offline-access", logDir, "--key", filepath.Join(dir, "alice.key.pub"))
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "alice")
	assert.Contains(t, out, "patient complaint 42")
	assert.Contains(t, out, "signature verified")
	assert.Contains(t, out, "patient=pt-1")

	// The record does not break verification of the copy, and verify
	// reports who read the copy offline and why.
	code, out, errs = runCLI("audit", "verify", logDir, "--key", filepath.Join(dir, "audit.key.pub"))
	assert.Equal(t, 0, code, errs)
	assert.Contains(t, out, "read offline 1 times")
	assert.Contains(t, out, "alice")
	assert.Contains(t, out, "patient complaint 42")
}

func TestAuditSearchOfflineTampered(t *testing.T) {
	dir := t.TempDir()
	logDir := patientLog(t, dir)
	segs, err := filepath.Glob(filepath.Join(logDir, "audit-*.log"))
	require.NoError(t, err)
	b, err := os.ReadFile(segs[0])
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(segs[0], []byte(strings.Replace(string(b), `"sub":"u1"`, `"sub":"u9"`, 1)), 0o600))
	code, _, errs := runCLI("audit", "search", "--patient", "pt-1", "--dir", logDir, "--key", filepath.Join(dir, "audit.key.pub"),
		"--index-dir", filepath.Join(dir, "idx"), "--offline-reason", "check", "--offline-key", filepath.Join(dir, "alice.key"))
	assert.Equal(t, 3, code, errs)
}

// TestAuditReportOnline: the CLI asks the admin API with the token and
// the auditor's name, streams the answer, and maps statuses to exit codes.
func TestAuditReportOnline(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte("s3cret-admin-token-0123\n"), 0o600))
	status := http.StatusOK
	var got *http.Request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Clone(context.Background())
		w.WriteHeader(status)
		_, _ = w.Write([]byte("report body\n"))
	}))
	defer srv.Close()
	args := []string{"audit", "report", "--patient", "pt-1", "--admin-url", srv.URL, "--token-file", tokenFile,
		"--auditor", "alice", "--from", "2026-01-01", "--format", "fhir"}
	code, out, errs := runCLI(args...)
	require.Equal(t, 0, code, errs)
	assert.Equal(t, "report body\n", out)
	assert.Equal(t, "/admin/audit/report", got.URL.Path)
	assert.Equal(t, "Bearer s3cret-admin-token-0123", got.Header.Get("Authorization"))
	assert.Equal(t, "alice", got.Header.Get("X-Chartguard-Auditor"))
	assert.Equal(t, "pt-1", got.URL.Query().Get("patient"))
	assert.Equal(t, "fhir", got.URL.Query().Get("format"))
	assert.Equal(t, "2026-01-01", got.URL.Query().Get("from"))

	for st, want := range map[int]int{http.StatusUnauthorized: 2, http.StatusBadRequest: 2, http.StatusConflict: 3,
		http.StatusServiceUnavailable: 1} {
		status = st
		code, _, _ := runCLI(args...)
		assert.Equal(t, want, code, "status %d", st)
	}
	code, _, _ = runCLI("audit", "report", "--patient", "pt-1")
	assert.Equal(t, 2, code, "no source")
}
