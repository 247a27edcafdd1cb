package authn

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the package's Prometheus counters. Labels are fixed words:
// never users, clients or token details.
type metrics struct {
	ok, noCredentials, invalid, unavailable prometheus.Counter
	cacheHit, cacheMiss                     prometheus.Counter
	fetchOK, fetchErr                       prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	results := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "chartguard_authn_total",
		Help: "Bearer authentications by result (ok, no_credentials, invalid, unavailable).",
	}, []string{"result"})
	cache := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "chartguard_authn_cache_total",
		Help: "Verified-token cache lookups by result (hit, miss).",
	}, []string{"result"})
	fetches := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "chartguard_authn_jwks_fetch_total",
		Help: "IdP discovery and JWKS fetches by result (ok, error).",
	}, []string{"result"})

	if reg != nil {
		var err error
		if results, err = register(reg, results); err != nil {
			return nil, err
		}
		if cache, err = register(reg, cache); err != nil {
			return nil, err
		}
		if fetches, err = register(reg, fetches); err != nil {
			return nil, err
		}
	}
	// Children resolved once: the hot path then costs one atomic add.
	return &metrics{
		ok:            results.WithLabelValues("ok"),
		noCredentials: results.WithLabelValues("no_credentials"),
		invalid:       results.WithLabelValues("invalid"),
		unavailable:   results.WithLabelValues("unavailable"),
		cacheHit:      cache.WithLabelValues("hit"),
		cacheMiss:     cache.WithLabelValues("miss"),
		fetchOK:       fetches.WithLabelValues("ok"),
		fetchErr:      fetches.WithLabelValues("error"),
	}, nil
}

// register registers c, or reuses the identical collector a previous
// [NewBearer] registered (a config reload builds a new Bearer on the same
// registry).
func register(reg prometheus.Registerer, c *prometheus.CounterVec) (*prometheus.CounterVec, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
			return existing, nil
		}
	}
	return nil, fmt.Errorf("authn: register metrics: %w", err)
}
