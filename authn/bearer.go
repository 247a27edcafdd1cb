package authn

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/chartguard/chartguard/chartguard"
)

// Bearer authenticates API clients by the JWT access token in their
// Authorization header. It is safe for concurrent use and immutable after
// [NewBearer], apart from its key and token caches.
type Bearer struct {
	cfg      Config
	log      *slog.Logger
	now      func() time.Time
	keys     *keySet
	verifier *oidc.IDTokenVerifier
	cache    *tokenCache
	metrics  *metrics
}

var _ Authenticator = (*Bearer)(nil)

// NewBearer validates cfg and returns a Bearer. It does no I/O: the IdP
// is discovered on first use, so ChartGuard can start while the IdP is
// down (requests fail with [ErrUnavailable] until it is back). If logger
// is nil, nothing is logged; if reg is nil, metrics are not registered.
func NewBearer(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Bearer, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("authn: %w", err)
	}
	// Own copies: the caller's slices and maps must not change us later.
	cfg.SigningAlgs = slices.Clone(cfg.SigningAlgs)
	cfg.RoleMap = maps.Clone(cfg.RoleMap)
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	keys := newKeySet(cfg, newFetchClient(cfg.HTTPClient), now, logger, m)
	verifier := oidc.NewVerifier(cfg.Issuer, keys, &oidc.Config{
		ClientID:             cfg.Audience,
		SupportedSigningAlgs: cfg.SigningAlgs,
		// go-oidc has no leeway for exp and a fixed 5 minutes for nbf,
		// and ignores iat; we check all three with oidc.clock_skew.
		SkipExpiryCheck: true,
		Now:             now,
	})
	return &Bearer{
		cfg:      cfg,
		log:      logger,
		now:      now,
		keys:     keys,
		verifier: verifier,
		cache:    newTokenCache(cacheMaxEntries),
		metrics:  m,
	}, nil
}

// Authenticate verifies the request's bearer token and returns its
// principal. Errors match [ErrNoCredentials], [ErrInvalidCredentials] or
// [ErrUnavailable]; none contains the token.
func (b *Bearer) Authenticate(ctx context.Context, r *http.Request) (*chartguard.Principal, error) {
	p, err := b.authenticate(ctx, r)
	b.record(ctx, err)
	return p, err
}

// Ready reports whether the IdP's keys are loaded, loading them if not
// (subject to the refetch throttle). For /readyz.
func (b *Bearer) Ready(ctx context.Context) error {
	_, err := b.keys.current(ctx)
	return err
}

func (b *Bearer) authenticate(ctx context.Context, r *http.Request) (*chartguard.Principal, error) {
	if r == nil {
		return nil, ErrNoCredentials
	}
	raw, err := bearerToken(r.Header)
	if err != nil {
		return nil, err
	}
	key := tokenKey(sha256.Sum256([]byte(raw)))
	now := b.now()

	if e, ok := b.cache.get(key, now); ok {
		b.metrics.cacheHit.Inc()
		// Entries never outlive exp, but check it again on every hit
		// (DESIGN.md) so no change to the lifetime rule can skip it.
		if now.After(e.exp.Add(b.cfg.ClockSkew)) {
			b.cache.remove(key)
			return nil, invalid(errExpired)
		}
		return b.admit(key, e.principal)
	}
	b.metrics.cacheMiss.Inc()

	p, exp, err := b.verify(ctx, raw, now)
	if err != nil {
		return nil, err
	}
	p.TokenHash = hex.EncodeToString(key[:])
	out := clonePrincipal(p)
	if b.isRevoked(out) {
		return nil, invalid(errRevoked)
	}
	until := now.Add(cacheMaxAge)
	if exp.Before(until) {
		until = exp
	}
	if now.Before(until) {
		b.cache.put(key, cacheEntry{principal: p, exp: exp, until: until})
	}
	return out, nil
}

// admit hands out a copy of a cached principal unless it was revoked since.
func (b *Bearer) admit(key tokenKey, cached *chartguard.Principal) (*chartguard.Principal, error) {
	p := clonePrincipal(cached)
	if b.isRevoked(p) {
		b.cache.remove(key)
		return nil, invalid(errRevoked)
	}
	return p, nil
}

