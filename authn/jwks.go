package authn

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
)

const (
	// fetchTimeout bounds one discovery + JWKS download. It runs detached
	// from the request that triggered it, so one impatient client cannot
	// fail the fetch for everyone waiting on it.
	fetchTimeout = 10 * time.Second
	// minRefreshInterval throttles fetches. Threat: tokens with random
	// key ids (or an IdP outage) would otherwise turn every request into
	// a JWKS download. Accepted risk: a key rotated in without being
	// pre-published is refused for up to this long.
	minRefreshInterval = 5 * time.Second
	// maxKeyAge is how long keys are used before the next request refreshes
	// them, so a key the IdP withdraws (e.g. after a compromise) stops
	// being trusted. If the refresh fails the old keys stay in use:
	// accepted risk, as refusing everyone during an IdP blip is worse, and
	// a withdrawn key only matters once the IdP is reachable again.
	maxKeyAge = 15 * time.Minute
	// maxDocumentBytes caps discovery and JWKS responses.
	maxDocumentBytes = 1 << 20
	// minRSABits refuses weak RSA keys an IdP might still publish.
	minRSABits = 2048
)

var (
	errNoUsableKeys   = errors.New("key set has no usable signing keys")
	errDocumentTooBig = errors.New("response larger than 1 MiB")
)

// keySet is an [oidc.KeySet] over the IdP's JWKS. Unlike
// oidc.RemoteKeySet it discovers the JWKS URL lazily, throttles refetches
// (RemoteKeySet refetches on every unknown key id or bad signature), caps
// response sizes, and keeps serving its last good keys when a refresh
// fails.
type keySet struct {
	issuer     string
	configured string // oidc.jwks_url; "" = discover
	algs       []jose.SignatureAlgorithm
	client     *http.Client
	now        func() time.Time
	log        *slog.Logger
	metrics    *metrics

	mu         sync.Mutex
	discovered string // JWKS URL found by discovery; "" = not yet
	keys       []jose.JSONWebKey
	fetched    time.Time // last successful fetch; zero = never
	tried      time.Time // start of the last attempt
	lastErr    error
	flight     *flight // the fetch in progress, if any
}

// flight is one fetch that several callers may wait on.
type flight struct {
	done chan struct{}
	err  error // written before done is closed
}

// sigTrace, when present in the context, records what the key set
// concluded. go-oidc flattens key-set errors to text; the trace lets the
// caller tell "unknown key" from "IdP down" without matching strings.
type sigTrace struct {
	err     error
	payload []byte // set only when the signature verified
}

type sigTraceKey struct{}

// newKeySet is the IdP's key set for cfg: accepted algorithms from
// cfg.SigningAlgs only, fetched with client.
func newKeySet(cfg Config, client *http.Client, now func() time.Time, logger *slog.Logger, m *metrics) *keySet {
	algs := make([]jose.SignatureAlgorithm, len(cfg.SigningAlgs))
	for i, a := range cfg.SigningAlgs {
		algs[i] = jose.SignatureAlgorithm(a)
	}
	return &keySet{issuer: cfg.Issuer, configured: cfg.JWKSURL, algs: algs, client: client,
		now: now, log: logger, metrics: m}
}

// VerifySignature implements [oidc.KeySet].
func (k *keySet) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	payload, err := k.verify(ctx, raw)
	if tr, ok := ctx.Value(sigTraceKey{}).(*sigTrace); ok {
		tr.err, tr.payload = err, payload
	}
	return payload, err
}

func (k *keySet) verify(ctx context.Context, raw string) ([]byte, error) {
	jws, err := jose.ParseSignedCompact(raw, k.algs)
	if err != nil || len(jws.Signatures) != 1 {
		return nil, errMalformed
	}
	keys, err := k.current(ctx)
	if err != nil {
		return nil, err
	}
	payload, kidKnown := verifyWith(jws, keys)
	if payload != nil {
		return payload, nil
	}
	if kidKnown {
		// The key exists and the signature is wrong: refetching cannot help.
		return nil, errBadSignature
	}
	// Unknown key id: the IdP may have rotated keys. Refetch (throttled).
	keys, _ = k.refresh(ctx)
	if payload, _ = verifyWith(jws, keys); payload != nil {
		return payload, nil
	}
	return nil, errUnknownKey
}

