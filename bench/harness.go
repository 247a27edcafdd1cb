package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"runtime/pprof"
	"time"

	"github.com/chartguard/chartguard/audit"
	"github.com/chartguard/chartguard/examples/fhir-demo/devissuer"
	"github.com/chartguard/chartguard/examples/fhir-demo/fhirserver"
	"github.com/chartguard/chartguard/internal/heapfloor"
	"github.com/chartguard/chartguard/proxy"
)

// LabelKey is the runtime/pprof label naming the component a goroutine
// belongs to; its values are the Comp* constants.
const LabelKey = "bench.component"

// Component label values.
const (
	CompChartGuard = "chartguard"
	CompUpstream   = "upstream"
	CompBare       = "bare-proxy"
	CompIssuer     = "issuer"
	CompLoad       = "loadgen"
)

// Target names, as shown in reports.
const (
	NameDirect     = "upstream direct"
	NameBare       = "bare proxy"
	NameChartGuard = "ChartGuard"
)

// Defaults for [Options].
const (
	DefaultTokens = 1000
	audience      = "chartguard"
	shutdownWait  = 15 * time.Second
)

// ErrNoPolicy is returned by [Start] when no policy directory is given and
// configs/policy cannot be found above the working directory.
var ErrNoPolicy = errors.New("bench: configs/policy not found; set Options.PolicyDir")

// Options configures [Start].
type Options struct {
	// Tokens is the number of distinct physician tokens (one subject each)
	// the mix rotates over. If zero, 1000.
	Tokens int
	// AuditDir is ChartGuard's audit directory; it must not exist or be an
	// empty 0700 directory. If empty, a temporary directory that Close
	// removes.
	AuditDir string
	// PolicyDir is the Rego policy directory. If empty, configs/policy in
	// the working directory or the nearest parent that has one.
	PolicyDir string
	// EvalTimeout is ChartGuard's policy.eval_timeout. If zero, the
	// product default (50ms). Tests under -race on a busy machine raise
	// it: a cold evaluation can then exceed 50ms of wall time, and a
	// timed-out evaluation is a denial (403), which would fail the run.
	EvalTimeout time.Duration
	// NonDurableAudit sets audit.durable to false (no fsync per batch).
	// A diagnostic only: it shows what the fsync costs; the product
	// default, and every reported number, is durable.
	NonDurableAudit bool
	// Logger receives ChartGuard's logs. If nil, they are discarded.
	Logger *slog.Logger
}

// Target is one HTTP endpoint under test; URL has no trailing slash and
// request paths (which start with /fhir) are appended to it.
type Target struct {
	Name string
	URL  string
}

// Harness is the running set of servers. Build it with [Start]; Close it.
type Harness struct {
	// Direct is the upstream itself, Bare the plain reverse proxy in front
	// of it, ChartGuard the product in front of it.
	Direct, Bare, ChartGuard Target
	// Mix is the request mix, rotated over by the load generator.
	Mix []Request

	auditDir   string
	workDir    string // the harness's temporary files; removed by Close
	adminURL   string
	adminToken string
	servers    []*http.Server
	proxy      *proxy.Proxy
	stopProxy  context.CancelFunc
	proxyDone  chan error
	stopFloor  func() // the collector's heap floor, as serve sets it
}

