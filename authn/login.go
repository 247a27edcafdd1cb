package authn

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"

	"github.com/chartguard/chartguard/chartguard"
)

var (
	// ErrLogin wraps every [Login.Finish] failure. The wrapped detail is
	// fixed text naming the failed check, safe to log and audit; it never
	// contains the code, a token or claim values. An IdP outage also
	// matches [ErrUnavailable]; a user without role also [ErrNoRole].
	ErrLogin = errors.New("authn: login failed")
	// ErrNoRole means the user authenticated but no group maps to a role
	// through oidc.role_map. Audit it as login failure "no_role". Errors
	// matching it also match [ErrLogin]: test for ErrNoRole first.
	ErrNoRole = errors.New("authn: no role")
)

// Reasons a login is refused, wrapped with [ErrLogin].
var (
	errLoginRequest = errors.New("login request incomplete")
	errCodeMissing  = errors.New("authorization code missing or too long")
	errExchange     = errors.New("token endpoint refused the code")
	errNoIDToken    = errors.New("token response has no ID token")
	errNonce        = errors.New("nonce mismatch")
	errAZP          = errors.New("azp mismatch")
	errAtHash       = errors.New("at_hash mismatch")
	errAuthTime     = errors.New("auth_time missing or too old")
	errBadRedirect  = errors.New("redirect URL must be an absolute https URL without query or fragment (http only on loopback)")
	errEndpointURL  = errors.New("discovery: endpoint must be an absolute https URL without fragment (http only on loopback)")
	errNoEndpoints  = errors.New("discovery: authorization_endpoint or token_endpoint missing")
)

const (
	// randomBytes is the entropy of state, nonce and PKCE verifier: 256
	// bits, 43 base64url characters (RFC 7636 §4.1 minimum length).
	randomBytes = 32
	// maxCodeBytes bounds the code taken from the callback URL.
	maxCodeBytes = 4 << 10
	// maxIDTokenBytes bounds the ID token: larger than MaxTokenBytes as
	// ID tokens may carry many groups; it comes from the IdP over TLS.
	maxIDTokenBytes = 64 << 10
)

// LoginRequest is what the proxy keeps server-side for one login attempt
// (keyed by State) and binds to the browser; all values random (crypto/rand
// or [Config.Rand]), single use.
type LoginRequest struct {
	State, Nonce, Verifier string // Verifier: PKCE code_verifier (43+ chars)
	RedirectURL            string // the callback URL used in the request
}

// LoginResult is a completed browser login.
type LoginResult struct {
	Identity chartguard.Identity
	AuthTime time.Time // auth_time, else iat
	AMR      []string  // amr claim if any
	IDToken  string    // raw, kept server-side only as the logout hint
}

// Login is the OpenID Connect relying party for browser SSO: authorization
// code flow with PKCE (S256), state and nonce. It is safe for concurrent
// use. The IdP is discovered lazily: [NewLogin] does no I/O.
type Login struct {
	cfg      Config
	log      *slog.Logger
	now      func() time.Time
	rand     io.Reader
	keys     *keySet
	verifier *oidc.IDTokenVerifier
	client   *http.Client // discovery and token endpoint
	disc     discovery
}

// NewLogin validates cfg and returns a Login. ClientID is required;
// ClientSecret is optional (empty = public client). If logger is nil,
// nothing is logged.
func NewLogin(cfg Config, logger *slog.Logger) (*Login, error) {
	cfg.SetDefaults()
	if len(cfg.Scopes) == 0 {
		cfg.Scopes = DefaultScopes()
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("authn: %w", err)
	}
	if cfg.ClientID == "" {
		return nil, errors.New("authn: oidc.client_id: required for browser login: set it to ChartGuard's client at the IdP")
	}
	cfg.SigningAlgs = slices.Clone(cfg.SigningAlgs)
	cfg.Scopes = slices.Clone(cfg.Scopes)
	cfg.RoleMap = maps.Clone(cfg.RoleMap)
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	rnd := cfg.Rand
	if rnd == nil {
		rnd = rand.Reader
	}
	m, err := newMetrics(nil)
	if err != nil {
		return nil, err
	}
	client := newTokenClient(cfg.HTTPClient)
	keys := newKeySet(cfg, client, now, logger, m)
	verifier := oidc.NewVerifier(cfg.Issuer, keys, &oidc.Config{
		ClientID:             cfg.ClientID,
		SupportedSigningAlgs: cfg.SigningAlgs,
		// Times are checked with oidc.clock_skew by claims.checkTimes.
		SkipExpiryCheck: true,
		Now:             now,
	})
	l := &Login{cfg: cfg, log: logger, now: now, rand: rnd, keys: keys, verifier: verifier, client: client}
	l.disc = discovery{issuer: cfg.Issuer, client: client, now: now, sem: make(chan struct{}, 1)}
	return l, nil
}

