package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/chartguard/chartguard/authn"
	"github.com/chartguard/chartguard/chartguard"
	"github.com/chartguard/chartguard/policy"
	"github.com/chartguard/chartguard/proxy/internal/fhirscan"
)

// ServeHTTP is the pipeline. It reads top to bottom: normalise, classify,
// authenticate, authorise, forward. Every return path ends in exactly one
// audit event: responses go through [Proxy.respond] or the forwarder's
// ModifyResponse/ErrorHandler, which commit the event first; the deferred
// [Proxy.finish] commits whatever a panic left uncommitted.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	x := p.begin(r)
	defer p.finish(w, x)

	t, err := normaliseTarget(r.RequestURI, p.cfg.Limits)
	if err != nil {
		p.respond(w, x, problem(http.StatusBadRequest, "invalid", err))
		return
	}
	x.target = t
	x.path = t.Path
	if strings.HasPrefix(t.Path, reservedPrefix) {
		p.serveReserved(w, r, x)
		return
	}
	if !p.cors(w, r, x) {
		return
	}
	if r.ContentLength > p.cfg.Limits.MaxBody {
		p.respond(w, x, classifyProblem(fmt.Errorf("%w: more than %d bytes", errTooLarge, p.cfg.Limits.MaxBody)))
		return
	}

	res, err := p.classify(r, &x.target)
	if err != nil {
		p.respond(w, x, classifyProblem(err))
		return
	}
	x.resource = &res
	if res.Interaction == iSMARTConfig {
		// The one unauthenticated FHIR path: public discovery metadata.
		p.forward(w, r, x)
		return
	}

	principal, err := p.authenticate(r, x)
	if err != nil {
		if p.sso != nil && r.Header.Get("Authorization") == "" {
			p.browserUnauthenticated(w, r, x, err)
			return
		}
		p.unauthenticated(w, x, err)
		return
	}
	x.principal = principal
	if res.Interaction == iBatch {
		p.serveBundle(w, r, x)
		return
	}
	if needsProof(&res) {
		if pr := p.proveWrite(r.Context(), r, x); pr != nil {
			p.respond(w, x, *pr)
			return
		}
	}

	dec := p.authorise(r.Context(), r, x)
	x.decision = &dec
	if !dec.Allow {
		p.respond(w, x, denied(dec))
		return
	}
	if p.cfg.Audit.FailClosed && touchesPatients(res) {
		if err := p.audit.Ready(); err != nil {
			p.respond(w, x, auditUnavailable())
			return
		}
	}
	p.forward(w, r, x)
}

// exchange is the state of one request as it moves down the pipeline.
type exchange struct {
	start      time.Time
	requestID  string
	ip         string
	method     string
	path       string // canonical once normalised; the raw path (bounded) before
	userAgent  string
	target     target
	resource   *chartguard.Resource
	principal  *chartguard.Principal
	decision   *chartguard.Decision
	policy     decider     // the engine of all its decisions, taken at the first: a reload does not change it
	memo       policy.Memo // its decisions, for those of resources the policy cannot tell apart
	committed  bool
	action     string // the audit action when not the resource's (login, logout)
	assertion  string // the identity assertion for the upstream, if signed
	navigation bool   // a browser page load (isNavigation)
	csrf       string // the session's CSRF token, for pages' sign-out form
	// checked is set once the response check ran; exposed lists the
	// resources it delivered;
	// responseDenied is set once it withheld one (x.decision is then that
	// denial).
	proofs         *proofs     // a write's proven resources (writes.go)
	batch          *batchState // a batch's entries answered by ChartGuard (batch.go)
	checked        bool
	exposed        []fhirscan.Resource
	responseDenied bool
	withheld       []string // patients of the resources the response check withheld
	counted        bool     // p.uncommitted no longer counts this request
	status         int      // as committed

	// rels are the care relationships resolved for this request
	// (relationships.go); nil until the first lookup.
	rels *relState
}

type exchangeKey struct{}

func exchangeFrom(ctx context.Context) *exchange {
	x, _ := ctx.Value(exchangeKey{}).(*exchange)
	return x
}

// begin starts the exchange: request id, client address, the raw path for
// events about requests that never normalise.
func (p *Proxy) begin(r *http.Request) *exchange {
	x := &exchange{
		start:     p.now(),
		requestID: requestID(r.Header.Get("X-Request-Id")),
		ip:        p.clientIP(r),
		method:    r.Method,
		path:      boundedRawPath(r.RequestURI),
		userAgent: truncate(r.UserAgent(), 256),
		// A browser loading a page, for which errors are HTML pages.
		navigation: isNavigation(r),
	}
	p.uncommitted.Add(1)
	return x
}