// isRevoked asks the revocation hook. p must be a copy the caller owns,
// never the cached original.
func (b *Bearer) isRevoked(p *chartguard.Principal) bool {
	return b.cfg.Revoked != nil && b.cfg.Revoked(p)
}

// verify checks the token fully: header, signature, iss, aud, times and
// claims. It returns the principal and the token's exp.
func (b *Bearer) verify(ctx context.Context, raw string, now time.Time) (*chartguard.Principal, time.Time, error) {
	// Header first: ID tokens and foreign algorithms are refused before
	// any key fetch they could otherwise trigger.
	if err := checkHeader(raw, b.keys.algs); err != nil {
		return nil, time.Time{}, invalid(err)
	}
	tr := &sigTrace{}
	tok, err := b.verifier.Verify(context.WithValue(ctx, sigTraceKey{}, tr), raw)
	if err != nil {
		return nil, time.Time{}, b.verifyError(tr)
	}
	var c claims
	if err := tok.Claims(&c); err != nil || c == nil {
		return nil, time.Time{}, invalid(errClaims)
	}
	exp, err := c.checkTimes(now, b.cfg.ClockSkew)
	if err != nil {
		return nil, time.Time{}, invalid(err)
	}
	p, err := c.principal(&b.cfg)
	if err != nil {
		return nil, time.Time{}, invalid(err)
	}
	return p, exp, nil
}

// verifyError turns a go-oidc failure into a fixed reason. go-oidc's own
// messages quote token claims, so they are never passed on.
func (b *Bearer) verifyError(tr *sigTrace) error {
	switch {
	case tr.err != nil && errors.Is(tr.err, ErrUnavailable):
		return tr.err
	case tr.err != nil:
		return invalid(tr.err)
	case tr.payload != nil:
		// The signature verified, so the payload is authentic and may be
		// read to say which of go-oidc's claim checks failed.
		return invalid(mismatch(tr.payload, b.cfg.Issuer, b.cfg.Audience))
	default:
		return invalid(errMalformed)
	}
}

// mismatch explains why go-oidc refused a correctly signed token.
func mismatch(payload []byte, issuer, audience string) error {
	c, err := parseClaims(payload)
	if err != nil {
		return err
	}
	if iss, err := c.str("iss"); err != nil || iss != issuer {
		return errIssuer
	}
	if aud, err := c.stringList("aud"); err != nil || !slices.Contains(aud, audience) {
		return errAudience
	}
	return errClaims
}

// checkHeader refuses tokens whose JOSE header shows they are not access
// tokens: typ, when present, must be JWT, at+jwt or application/at+jwt
// (RFC 9068 §2.1; any case). ID tokens typically carry "JWT" or none, so
// the nonce/at_hash claim check backs this up.
func checkHeader(raw string, algs []jose.SignatureAlgorithm) error {
	jws, err := jose.ParseSignedCompact(raw, algs)
	if err != nil || len(jws.Signatures) != 1 {
		return errMalformed
	}
	typ, ok := jws.Signatures[0].Header.ExtraHeaders[jose.HeaderType]
	if !ok {
		return nil
	}
	s, _ := typ.(string)
	for _, want := range []string{"JWT", "at+jwt", "application/at+jwt"} {
		if strings.EqualFold(s, want) {
			return nil
		}
	}
	return errTokenType
}

// record counts the outcome and logs refusals at debug level with their
// fixed reason only: never the token, subject or email.
func (b *Bearer) record(ctx context.Context, err error) {
	switch {
	case err == nil:
		b.metrics.ok.Inc()
	case errors.Is(err, ErrNoCredentials):
		b.metrics.noCredentials.Inc()
	case errors.Is(err, ErrInvalidCredentials):
		b.metrics.invalid.Inc()
		b.log.LogAttrs(ctx, slog.LevelDebug, "bearer token refused", slog.String("reason", err.Error()))
	default:
		b.metrics.unavailable.Inc()
		b.log.LogAttrs(ctx, slog.LevelDebug, "bearer token not checked", slog.String("error", truncate(err.Error())))
	}
}

// truncate bounds error text from remote documents before it is logged.
func truncate(s string) string {
	const max = 512
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}
