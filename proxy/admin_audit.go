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
// query index. Every request writes one audit_access event once its status
// is decided (the log verified, the proof built) and before the first
// answer byte; if that event cannot be written the answer is 503.
type auditAdmin struct {
	p        *Proxy
	dir      string
	indexDir string
	verifier note.Verifier // nil: the audit log knows no verifier (tests)
	// mu serialises queries: one index file per log, opened per query.
	mu sync.Mutex
}

// registerAuditQueries adds the audit query endpoints behind the admin token.
func (p *Proxy) registerAuditQueries(mux *http.ServeMux) {
	a := &auditAdmin{p: p, dir: p.cfg.Audit.Dir, indexDir: auditIndexDir(p.cfg.Audit)}
	if v, ok := p.audit.(interface{ Verifier() note.Verifier }); ok {
		a.verifier = v.Verifier() // the signer's own, loaded once at start
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

// auditQuery is one admin audit request: its request id (computed once),
// auditor, queried patient and, if its parameters are bad, why.
type auditQuery struct {
	w       http.ResponseWriter
	r       *http.Request
	rid     string
	auditor string
	patient string
	bad     error
}

func (a *auditAdmin) newQuery(w http.ResponseWriter, r *http.Request, bad error, patient string) *auditQuery {
	auditor, aerr := auditorName(r)
	if bad == nil {
		bad = aerr
	}
	rid := requestID(r.Header.Get("X-Request-Id"))
	w.Header().Set("X-Request-Id", rid)
	return &auditQuery{w: w, r: r, rid: rid, auditor: auditor, patient: patient, bad: bad}
}

// refuseBad answers a request with bad parameters 400, after its event.
func (a *auditAdmin) refuseBad(q *auditQuery) bool {
	if q.bad == nil {
		return false
	}
	a.commit(q, http.StatusBadRequest)
	writeText(q.w, http.StatusBadRequest, "bad request: "+q.bad.Error()+"\n")
	return true
}

func (a *auditAdmin) search(w http.ResponseWriter, r *http.Request) {
	sq, err := searchQuery(r.URL.Query())
	q := a.newQuery(w, r, err, sq.Patient)
	a.withSearcher(q, "application/x-ndjson", func(ctx context.Context, s *audit.Searcher) error {
		return audit.WriteSearch(ctx, w, s, sq)
	})
}

func (a *auditAdmin) report(w http.ResponseWriter, r *http.Request) {
	req, err := reportRequest(r.URL.Query(), a.p.now())
	q := a.newQuery(w, r, err, req.Patient)
	ctype := map[string]string{audit.ReportText: "text/plain; charset=utf-8", audit.ReportJSON: "application/json",
		audit.ReportCSV: "text/csv; charset=utf-8", audit.ReportFHIR: "application/fhir+json"}[req.Format]
	a.withSearcher(q, ctype, func(ctx context.Context, s *audit.Searcher) error {
		return audit.WriteReport(ctx, w, s, req)
	})
}

func (a *auditAdmin) prove(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	err := onlyParams(v, "index", "auditor")
	index, perr := strconv.ParseUint(v.Get("index"), 10, 64)
	if err == nil && perr != nil {
		err = errors.New("want ?index=N (a record index)")
	}
	q := a.newQuery(w, r, err, "")
	if a.refuseBad(q) {
		return
	}
	proof, err := audit.Prove(a.dir, index)
	if err != nil {
		a.fail(q, err)
		return
	}
	if !a.admit(q) {
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(proof)
}

func (a *auditAdmin) tail(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	opts := audit.TailOptions{Last: 10, Poll: time.Second}
	err := onlyParams(v, "last", "auditor")
	if s := v.Get("last"); err == nil && s != "" {
		if opts.Last, err = strconv.ParseUint(s, 10, 32); err != nil {
			err = errors.New("last: want a count of records")
		}
	}
	q := a.newQuery(w, r, err, "")
	if a.refuseBad(q) {
		return
	}
	start, err := a.tailStart(r.Context(), opts.Last)
	if err != nil {
		a.fail(q, err)
		return
	}
	if !a.admit(q) {
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
		a.p.log.Error("audit tail stopped", "request_id", q.rid, "error", err)
		panic(http.ErrAbortHandler) // the client sees a cut stream, not a clean end
	}
}

// tailStart verifies the log and returns where a tail of last records
// starts. The query lock is not held after: a tail runs for long.
func (a *auditAdmin) tailStart(ctx context.Context, last uint64) (audit.TailPosition, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s, err := a.open(ctx)
	if err != nil {
		return audit.TailPosition{}, err
	}
	defer s.Close()
	return s.TailStart(last)
}

func (a *auditAdmin) open(ctx context.Context) (*audit.Searcher, error) {
	return audit.OpenSearcher(ctx, a.indexDir, []audit.Source{{Dir: a.dir, Verifier: a.verifier}})
}

// withSearcher verifies the log, commits the request's event with the
// status that decided, and then runs fn under the query lock over the
// index brought up to date again, so the answer includes the request's
// own event. Once fn has started writing, a failure can only cut the
// stream.
func (a *auditAdmin) withSearcher(q *auditQuery, ctype string, fn func(context.Context, *audit.Searcher) error) {
	if a.refuseBad(q) {
		return
	}
	ctx := q.r.Context()
	a.mu.Lock()
	defer a.mu.Unlock()
	s, err := a.open(ctx)
	if err != nil {
		a.fail(q, err)
		return
	}
	_ = s.Close()
	if !a.admit(q) {
		return
	}
	q.w.Header().Set("Content-Type", ctype)
	q.w.Header().Set("Cache-Control", "no-store")
	q.w.WriteHeader(http.StatusOK)
	// Security: the log changed between the two opens only by this
	// request's event, unless it was tampered with in that instant; then
	// the event says 200 and the client sees a cut stream (logged).
	if s, err = a.open(ctx); err == nil {
		err = fn(ctx, s)
		_ = s.Close()
	}
	if err != nil {
		a.p.log.Error("audit query failed mid-answer", "request_id", q.rid, "error", err)
		panic(http.ErrAbortHandler)
	}
}

// commit writes the request's audit_access event with the status the
// client is about to get, and returns that status: 503 instead when the
// event cannot be written and the answer would release log contents (fail
// closed). A refusal discloses nothing and goes ahead.
func (a *auditAdmin) commit(q *auditQuery, status int) int {
	ev := a.event(q, status)
	err := a.p.audit.Commit(context.WithoutCancel(q.r.Context()), ev)
	if err == nil {
		return status
	}
	if status < 400 {
		a.p.log.Error("audit write failed; refusing audit query", "request_id", q.rid, "error", err)
		status = http.StatusServiceUnavailable
		ev.Request.Status, ev.Outcome = status, chartguard.OutcomeForStatus(status)
	}
	a.p.audit.Defer(ev)
	return status
}

// admit commits q's audit_access event for an answer about to be given,
// and answers 503 instead when it cannot be written.
func (a *auditAdmin) admit(q *auditQuery) bool {
	if a.commit(q, http.StatusOK) == http.StatusOK {
		return true
	}
	a.unavailable(q)
	return false
}

func (a *auditAdmin) unavailable(q *auditQuery) {
	q.w.Header().Set("Retry-After", "5")
	writeText(q.w, http.StatusServiceUnavailable, fmt.Sprintf("audit log unavailable (request id %s)\n", q.rid))
}

// event is the audit_access record of an admin audit query: who (the
// auditor name and a hash of the admin token), what (the endpoint and
// its canonical query parameters), for a patient query that patient, and
// the status the client got.
func (a *auditAdmin) event(q *auditQuery, status int) *chartguard.Event {
	r := q.r
	_, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	sum := sha256.Sum256([]byte(tok))
	ip, _, _ := net.SplitHostPort(r.RemoteAddr)
	path := r.URL.Path
	if q.bad == nil && len(r.URL.RawQuery) > 0 {
		path += "?" + r.URL.Query().Encode() // canonical; only the queried patient's id
	}
	patients := []string{}
	if q.patient != "" && q.bad == nil {
		patients = []string{q.patient}
	}
	patientStatus := chartguard.PatientsNone
	if len(patients) > 0 {
		patientStatus = chartguard.PatientsKnown
	}
	return &chartguard.Event{
		Action: chartguard.ActionAuditAccess, Outcome: chartguard.OutcomeForStatus(status),
		User: &chartguard.EventUser{Issuer: "chartguard-admin", Subject: q.auditor, Roles: []string{"auditor"},
			Session: hex.EncodeToString(sum[:16])}, // the admin token's hash, never the token
		Client:  chartguard.EventClient{IP: ip, UserAgent: truncate(r.UserAgent(), 256)},
		Request: chartguard.EventRequest{ID: q.rid, Method: r.Method, Path: truncate(path, 2048), Status: status, Bytes: -1},
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

// fail answers an error found before the first answer byte, after
// committing the request's event with that status.
func (a *auditAdmin) fail(q *auditQuery, err error) {
	status, body := http.StatusInternalServerError, "audit query failed"
	switch {
	case errors.Is(err, audit.ErrTampered):
		a.p.log.Error("audit log failed verification", "request_id", q.rid, "error", err)
		status, body = StatusVerificationFailed, "audit log verification failed: run `chartguard audit verify`"
	case errors.Is(err, audit.ErrBadQuery):
		status, body = http.StatusBadRequest, "bad request: "+err.Error()
	case errors.Is(err, context.Canceled):
		status, body = http.StatusServiceUnavailable, "audit query cancelled" // the client went away
	default:
		a.p.log.Error("audit query failed", "request_id", q.rid, "error", err)
	}
	a.commit(q, status)
	writeText(q.w, status, fmt.Sprintf("%s (request id %s)\n", body, q.rid))
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