// verifyWith tries the keys whose kid (and alg, if the key names one)
// match the token. kidKnown reports that the token names a kid we hold.
func verifyWith(jws *jose.JSONWebSignature, keys []jose.JSONWebKey) (payload []byte, kidKnown bool) {
	h := jws.Signatures[0].Header
	for i := range keys {
		key := &keys[i]
		if h.KeyID != "" {
			if key.KeyID != h.KeyID {
				continue
			}
			kidKnown = true
		}
		if key.Algorithm != "" && key.Algorithm != h.Algorithm {
			continue
		}
		if p, err := jws.Verify(key); err == nil {
			return p, true
		}
	}
	return nil, kidKnown
}

// current returns the keys to verify with: loaded on first use, refreshed
// when older than maxKeyAge. It fails with ErrUnavailable only when no key
// is usable at all.
func (k *keySet) current(ctx context.Context) ([]jose.JSONWebKey, error) {
	k.mu.Lock()
	keys, age := k.keys, k.now().Sub(k.fetched)
	fresh := !k.fetched.IsZero() && age >= 0 && age < maxKeyAge
	k.mu.Unlock()
	if fresh && len(keys) > 0 {
		return keys, nil
	}
	keys, err := k.refresh(ctx)
	if len(keys) > 0 {
		return keys, nil
	}
	if err == nil {
		err = errNoUsableKeys
	}
	return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// refresh starts a fetch unless one is running or the last attempt was
// under minRefreshInterval ago, waits for it (or ctx), and returns the
// keys held afterwards with the fetch's error.
func (k *keySet) refresh(ctx context.Context) ([]jose.JSONWebKey, error) {
	k.mu.Lock()
	f := k.flight
	if f == nil {
		now := k.now()
		if since := now.Sub(k.tried); !k.tried.IsZero() && since >= 0 && since < minRefreshInterval {
			keys, err := k.keys, k.lastErr
			k.mu.Unlock()
			return keys, err
		}
		k.tried = now
		f = &flight{done: make(chan struct{})}
		k.flight = f
		go k.fetch(context.WithoutCancel(ctx), f)
	}
	k.mu.Unlock()

	select {
	case <-ctx.Done():
		return k.snapshot(), ctx.Err()
	case <-f.done:
		return k.snapshot(), f.err
	}
}

func (k *keySet) snapshot() []jose.JSONWebKey {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.keys
}

// fetch runs discovery (if needed) and downloads the JWKS, then publishes
// the result to f's waiters.
func (k *keySet) fetch(parent context.Context, f *flight) {
	ctx, cancel := context.WithTimeout(parent, fetchTimeout)
	defer cancel()

	k.mu.Lock()
	url, fromDiscovery := k.configured, false
	if url == "" {
		url, fromDiscovery = k.discovered, true
	}
	k.mu.Unlock()

	var keys []jose.JSONWebKey
	var err error
	if url == "" {
		url, err = k.discover(ctx)
	}
	if err == nil {
		keys, err = k.download(ctx, url)
	}

	k.report(ctx, len(keys), err)

	k.mu.Lock()
	switch {
	case err == nil:
		k.keys, k.fetched = keys, k.now()
		if fromDiscovery {
			k.discovered = url
		}
	case fromDiscovery:
		// Rediscover next time: the IdP may have moved its JWKS.
		k.discovered = ""
	}
	k.lastErr = err
	f.err = err
	k.flight = nil
	k.mu.Unlock()
	close(f.done)
}

// report counts and logs a fetch. It runs before waiters are released, so
// they observe the metric.
func (k *keySet) report(ctx context.Context, n int, err error) {
	if err != nil {
		k.metrics.fetchErr.Inc()
		k.log.LogAttrs(ctx, slog.LevelWarn, "identity provider key fetch failed", slog.String("error", truncate(err.Error())))
		return
	}
	k.metrics.fetchOK.Inc()
	level := slog.LevelInfo
	if n == 0 {
		level = slog.LevelError
	}
	k.log.LogAttrs(ctx, level, "identity provider keys loaded", slog.Int("keys", n))
}

// discover reads the JWKS URL from the issuer's discovery document.
// go-oidc checks that the document names our issuer exactly.
func (k *keySet) discover(ctx context.Context) (string, error) {
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, k.client), k.issuer)
	if err != nil {
		return "", fmt.Errorf("discovery: %w", err)
	}
	var meta struct {
		JWKSURL string `json:"jwks_uri"`
	}
	if err := p.Claims(&meta); err != nil {
		return "", fmt.Errorf("discovery: %w", err)
	}
	if err := checkFetchURL(meta.JWKSURL); err != nil {
		return "", fmt.Errorf("discovery: jwks_uri %w", err)
	}
	return meta.JWKSURL, nil
}