// Start starts the upstream, the issuer, the bare proxy and ChartGuard on
// 127.0.0.1 ephemeral ports and mints the tokens of the mix. ctx bounds
// startup only; the servers run until Close.
func Start(ctx context.Context, opts Options) (_ *Harness, err error) {
	if opts.Tokens <= 0 {
		opts.Tokens = DefaultTokens
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.PolicyDir == "" {
		if opts.PolicyDir, err = findPolicyDir(); err != nil {
			return nil, err
		}
	}
	h := &Harness{}
	defer func() {
		if err != nil {
			_ = h.Close()
		}
	}()
	if h.workDir, err = os.MkdirTemp("", "chartguard-bench-"); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	if h.auditDir = opts.AuditDir; h.auditDir == "" {
		h.auditDir = filepath.Join(h.workDir, "audit")
	}
	lns, err := listenN(5)
	if err != nil {
		return nil, err
	}
	upLn, issLn, bareLn, cgLn, adminLn := lns[0], lns[1], lns[2], lns[3], lns[4]
	upURL, issURL := baseURL(upLn), baseURL(issLn)

	iss, err := devissuer.New(devissuer.Options{Issuer: issURL, Audience: audience})
	if err != nil {
		closeAll(lns)
		return nil, fmt.Errorf("bench: issuer: %w", err)
	}
	up := fhirserver.New(fhirserver.Options{})
	target, _ := url.Parse(upURL) // baseURL is always a valid URL
	bare := &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(target) },
		Transport: upstreamLikeTransport(),
	}
	h.serve(upLn, up, CompUpstream)
	h.serve(issLn, iss, CompIssuer)
	h.serve(bareLn, bare, CompBare)
	h.Direct = Target{Name: NameDirect, URL: upURL}
	h.Bare = Target{Name: NameBare, URL: baseURL(bareLn)}

	if err := h.startChartGuard(ctx, cgLn, adminLn, opts, upURL, issURL); err != nil {
		return nil, err
	}
	h.ChartGuard = Target{Name: NameChartGuard, URL: baseURL(cgLn)}

	panels, err := carePanels(ctx, upURL, opts.PolicyDir)
	if err != nil {
		return nil, err
	}
	clinicians, err := mintTokens(ctx, iss, opts.Tokens, panels)
	if err != nil {
		return nil, err
	}
	if h.Mix, err = buildMix(clinicians); err != nil {
		return nil, err
	}
	return h, nil
}

// Targets returns the three targets in measuring order.
func (h *Harness) Targets() []Target { return []Target{h.Direct, h.Bare, h.ChartGuard} }

// AuditDir is ChartGuard's audit directory. After Close it holds every
// event ChartGuard committed, unless the harness made (and removed) it
// because Options.AuditDir was empty.
func (h *Harness) AuditDir() string { return h.auditDir }

// Close stops ChartGuard first (draining its connections and closing the
// audit log), then the other servers, then removes a temporary audit
// directory.
func (h *Harness) Close() error {
	var errs []error
	if h.stopProxy != nil {
		h.stopProxy()
		errs = append(errs, <-h.proxyDone)
		h.stopProxy = nil
	}
	if h.proxy != nil {
		errs = append(errs, h.proxy.Close())
		h.proxy = nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), shutdownWait)
	defer cancel()
	for _, s := range h.servers {
		errs = append(errs, s.Shutdown(ctx))
	}
	h.servers = nil
	if h.stopFloor != nil {
		h.stopFloor()
		h.stopFloor = nil
	}
	if h.workDir != "" {
		errs = append(errs, os.RemoveAll(h.workDir))
		h.workDir = ""
	}
	return errors.Join(errs...)
}

// serve runs handler on ln in a goroutine labelled comp; connection
// goroutines inherit the label.
func (h *Harness) serve(ln net.Listener, handler http.Handler, comp string) {
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}
	h.servers = append(h.servers, srv)
	pprof.Do(context.Background(), pprof.Labels(LabelKey, comp), func(context.Context) {
		go func() { _ = srv.Serve(ln) }()
	})
}