// finish is the safety net: a panic still produces its audit event and a
// 500, and nothing leaves the pipeline unaudited.
func (p *Proxy) finish(w http.ResponseWriter, x *exchange) {
	v := recover()
	if v == http.ErrAbortHandler {
		panic(v) // the response was committed; net/http aborts the connection
	}
	if v != nil {
		p.log.Error("panic in pipeline", "request_id", x.requestID, "panic_type", typeName(v))
		p.metrics.panics.Inc()
	}
	if !x.committed {
		p.respond(w, x, problem(http.StatusInternalServerError, "exception", errors.New("internal error")))
	}
	if !x.counted { // an aggregated rate-limit event never reaches commit
		x.counted = true
		p.uncommitted.Add(-1)
	}
}

// authenticate: a bearer token when the request carries an Authorization
// header (API clients), else the browser's session cookie when sign-in is
// on. Only user activity extends a session (session.Manager.Lookup).
func (p *Proxy) authenticate(r *http.Request, x *exchange) (*chartguard.Principal, error) {
	if p.sso == nil || r.Header.Get("Authorization") != "" {
		return p.authn.Authenticate(r.Context(), r)
	}
	sess, ok, err := p.sessionFor(r, x.target.Path)
	switch {
	case err != nil:
		return nil, err
	case !ok:
		return nil, authn.ErrNoCredentials
	}
	x.csrf = sess.CSRFSecret
	return p.sso.principal(sess, p.now()), nil
}

// returnPath is where sign-in brings the browser back: this request's
// canonical path and query.
func (x *exchange) returnPath() string {
	if x.target.RawQuery != "" {
		return x.target.EscapedPath + "?" + x.target.RawQuery
	}
	return x.target.EscapedPath
}

// authorise asks the policy about the request itself or, for a proven
// write, about each resource it touches (the body and the current
// version): all must be allowed.
func (p *Proxy) authorise(ctx context.Context, _ *http.Request, x *exchange) chartguard.Decision {
	in := p.input(x)
	return p.decideProven(ctx, x, &in, *x.resource, x.proofs)
}

// decideProven decides res, or, when the write was proven, each resource
// it touches: the first denial wins.
func (p *Proxy) decideProven(ctx context.Context, x *exchange, in *chartguard.Input, res chartguard.Resource, pf *proofs) chartguard.Decision {
	if pf == nil || len(pf.resources) == 0 {
		in.Resource = res
		return p.decide(ctx, x, in)
	}
	var dec chartguard.Decision
	for _, r := range pf.resources {
		in.Resource = r
		if dec = p.decide(ctx, x, in); !dec.Allow {
			break
		}
	}
	return dec
}

// input is the policy input for the exchange, without its resource.
func (p *Proxy) input(x *exchange) chartguard.Input {
	return chartguard.Input{
		User:    x.principal.Identity,
		Token:   x.principal.Token,
		Session: x.principal.Session,
		Request: chartguard.Request{Method: x.method, Path: x.target.Path, Query: x.target.query(),
			IP: x.ip, Time: x.start.UTC()},
		Relationship: map[string]chartguard.Relationship{},
	}
}

// decide evaluates the policy, with the care relationships of the
// resource's patients when they come from the EMR; an evaluation error or
// a relationship that cannot be checked denies (fail closed), is logged
// and counted.
func (p *Proxy) decide(ctx context.Context, x *exchange, in *chartguard.Input) chartguard.Decision {
	if x.policy == nil {
		x.policy = p.currentPolicy() // once per request: a reload does not change it
	}
	if dec, ok := p.relate(ctx, x, in); !ok {
		return dec // a relationship could not be checked: denied without the policy
	}
	start := time.Now()
	dec, err := x.policy.DecideWith(ctx, in, &x.memo)
	p.metrics.policyDuration.Observe(time.Since(start).Seconds())
	if err != nil {
		p.metrics.policyErrors.Inc()
		p.log.Warn("policy evaluation failed; denying", "request_id", x.requestID, "phase", in.Resource.Phase, "error", policy.LogSafe(err))
		dec.Allow = false
	}
	p.polMetrics.decided(dec, err)
	return dec
}

// touchesPatients reports whether forwarding the request could move patient
// data, so that an unwritable audit log must stop it first.
func touchesPatients(res chartguard.Resource) bool {
	return res.Interaction != iCapabilities && res.Interaction != iSMARTConfig
}

const reservedPrefix = "/.chartguard/"