func (k *keySet) download(ctx context.Context, url string) ([]jose.JSONWebKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("jwks: unexpected status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("jwks: read: %w", err)
	}
	return parseKeySet(body, k.algs)
}

// parseKeySet keeps the keys we may verify with and skips the rest
// (RFC 7517 §5: ignore keys you do not understand). An empty result is not
// an error here: the IdP said it has no keys, so nothing verifies.
func parseKeySet(body []byte, algs []jose.SignatureAlgorithm) ([]jose.JSONWebKey, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("jwks: decode: %w", err)
	}
	keys := make([]jose.JSONWebKey, 0, len(doc.Keys))
	for _, raw := range doc.Keys {
		var key jose.JSONWebKey
		if err := key.UnmarshalJSON(raw); err != nil {
			continue
		}
		if usableKey(key, algs) {
			keys = append(keys, key)
		}
	}
	return keys, nil
}

// usableKey accepts public signing keys only. Threat: a symmetric ("oct")
// key in a public JWKS would let anyone mint tokens; a private key there
// means the IdP leaked it. Neither is ever used.
func usableKey(key jose.JSONWebKey, algs []jose.SignatureAlgorithm) bool {
	if key.Use != "" && key.Use != "sig" {
		return false
	}
	if key.Algorithm != "" && !slices.Contains(algs, jose.SignatureAlgorithm(key.Algorithm)) {
		return false
	}
	switch pub := key.Key.(type) {
	case *rsa.PublicKey:
		return pub.N.BitLen() >= minRSABits
	case *ecdsa.PublicKey, ed25519.PublicKey:
		return true
	default:
		return false
	}
}

// newFetchClient returns the client for discovery and JWKS: the
// configured one (or a 10s-timeout client that refuses redirects, so keys
// are only ever read from the URL that passed [checkFetchURL]) with every
// response body capped at maxDocumentBytes.
func newFetchClient(c *http.Client) *http.Client {
	if c == nil {
		c = &http.Client{
			Timeout: fetchTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		}
	}
	next := c.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	cp := *c
	cp.Transport = limitTransport{next: next, max: maxDocumentBytes}
	return &cp
}

type limitTransport struct {
	next http.RoundTripper
	max  int64
}

func (t limitTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = &limitedBody{rc: resp.Body, left: t.max}
	return resp, nil
}

// limitedBody fails (rather than truncates) once more than left bytes
// have been read, so an oversized document is an error, not half a JSON.
type limitedBody struct {
	rc   io.ReadCloser
	left int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left < 0 {
		return 0, errDocumentTooBig
	}
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		return n, errDocumentTooBig
	}
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }
