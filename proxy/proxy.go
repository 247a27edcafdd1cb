package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/chartguard/chartguard/audit"
	"github.com/chartguard/chartguard/authn"
	"github.com/chartguard/chartguard/chartguard"
	"github.com/chartguard/chartguard/policy"
)

// Proxy is a running ChartGuard: the pipeline ([Proxy.ServeHTTP]) and the
// admin handler. Build it with [New]; it is immutable afterwards.
type Proxy struct {
	cfg        *Config
	log        *slog.Logger
	clock      func() time.Time
	classifier classifier
	authn      authn.Authenticator
	policy     decider                        // the fixed policy of tests; nil when policies is set
	policies   atomic.Pointer[policy.Manager] // the reloadable policy; see currentPolicy
	audit      auditLog
	rp         *httputil.ReverseProxy
	upstream   *http.Client    // ChartGuard's own requests to the EMR, as its service identity
	sso        *sso            // browser sign-in; nil unless oidc.client_secret_file is set
	asserter   *authn.Asserter // identity assertion to the EMR; nil unless assertion.signing_key_file is set
	rels       *relationships  // care relationships from the EMR; nil unless policy.relationships.source is fhir
	metrics    *metrics
	polMetrics *policyMetrics
	limiter    *unauthLimiter
	registry   *prometheus.Registry
	// uncommitted counts requests in the pipeline whose audit Commit has
	// not returned; the audit writer reads it to size group commits.
	uncommitted *atomic.Int64

	stopAggregator context.CancelFunc
	aggregatorDone chan struct{}
	closeOnce      sync.Once
}

// currentPolicy is the engine to use for a new request.
func (p *Proxy) currentPolicy() decider {
	if m := p.policies.Load(); m != nil {
		return m.Current()
	}
	return p.policy
}

// decider is what the pipeline needs of the policy engine.
type decider interface {
	DecideWith(ctx context.Context, in *chartguard.Input, memo *policy.Memo) (chartguard.Decision, error)
	Revision() string
}

// auditLog is what the pipeline needs of the audit log.
type auditLog interface {
	Commit(ctx context.Context, ev *chartguard.Event) error
	Defer(ev *chartguard.Event)
	Ready() error
	Close() error
}

// New builds ChartGuard from a loaded config: the policy is compiled and
// prepared, the audit log opened, the token verifier set up. It fails on
// anything that would make the proxy run degraded.
func New(ctx context.Context, cfg *Config, logger *slog.Logger) (*Proxy, error) {
	reg := prometheus.NewRegistry()
	// Reloads report to the proxy once it exists; the first load is
	// recorded below.
	var reloaded atomic.Pointer[Proxy]
	var first policy.Reload
	mgr, err := policy.NewManager(ctx, cfg.Policy, logger.With("component", "policy"), func(rctx context.Context, r policy.Reload) {
		if p := reloaded.Load(); p != nil {
			p.policyReloaded(rctx, r)
		} else {
			first = r
		}
	})
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	bearer, err := authn.NewBearer(cfg.OIDC, logger.With("component", "authn"), reg)
	if err != nil {
		return nil, fmt.Errorf("oidc: %w", err)
	}
	auditCfg := cfg.Audit.Config
	auditCfg.Node = cfg.NodeID
	uncommitted := new(atomic.Int64)
	auditCfg.Pending = func() int { return int(uncommitted.Load()) }
	alog, err := audit.New(auditCfg, logger.With("component", "audit"), reg)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	p, err := assemble(ctx, cfg, logger, reg, bearer, nil, alog)
	if err != nil {
		_ = alog.Close()
		return nil, err
	}
	p.uncommitted = uncommitted
	p.policies.Store(mgr)
	p.polMetrics.reloaded(first)
	reloaded.Store(p)
	return p, nil
}

