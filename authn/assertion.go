package authn

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	crand "crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/chartguard/chartguard/chartguard"
	"github.com/golang-jwt/jwt/v5"
)

// Defaults and limits of the identity assertion.
const (
	// DefaultAssertionHeader is the request header that carries the
	// assertion to the upstream when assertion.header is empty.
	DefaultAssertionHeader = "X-Chartguard-Assertion"
	// DefaultAssertionTTL is the assertion lifetime when assertion.ttl is
	// zero. It is also the maximum.
	DefaultAssertionTTL = 5 * time.Minute
	// JWKSPath is where ChartGuard publishes the assertion keys.
	JWKSPath = "/.chartguard/jwks.json"

	// minAssertionTTL keeps a reused assertion (up to assertionReuse old)
	// valid long enough to reach the upstream.
	minAssertionTTL = time.Minute
	// assertionReuse is how long one signed assertion is handed out again
	// for the same session, upstream and identity (DESIGN.md "Caches
	// allowed on the hot path"). Threat: an assertion replayed by whoever
	// sees it. Choice: a short reuse window bounds how many requests share
	// one jti. Accepted risk: upstreams cannot use jti to tell those
	// requests apart.
	assertionReuse = 30 * time.Second
	// assertionCacheMax bounds the reuse cache (one entry per active
	// session and upstream).
	assertionCacheMax = 10_000
	// maxKeyFileBytes caps a key file; a P-256 PEM key is a few hundred
	// bytes.
	maxKeyFileBytes = 64 << 10
)

// Reasons a key file or an assertion request is refused.
var (
	errKeyFile     = errors.New("not a regular file")
	errKeyTooLarge = errors.New("file larger than 64 KiB")
	errKeyPerms    = errors.New("private key file is readable by group or others: chmod 600 it (Kubernetes: defaultMode 0400)")
	errKeyPEM      = errors.New("no PEM key block: want one PRIVATE KEY (PKCS#8) or EC PRIVATE KEY (SEC 1) block")
	errKeyEncoding = errors.New("key does not parse")
	errKeyType     = errors.New("not an ECDSA key: only EC P-256 keys sign ES256")
	errKeyCurve    = errors.New("EC key is not on P-256: ES256 requires P-256")
	errKeySame     = errors.New("previous key equals the signing key: point previous_key_file at the retired key or remove it")
	errAssertInput = errors.New("assertion needs a subject and an audience")
)

// AssertionConfig configures the identity assertion ChartGuard signs and
// forwards to the upstream. Its YAML keys are the `assertion:` keys of
// DESIGN.md.
type AssertionConfig struct {
	// Header carries the assertion upstream. If empty,
	// "X-Chartguard-Assertion".
	Header string `yaml:"header"`
	// SigningKeyFile is a PEM EC P-256 private key (PKCS#8 or SEC 1),
	// readable by the owner only. Required.
	SigningKeyFile string `yaml:"signing_key_file"`
	// PreviousKeyFile is the retired key during a rotation: a PEM EC P-256
	// private key (owner-only) or public key. It is published in the JWKS
	// so upstreams keep accepting assertions they already hold, and never
	// signs. Optional.
	PreviousKeyFile string `yaml:"previous_key_file"`
	// TTL is each assertion's lifetime (exp - iat). If zero, 5m; between
	// 1m and 5m.
	TTL time.Duration `yaml:"ttl"`
}

// SetDefaults fills empty fields with their documented defaults.
func (c *AssertionConfig) SetDefaults() {
	if c.Header == "" {
		c.Header = DefaultAssertionHeader
	}
	if c.TTL == 0 {
		c.TTL = DefaultAssertionTTL
	}
}

// reservedHeaders may not carry the assertion: overwriting them would
// break HTTP framing or replace the caller's own credentials.
var reservedHeaders = []string{
	"Authorization", "Connection", "Content-Length", "Content-Type", "Cookie",
	"Forwarded", "Host", "Proxy-Authorization", "Te", "Trailer",
	"Transfer-Encoding", "Upgrade", "X-Forwarded-For", "X-Forwarded-Host",
	"X-Forwarded-Proto",
}

