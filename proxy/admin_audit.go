package proxy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"golang.org/x/mod/sumdb/note"

	"github.com/chartguard/chartguard/audit"
	"github.com/chartguard/chartguard/chartguard"
)

// AuditorHeader names the person behind an admin audit query; ?auditor=
// does the same. Without either the auditor is "admin" (the token holder).
const AuditorHeader = "X-Chartguard-Auditor"

// auditAdmin serves /admin/audit/*: the node's own log, read through the
// query index. Every request writes an audit_access event before any
// answer byte; if that event cannot be written the answer is 503.
type auditAdmin struct {
	p        *Proxy
	dir      string
	indexDir string
	verifier note.Verifier // nil: this node signs with a throwaway key
	keyErr   error
	// mu serialises queries: one index file per log, opened per query.
	mu sync.Mutex
}

// registerAuditQueries adds the audit query endpoints behind the admin token.
func (p *Proxy) registerAuditQueries(mux *http.ServeMux) {
	a := &auditAdmin{p: p, dir: p.cfg.Audit.Dir, indexDir: auditIndexDir(p.cfg.Audit)}
	if f := p.cfg.Audit.SigningKeyFile; f != "" {
		a.verifier, a.keyErr = verifierFromSignerFile(f)
	}
	mux.Handle("GET /admin/audit/search", p.adminAuth(http.HandlerFunc(a.search)))
	mux.Handle("GET /admin/audit/report", p.adminAuth(http.HandlerFunc(a.report)))
	mux.Handle("GET /admin/audit/tail", p.adminAuth(http.HandlerFunc(a.tail)))
	mux.Handle("GET /admin/audit/prove", p.adminAuth(http.HandlerFunc(a.prove)))
}

// auditIndexDir is audit.index_dir or, if empty, audit.dir + "-index":
// next to the log, never inside audit.dir (segments and checkpoints only).
func auditIndexDir(c AuditConfig) string {
	if c.IndexDir != "" {
		return c.IndexDir
	}
	return filepath.Clean(c.Dir) + "-index"
}

// StatusVerificationFailed answers a query over a log that failed
// verification (the CLI exits 3 on it).
const StatusVerificationFailed = http.StatusConflict

func (a *auditAdmin) search(w http.ResponseWriter, r *http.Request) {
	q, err := searchQuery(r.URL.Query())
	if !a.admit(w, r, err, q.Patient) {
		return
	}
	a.withSearcher(w, r, "application/x-ndjson", func(ctx context.Context, s *audit.Searcher) error {
		return audit.WriteSearch(ctx, w, s, q)
	})
}

func (a *auditAdmin) report(w http.ResponseWriter, r *http.Request) {
	req, err := reportRequest(r.URL.Query(), a.p.now())
	if !a.admit(w, r, err, req.Patient) {
		return
	}
	ctype := map[string]string{audit.ReportText: "text/plain; charset=utf-8", audit.ReportJSON: "application/json",
		audit.ReportCSV: "text/csv; charset=utf-8", audit.ReportFHIR: "application/fhir+json"}[req.Format]
	a.withSearcher(w, r, ctype, func(ctx context.Context, s *audit.Searcher) error {
		return audit.WriteReport(ctx, w, s, req)
	})
}

func (a *auditAdmin) prove(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	index, err := strconv.ParseUint(v.Get("index"), 10, 64)
	if err != nil || len(v) != 1 && !(len(v) == 2 && v.Has("auditor")) {
		err = errors.New("want ?index=N (a record index)")
	}
	if !a.admit(w, r, err, "") {
		return
	}
	proof, err := audit.Prove(a.dir, index)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(proof)
}

