package proxy

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chartguard/chartguard/chartguard"
)

// metrics are the proxy's own Prometheus series. Labels carry no ids.
type metrics struct {
	requests         *prometheus.CounterVec
	requestDuration  *prometheus.HistogramVec
	upstreamDuration prometheus.Histogram
	policyDuration   prometheus.Histogram
	policyErrors     prometheus.Counter
	upstreamErrors   prometheus.Counter
	rateLimited      prometheus.Counter
	panics           prometheus.Counter
	responseRefused  prometheus.Counter
	entriesWithheld  prometheus.Counter
	adminRefused     prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	buckets := []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chartguard_requests_total", Help: "Requests by audit action, outcome and status code.",
		}, []string{"action", "outcome", "code"}),
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "chartguard_request_duration_seconds", Help: "Time from request to the audit commit point.",
			Buckets: buckets,
		}, []string{"action"}),
		upstreamDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "chartguard_upstream_duration_seconds", Help: "Time for the EMR to answer headers.", Buckets: buckets,
		}),
		policyDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "chartguard_policy_duration_seconds", Help: "Policy evaluation time.",
			Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1},
		}),
		policyErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chartguard_policy_errors_total", Help: "Policy evaluations that failed and denied (fail closed).",
		}),
		upstreamErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chartguard_upstream_errors_total", Help: "Requests the EMR failed to answer (502/504).",
		}),
		rateLimited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chartguard_unauthenticated_rate_limited_total", Help: "Unauthenticated requests answered 429.",
		}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chartguard_panics_total", Help: "Recovered panics in the pipeline.",
		}),
		responseRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chartguard_upstream_responses_refused_total",
			Help: "EMR responses refused (502) because the response check could not read them.",
		}),
		entriesWithheld: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chartguard_response_resources_withheld_total",
			Help: "Resources the response check withheld (Bundle entries dropped, single resources denied).",
		}),
		adminRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chartguard_admin_unauthorized_total",
			Help: "Admin API requests refused (401) for a missing or wrong admin token.",
		}),
	}
	reg.MustRegister(m.requests, m.requestDuration, m.upstreamDuration, m.policyDuration,
		m.policyErrors, m.upstreamErrors, m.rateLimited, m.panics, m.responseRefused, m.entriesWithheld,
		m.adminRefused)
	return m
}

func (m *metrics) observe(ev *chartguard.Event, d time.Duration) {
	m.requests.WithLabelValues(ev.Action, ev.Outcome, strconv.Itoa(ev.Request.Status)).Add(float64(ev.Count))
	m.requestDuration.WithLabelValues(ev.Action).Observe(d.Seconds())
}