// Validate reports every problem at once. Each error names the key path
// and the fix. Empty fields are judged as [AssertionConfig.SetDefaults]
// would fill them. Key files are read by [NewAsserter], not here.
func (c AssertionConfig) Validate() error {
	var errs []error
	add := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(format, args...))
	}
	if c.Header != "" {
		if !isFieldName(c.Header) {
			add("assertion.header: %q is not a valid HTTP header name: use letters, digits and '-', e.g. %s",
				c.Header, DefaultAssertionHeader)
		} else if slices.Contains(reservedHeaders, http.CanonicalHeaderKey(c.Header)) {
			add("assertion.header: %q is reserved: use a header of its own, e.g. %s", c.Header, DefaultAssertionHeader)
		}
	}
	if c.SigningKeyFile == "" {
		add("assertion.signing_key_file: required: set it to a PEM EC P-256 private key " +
			"(openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256), mode 0600")
	}
	if c.PreviousKeyFile != "" && c.PreviousKeyFile == c.SigningKeyFile {
		add("assertion.previous_key_file: same file as assertion.signing_key_file: point it at the retired key or remove it")
	}
	if c.TTL != 0 && (c.TTL < minAssertionTTL || c.TTL > DefaultAssertionTTL) {
		add("assertion.ttl: %s is out of range: use a duration between %s and %s", c.TTL, minAssertionTTL, DefaultAssertionTTL)
	}
	return errors.Join(errs...)
}

// isFieldName reports whether s is an RFC 9110 field name (a token).
func isFieldName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// Asserter signs identity assertions: short-lived ES256 JWTs that tell the
// upstream who the caller is. It is safe for concurrent use.
type Asserter struct {
	header string
	issuer string
	ttl    time.Duration
	key    *ecdsa.PrivateKey
	kid    string
	jwks   []byte
	now    func() time.Time
	rand   io.Reader
	cache  *assertionCache
}

// NewAsserter loads the keys named by cfg and returns an Asserter whose
// assertions carry issuer (ChartGuard's public URL) as "iss". now and
// rand may be nil for time.Now and crypto/rand.Reader. cfg is defaulted
// and validated first.
func NewAsserter(cfg AssertionConfig, issuer string, now func() time.Time, rand io.Reader) (*Asserter, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if issuer == "" {
		return nil, errors.New("assertion: issuer required: pass ChartGuard's public URL")
	}
	key, err := loadSigningKey(cfg.SigningKeyFile)
	if err != nil {
		return nil, fmt.Errorf("assertion.signing_key_file: %w", err)
	}
	keys := []*ecdsa.PublicKey{&key.PublicKey}
	if cfg.PreviousKeyFile != "" {
		prev, err := loadPreviousKey(cfg.PreviousKeyFile)
		if err != nil {
			return nil, fmt.Errorf("assertion.previous_key_file: %w", err)
		}
		if prev.Equal(&key.PublicKey) {
			return nil, fmt.Errorf("assertion.previous_key_file: %w", errKeySame)
		}
		keys = append(keys, prev)
	}
	jwks, kids, err := marshalJWKS(keys)
	if err != nil {
		return nil, fmt.Errorf("assertion: %w", err)
	}
	a := &Asserter{
		header: http.CanonicalHeaderKey(cfg.Header),
		issuer: issuer,
		ttl:    cfg.TTL,
		key:    key,
		kid:    kids[0],
		jwks:   jwks,
		now:    now,
		rand:   rand,
		cache:  newAssertionCache(assertionCacheMax),
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.rand == nil {
		a.rand = crand.Reader
	}
	return a, nil
}

// Header is the canonical name of the header that carries the assertion.
// The proxy must delete any incoming header of this name before setting
// it: a client-supplied assertion must never reach the upstream.
func (a *Asserter) Header() string { return a.header }

// JWKS returns the public keys upstreams verify assertions with, as a JSON
// JWK Set (RFC 7517): the signing key first, then the previous key if
// configured. Each key has kid = its RFC 7638 SHA-256 thumbprint, use
// "sig" and alg "ES256". Serve it at [JWKSPath].
func (a *Asserter) JWKS() []byte { return bytes.Clone(a.jwks) }

// assertionClaims is the assertion payload.
type assertionClaims struct {
	jwt.RegisteredClaims
	// IdP is the issuer of the caller's own credential: a user is
	// (idp, sub), as sub alone may repeat across IdPs.
	IdP      string   `json:"idp,omitempty"`
	Name     string   `json:"name,omitempty"`
	Email    string   `json:"email,omitempty"`
	Roles    []string `json:"roles"`
	FHIRUser string   `json:"fhir_user,omitempty"`
	SID      string   `json:"sid,omitempty"`
}

// Assert returns a signed assertion of id for the upstream audience (its
// base URL). sessionHash is the hash of the caller's session or token,
// never the credential itself; it becomes "sid" and may be empty.
//
// The same assertion is returned for the same session, audience and
// identity while it is at most 30s old; after that, or if anything in it
// would differ, a new one with a fresh jti is signed.
func (a *Asserter) Assert(id chartguard.Identity, sessionHash, audience string) (string, error) {
	if id.Subject == "" || audience == "" {
		return "", errAssertInput
	}
	roles := id.Roles
	if roles == nil {
		roles = []string{}
	}
	claims := assertionClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:   a.issuer,
			Subject:  id.Subject,
			Audience: jwt.ClaimStrings{audience},
		},
		IdP:      id.Issuer,
		Name:     id.Name,
		Email:    id.Email,
		Roles:    roles,
		FHIRUser: id.FHIRUser,
		SID:      sessionHash,
	}
	// The cache key is the hash of everything the assertion states except
	// its times and jti, so any change in identity gets a new assertion.
	stable, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("assertion: %w", err)
	}
	key := sha256.Sum256(stable)

	now := a.now()
	if tok, ok := a.cache.get(key, now, a.ttl); ok {
		return tok, nil
	}
	tok, iat, err := a.sign(claims, now)
	if err != nil {
		return "", err
	}
	a.cache.put(key, assertionEntry{token: tok, iat: iat, exp: iat.Add(a.ttl)}, now, a.ttl)
	return tok, nil
}

