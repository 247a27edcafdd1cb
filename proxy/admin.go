package proxy

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// AdminHandler serves the admin listener: /healthz and /readyz without
// credentials, everything else (including /metrics unless
// admin.metrics_auth is none) behind the admin bearer token.
func (p *Proxy) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeText(w, http.StatusOK, "ok\n")
	})
	mux.HandleFunc("GET /readyz", p.readyz)
	metrics := promhttp.HandlerFor(p.registry, promhttp.HandlerOpts{})
	if p.cfg.Admin.MetricsAuth == "none" {
		mux.Handle("GET /metrics", metrics)
	} else {
		mux.Handle("GET /metrics", p.adminAuth(metrics))
	}
	mux.Handle("POST /admin/policy/reload", p.adminAuth(http.HandlerFunc(p.reloadPolicy)))
	p.registerAuditQueries(mux) // /admin/audit/*, each behind p.adminAuth
	mux.Handle("/", p.adminAuth(http.NotFoundHandler()))
	return mux
}

// readyz fails while the replica must not take traffic: policy not
// compiled, or the audit log not writable. A load balancer drains it.
func (p *Proxy) readyz(w http.ResponseWriter, r *http.Request) {
	var failed []string
	if pol := p.currentPolicy(); pol == nil || pol.Revision() == "" {
		failed = append(failed, "policy")
	}
	if err := p.audit.Ready(); err != nil {
		failed = append(failed, "audit")
	}
	// Below audit.min_free the replica drains before the disk fills and
	// every patient request fails closed.
	if d, ok := p.audit.(interface{ DiskReady() error }); ok {
		if err := d.DiskReady(); err != nil {
			failed = append(failed, "audit disk space")
		}
	}
	if len(failed) > 0 {
		writeText(w, http.StatusServiceUnavailable, fmt.Sprintf("not ready: %s\n", strings.Join(failed, ", ")))
		return
	}
	if p.sso != nil {
		// The IdP being down stops new sign-ins, not the sessions this
		// replica already holds: report it, keep taking traffic.
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := p.sso.login.Ready(ctx); err != nil {
			writeText(w, http.StatusOK, "ready; degraded: identity provider unreachable, new sign-ins fail\n")
			return
		}
	}
	writeText(w, http.StatusOK, "ready\n")
}

// adminAuth requires "Authorization: Bearer <admin token>".
//
// Security: both sides are hashed before the constant-time compare so that
// neither the content nor the length of the token leaks through timing.
func (p *Proxy) adminAuth(next http.Handler) http.Handler {
	want := sha256.Sum256([]byte(p.cfg.adminToken))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		got := sha256.Sum256([]byte(tok))
		if p.cfg.adminToken == "" || !strings.EqualFold(scheme, "Bearer") ||
			subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			// Someone guessing the token shows here: counted and logged
			// (never the token, nor the path).
			p.metrics.adminRefused.Inc()
			p.log.Warn("admin request refused: missing or wrong admin token", "method", r.Method)
			w.Header().Set("WWW-Authenticate", `Bearer realm="chartguard-admin"`)
			writeText(w, http.StatusUnauthorized, "unauthorized\n")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func writeText(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}
