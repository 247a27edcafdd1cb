package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/chartguard/chartguard/examples/demo/dex"
	"github.com/chartguard/chartguard/examples/fhir-demo/fhirserver"
	"github.com/chartguard/chartguard/proxy"
)

// readyTimeout bounds the wait for ChartGuard to become ready.
const readyTimeout = 15 * time.Second

// errNotReady is returned by [startDemo] when ChartGuard does not become
// ready (see [demo.waitReady]).
var errNotReady = errors.New("demo: not ready")

// options configures [startDemo]. Every address must be loopback.
type options struct {
	Listen    string // ChartGuard ("127.0.0.1:8443"; port 0 = ephemeral)
	FHIRAddr  string // the FHIR upstream
	DexAddr   string // Dex
	PolicyDir string // the default policy, copied and extended (see copyPolicy)
	// IdleTimeout is session.idle_timeout; 0 = 15m (see sessionTimes). Tests
	// set seconds to watch sessions end in real time.
	IdleTimeout time.Duration
	Logger      *slog.Logger
}

// defaultIdleTimeout and defaultActivityFlush are ChartGuard's own session
// defaults (session.idle_timeout, session.activity_flush).
const (
	defaultIdleTimeout   = 15 * time.Minute
	defaultActivityFlush = 5 * time.Second
)

// sessionTimes is session.idle_timeout and session.activity_flush for an
// idle timeout (0 = the default). ChartGuard refuses an activity_flush not
// shorter than idle_timeout, so a seconds-long idle timeout gets a flush of
// a quarter of it.
func sessionTimes(idle time.Duration) (time.Duration, time.Duration) {
	if idle <= 0 {
		idle = defaultIdleTimeout
	}
	return idle, min(defaultActivityFlush, idle/4)
}

// demo is the running demo: the FHIR upstream, Dex, and ChartGuard in
// front of the upstream with Dex as its identity provider.
type demo struct {
	URL      string // ChartGuard, "http://127.0.0.1:<port>"
	AdminURL string // ChartGuard's admin listener
	FHIRBase string // the upstream's FHIR base, bypassing ChartGuard
	IdP      *dex.IdP

	dir      string // temporary: secrets, policy copy, audit log
	fhir     *http.Server
	fhirDone *background
	proxy    *proxy.Proxy
	cgDone   *background
	cancel   context.CancelFunc

	closeOnce sync.Once
	closeErr  error
}

// background is a server goroutine; err is set before done closes.
type background struct {
	done chan struct{}
	err  error
}

func goServe(serve func() error) *background {
	b := &background{done: make(chan struct{})}
	go func() { b.err = serve(); close(b.done) }()
	return b
}

// startDemo starts the three servers. On error, whatever started is
// stopped again. ctx bounds the start only.
func startDemo(ctx context.Context, o options) (d *demo, err error) {
	d = &demo{}
	defer func() {
		if err != nil {
			_ = d.Close()
			d = nil
		}
	}()
	// Listen first: Dex must know ChartGuard's callback URL, which holds
	// the port (ephemeral in tests).
	cgLn, err := dex.ListenLoopback(o.Listen)
	if err != nil {
		return d, fmt.Errorf("-listen: %w", err)
	}
	defer closeOnError(&err, cgLn)
	fhirLn, err := dex.ListenLoopback(o.FHIRAddr)
	if err != nil {
		return d, fmt.Errorf("-fhir-addr: %w", err)
	}
	defer closeOnError(&err, fhirLn)
	adminLn, err := dex.ListenLoopback("127.0.0.1:0")
	if err != nil {
		return d, fmt.Errorf("admin listener: %w", err)
	}
	defer closeOnError(&err, adminLn)
	d.URL = "http://" + cgLn.Addr().String()
	d.AdminURL = "http://" + adminLn.Addr().String()

	d.IdP, err = dex.Start(ctx, dex.Options{RedirectURL: d.URL + "/.chartguard/callback", Addr: o.DexAddr, Logger: o.Logger})
	if err != nil {
		return d, fmt.Errorf("-dex-addr: %w", err)
	}
	if d.dir, err = os.MkdirTemp("", "chartguard-demo-"); err != nil {
		return d, err
	}
	cfg, err := d.config(cgLn.Addr().String(), "http://"+fhirLn.Addr().String(), o.PolicyDir, o.IdleTimeout)
	if err != nil {
		return d, err
	}
	if d.proxy, err = proxy.New(ctx, cfg, o.Logger); err != nil {
		return d, fmt.Errorf("chartguard: %w", err)
	}

	d.FHIRBase = "http://" + fhirLn.Addr().String() + fhirserver.DefaultBase
	d.fhir = &http.Server{
		Handler:           fhirserver.New(fhirserver.Options{}),
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		ErrorLog:          slog.NewLogLogger(o.Logger.Handler(), slog.LevelWarn),
	}
	d.fhirDone = goServe(func() error { return d.fhir.Serve(fhirLn) })
	// ChartGuard runs until Close, not until the start ctx ends.
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	d.cancel = cancel
	d.cgDone = goServe(func() error { return d.proxy.Serve(sctx, cgLn, adminLn) })
	if err := d.waitReady(ctx); err != nil {
		return d, err
	}
	return d, nil
}

