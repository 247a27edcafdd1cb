package devissuer

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// Defaults and limits for [Options].
const (
	DefaultTTL = time.Hour
	maxTTL     = 24 * time.Hour
	keyBits    = 2048
)

// ErrInvalidOptions is returned by [New] for unusable options.
var ErrInvalidOptions = errors.New("devissuer: invalid options")

// Options configures an [Issuer].
type Options struct {
	// Issuer is the issuer URL, e.g. "http://127.0.0.1:8082": the iss
	// claim and the base of every endpoint. Its host must be loopback.
	Issuer string
	// Audience is the default aud claim. Required.
	Audience string
	// Now is the clock for iat, nbf and exp. If nil, time.Now.
	Now func() time.Time
	// TTL is the default token lifetime. If zero, 1h; at most 24h.
	TTL time.Duration
	// Key signs tokens. If nil, a 2048-bit key is generated. Keys shorter
	// than 2048 bits are refused.
	Key *rsa.PrivateKey
	// Rand is the source of token ids (jti). If nil, crypto/rand.Reader.
	Rand io.Reader
}

// Issuer is a development OpenID provider that mints access tokens on
// request. It is an http.Handler.
type Issuer struct {
	issuer   string
	audience string
	prefix   string // path of the issuer URL, without a trailing slash
	now      func() time.Time
	ttl      time.Duration
	key      *rsa.PrivateKey
	kid      string
	rand     io.Reader

	discovery []byte
	jwks      []byte
}

// New validates opts and returns an issuer.
func New(opts Options) (*Issuer, error) {
	u, err := url.Parse(opts.Issuer)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.User != nil ||
		u.RawQuery != "" || u.Fragment != "" || !loopbackHost(u.Hostname()) {
		return nil, fmt.Errorf("%w: issuer must be an http(s) URL on a loopback host, "+
			"without query or fragment", ErrInvalidOptions)
	}
	if opts.Audience == "" || !printable(opts.Audience, 256) {
		return nil, fmt.Errorf("%w: audience is required", ErrInvalidOptions)
	}
	is := &Issuer{
		issuer: opts.Issuer, audience: opts.Audience,
		prefix: strings.TrimRight(u.EscapedPath(), "/"),
		now:    opts.Now, ttl: opts.TTL, key: opts.Key, rand: opts.Rand,
	}
	if is.now == nil {
		is.now = time.Now
	}
	if is.rand == nil {
		is.rand = rand.Reader
	}
	if is.ttl == 0 {
		is.ttl = DefaultTTL
	}
	if is.ttl < time.Second || is.ttl > maxTTL {
		return nil, fmt.Errorf("%w: ttl must be between 1s and 24h", ErrInvalidOptions)
	}
	if is.key == nil {
		if is.key, err = rsa.GenerateKey(is.rand, keyBits); err != nil {
			return nil, fmt.Errorf("devissuer: generate key: %w", err)
		}
	}
	if is.key.N.BitLen() < keyBits {
		return nil, fmt.Errorf("%w: RSA key must have at least 2048 bits", ErrInvalidOptions)
	}
	if err := is.key.Validate(); err != nil {
		return nil, fmt.Errorf("%w: RSA key: %w", ErrInvalidOptions, err)
	}
	if err := is.precompute(); err != nil {
		return nil, err
	}
	return is, nil
}

// loopbackHost reports whether host (from a URL) names a loopback address.
func loopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Zone() == "" && ip.Unmap().IsLoopback()
}

type jwk struct {
	Kty string `json:"kty"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	N   string `json:"n"`
	E   string `json:"e"`
}

type discovery struct {
	Issuer               string   `json:"issuer"`
	JWKSURI              string   `json:"jwks_uri"`
	TokenEndpoint        string   `json:"token_endpoint"`
	SigningAlgs          []string `json:"id_token_signing_alg_values_supported"`
	ResponseTypes        []string `json:"response_types_supported"`
	SubjectTypes         []string `json:"subject_types_supported"`
	ClaimsSupported      []string `json:"claims_supported"`
	ServiceDocumentation string   `json:"service_documentation"`
}

// precompute builds the kid (RFC 7638 thumbprint), the JWKS and the
// discovery document.
func (is *Issuer) precompute() error {
	b64 := base64.RawURLEncoding
	n := b64.EncodeToString(is.key.N.Bytes())
	e := b64.EncodeToString(big.NewInt(int64(is.key.E)).Bytes())
	sum := sha256.Sum256([]byte(`{"e":"` + e + `","kty":"RSA","n":"` + n + `"}`))
	is.kid = b64.EncodeToString(sum[:])

	var err error
	is.jwks, err = json.Marshal(struct {
		Keys []jwk `json:"keys"`
	}{[]jwk{{Kty: "RSA", Use: "sig", Alg: "RS256", Kid: is.kid, N: n, E: e}}})
	if err != nil {
		return fmt.Errorf("devissuer: jwks: %w", err)
	}
	base := strings.TrimRight(is.issuer, "/")
	is.discovery, err = json.Marshal(discovery{
		Issuer: is.issuer, JWKSURI: base + "/jwks", TokenEndpoint: base + "/dev/token",
		SigningAlgs:   []string{"RS256"},
		ResponseTypes: []string{"token"},
		SubjectTypes:  []string{"public"},
		ClaimsSupported: []string{"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "client_id",
			"scope", "groups", "name", "email", "fhirUser", "amr"},
		ServiceDocumentation: "DEVELOPMENT ONLY: mints tokens for anyone; never use in production",
	})
	if err != nil {
		return fmt.Errorf("devissuer: discovery: %w", err)
	}
	return nil
}

// KeyID returns the kid of the signing key.
func (is *Issuer) KeyID() string { return is.kid }

// PublicKey returns the public half of the signing key.
func (is *Issuer) PublicKey() *rsa.PublicKey { return &is.key.PublicKey }

// ServeHTTP serves discovery, the JWKS and the token endpoint.
func (is *Issuer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.EscapedPath() {
	case is.prefix + "/.well-known/openid-configuration":
		is.serveStatic(w, r, is.discovery)
	case is.prefix + "/jwks":
		is.serveStatic(w, r, is.jwks)
	case is.prefix + "/dev/token":
		is.serveToken(w, r)
	default:
		writeError(w, http.StatusNotFound, "not_found", "unknown endpoint")
	}
}

func (is *Issuer) serveStatic(w http.ResponseWriter, r *http.Request, body []byte) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, "invalid_request", "method not allowed")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status, body = http.StatusInternalServerError, []byte(`{"error":"server_error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func writeError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, struct {
		Error       string `json:"error"`
		Description string `json:"error_description,omitempty"`
	}{code, desc})
}
