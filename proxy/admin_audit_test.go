package proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/note"

	"github.com/chartguard/chartguard/audit"
	"github.com/chartguard/chartguard/chartguard"
)

const testAdminToken = "correct-horse-battery-staple"

// auditAdminFixture is a proxy over a real, signed audit log holding two
// accesses (pt-1 alone; pt-1 with pt-2), checkpointed after every batch.
type auditAdminFixture struct {
	admin    http.Handler
	dir      string
	verifier note.Verifier
	log      *audit.Log
}

func newAuditAdminFixture(t *testing.T, alog func(cfg audit.Config) auditLog) *auditAdminFixture {
	t.Helper()
	root := t.TempDir()
	skey, vkey, err := audit.GenerateKey("emr.example.org/audit/n1")
	require.NoError(t, err)
	keyFile := filepath.Join(root, "audit.key")
	require.NoError(t, os.WriteFile(keyFile, []byte(skey), 0o600))
	v, err := note.NewVerifier(vkey)
	require.NoError(t, err)
	cfg := defaults()
	cfg.PublicURL, cfg.Upstream.URL = "https://emr.example.org", "http://127.0.0.1:1"
	cfg.NodeID = "n1"
	cfg.Audit.Dir = filepath.Join(root, "audit")
	cfg.Audit.SigningKeyFile = keyFile
	cfg.Audit.CheckpointEvery = 1
	cfg.Audit.Durable = false
	cfg.Audit.MinFree = 0
	cfg.Admin.Listen = ""
	cfg.OIDC.Issuer, cfg.OIDC.ClientID = "https://idp.example.org", "chartguard"
	require.NoError(t, cfg.validate())
	cfg.adminToken = testAdminToken
	ac := cfg.Audit.Config
	ac.Node = cfg.NodeID
	real, err := audit.New(ac, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(t, err)
	t0 := time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)
	for i, ps := range [][]string{{"pt-1"}, {"pt-1", "pt-2"}} {
		require.NoError(t, real.Commit(context.Background(), &chartguard.Event{
			Time: t0.Add(time.Duration(i) * time.Minute).Format(time.RFC3339Nano), Action: "read", Outcome: "allowed",
			User:     &chartguard.EventUser{Issuer: "https://idp", Subject: "u1", Name: "Dr One", Roles: []string{"physician"}},
			Request:  chartguard.EventRequest{ID: "r1", Method: "GET", Path: "/fhir/Observation?patient=pt-1,pt-2", Status: 200},
			Resource: &chartguard.EventResource{Kind: "fhir", Interaction: "read", Type: "Observation", Patients: ps, PatientStatus: "known"},
		}))
	}
	f := &auditAdminFixture{dir: cfg.Audit.Dir, verifier: v, log: real}
	var used auditLog = real
	if alog != nil {
		if l := alog(ac); l != nil { // nil: the real log, after the hook ran
			used = l
		}
	}
	p, err := assemble(context.Background(), &cfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry(), authFunc{}, decideFunc(allowAll), used)
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close(); _ = real.Close() })
	f.admin = p.AdminHandler()
	return f
}

func (f *auditAdminFixture) get(t *testing.T, target, token string, hdr map[string]string) (*httptest.ResponseRecorder, []chartguard.Event) {
	t.Helper()
	r := httptest.NewRequest("GET", target, nil)
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	f.admin.ServeHTTP(w, r)
	var access []chartguard.Event
	for rec, err := range audit.ReadDir(f.dir, 0) {
		require.NoError(t, err)
		if rec.Event.Action == chartguard.ActionAuditAccess {
			access = append(access, rec.Event)
		}
	}
	return w, access
}

func TestAdminAuditEndpointsNeedToken(t *testing.T) {
	f := newAuditAdminFixture(t, nil)
	for _, target := range []string{"/admin/audit/search?patient=pt-1", "/admin/audit/report?patient=pt-1",
		"/admin/audit/tail", "/admin/audit/prove?index=0"} {
		for _, tok := range []string{"", "wrong-token-wrong-token", testAdminToken[:len(testAdminToken)-1]} {
			w, access := f.get(t, target, tok, nil)
			assert.Equal(t, http.StatusUnauthorized, w.Code, "%s with token %q", target, tok)
			assert.NotContains(t, w.Body.String(), "Dr One")
			assert.Empty(t, access)
		}
	}
}