// assemble wires a Proxy from its parts; tests use it with fakes.
func assemble(ctx context.Context, cfg *Config, logger *slog.Logger, reg *prometheus.Registry,
	an authn.Authenticator, pol decider, alog auditLog) (*Proxy, error) {
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	p := &Proxy{cfg: cfg, log: logger, clock: time.Now, registry: reg, authn: an, policy: pol, audit: alog,
		metrics: newMetrics(reg), polMetrics: newPolicyMetrics(reg), limiter: newUnauthLimiter(cfg.Limits.UnauthenticatedRPS), uncommitted: new(atomic.Int64)}
	if cfg.Audit.Now != nil {
		p.clock = cfg.Audit.Now
	}
	if pol != nil {
		p.polMetrics.revision(pol.Revision())
	}
	p.classifier = classifier{fhirBase: cfg.Upstream.FHIRBase}
	for _, u := range []string{cfg.publicURL.String(), cfg.upstreamURL.String()} {
		p.classifier.bases = append(p.classifier.bases, u+cfg.Upstream.FHIRBase)
	}
	for i, rc := range cfg.Routes {
		r, err := compileRoute(i, rc)
		if err != nil {
			return nil, err
		}
		p.classifier.routes = append(p.classifier.routes, r)
	}
	var err error
	if p.rp, err = p.newForwarder(); err != nil {
		return nil, err
	}
	// The proxy's own upstream reads (the current version of a write) use
	// the forwarder's transport: same TLS, pool and service identity.
	p.upstream = &http.Client{Transport: p.rp.Transport, Timeout: cfg.Upstream.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if cfg.Policy.Relationships.Source == policy.RelationshipsFHIR {
		p.rels = newRelationships(cfg.Policy.Relationships, p.upstream, cfg.upstreamURL.String()+cfg.Upstream.FHIRBase,
			p.classifier.bases, p.now, logger.With("component", "relationships"), reg)
	}
	if cfg.ssoEnabled() {
		if p.sso, err = newSSO(cfg, logger, reg); err != nil {
			return nil, fmt.Errorf("browser sign-in: %w", err)
		}
	}
	if cfg.Assertion.SigningKeyFile != "" {
		if p.asserter, err = authn.NewAsserter(cfg.Assertion, cfg.publicURL.String(), nil, nil); err != nil {
			return nil, fmt.Errorf("assertion: %w", err)
		}
	}
	actx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	p.stopAggregator, p.aggregatorDone = cancel, make(chan struct{})
	go func() {
		defer close(p.aggregatorDone)
		if p.sso != nil {
			go p.sso.run(actx, cfg.Session.ActivityFlush, p.now)
		}
		p.runAggregator(actx, cfg.Audit.AggregateInterval)
	}()
	return p, nil
}

// Close flushes pending aggregated events and closes the audit log.
func (p *Proxy) Close() error {
	var err error
	p.closeOnce.Do(func() {
		p.stopAggregator()
		<-p.aggregatorDone
		err = p.audit.Close()
	})
	return err
}

// Serve runs the proxy listener (and the admin listener, if adminLn is not
// nil) until ctx ends, then shuts both down gracefully.
func (p *Proxy) Serve(ctx context.Context, ln, adminLn net.Listener) error {
	lim := p.cfg.Limits
	errLog := log.New(slogWriter{p.log, "http server error"}, "", 0)
	srv := &http.Server{
		Handler:           p,
		ReadHeaderTimeout: lim.ReadHeaderTimeout,
		ReadTimeout:       lim.ReadTimeout,
		IdleTimeout:       lim.IdleTimeout,
		MaxHeaderBytes:    int(lim.MaxHeaderBytes),
		ErrorLog:          errLog,
		// OPTIONS * goes to the pipeline too (and is refused and audited).
		DisableGeneralOptionsHandler: true,
	}
	if p.cfg.TLS.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(p.cfg.TLS.CertFile, p.cfg.TLS.KeyFile)
		if err != nil {
			return fmt.Errorf("tls.cert_file/key_file: %w", err)
		}
		srv.TLSConfig = &tls.Config{MinVersion: tlsVersion(p.cfg.TLS.MinVersion), Certificates: []tls.Certificate{cert}}
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	servers := []*http.Server{srv}
	errc := make(chan error, 2)
	if m := p.policies.Load(); m != nil {
		wctx, stopWatch := context.WithCancel(ctx)
		watching := make(chan struct{})
		defer func() { stopWatch(); <-watching }() // a reload under way finishes before p.Close
		go func() {
			defer close(watching)
			if err := m.Run(wctx); err != nil {
				p.log.Error("policy reloads on change are off", "error", err)
			}
		}()
	}
	go func() { errc <- srv.Serve(ln) }()
	if adminLn != nil {
		admin := &http.Server{Handler: p.AdminHandler(), ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout: 30 * time.Second, IdleTimeout: 60 * time.Second, ErrorLog: errLog}
		servers = append(servers, admin)
		go func() { errc <- admin.Serve(adminLn) }()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	for _, s := range servers {
		_ = s.Shutdown(sctx)
	}
	if m := p.policies.Load(); m != nil {
		m.Wait() // an admin's reload outlasting Shutdown is audited before Close
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// ListenAndServe binds listen and admin.listen from the config and serves.
func (p *Proxy) ListenAndServe(ctx context.Context) error {
	ln, err := net.Listen("tcp", p.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	var adminLn net.Listener
	if p.cfg.Admin.Listen != "" {
		if adminLn, err = net.Listen("tcp", p.cfg.Admin.Listen); err != nil {
			ln.Close()
			return fmt.Errorf("admin.listen: %w", err)
		}
	}
	p.log.Info("serving", "listen", ln.Addr().String(), "tls", p.cfg.TLS.CertFile != "", "policy_revision", p.currentPolicy().Revision())
	return p.Serve(ctx, ln, adminLn)
}

func tlsVersion(v string) uint16 {
	if v == "1.3" {
		return tls.VersionTLS13
	}
	return tls.VersionTLS12
}

// Check does what New would do short of opening listeners and the audit
// log: it compiles the policy, loads TLS material and builds the upstream
// transport. `chartguard config check` uses it.
func Check(ctx context.Context, cfg *Config) error {
	discard := slog.New(slog.DiscardHandler)
	// A bundle is only fetched by serve; here its settings and key are
	// checked.
	if cfg.Policy.Bundle.URL != "" {
		if err := policy.CheckBundle(cfg.Policy.Bundle); err != nil {
			return fmt.Errorf("policy: %w", err)
		}
	} else if _, err := policy.Load(ctx, cfg.Policy, discard); err != nil {
		return fmt.Errorf("policy: %w", err)
	}
	if cfg.TLS.CertFile != "" {
		if _, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile); err != nil {
			return fmt.Errorf("tls.cert_file/key_file: %w", err)
		}
	}
	if cfg.Audit.SigningKeyFile != "" {
		if _, err := audit.LoadSignerFile(cfg.Audit.SigningKeyFile); err != nil {
			return fmt.Errorf("audit.signing_key_file: %w", err)
		}
	}
	_, err := upstreamTransport(cfg)
	return err
}