// sign completes claims with jti, iat and exp and signs them with the
// current key.
func (a *Asserter) sign(claims assertionClaims, now time.Time) (string, time.Time, error) {
	var jti [16]byte
	if _, err := io.ReadFull(a.rand, jti[:]); err != nil {
		return "", time.Time{}, fmt.Errorf("assertion: jti: %w", err)
	}
	// iat is whole seconds, as encoded, so reuse is judged on what the
	// upstream will see.
	iat := now.Truncate(time.Second)
	claims.ID = base64.RawURLEncoding.EncodeToString(jti[:])
	claims.IssuedAt = jwt.NewNumericDate(iat)
	claims.ExpiresAt = jwt.NewNumericDate(iat.Add(a.ttl))

	t := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	t.Header["kid"] = a.kid
	s, err := t.SignedString(a.key)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("assertion: sign: %w", err)
	}
	return s, iat, nil
}

type assertionEntry struct {
	token string
	iat   time.Time
	exp   time.Time
}

// reusable reports whether e may be handed out at now: issued at most
// assertionReuse ago (and not in the future, should the clock step back)
// with at least ttl - assertionReuse left.
func (e assertionEntry) reusable(now time.Time, ttl time.Duration) bool {
	age := now.Sub(e.iat)
	return age >= 0 && age <= assertionReuse && e.exp.Sub(now) >= ttl-assertionReuse
}

// assertionCache holds recently signed assertions by the hash of their
// stable claims. When full it first drops entries past reuse, then an
// arbitrary one, as tokenCache does.
type assertionCache struct {
	mu      sync.Mutex
	max     int
	entries map[[32]byte]assertionEntry
}

func newAssertionCache(max int) *assertionCache {
	return &assertionCache{max: max, entries: make(map[[32]byte]assertionEntry)}
}

func (c *assertionCache) get(k [32]byte, now time.Time, ttl time.Duration) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	if !ok {
		return "", false
	}
	if !e.reusable(now, ttl) {
		delete(c.entries, k)
		return "", false
	}
	return e.token, true
}

func (c *assertionCache) put(k [32]byte, e assertionEntry, now time.Time, ttl time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[k]; !ok && len(c.entries) >= c.max {
		for victim, old := range c.entries {
			if !old.reusable(now, ttl) {
				delete(c.entries, victim)
			}
		}
		for victim := range c.entries {
			if len(c.entries) < c.max {
				break
			}
			delete(c.entries, victim)
		}
	}
	c.entries[k] = e
}

func (c *assertionCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// loadSigningKey reads the current signing key: a P-256 private key.
func loadSigningKey(path string) (*ecdsa.PrivateKey, error) {
	block, private, err := readKeyFile(path)
	if err != nil {
		return nil, err
	}
	if !private {
		return nil, fmt.Errorf("%w: found a public key; the signing key must be private", errKeyPEM)
	}
	key, err := parsePrivateKey(block)
	if err != nil {
		return nil, err
	}
	return key, nil
}

// loadPreviousKey reads the retired key: a P-256 private or public key.
// Only its public half is kept.
func loadPreviousKey(path string) (*ecdsa.PublicKey, error) {
	block, private, err := readKeyFile(path)
	if err != nil {
		return nil, err
	}
	if private {
		key, err := parsePrivateKey(block)
		if err != nil {
			return nil, err
		}
		return &key.PublicKey, nil
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errKeyEncoding, err)
	}
	ec, ok := pub.(*ecdsa.PublicKey)
	if !ok {
		return nil, errKeyType
	}
	if ec.Curve != elliptic.P256() {
		return nil, errKeyCurve
	}
	return ec, nil
}