// newTokenClient returns the client for discovery, JWKS and the token
// endpoint: [newFetchClient] that never follows redirects and always has a
// timeout. Threat: a redirected token request would carry the code,
// verifier and client secret to wherever the redirect points.
func newTokenClient(c *http.Client) *http.Client {
	cp := *newFetchClient(c)
	cp.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if cp.Timeout <= 0 || cp.Timeout > fetchTimeout {
		cp.Timeout = fetchTimeout
	}
	return &cp
}

// Start returns the IdP authorization URL (code flow, PKCE S256, state,
// nonce, scope from oidc.scopes, max_age when set; prompt is not sent) and
// the request to keep. redirectURL is the callback and must be an absolute
// https URL (http only on loopback). It fails with [ErrUnavailable] when
// the IdP cannot be discovered.
func (l *Login) Start(ctx context.Context, redirectURL string) (authURL string, req LoginRequest, err error) {
	if checkFetchURL(redirectURL) != nil {
		return "", LoginRequest{}, fmt.Errorf("authn: login: %w", errBadRedirect)
	}
	ep, err := l.disc.get(ctx)
	if err != nil {
		return "", LoginRequest{}, fmt.Errorf("authn: login: %w", err)
	}
	req = LoginRequest{RedirectURL: redirectURL}
	for _, p := range []*string{&req.State, &req.Nonce, &req.Verifier} {
		if *p, err = l.random(); err != nil {
			return "", LoginRequest{}, err
		}
	}
	opts := []oauth2.AuthCodeOption{
		oauth2.SetAuthURLParam("nonce", req.Nonce),
		oauth2.S256ChallengeOption(req.Verifier),
	}
	if l.cfg.MaxAge > 0 {
		opts = append(opts, oauth2.SetAuthURLParam("max_age", strconv.FormatInt(int64(l.cfg.MaxAge/time.Second), 10)))
	}
	return l.oauth2(ep, redirectURL).AuthCodeURL(req.State, opts...), req, nil
}

