package proxy

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chartguard/chartguard/chartguard"
	"github.com/chartguard/chartguard/policy"
)

// policyMetrics are the series about policy decisions and reloads. The
// revision label is a content hash or bundle revision, not an id of a
// person.
type policyMetrics struct {
	allowed, denied, failed prometheus.Counter // decisions by result, resolved once
	reloads                 *prometheus.CounterVec
	revisionInfo            *prometheus.GaugeVec
	serving                 string // the revision revisionInfo reports (reloads are serialised)
}

func newPolicyMetrics(reg prometheus.Registerer) *policyMetrics {
	decisions := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "chartguard_policy_decisions_total",
		Help: "Policy decisions by result: allow, deny, or error (failed and denied).",
	}, []string{"result"})
	m := &policyMetrics{
		allowed: decisions.WithLabelValues("allow"),
		denied:  decisions.WithLabelValues("deny"),
		failed:  decisions.WithLabelValues("error"),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chartguard_policy_reloads_total",
			Help: "Policy reload attempts by trigger (start, watch, admin, signal, poll) and outcome (loaded, unchanged, refused).",
		}, []string{"trigger", "outcome"}),
		revisionInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "chartguard_policy_revision_info",
			Help: "The policy revision serving (value 1).",
		}, []string{"revision"}),
	}
	reg.MustRegister(decisions, m.reloads, m.revisionInfo)
	return m
}

// decided counts one decision; it runs on every decision, so the
// counters are resolved once in newPolicyMetrics.
func (m *policyMetrics) decided(d chartguard.Decision, err error) {
	switch {
	case err != nil:
		m.failed.Inc()
	case d.Allow:
		m.allowed.Inc()
	default:
		m.denied.Inc()
	}
}

func (m *policyMetrics) reloaded(r policy.Reload) {
	m.reloads.WithLabelValues(r.Trigger, r.Outcome).Inc()
	if r.Outcome == policy.OutcomeLoaded {
		m.revision(r.Revision)
	}
}

// revision makes rev the one revision reported as serving: set before the
// old one goes, so no scrape finds none.
func (m *policyMetrics) revision(rev string) {
	m.revisionInfo.WithLabelValues(rev).Set(1)
	if m.serving != "" && m.serving != rev {
		m.revisionInfo.DeleteLabelValues(m.serving)
	}
	m.serving = rev
}

// ReloadPolicy reloads the policy now (`chartguard serve` does on SIGHUP).
// A policy that fails is refused and the serving one stays; the attempt is
// logged, counted and audited either way.
func (p *Proxy) ReloadPolicy(ctx context.Context) policy.Reload {
	m := p.policies.Load()
	if m == nil {
		return policy.Reload{Trigger: policy.TriggerSignal, Outcome: policy.OutcomeUnchanged,
			Revision: p.currentPolicy().Revision()}
	}
	return m.Reload(ctx, policy.TriggerSignal)
}

// adminRequestKey carries the admin request behind a reload to its audit
// event.
type adminRequestKey struct{}

type adminRequest struct {
	id, ip, method, path string
}

// reloadPolicy serves POST /admin/policy/reload: 200 with the revision
// serving, or 422 with the error when the candidate was refused (the
// previous revision keeps serving).
func (p *Proxy) reloadPolicy(w http.ResponseWriter, r *http.Request) {
	type answer struct {
		Outcome  string `json:"outcome"`
		Revision string `json:"revision"`
		Previous string `json:"previous,omitempty"`
		Error    string `json:"error,omitempty"`
	}
	m := p.policies.Load()
	if m == nil {
		writeReloadJSON(w, http.StatusConflict, answer{Outcome: policy.OutcomeUnchanged,
			Revision: p.currentPolicy().Revision(), Error: "this policy cannot be reloaded"})
		return
	}
	info := &adminRequest{id: requestID(r.Header.Get("X-Request-Id")), ip: p.clientIP(r),
		method: r.Method, path: "/admin/policy/reload"}
	// A reload runs to its end even if the caller goes away: half of one
	// is only noise in the log.
	ctx := context.WithValue(context.WithoutCancel(r.Context()), adminRequestKey{}, info)
	res := m.Reload(ctx, policy.TriggerAdmin)
	a := answer{Outcome: res.Outcome, Revision: res.Revision, Previous: res.Previous}
	status := http.StatusOK
	if res.Err != nil {
		a.Error, status = res.Err.Error(), http.StatusUnprocessableEntity
	}
	w.Header().Set("X-Request-Id", info.id)
	writeReloadJSON(w, status, a)
}

// policyReloaded records a reload attempt: metrics always; an audit event
// (action admin) for every reload asked for (admin, signal) and every one
// that changed or refused the policy.
func (p *Proxy) policyReloaded(ctx context.Context, r policy.Reload) {
	p.polMetrics.reloaded(r)
	asked := r.Trigger == policy.TriggerAdmin || r.Trigger == policy.TriggerSignal
	if r.Trigger == policy.TriggerStart || (r.Outcome == policy.OutcomeUnchanged && !asked) {
		return
	}
	ev := &chartguard.Event{Action: chartguard.ActionAdmin, Outcome: chartguard.OutcomeAllowed, Count: 1,
		Resource: &chartguard.EventResource{Kind: chartguard.KindProxy, Patients: []string{}, PatientStatus: chartguard.PatientsNone},
		Decision: &chartguard.EventDecision{Revision: r.Revision, Reasons: []string{"policy reload (" + r.Trigger + ", " + r.Source + "): " + r.Outcome}},
	}
	if r.Err != nil {
		ev.Outcome = chartguard.OutcomeError
		ev.Decision.Reasons = append(ev.Decision.Reasons, truncate(r.Err.Error(), 1024))
	} else if r.Outcome == policy.OutcomeLoaded {
		ev.Decision.Reasons = append(ev.Decision.Reasons, "previous revision "+r.Previous)
	}
	if info, ok := ctx.Value(adminRequestKey{}).(*adminRequest); ok {
		status := http.StatusOK
		if r.Err != nil {
			status = http.StatusUnprocessableEntity
		}
		ev.Client.IP = info.ip
		ev.Request = chartguard.EventRequest{ID: info.id, Method: info.method, Path: info.path, Status: status, Bytes: -1}
	} else {
		ev.Request = chartguard.EventRequest{ID: requestID(""), Bytes: -1}
	}
	actx := context.WithoutCancel(ctx)
	if err := p.audit.Commit(actx, ev); err != nil {
		p.log.Error("audit write failed for policy reload", "error", err)
		p.audit.Defer(ev)
	}
}

func writeReloadJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
