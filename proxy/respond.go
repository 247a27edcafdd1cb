package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/chartguard/chartguard/chartguard"
	"github.com/chartguard/chartguard/proxy/internal/pages"
)

// apiProblem is a response the proxy answers itself. Every error leaves the
// pipeline as one of these, rendered by [Proxy.respond]; internal error text
// never reaches the client.
type apiProblem struct {
	status  int
	code    string // FHIR IssueType
	message string // safe to show
	header  http.Header
	// severity of the OperationOutcome issue; "" is "error".
	severity string
}

func problem(status int, code string, err error) apiProblem {
	msg := http.StatusText(status)
	if errors.Is(err, errRejected) || errors.Is(err, errClassify) {
		msg = err.Error() // our own words, about the client's request shape
	}
	return apiProblem{status: status, code: code, message: msg}
}

func denied(dec chartguard.Decision) apiProblem {
	msg := "access denied by policy"
	if len(dec.Reasons) > 0 {
		msg += ": " + joinReasons(dec.Reasons)
	}
	return apiProblem{status: http.StatusForbidden, code: "forbidden", message: msg}
}

func auditUnavailable() apiProblem {
	return apiProblem{status: http.StatusServiceUnavailable, code: "transient",
		message: "access to patient data is paused: the audit log cannot be written",
		header:  http.Header{"Retry-After": {"5"}}}
}

func joinReasons(rs []string) string {
	s := ""
	for i, r := range rs {
		if i > 0 {
			s += "; "
		}
		s += r
	}
	return s
}

// respond commits the exchange's audit event and then writes the problem as
// a FHIR OperationOutcome. If the audit log refuses a success, the client
// gets 503 instead (fail closed).
func (p *Proxy) respond(w http.ResponseWriter, x *exchange, pr apiProblem) {
	if !x.committed {
		body := outcomeBody(pr, x.requestID)
		if p.commit(context.Background(), x, pr.status, int64(len(body)), pr.status >= 400) != pr.status {
			pr = auditUnavailable()
		}
	}
	if p.sso != nil && x.navigation && pr.status >= 400 {
		// A clinician's browser loading a page gets ChartGuard's page, not
		// FHIR JSON: the same status, reasons and request id.
		p.htmlProblem(w, x, pr)
		return
	}
	writeOutcome(w, pr, x.requestID)
}

// htmlProblem renders pr as one of ChartGuard's pages.
func (p *Proxy) htmlProblem(w http.ResponseWriter, x *exchange, pr apiProblem) {
	d := pages.Data{RequestID: x.requestID}
	if x.principal != nil && x.principal.Token.Kind == chartguard.TokenSession {
		d.User, d.CSRF = displayName(x.principal.Identity), x.csrf
	}
	for k, v := range pr.header {
		w.Header()[k] = v
	}
	w.Header().Set("X-Request-Id", x.requestID)
	if pr.status == http.StatusForbidden && x.decision != nil && !x.decision.Allow {
		p.sso.pages.AccessDenied(w, d, x.decision.Reasons)
		return
	}
	p.sso.pages.Error(w, d, pr.status, pr.message)
}

func writeOutcome(w http.ResponseWriter, pr apiProblem, requestID string) {
	body := outcomeBody(pr, requestID)
	h := w.Header()
	for k, v := range pr.header {
		h[k] = v
	}
	h.Set("Content-Type", "application/fhir+json; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("X-Request-Id", requestID)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(pr.status)
	_, _ = w.Write(body)
}

func outcomeBody(pr apiProblem, requestID string) []byte {
	severity := pr.severity
	if severity == "" {
		severity = "error"
	}
	oo := map[string]any{
		"resourceType": "OperationOutcome",
		"issue": []map[string]any{{
			"severity":    severity,
			"code":        pr.code,
			"diagnostics": fmt.Sprintf("%s (request id %s)", pr.message, requestID),
		}},
	}
	b, _ := json.Marshal(oo)
	return b
}

// commit writes the exchange's one audit event, at the commit point: status
// and headers final, no body byte sent. It returns the status the client
// must get: the given one, or 503 when the event cannot be made durable and
// the response would otherwise release data. refusal says the response
// itself is a refusal, which discloses nothing and so goes ahead.
func (p *Proxy) commit(ctx context.Context, x *exchange, status int, bytes int64, refusal bool) int {
	x.committed = true
	ev := p.event(x, status, bytes)
	err := p.audit.Commit(ctx, ev)
	if !x.counted {
		x.counted = true
		p.uncommitted.Add(-1)
	}
	if err != nil && !refusal {
		p.log.Error("audit write failed; refusing response", "request_id", x.requestID, "error", err)
		status = http.StatusServiceUnavailable
		ev.Request.Status, ev.Outcome = status, chartguard.OutcomeError
	}
	if err != nil {
		p.audit.Defer(ev)
	}
	x.status = status
	p.metrics.observe(ev, time.Since(x.start))
	return status
}