func (l *Login) random() (string, error) {
	b := make([]byte, randomBytes)
	if _, err := io.ReadFull(l.rand, b); err != nil {
		return "", fmt.Errorf("authn: login: random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func (l *Login) oauth2(ep *endpoints, redirectURL string) *oauth2.Config {
	return &oauth2.Config{
		ClientID:     l.cfg.ClientID,
		ClientSecret: l.cfg.ClientSecret,
		Endpoint:     oauth2.Endpoint{AuthURL: ep.auth, TokenURL: ep.token, AuthStyle: ep.authStyle(l.cfg.ClientSecret)},
		RedirectURL:  redirectURL,
		Scopes:       l.cfg.Scopes,
	}
}

// Finish exchanges code (with req's PKCE verifier) and verifies the ID
// token: signature with oidc.signing_algs only, iss exact, aud containing
// ClientID (and azp equal to it when present or when there are several
// audiences), exp/nbf/iat with oidc.clock_skew, nonce equal to req.Nonce,
// at_hash when present, and auth_time present and at most MaxAge old when
// MaxAge > 0. Claims map to the identity exactly as for bearer tokens.
// The caller must have matched the callback's state to req.State and
// must use req once. Every error matches [ErrLogin].
func (l *Login) Finish(ctx context.Context, req LoginRequest, code string) (*LoginResult, error) {
	res, err := l.finish(ctx, req, code)
	if err != nil {
		l.log.LogAttrs(ctx, slog.LevelDebug, "login refused", slog.String("reason", truncate(err.Error())))
		return nil, fmt.Errorf("%w: %w", ErrLogin, err)
	}
	return res, nil
}

func (l *Login) finish(ctx context.Context, req LoginRequest, code string) (*LoginResult, error) {
	if req.State == "" || req.Nonce == "" || len(req.Verifier) < 43 || checkFetchURL(req.RedirectURL) != nil {
		return nil, errLoginRequest
	}
	if code == "" || len(code) > maxCodeBytes {
		return nil, errCodeMissing
	}
	ep, err := l.disc.get(ctx)
	if err != nil {
		return nil, err
	}
	tok, err := l.exchange(ctx, ep, req, code)
	if err != nil {
		return nil, err
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" || len(raw) > maxIDTokenBytes {
		return nil, errNoIDToken
	}
	return l.verifyIDToken(ctx, raw, tok.AccessToken, req.Nonce)
}

// exchange redeems the code at the token endpoint. The IdP's error text is
// never passed on; a transport failure or 5xx is [ErrUnavailable].
func (l *Login) exchange(ctx context.Context, ep *endpoints, req LoginRequest, code string) (*oauth2.Token, error) {
	ctx = context.WithValue(ctx, oauth2.HTTPClient, l.client)
	tok, err := l.oauth2(ep, req.RedirectURL).Exchange(ctx, code, oauth2.VerifierOption(req.Verifier))
	if err == nil {
		return tok, nil
	}
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode < 500 {
		return nil, fmt.Errorf("%w (status %d)", errExchange, re.Response.StatusCode)
	}
	if errors.As(err, &re) && re.Response != nil {
		return nil, fmt.Errorf("%w: token endpoint status %d", ErrUnavailable, re.Response.StatusCode)
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return nil, fmt.Errorf("%w: token endpoint unreachable", ErrUnavailable)
}

// verifyIDToken checks the ID token and maps its claims.
func (l *Login) verifyIDToken(ctx context.Context, raw, accessToken, nonce string) (*LoginResult, error) {
	// Header first: foreign algorithms ("none", HS256) are refused before
	// any key fetch.
	if jws, err := jose.ParseSignedCompact(raw, l.keys.algs); err != nil || len(jws.Signatures) != 1 {
		return nil, errMalformed
	}
	tr := &sigTrace{}
	idt, err := l.verifier.Verify(context.WithValue(ctx, sigTraceKey{}, tr), raw)
	if err != nil {
		return nil, l.verifyError(tr)
	}
	var c claims
	if err := idt.Claims(&c); err != nil || c == nil {
		return nil, errClaims
	}
	now := l.now()
	if _, err := c.checkTimes(now, l.cfg.ClockSkew); err != nil {
		return nil, err
	}
	if err := l.checkIDClaims(c, idt, accessToken, nonce); err != nil {
		return nil, err
	}
	authTime, err := l.authTime(c, now)
	if err != nil {
		return nil, err
	}
	amr, err := c.stringList("amr")
	if err != nil {
		return nil, err
	}
	// The ID token's nonce and at_hash were checked above; without them
	// the claims map exactly as a bearer token's (principal refuses them
	// to keep ID tokens out of the API path).
	mapped := maps.Clone(c)
	delete(mapped, "nonce")
	delete(mapped, "at_hash")
	p, err := mapped.principal(&l.cfg)
	if err != nil {
		return nil, err
	}
	if len(p.Identity.Roles) == 0 {
		return nil, ErrNoRole
	}
	return &LoginResult{Identity: p.Identity, AuthTime: authTime, AMR: amr, IDToken: raw}, nil
}

func (l *Login) verifyError(tr *sigTrace) error {
	switch {
	case tr.err != nil:
		return tr.err
	case tr.payload != nil:
		return mismatch(tr.payload, l.cfg.Issuer, l.cfg.ClientID)
	default:
		return errMalformed
	}
}

// checkIDClaims checks nonce, azp and at_hash (OIDC Core §3.1.3.7, §3.1.3.8).
func (l *Login) checkIDClaims(c claims, idt *oidc.IDToken, accessToken, nonce string) error {
	got, err := c.str("nonce")
	if err != nil || got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(nonce)) != 1 {
		return errNonce
	}
	azp, err := c.str("azp")
	if err != nil {
		return errAZP
	}
	if (len(idt.Audience) > 1 || azp != "") && azp != l.cfg.ClientID {
		return errAZP
	}
	if !c.isNull("at_hash") {
		if accessToken == "" || idt.VerifyAccessToken(accessToken) != nil {
			return errAtHash
		}
	}
	return nil
}

// authTime returns auth_time (else iat, else the zero time). With MaxAge,
// auth_time is required and must be at most MaxAge (+ skew) old: the IdP
// may ignore max_age and reuse an old session.
func (l *Login) authTime(c claims, now time.Time) (time.Time, error) {
	at, ok, err := c.time("auth_time")
	if err != nil {
		return time.Time{}, errAuthTime
	}
	if ok && at.After(now.Add(l.cfg.ClockSkew)) {
		return time.Time{}, errAuthTime
	}
	if l.cfg.MaxAge > 0 && (!ok || now.Sub(at) > l.cfg.MaxAge+l.cfg.ClockSkew) {
		return time.Time{}, errAuthTime
	}
	if ok {
		return at, nil
	}
	iat, _, err := c.time("iat")
	return iat, err
}

// EndSessionURL is the IdP's RP-initiated logout URL (end_session_endpoint
// from discovery) with id_token_hint, client_id and, when not empty,
// post_logout_redirect_uri; or "" if the IdP offers none or cannot be
// discovered.
func (l *Login) EndSessionURL(ctx context.Context, idToken, postLogoutRedirect string) string {
	ep, err := l.disc.get(ctx)
	if err != nil || ep.endSession == "" {
		return ""
	}
	u, err := url.Parse(ep.endSession)
	if err != nil {
		return ""
	}
	q := u.Query()
	if idToken != "" {
		q.Set("id_token_hint", idToken)
	}
	q.Set("client_id", l.cfg.ClientID)
	if postLogoutRedirect != "" {
		q.Set("post_logout_redirect_uri", postLogoutRedirect)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// Ready reports whether discovery and the IdP's keys are loaded, loading
// them if not (subject to the refetch throttle). For /readyz.
func (l *Login) Ready(ctx context.Context) error {
	if _, err := l.disc.get(ctx); err != nil {
		return err
	}
	_, err := l.keys.current(ctx)
	return err
}

// endpoints are the IdP endpoints read from discovery.
type endpoints struct {
	auth, token, endSession string
	authMethods             []string // token_endpoint_auth_methods_supported
}

// authStyle picks how the client secret is sent: in the header
// (client_secret_basic, the OAuth default) unless the IdP only supports
// client_secret_post. A public client sends client_id in the body. Never
// auto-detect: that retries, sending the code twice.
func (e *endpoints) authStyle(secret string) oauth2.AuthStyle {
	if secret == "" {
		return oauth2.AuthStyleInParams
	}
	if len(e.authMethods) > 0 && !slices.Contains(e.authMethods, "client_secret_basic") &&
		slices.Contains(e.authMethods, "client_secret_post") {
		return oauth2.AuthStyleInParams
	}
	return oauth2.AuthStyleInHeader
}

// discovery loads the IdP's endpoints lazily, one fetch at a time, at most
// once per minRefreshInterval after a failure, and refreshes them after
// maxKeyAge, keeping the old ones if the refresh fails.
type discovery struct {
	issuer string
	client *http.Client
	now    func() time.Time
	sem    chan struct{} // held by the one fetch in progress

	mu       sync.Mutex
	ep       *endpoints
	fetched  time.Time
	tried    time.Time
	lastErr  error
	fetching bool // a fetch is running; concurrent callers wait for it
}

func (d *discovery) get(ctx context.Context) (*endpoints, error) {
	if ep, err, done := d.cached(); done {
		return ep, err
	}
	select {
	case d.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
	}
	defer func() { <-d.sem }()
	if ep, err, done := d.cached(); done {
		return ep, err
	}
	d.mu.Lock()
	d.tried, d.fetching = d.now(), true
	d.mu.Unlock()

	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchTimeout)
	defer cancel()
	ep, err := d.fetch(fctx)

	d.mu.Lock()
	defer d.mu.Unlock()
	d.fetching = false
	d.lastErr = err
	if err == nil {
		d.ep, d.fetched = ep, d.now()
	}
	if d.ep != nil {
		return d.ep, nil
	}
	return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// cached returns the endpoints (or the last error) when no fetch is due.
func (d *discovery) cached() (*endpoints, error, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	if d.ep != nil {
		if age := now.Sub(d.fetched); age >= 0 && age < maxKeyAge {
			return d.ep, nil, true
		}
	}
	if since := now.Sub(d.tried); !d.tried.IsZero() && since >= 0 && since < minRefreshInterval {
		if d.ep != nil {
			return d.ep, nil, true
		}
		if d.fetching {
			// The first fetch is still running: wait for it (on d.sem)
			// rather than report a failure that has not happened.
			return nil, nil, false
		}
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, d.lastErr), true
	}
	return nil, nil, false
}

// fetch reads discovery; go-oidc checks that it names our issuer exactly.
func (d *discovery) fetch(ctx context.Context) (*endpoints, error) {
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, d.client), d.issuer)
	if err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	var meta struct {
		Auth        string   `json:"authorization_endpoint"`
		Token       string   `json:"token_endpoint"`
		EndSession  string   `json:"end_session_endpoint"`
		AuthMethods []string `json:"token_endpoint_auth_methods_supported"`
	}
	if err := p.Claims(&meta); err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	if meta.Auth == "" || meta.Token == "" {
		return nil, errNoEndpoints
	}
	for _, u := range []string{meta.Auth, meta.Token, meta.EndSession} {
		if u != "" && checkEndpointURL(u) != nil {
			return nil, errEndpointURL
		}
	}
	return &endpoints{auth: meta.Auth, token: meta.Token, endSession: meta.EndSession, authMethods: meta.AuthMethods}, nil
}

// checkEndpointURL is [checkFetchURL] allowing a query, which some IdPs
// put in their endpoints (e.g. a tenant policy).
func checkEndpointURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errEndpointURL
	}
	u.RawQuery = ""
	if checkFetchURL(u.String()) != nil {
		return errEndpointURL
	}
	return nil
}