// TestAdminAuditReportAuditsFirst: the report's own audit_access event is
// in the log before the answer: the report of pt-1 lists it.
func TestAdminAuditReportAuditsFirst(t *testing.T) {
	f := newAuditAdminFixture(t, nil)
	w, access := f.get(t, "/admin/audit/report?patient=pt-1&format=json&tz=America/New_York",
		testAdminToken, map[string]string{AuditorHeader: "alice (privacy office)", "X-Request-Id": "audit-req-1"})
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	assert.Equal(t, "application/json", w.Header().Get("Content-Type"))
	assert.NotContains(t, w.Body.String(), "pt-2") // "-" cannot occur in base64 roots
	var rep struct {
		Count    int
		Sources  []audit.SourceState
		Accesses []audit.ReportRow
	}
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &rep))
	require.Equal(t, 3, rep.Count)
	last := rep.Accesses[2]
	assert.Equal(t, "audit_access", last.Action)
	assert.Equal(t, "alice (privacy office)", last.Person)
	require.Len(t, rep.Sources, 1)
	assert.True(t, rep.Sources[0].Verified)
	assert.Equal(t, uint64(3), rep.Sources[0].Size)
	assert.Equal(t, "emr.example.org/audit/n1", rep.Sources[0].Origin)

	require.Len(t, access, 1)
	ev := access[0]
	assert.Equal(t, "alice (privacy office)", ev.User.Subject)
	assert.Equal(t, []string{"pt-1"}, ev.Resource.Patients)
	assert.Equal(t, "/admin/audit/report?format=json&patient=pt-1&tz=America%2FNew_York", ev.Request.Path)
	assert.Equal(t, "audit-req-1", ev.Request.ID)
	assert.NotContains(t, ev.User.Session, testAdminToken)
	assert.Len(t, ev.User.Session, 32, "a hash of the token")
}

func TestAdminAuditFailsClosed(t *testing.T) {
	failing := &memAudit{fail: true}
	f := newAuditAdminFixture(t, func(audit.Config) auditLog { return failing })
	for _, target := range []string{"/admin/audit/report?patient=pt-1", "/admin/audit/search?patient=pt-1",
		"/admin/audit/prove?index=0", "/admin/audit/tail"} {
		w, _ := f.get(t, target, testAdminToken, nil)
		assert.Equal(t, http.StatusServiceUnavailable, w.Code, target)
		assert.NotContains(t, w.Body.String(), "Dr One")
	}
	_, deferred := failing.all()
	require.Len(t, deferred, 4, "the refused queries' events go to the recovery queue")
	for _, ev := range deferred { // what the client got, not what was meant
		assert.Equal(t, http.StatusServiceUnavailable, ev.Request.Status, ev.Request.Path)
		assert.Equal(t, chartguard.OutcomeError, ev.Outcome, ev.Request.Path)
	}
}

// tamper rewrites "Dr One" in the log's first segment in place: the log
// no longer matches its signed checkpoints.
func (f *auditAdminFixture) tamper(t *testing.T) {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(f.dir, "*"))
	require.NoError(t, err)
	for _, name := range segs {
		b, err := os.ReadFile(name)
		require.NoError(t, err)
		if i := strings.Index(string(b), "Dr One"); i >= 0 {
			fh, err := os.OpenFile(name, os.O_WRONLY, 0)
			require.NoError(t, err)
			_, err = fh.WriteAt([]byte("Dr Two"), int64(i))
			require.NoError(t, err)
			require.NoError(t, fh.Close())
			return
		}
	}
	t.Fatal("no record to tamper with")
}

// TestAdminAuditEventHasFinalStatus: a query refused after its
// parameters were accepted (the log fails verification) is audited with
// the status the client got, under the request id the client was told.
func TestAdminAuditEventHasFinalStatus(t *testing.T) {
	f := newAuditAdminFixture(t, nil)
	f.tamper(t)
	for i, target := range []string{"/admin/audit/search?patient=pt-1", "/admin/audit/report?patient=pt-1",
		"/admin/audit/tail", "/admin/audit/prove?index=0"} {
		w, access := f.get(t, target, testAdminToken, nil) // no X-Request-Id: the node makes one
		require.Equal(t, StatusVerificationFailed, w.Code, "%s: %s", target, w.Body.String())
		assert.NotContains(t, w.Body.String(), "Dr ")
		require.Len(t, access, i+1, target)
		ev := access[i]
		assert.Equal(t, StatusVerificationFailed, ev.Request.Status, target)
		assert.Equal(t, chartguard.OutcomeDenied, ev.Outcome, target)
		require.Len(t, ev.Request.ID, 32, target)
		assert.Equal(t, ev.Request.ID, w.Header().Get("X-Request-Id"), target)
		assert.Contains(t, w.Body.String(), ev.Request.ID, target)
	}
}

// TestAdminAuditVerifiesWithoutKeyFile: the node verifies its own log
// with the verifier of the key it loaded at start; the key file being
// gone later changes nothing.
func TestAdminAuditVerifiesWithoutKeyFile(t *testing.T) {
	f := newAuditAdminFixture(t, func(cfg audit.Config) auditLog {
		require.NoError(t, os.Remove(cfg.SigningKeyFile))
		return nil
	})
	w, access := f.get(t, "/admin/audit/search?patient=pt-1", testAdminToken, nil)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	assert.Contains(t, strings.SplitN(w.Body.String(), "\n", 2)[0], `"verified":true`)
	require.Len(t, access, 1)
	assert.Equal(t, http.StatusOK, access[0].Request.Status)
}