// startChartGuard builds the config text and starts ChartGuard as
// `chartguard serve` does, with its admin listener (for /metrics) on
// adminLn. proxy.New runs under the chartguard label so the goroutines it
// starts (audit writer, aggregator) carry it too.
func (h *Harness) startChartGuard(ctx context.Context, ln, adminLn net.Listener, opts Options, upURL, issURL string) error {
	tokenFile, err := h.writeAdminToken()
	if err != nil {
		closeAll([]net.Listener{ln, adminLn})
		return err
	}
	keyFile := filepath.Join(h.workDir, "audit.key")
	skey, _, err := audit.GenerateKey("bench/audit/chartguard")
	if err == nil {
		err = os.WriteFile(keyFile, []byte(skey+"\n"), 0o600)
	}
	if err != nil {
		closeAll([]net.Listener{ln, adminLn})
		return fmt.Errorf("bench: audit key: %w", err)
	}
	raw := configYAML(configValues{publicURL: baseURL(ln), upstream: upURL, issuer: issURL,
		policyDir: opts.PolicyDir, auditDir: h.auditDir, tokenFile: tokenFile, keyFile: keyFile,
		evalTimeout: opts.EvalTimeout, durable: !opts.NonDurableAudit})
	cfg, err := proxy.ParseConfig([]byte(raw), func(string) (string, bool) { return "", false })
	if err != nil {
		closeAll([]net.Listener{ln, adminLn})
		return fmt.Errorf("bench: chartguard config: %w", err)
	}
	// serve sets the collector's heap floor for its process; here the
	// process is shared, so every target runs under it alike.
	if stop, ok := heapfloor.Set(cfg.Runtime.MinHeap); ok {
		h.stopFloor = stop
	}
	var p *proxy.Proxy
	pprof.Do(ctx, pprof.Labels(LabelKey, CompChartGuard), func(ctx context.Context) {
		if p, err = proxy.New(ctx, cfg, opts.Logger); err != nil {
			return
		}
		sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		h.proxy, h.stopProxy, h.proxyDone = p, cancel, make(chan error, 1)
		go func() { h.proxyDone <- p.Serve(sctx, ln, adminLn) }()
	})
	if err != nil {
		closeAll([]net.Listener{ln, adminLn})
		return fmt.Errorf("bench: chartguard: %w", err)
	}
	h.adminURL = baseURL(adminLn)
	return nil
}

// writeAdminToken writes a random admin token into a 0600 file in the
// work directory.
func (h *Harness) writeAdminToken() (string, error) {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("bench: admin token: %w", err)
	}
	h.adminToken = hex.EncodeToString(b[:])
	path := filepath.Join(h.workDir, "admin-token")
	if err := os.WriteFile(path, []byte(h.adminToken+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("bench: admin token: %w", err)
	}
	return path, nil
}

// configValues fill in [configYAML].
type configValues struct {
	publicURL, upstream, issuer    string
	policyDir, auditDir, tokenFile string
	keyFile                        string        // audit.signing_key_file
	evalTimeout                    time.Duration // 0: the product default
	durable                        bool
}

// configYAML is ChartGuard's config: bearer tokens from the dev issuer,
// the default policy, the durable fail-closed audit log with no stdout
// sink, the admin listener behind a token.
func configYAML(v configValues) string {
	timeout := ""
	if v.evalTimeout > 0 {
		timeout = "\n  eval_timeout: " + v.evalTimeout.String()
	}
	return fmt.Sprintf(`node_id: bench
listen: "127.0.0.1:0"
public_url: %q
admin:
  listen: "127.0.0.1:0"
  token_file: %q
  metrics_auth: token
upstream:
  url: %q
  fhir_base: /fhir
oidc:
  issuer: %q
  client_id: chartguard
  audience: %q
  roles_claim: groups
  role_map:
    chartguard-physician: physician
    chartguard-nurse: nurse
    chartguard-registration: registration
policy:
  dir: %q%s
audit:
  dir: %q
  durable: %t
  fail_closed: true
  signing_key_file: %q
  sinks: []
`, v.publicURL, v.tokenFile, v.upstream, v.issuer, audience, v.policyDir, timeout, v.auditDir, v.durable, v.keyFile)
}

// upstreamLikeTransport matches ChartGuard's upstream transport settings
// (connection pool, no compression), so the bare proxy is not slowed by
// http.DefaultTransport's two idle connections per host.
func upstreamLikeTransport() *http.Transport {
	return &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        512,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
}

func listenN(n int) ([]net.Listener, error) {
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			closeAll(lns)
			return nil, fmt.Errorf("bench: listen: %w", err)
		}
		lns = append(lns, ln)
	}
	return lns, nil
}

func closeAll(lns []net.Listener) {
	for _, ln := range lns {
		ln.Close()
	}
}

func baseURL(ln net.Listener) string { return "http://" + ln.Addr().String() }

// findPolicyDir looks for configs/policy in the working directory and its
// parents (the bench module lives one level below the repository root).
func findPolicyDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrNoPolicy, err)
	}
	for {
		cand := filepath.Join(dir, "configs", "policy")
		if _, err := os.Stat(filepath.Join(cand, "chartguard.rego")); err == nil {
			return cand, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", ErrNoPolicy
		}
		dir = parent
	}
}