// readKeyFile returns the one key block of the PEM file at path and
// whether it is a private key. "EC PARAMETERS" blocks (as openssl ecparam
// writes them) are skipped; any other block, or a second key, is refused.
//
// Threat: anyone who can read the signing key can mint assertions for any
// user, and the EMR trusts them. Choice: refuse a private key file that
// grants any permission to group or others, as OpenSSH does; the check is
// on the opened file, so a symlink (Kubernetes secret volumes) is judged
// by its target. Accepted risk: the owner and the directory are not
// checked, and on Windows, where Unix modes are synthesised, keys will be
// refused.
func readKeyFile(path string) (*pem.Block, bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, false, err
	}
	if !info.Mode().IsRegular() {
		return nil, false, errKeyFile
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileBytes+1))
	if err != nil {
		return nil, false, err
	}
	if len(data) > maxKeyFileBytes {
		return nil, false, errKeyTooLarge
	}

	var key *pem.Block
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		switch b.Type {
		case "EC PARAMETERS":
			continue
		case "RSA PRIVATE KEY", "RSA PUBLIC KEY":
			return nil, false, errKeyType
		case "PRIVATE KEY", "EC PRIVATE KEY", "PUBLIC KEY":
			if key != nil {
				return nil, false, fmt.Errorf("%w: more than one key block", errKeyPEM)
			}
			key = b
		default:
			return nil, false, fmt.Errorf("%w: unexpected %q block (encrypted keys are not supported)", errKeyPEM, b.Type)
		}
	}
	if key == nil {
		return nil, false, errKeyPEM
	}
	private := key.Type != "PUBLIC KEY"
	if private && info.Mode().Perm()&0o077 != 0 {
		return nil, false, errKeyPerms
	}
	return key, private, nil
}

// parsePrivateKey parses a PKCS#8 or SEC 1 block into a P-256 key.
func parsePrivateKey(block *pem.Block) (*ecdsa.PrivateKey, error) {
	var key *ecdsa.PrivateKey
	switch block.Type {
	case "EC PRIVATE KEY":
		k, err := x509.ParseECPrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errKeyEncoding, err)
		}
		key = k
	default: // "PRIVATE KEY"
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errKeyEncoding, err)
		}
		ec, ok := k.(*ecdsa.PrivateKey)
		if !ok {
			return nil, errKeyType
		}
		key = ec
	}
	if key.Curve != elliptic.P256() {
		return nil, errKeyCurve
	}
	return key, nil
}

// assertionJWK is a public P-256 key as published in the JWKS. Field
// order is irrelevant here; the thumbprint is computed separately.
type assertionJWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
}

// marshalJWKS encodes keys as a JWK Set and returns it with their kids.
func marshalJWKS(keys []*ecdsa.PublicKey) ([]byte, []string, error) {
	set := struct {
		Keys []assertionJWK `json:"keys"`
	}{}
	kids := make([]string, 0, len(keys))
	for _, k := range keys {
		point, err := k.Bytes() // 0x04 || X || Y, 32 bytes each on P-256
		if err != nil || len(point) != 65 {
			return nil, nil, fmt.Errorf("%w: invalid P-256 public key", errKeyEncoding)
		}
		jwk := assertionJWK{
			Kty: "EC",
			Crv: "P-256",
			X:   base64.RawURLEncoding.EncodeToString(point[1:33]),
			Y:   base64.RawURLEncoding.EncodeToString(point[33:]),
			Use: "sig",
			Alg: jwt.SigningMethodES256.Alg(),
		}
		jwk.Kid = thumbprint(jwk)
		kids = append(kids, jwk.Kid)
		set.Keys = append(set.Keys, jwk)
	}
	out, err := json.Marshal(set)
	if err != nil {
		return nil, nil, err
	}
	return out, kids, nil
}

// thumbprint is the RFC 7638 SHA-256 thumbprint of an EC key: the hash of
// its required members in lexicographic order, without whitespace. x and
// y are base64url, so they need no JSON escaping.
func thumbprint(k assertionJWK) string {
	canonical := `{"crv":"` + k.Crv + `","kty":"` + k.Kty + `","x":"` + k.X + `","y":"` + k.Y + `"}`
	sum := sha256.Sum256([]byte(canonical))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