func TestAdminAuditBadRequests(t *testing.T) {
	f := newAuditAdminFixture(t, nil)
	for _, target := range []string{
		"/admin/audit/report", // no patient
		"/admin/audit/report?patient=pt-1&format=xml",
		"/admin/audit/report?patient=pt-1&from=2026-02-01&to=2026-01-01",
		"/admin/audit/report?patient=pt-1&tz=Mars/Olympus",
		"/admin/audit/report?patient=pt-1&patient=pt-2",
		"/admin/audit/search?patients=p2",
		"/admin/audit/prove?index=x",
		"/admin/audit/tail?last=-1",
		"/admin/audit/tail?patient=pt-1",
		"/admin/audit/prove?index=1&index=2",
		"/admin/audit/prove?index=1&extra=1",
	} {
		w, _ := f.get(t, target, testAdminToken, nil)
		assert.Equal(t, http.StatusBadRequest, w.Code, target)
	}
	_, access := f.get(t, "/admin/audit/report?patient=pt-1&patient=pt-2", testAdminToken, nil)
	require.Len(t, access, 12) // the 11 above and this one
	for _, ev := range access {
		assert.Equal(t, chartguard.OutcomeDenied, ev.Outcome)
		assert.Empty(t, ev.Resource.Patients)
		assert.NotContains(t, ev.Request.Path, "pt-2")
	}
}

func TestAdminAuditSearchAndProve(t *testing.T) {
	f := newAuditAdminFixture(t, nil)
	w, _ := f.get(t, "/admin/audit/search?patient=pt-1&auditor=bob", testAdminToken, nil)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	lines := strings.Split(strings.TrimSpace(w.Body.String()), "\n")
	require.Len(t, lines, 4) // sources + 2 accesses + this search's own event
	assert.Contains(t, lines[0], `"sources"`)
	assert.NotContains(t, w.Body.String(), "pt-2") // "-" cannot occur in base64 roots

	w, access := f.get(t, "/admin/audit/prove?index=1", testAdminToken, nil)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	rec, err := audit.VerifyProof(w.Body.Bytes(), f.verifier)
	require.NoError(t, err)
	assert.Equal(t, uint64(1), rec.Index)
	assert.Equal(t, "/admin/audit/prove?index=1", access[len(access)-1].Request.Path)
}

func TestAdminAuditTail(t *testing.T) {
	f := newAuditAdminFixture(t, nil)
	srv := httptest.NewServer(f.admin)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/admin/audit/tail?last=5", nil)
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	sc := bufio.NewScanner(resp.Body)
	var got []string
	// 2 accesses and their checkpoint (verified before the tail's own
	// event was written), then that event once a checkpoint covers it.
	for len(got) < 5 && sc.Scan() {
		got = append(got, sc.Text())
	}
	require.Len(t, got, 5)
	assert.Contains(t, got[0], `"index":0,"verified":true`)
	assert.Contains(t, got[2], `"checkpoint"`)
	assert.Contains(t, got[3], `"index":2,"verified":true`)
	assert.Contains(t, got[3], `"action":"audit_access"`)
	assert.Contains(t, got[3], `"status":200`)
	assert.Contains(t, got[4], `"checkpoint"`)
	// A record written now shows up once a checkpoint covers it.
	require.NoError(t, f.log.Commit(context.Background(), &chartguard.Event{Action: "login", Outcome: "allowed"}))
	require.True(t, sc.Scan())
	assert.Contains(t, sc.Text(), `"index":3,"verified":true`)
	require.True(t, sc.Scan())
	assert.Contains(t, sc.Text(), `"checkpoint"`)
	cancel()
	_, _ = io.Copy(io.Discard, resp.Body)
}

func TestAuditIndexDirConfig(t *testing.T) {
	cfg, err := ParseConfig([]byte(strings.Replace(minimalYAML, "audit: {dir: /var/lib/chartguard/audit,",
		"audit: {dir: /var/lib/chartguard/audit, index_dir: /var/cache/chartguard/audit-index,", 1)), noEnv)
	require.NoError(t, err)
	assert.Equal(t, "/var/cache/chartguard/audit-index", cfg.Audit.IndexDir)

	// Without it the index lives next to the log, never inside audit.dir
	// (which holds only segments and checkpoints).
	cfg, err = ParseConfig([]byte(minimalYAML), noEnv)
	require.NoError(t, err)
	assert.Equal(t, "/var/lib/chartguard/audit-index", auditIndexDir(cfg.Audit))
}