// waitReady polls ChartGuard's /readyz until it answers "ready": policy
// loaded, audit log writable, and Dex's discovery and keys fetched.
//
// Why: besides not printing a URL that does not work yet, this fetches
// discovery before any browser arrives. authn's discovery (login.go,
// discovery.cached) answers "identity provider unavailable" to a sign-in
// that starts while the first discovery fetch is still in flight, so two
// tabs opened at once would otherwise see one 503.
func (d *demo) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	c := &http.Client{Timeout: readyTimeout}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.AdminURL+"/readyz", nil)
		if err != nil {
			return err
		}
		if resp, err := c.Do(req); err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK && string(body) == "ready\n" {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: ChartGuard not ready within %s", errNotReady, readyTimeout)
		case <-tick.C:
		}
	}
}

func closeOnError(err *error, ln net.Listener) {
	if *err != nil {
		_ = ln.Close()
	}
}

// config writes the secrets and the policy copy into d.dir and parses
// ChartGuard's config exactly as `chartguard serve` does.
func (d *demo) config(listen, upstream, policyDir string, sessionIdle time.Duration) (*proxy.Config, error) {
	idle, flush := sessionTimes(sessionIdle)
	secretFile := filepath.Join(d.dir, "client-secret")
	if err := os.WriteFile(secretFile, []byte(d.IdP.ClientSecret), 0o600); err != nil {
		return nil, err
	}
	tok := make([]byte, 32)
	if _, err := rand.Read(tok); err != nil {
		return nil, err
	}
	tokenFile := filepath.Join(d.dir, "admin-token")
	if err := os.WriteFile(tokenFile, []byte(base64.RawURLEncoding.EncodeToString(tok)), 0o600); err != nil {
		return nil, err
	}
	policy := filepath.Join(d.dir, "policy")
	if err := copyPolicy(policyDir, policy); err != nil {
		return nil, err
	}
	var roleMap strings.Builder
	for _, role := range dex.Roles() {
		fmt.Fprintf(&roleMap, "    %s: %s\n", dex.GroupPrefix+role, role)
	}
	raw := fmt.Sprintf(`node_id: demo
listen: %q
public_url: %q
admin: {listen: %q, token_file: %q}
upstream: {url: %q, fhir_base: %s}
oidc:
  issuer: %q
  client_id: %s
  client_secret_file: %q
  scopes: [openid, profile, email, groups]
  roles_claim: groups
  # Dex cannot emit fhirUser: the demo's care teams are keyed by email.
  fhir_user_claim: email
  role_map:
%s# Loopback, plain http: session cookies without Secure (refused elsewhere).
session: {insecure_dev: true, idle_timeout: %s, activity_flush: %s}
policy: {dir: %q}
audit: {dir: %q}
`, listen, "http://"+listen, "127.0.0.1:0", tokenFile, upstream, fhirserver.DefaultBase,
		d.IdP.Issuer, d.IdP.ClientID, secretFile, roleMap.String(), idle, flush, policy, filepath.Join(d.dir, "audit"))
	cfg, err := proxy.ParseConfig([]byte(raw), os.LookupEnv)
	if err != nil {
		return nil, fmt.Errorf("chartguard config: %w", err)
	}
	return cfg, nil
}

// Close stops ChartGuard, Dex and the upstream and deletes the temporary
// directory (audit log included). It is safe to call more than once.
func (d *demo) Close() error {
	d.closeOnce.Do(func() {
		var errs []error
		if d.cancel != nil {
			d.cancel()
			<-d.cgDone.done
			errs = append(errs, d.cgDone.err)
		}
		if d.proxy != nil {
			errs = append(errs, d.proxy.Close())
		}
		if d.IdP != nil {
			errs = append(errs, d.IdP.Close())
		}
		if d.fhir != nil {
			ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
			errs = append(errs, d.fhir.Shutdown(ctx))
			cancel()
			<-d.fhirDone.done
			if !errors.Is(d.fhirDone.err, http.ErrServerClosed) {
				errs = append(errs, d.fhirDone.err)
			}
		}
		if d.dir != "" {
			errs = append(errs, os.RemoveAll(d.dir))
		}
		d.closeErr = errors.Join(errs...)
	})
	return d.closeErr
}

// stopped is closed when a server stops on its own (before Close).
func (d *demo) stopped() <-chan struct{} {
	c := make(chan struct{})
	go func() {
		select {
		case <-d.cgDone.done:
		case <-d.fhirDone.done:
		}
		close(c)
	}()
	return c
}