func (a *auditAdmin) tail(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	opts := audit.TailOptions{Last: 10, Poll: time.Second}
	var err error
	if s := v.Get("last"); s != "" {
		if opts.Last, err = strconv.ParseUint(s, 10, 32); err != nil {
			err = errors.New("last: want a count of records")
		}
	}
	if !a.admit(w, r, err, "") {
		return
	}
	a.mu.Lock()
	s, err := audit.OpenSearcher(r.Context(), a.indexDir, []audit.Source{{Dir: a.dir, Verifier: a.verifier}})
	if err != nil {
		a.mu.Unlock()
		a.fail(w, r, err)
		return
	}
	start, err := s.TailStart(opts.Last)
	_ = s.Close()
	a.mu.Unlock() // a tail runs for long: it must not hold the query lock
	if err != nil {
		a.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	err = audit.Tail(r.Context(), start, opts, func(line []byte) error {
		if _, err := w.Write(line); err != nil {
			return err
		}
		if flusher != nil {
			flusher.Flush()
		}
		return nil
	})
	if err != nil && r.Context().Err() == nil {
		a.p.log.Error("audit tail stopped", "request_id", requestID(r.Header.Get("X-Request-Id")), "error", err)
		panic(http.ErrAbortHandler) // the client sees a cut stream, not a clean end
	}
}

// withSearcher opens the index (verifying the log) and runs fn under the
// query lock. Once fn has started writing, a failure can only cut the
// stream.
func (a *auditAdmin) withSearcher(w http.ResponseWriter, r *http.Request, ctype string, fn func(context.Context, *audit.Searcher) error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s, err := audit.OpenSearcher(r.Context(), a.indexDir, []audit.Source{{Dir: a.dir, Verifier: a.verifier}})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	defer s.Close()
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	if err := fn(r.Context(), s); err != nil {
		a.p.log.Error("audit query failed mid-answer", "request_id", requestID(r.Header.Get("X-Request-Id")), "error", err)
		panic(http.ErrAbortHandler)
	}
}

// admit writes the request's audit_access event: outcome denied for a
// bad request (answered 400), allowed otherwise. It returns false when
// the caller must stop: bad input, or the event could not be written (503,
// fail closed: no audit record, no answer).
func (a *auditAdmin) admit(w http.ResponseWriter, r *http.Request, bad error, patient string) bool {
	auditor, aerr := auditorName(r)
	if bad == nil {
		bad = aerr
	}
	if bad == nil && a.keyErr != nil {
		a.p.log.Error("audit queries unavailable: cannot derive the checkpoint verifier", "error", a.keyErr)
		writeText(w, http.StatusServiceUnavailable, "audit queries unavailable: audit.signing_key_file unreadable\n")
		return false
	}
	ev := a.event(r, auditor, patient, bad)
	err := a.p.audit.Commit(r.Context(), ev)
	if err != nil {
		a.p.audit.Defer(ev)
	}
	if bad != nil {
		writeText(w, http.StatusBadRequest, "bad request: "+bad.Error()+"\n")
		return false
	}
	if err != nil {
		a.p.log.Error("audit write failed; refusing audit query", "request_id", ev.Request.ID, "error", err)
		writeText(w, http.StatusServiceUnavailable, "audit log unavailable\n")
		return false
	}
	return true
}

// event is the audit_access record of an admin audit query: who (the
// auditor name and a hash of the admin token), what (the endpoint and
// its canonical query parameters) and, for a patient query, that patient.
func (a *auditAdmin) event(r *http.Request, auditor, patient string, bad error) *chartguard.Event {
	status, outcome := http.StatusOK, chartguard.OutcomeAllowed
	if bad != nil {
		status, outcome = http.StatusBadRequest, chartguard.OutcomeDenied
	}
	_, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	sum := sha256.Sum256([]byte(tok))
	ip, _, _ := net.SplitHostPort(r.RemoteAddr)
	path := r.URL.Path
	if bad == nil && len(r.URL.RawQuery) > 0 {
		path += "?" + r.URL.Query().Encode() // canonical; only the queried patient's id
	}
	patients := []string{}
	if patient != "" && bad == nil {
		patients = []string{patient}
	}
	patientStatus := chartguard.PatientsNone
	if len(patients) > 0 {
		patientStatus = chartguard.PatientsKnown
	}
	return &chartguard.Event{
		Action: chartguard.ActionAuditAccess, Outcome: outcome,
		User: &chartguard.EventUser{Issuer: "chartguard-admin", Subject: auditor, Roles: []string{"auditor"},
			Session: hex.EncodeToString(sum[:16])}, // the admin token's hash, never the token
		Client:  chartguard.EventClient{IP: ip, UserAgent: truncate(r.UserAgent(), 256)},
		Request: chartguard.EventRequest{ID: requestID(r.Header.Get("X-Request-Id")), Method: r.Method, Path: truncate(path, 2048), Status: status, Bytes: -1},
		Resource: &chartguard.EventResource{Kind: chartguard.KindProxy, Interaction: "search-type", Type: "AuditEvent",
			Patients: patients, PatientStatus: patientStatus},
		Count: 1,
	}
}

// auditorName is the X-Chartguard-Auditor header or ?auditor=, else
// "admin": 1 to 128 printable characters.
func auditorName(r *http.Request) (string, error) {
	name := r.Header.Get(AuditorHeader)
	if q := r.URL.Query().Get("auditor"); q != "" {
		name = q
	}
	if name == "" {
		return "admin", nil
	}
	if len(name) > 128 || strings.IndexFunc(name, func(c rune) bool { return !unicode.IsPrint(c) }) >= 0 {
		return "admin", errors.New("auditor: 1 to 128 printable characters")
	}
	return name, nil
}

// fail answers an error found before the first answer byte.
func (a *auditAdmin) fail(w http.ResponseWriter, r *http.Request, err error) {
	rid := requestID(r.Header.Get("X-Request-Id"))
	switch {
	case errors.Is(err, audit.ErrTampered):
		a.p.log.Error("audit log failed verification", "request_id", rid, "error", err)
		writeText(w, StatusVerificationFailed, "audit log verification failed: run `chartguard audit verify`\n")
	case errors.Is(err, audit.ErrBadQuery):
		writeText(w, http.StatusBadRequest, "bad request: "+err.Error()+"\n")
	case errors.Is(err, context.Canceled):
	default:
		a.p.log.Error("audit query failed", "request_id", rid, "error", err)
		writeText(w, http.StatusInternalServerError, fmt.Sprintf("audit query failed (request id %s)\n", rid))
	}
}

// searchQuery parses /admin/audit/search parameters.
func searchQuery(v url.Values) (audit.Query, error) {
	if err := onlyParams(v, "user", "issuer", "patient", "action", "outcome", "from", "to", "tz", "include_static", "limit", "auditor"); err != nil {
		return audit.Query{}, err
	}
	q := audit.Query{Subject: v.Get("user"), Issuer: v.Get("issuer"), Patient: v.Get("patient"),
		Action: v.Get("action"), Outcome: v.Get("outcome"), IncludeStatic: v.Get("include_static") == "true"}
	loc, err := zone(v.Get("tz"))
	if err != nil {
		return q, err
	}
	if q.From, q.To, err = audit.ParseRange(v.Get("from"), v.Get("to"), loc); err != nil {
		return q, err
	}
	if s := v.Get("limit"); s != "" {
		if q.Limit, err = strconv.Atoi(s); err != nil {
			return q, errors.New("limit: want a number")
		}
	}
	return q, q.Validate()
}

// reportRequest parses /admin/audit/report parameters.
func reportRequest(v url.Values, now time.Time) (audit.ReportRequest, error) {
	if err := onlyParams(v, "patient", "from", "to", "tz", "format", "include_static", "auditor"); err != nil {
		return audit.ReportRequest{}, err
	}
	req := audit.ReportRequest{Patient: v.Get("patient"), Format: v.Get("format"),
		IncludeStatic: v.Get("include_static") == "true", Generated: now}
	var err error
	if req.Location, err = zone(v.Get("tz")); err != nil {
		return req, err
	}
	if req.From, req.To, err = audit.ParseRange(v.Get("from"), v.Get("to"), req.Location); err != nil {
		return req, err
	}
	return req, req.Validate()
}

func zone(name string) (*time.Location, error) {
	if name == "" {
		return time.UTC, nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("tz: unknown time zone %q (use an IANA name like America/New_York)", name)
	}
	return loc, nil
}

// onlyParams refuses unknown or repeated parameters: a query must mean
// one thing, and its audit record must say exactly what was asked.
func onlyParams(v url.Values, allowed ...string) error {
	for k, vs := range v {
		ok := false
		for _, a := range allowed {
			ok = ok || k == a
		}
		if !ok {
			return fmt.Errorf("unknown parameter %q", k)
		}
		if len(vs) != 1 {
			return fmt.Errorf("parameter %q given %d times", k, len(vs))
		}
	}
	return nil
}

// verifierFromSignerFile derives the public checkpoint verifier from the
// node's signing key file: the node verifies its own log before answering.
func verifierFromSignerFile(path string) (note.Verifier, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("audit.signing_key_file: %w", err)
	}
	vkey, err := audit.VerifierFromSignerKey(string(raw))
	if err != nil {
		return nil, fmt.Errorf("audit.signing_key_file: %w", err)
	}
	return note.NewVerifier(vkey)
}
