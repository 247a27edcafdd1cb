package authn

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chartguard/chartguard/chartguard"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	testAssertIssuer = "https://chartguard.example.org"
	testUpstream     = "https://emr.example.org/fhir"
	testSessionHash  = "3f9a0c7d5e1b2a48c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d"
)

func testIdentity() chartguard.Identity {
	return chartguard.Identity{
		Issuer:   "https://idp.example.org",
		Subject:  "u-123",
		Name:     "Dr. Ada Lovelace",
		Email:    "ada@example.org",
		Roles:    []string{"clinician", "nurse"},
		Groups:   []string{"cardiology"},
		FHIRUser: "Practitioner/42",
	}
}

// --- key files ---

func pemBytes(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func pkcs8PEM(t testing.TB, key any) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	return pemBytes("PRIVATE KEY", der)
}

func sec1PEM(t testing.TB, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	return pemBytes("EC PRIVATE KEY", der)
}

func publicPEM(t testing.TB, key crypto.PublicKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(key)
	require.NoError(t, err)
	return pemBytes("PUBLIC KEY", der)
}

// writeKey writes data to a new file in dir with exactly mode.
func writeKey(t testing.TB, dir, name string, data []byte, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(path, data, mode))
	require.NoError(t, os.Chmod(path, mode)) // undo the umask
	return path
}

// assertionFixture is an Asserter on a fake clock with its keys.
type assertionFixture struct {
	a     *Asserter
	clock *fakeClock
	cur   *ecdsa.PrivateKey
	prev  *ecdsa.PrivateKey // nil without a previous key
}

func newAssertionFixture(t testing.TB, withPrevious bool, ttl time.Duration) *assertionFixture {
	t.Helper()
	dir := t.TempDir()
	f := &assertionFixture{clock: newClock(), cur: mustEC(t)}
	cfg := AssertionConfig{SigningKeyFile: writeKey(t, dir, "current.pem", pkcs8PEM(t, f.cur), 0o600), TTL: ttl}
	if withPrevious {
		f.prev = mustEC(t)
		cfg.PreviousKeyFile = writeKey(t, dir, "previous.pem", sec1PEM(t, f.prev), 0o600)
	}
	a, err := NewAsserter(cfg, testAssertIssuer, f.clock.Now, nil)
	require.NoError(t, err)
	f.a = a
	return f
}

// --- an independent verifier, as an upstream would configure it ---

// wireClaims is the assertion payload as documented, decoded without the
// package's own type.
type wireClaims struct {
	jwt.RegisteredClaims
	IdP      string   `json:"idp"`
	Name     string   `json:"name"`
	Email    string   `json:"email"`
	Roles    []string `json:"roles"`
	FHIRUser string   `json:"fhir_user"`
	SID      string   `json:"sid"`
}

// parseJWKS decodes a JWK Set into public keys by kid, checking each key's
// members and that kid is its RFC 7638 thumbprint (computed by go-jose).
func parseJWKS(t testing.TB, data []byte) map[string]*ecdsa.PublicKey {
	t.Helper()
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	require.NoError(t, json.Unmarshal(data, &set))
	keys := make(map[string]*ecdsa.PublicKey)
	for _, raw := range set.Keys {
		var m struct{ Kty, Crv, X, Y, Kid, Use, Alg string }
		require.NoError(t, json.Unmarshal(raw, &m))
		assert.Equal(t, "EC", m.Kty)
		assert.Equal(t, "P-256", m.Crv)
		assert.Equal(t, "sig", m.Use)
		assert.Equal(t, "ES256", m.Alg)
		x, err := base64.RawURLEncoding.DecodeString(m.X)
		require.NoError(t, err)
		y, err := base64.RawURLEncoding.DecodeString(m.Y)
		require.NoError(t, err)
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		require.NoError(t, err)

		var jwk jose.JSONWebKey
		require.NoError(t, jwk.UnmarshalJSON(raw))
		tp, err := jwk.Thumbprint(crypto.SHA256)
		require.NoError(t, err)
		assert.Equal(t, base64.RawURLEncoding.EncodeToString(tp), m.Kid, "kid is the RFC 7638 thumbprint")
		require.NotContains(t, keys, m.Kid, "duplicate kid")
		keys[m.Kid] = pub
	}
	return keys
}

// verify checks tok as an upstream would: ES256 only, key by kid from the
// JWKS, iss, aud, iat and exp at now.
func verify(t testing.TB, jwks []byte, tok, audience string, now time.Time) (*wireClaims, *jwt.Token, error) {
	keys := parseJWKS(t, jwks)
	claims := &wireClaims{}
	parsed, err := jwt.ParseWithClaims(tok, claims, func(tk *jwt.Token) (any, error) {
		kid, _ := tk.Header["kid"].(string)
		if k, ok := keys[kid]; ok {
			return k, nil
		}
		return nil, errors.New("unknown kid")
	},
		jwt.WithValidMethods([]string{"ES256"}),
		jwt.WithIssuer(testAssertIssuer),
		jwt.WithAudience(audience),
		jwt.WithTimeFunc(func() time.Time { return now }),
		jwt.WithIssuedAt(),
		jwt.WithExpirationRequired(),
	)
	return claims, parsed, err
}

// kidOf is key's RFC 7638 thumbprint, computed by go-jose.
func kidOf(t testing.TB, key *ecdsa.PrivateKey) string {
	t.Helper()
	jwk := jose.JSONWebKey{Key: key.Public()}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	require.NoError(t, err)
	return base64.RawURLEncoding.EncodeToString(tp)
}

// --- config ---

func TestAssertionConfigSetDefaults(t *testing.T) {
	var c AssertionConfig
	c.SetDefaults()
	assert.Equal(t, "X-Chartguard-Assertion", c.Header)
	assert.Equal(t, 5*time.Minute, c.TTL)

	c = AssertionConfig{Header: "X-EMR-User", TTL: 2 * time.Minute}
	c.SetDefaults()
	assert.Equal(t, "X-EMR-User", c.Header, "set values are kept")
	assert.Equal(t, 2*time.Minute, c.TTL)
}

func TestAssertionConfigValidate(t *testing.T) {
	ok := AssertionConfig{SigningKeyFile: "/etc/chartguard/assertion.pem"}
	tests := []struct {
		name   string
		mutate func(c *AssertionConfig)
		want   []string // substrings, one per expected problem
	}{
		{"defaults", func(*AssertionConfig) {}, nil},
		{"all set", func(c *AssertionConfig) {
			c.Header, c.TTL, c.PreviousKeyFile = "X-EMR-User", time.Minute, "/etc/chartguard/old.pem"
		}, nil},
		{"no signing key", func(c *AssertionConfig) { c.SigningKeyFile = "" }, []string{"assertion.signing_key_file: required"}},
		{"header with space", func(c *AssertionConfig) { c.Header = "X Assertion" }, []string{"assertion.header: \"X Assertion\" is not a valid"}},
		{"header with colon", func(c *AssertionConfig) { c.Header = "X-A:b" }, []string{"assertion.header:"}},
		{"header Authorization", func(c *AssertionConfig) { c.Header = "authorization" }, []string{"assertion.header: \"authorization\" is reserved"}},
		{"header Cookie", func(c *AssertionConfig) { c.Header = "Cookie" }, []string{"is reserved"}},
		{"ttl too long", func(c *AssertionConfig) { c.TTL = 6 * time.Minute }, []string{"assertion.ttl: 6m0s is out of range"}},
		{"ttl too short", func(c *AssertionConfig) { c.TTL = 30 * time.Second }, []string{"assertion.ttl: 30s is out of range"}},
		{"ttl negative", func(c *AssertionConfig) { c.TTL = -time.Minute }, []string{"assertion.ttl:"}},
		{"previous is current", func(c *AssertionConfig) { c.PreviousKeyFile = c.SigningKeyFile }, []string{"assertion.previous_key_file: same file"}},
		{"every problem at once", func(c *AssertionConfig) {
			c.SigningKeyFile, c.Header, c.TTL = "", "Host", time.Hour
		}, []string{"assertion.signing_key_file", "assertion.header", "assertion.ttl"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.mutate(&c)
			err := c.Validate()
			if tt.want == nil {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
			assert.Len(t, strings.Split(err.Error(), "\n"), len(tt.want), "one line per problem")
		})
	}
}

// --- keys ---

func TestNewAsserterKeyFiles(t *testing.T) {
	dir := t.TempDir()
	cur, other := mustEC(t), mustEC(t)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	rsaKey := mustRSA(t)
	good := writeKey(t, dir, "good.pem", pkcs8PEM(t, cur), 0o600)
	ecParams := pemBytes("EC PARAMETERS", []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07})

	key := func(name string, data []byte, mode os.FileMode) string { return writeKey(t, dir, name, data, mode) }
	tests := []struct {
		name      string
		signing   string
		previous  string
		wantErr   error  // nil: accepted
		wantInErr string // the config key the error names
	}{
		{"PKCS#8", good, "", nil, ""},
		{"SEC 1", key("sec1.pem", sec1PEM(t, cur), 0o600), "", nil, ""},
		{"SEC 1 after EC PARAMETERS (openssl ecparam)", key("ecparam.pem", append(ecParams, sec1PEM(t, cur)...), 0o400), "", nil, ""},
		{"previous as private key", good, key("prev.pem", sec1PEM(t, other), 0o600), nil, ""},
		{"previous as world-readable public key", good, key("prev.pub", publicPEM(t, other.Public()), 0o644), nil, ""},

		{"missing", filepath.Join(dir, "nope.pem"), "", fs.ErrNotExist, "assertion.signing_key_file"},
		{"directory", dir, "", errKeyFile, "assertion.signing_key_file"},
		{"RSA PKCS#8", key("rsa8.pem", pkcs8PEM(t, rsaKey), 0o600), "", errKeyType, "assertion.signing_key_file"},
		{"RSA PKCS#1", key("rsa1.pem", pemBytes("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey)), 0o600), "", errKeyType, "assertion.signing_key_file"},
		{"P-384", key("p384.pem", pkcs8PEM(t, p384), 0o600), "", errKeyCurve, "assertion.signing_key_file"},
		{"P-384 SEC 1", key("p384s.pem", sec1PEM(t, p384), 0o600), "", errKeyCurve, "assertion.signing_key_file"},
		{"world-readable", key("world.pem", pkcs8PEM(t, cur), 0o604), "", errKeyPerms, "assertion.signing_key_file"},
		{"group-readable", key("group.pem", pkcs8PEM(t, cur), 0o640), "", errKeyPerms, "assertion.signing_key_file"},
		{"garbage", key("garbage.pem", []byte("not a key at all\n"), 0o600), "", errKeyPEM, "assertion.signing_key_file"},
		{"empty", key("empty.pem", nil, 0o600), "", errKeyPEM, "assertion.signing_key_file"},
		{"corrupt DER", key("corrupt.pem", pemBytes("PRIVATE KEY", []byte{0x30, 0x03, 0x02, 0x01}), 0o600), "", errKeyEncoding, "assertion.signing_key_file"},
		{"two keys", key("two.pem", append(pkcs8PEM(t, cur), sec1PEM(t, other)...), 0o600), "", errKeyPEM, "assertion.signing_key_file"},
		{"encrypted", key("enc.pem", pemBytes("ENCRYPTED PRIVATE KEY", []byte{1, 2, 3}), 0o600), "", errKeyPEM, "assertion.signing_key_file"},
		{"public key cannot sign", key("pub.pem", publicPEM(t, cur.Public()), 0o600), "", errKeyPEM, "assertion.signing_key_file"},
		{"too large", key("big.pem", make([]byte, maxKeyFileBytes+1), 0o600), "", errKeyTooLarge, "assertion.signing_key_file"},

		{"previous equals current", good, key("same.pem", sec1PEM(t, cur), 0o600), errKeySame, "assertion.previous_key_file"},
		{"previous public equals current", good, key("same.pub", publicPEM(t, cur.Public()), 0o600), errKeySame, "assertion.previous_key_file"},
		{"previous P-384", good, key("prev384.pub", publicPEM(t, p384.Public()), 0o600), errKeyCurve, "assertion.previous_key_file"},
		{"previous RSA public", good, key("prevrsa.pub", publicPEM(t, rsaKey.Public()), 0o600), errKeyType, "assertion.previous_key_file"},
		{"previous private world-readable", good, key("prevworld.pem", sec1PEM(t, other), 0o644), errKeyPerms, "assertion.previous_key_file"},
		{"previous missing", good, filepath.Join(dir, "gone.pem"), fs.ErrNotExist, "assertion.previous_key_file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := AssertionConfig{SigningKeyFile: tt.signing, PreviousKeyFile: tt.previous}
			a, err := NewAsserter(cfg, testAssertIssuer, nil, nil)
			if tt.wantErr == nil {
				require.NoError(t, err)
				tok, err := a.Assert(testIdentity(), testSessionHash, testUpstream)
				require.NoError(t, err)
				_, _, err = verify(t, a.JWKS(), tok, testUpstream, time.Now())
				assert.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tt.wantErr)
			assert.Nil(t, a)
			assert.True(t, strings.HasPrefix(err.Error(), tt.wantInErr+": "), "error %q names %s", err, tt.wantInErr)
		})
	}
}

func TestNewAsserterRefusesBadConfig(t *testing.T) {
	good := writeKey(t, t.TempDir(), "k.pem", pkcs8PEM(t, mustEC(t)), 0o600)
	_, err := NewAsserter(AssertionConfig{SigningKeyFile: good, TTL: 10 * time.Minute}, testAssertIssuer, nil, nil)
	assert.ErrorContains(t, err, "assertion.ttl")
	_, err = NewAsserter(AssertionConfig{}, testAssertIssuer, nil, nil)
	assert.ErrorContains(t, err, "assertion.signing_key_file")
	_, err = NewAsserter(AssertionConfig{SigningKeyFile: good}, "", nil, nil)
	assert.ErrorContains(t, err, "issuer required")
}

// --- assertions ---

func TestAssertClaims(t *testing.T) {
	minimal := chartguard.Identity{Subject: "svc-7"}
	tests := []struct {
		name    string
		ttl     time.Duration
		id      chartguard.Identity
		session string
	}{
		{"full identity, default ttl", 0, testIdentity(), testSessionHash},
		{"minimal identity, no session", 0, minimal, ""},
		{"short ttl", time.Minute, testIdentity(), testSessionHash},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newAssertionFixture(t, true, tt.ttl)
			tok, err := f.a.Assert(tt.id, tt.session, testUpstream)
			require.NoError(t, err)

			now := f.clock.Now()
			c, parsed, err := verify(t, f.a.JWKS(), tok, testUpstream, now)
			require.NoError(t, err)
			assert.Equal(t, "ES256", parsed.Method.Alg())
			assert.Equal(t, "JWT", parsed.Header["typ"])
			assert.Equal(t, kidOf(t, f.cur), parsed.Header["kid"], "signed with the current key")

			assert.Equal(t, testAssertIssuer, c.Issuer)
			assert.Equal(t, jwt.ClaimStrings{testUpstream}, c.Audience)
			assert.Equal(t, tt.id.Subject, c.Subject)
			assert.Equal(t, tt.id.Issuer, c.IdP)
			assert.Equal(t, tt.id.Name, c.Name)
			assert.Equal(t, tt.id.Email, c.Email)
			assert.Equal(t, tt.id.FHIRUser, c.FHIRUser)
			assert.Equal(t, tt.session, c.SID)
			if tt.id.Roles == nil {
				assert.Empty(t, c.Roles)
			} else {
				assert.Equal(t, tt.id.Roles, c.Roles)
			}
			jti, err := base64.RawURLEncoding.DecodeString(c.ID)
			require.NoError(t, err)
			assert.Len(t, jti, 16, "jti is 128 random bits")

			wantTTL := tt.ttl
			if wantTTL == 0 {
				wantTTL = 5 * time.Minute
			}
			assert.True(t, now.Equal(c.IssuedAt.Time), "iat = now (%s), got %s", now, c.IssuedAt.Time)
			assert.Equal(t, wantTTL, c.ExpiresAt.Sub(c.IssuedAt.Time))
			assert.LessOrEqual(t, c.ExpiresAt.Sub(c.IssuedAt.Time), 5*time.Minute)

			_, _, err = verify(t, f.a.JWKS(), tok, testUpstream, now.Add(wantTTL+time.Second))
			assert.ErrorIs(t, err, jwt.ErrTokenExpired, "expired after ttl")
			_, _, err = verify(t, f.a.JWKS(), tok, "https://other.example.org", now)
			assert.ErrorIs(t, err, jwt.ErrTokenInvalidAudience, "bound to its upstream")
		})
	}
}

func TestAssertPayloadShape(t *testing.T) {
	f := newAssertionFixture(t, false, 0)
	tok, err := f.a.Assert(chartguard.Identity{Subject: "svc-7"}, "", testUpstream)
	require.NoError(t, err)
	parts := strings.Split(tok, ".")
	require.Len(t, parts, 3)
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	require.NoError(t, err)
	var payload map[string]any
	require.NoError(t, json.Unmarshal(raw, &payload))
	assert.Equal(t, []any{}, payload["roles"], "roles is always an array")
	for _, absent := range []string{"sid", "name", "email", "fhir_user", "idp", "groups", "nbf"} {
		assert.NotContains(t, payload, absent)
	}
}

func TestAssertReuse(t *testing.T) {
	id := testIdentity()
	other := testIdentity()
	other.Roles = []string{"clinician"}
	type call struct {
		advance  time.Duration // before this call
		id       chartguard.Identity
		session  string
		audience string
		same     bool // the token equals the first call's
	}
	tests := []struct {
		name  string
		calls []call
	}{
		{"same inputs within 30s", []call{
			{0, id, testSessionHash, testUpstream, true},
			{10 * time.Second, id, testSessionHash, testUpstream, true},
			{20 * time.Second, id, testSessionHash, testUpstream, true},
		}},
		{"new after 30s", []call{
			{0, id, testSessionHash, testUpstream, true},
			{31 * time.Second, id, testSessionHash, testUpstream, false},
		}},
		{"new for another upstream", []call{
			{0, id, testSessionHash, testUpstream, true},
			{time.Second, id, testSessionHash, "https://labs.example.org", false},
		}},
		{"new for another session", []call{
			{0, id, testSessionHash, testUpstream, true},
			{time.Second, id, "other-session-hash", testUpstream, false},
		}},
		{"new when roles change", []call{
			{0, id, testSessionHash, testUpstream, true},
			{time.Second, other, testSessionHash, testUpstream, false},
		}},
		{"new when the clock steps back", []call{
			{0, id, testSessionHash, testUpstream, true},
			{-10 * time.Second, id, testSessionHash, testUpstream, false},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newAssertionFixture(t, false, 0)
			var first string
			seen := map[string]bool{}
			for i, c := range tt.calls {
				f.clock.Advance(c.advance)
				tok, err := f.a.Assert(c.id, c.session, c.audience)
				require.NoError(t, err)
				claims, _, err := verify(t, f.a.JWKS(), tok, c.audience, f.clock.Now())
				require.NoError(t, err, "call %d", i)
				assert.GreaterOrEqual(t, claims.ExpiresAt.Sub(f.clock.Now()), 5*time.Minute-30*time.Second,
					"call %d: a handed-out token has at least ttl-30s left", i)
				if i == 0 {
					first = tok
				}
				if c.same {
					assert.Equal(t, first, tok, "call %d reuses", i)
				} else {
					assert.NotEqual(t, first, tok, "call %d signs anew", i)
					assert.False(t, seen[claims.ID], "call %d: fresh jti", i)
				}
				seen[claims.ID] = true
			}
		})
	}
}

func TestAssertDistinctJTI(t *testing.T) {
	f := newAssertionFixture(t, false, 0)
	seen := map[string]bool{}
	for i := range 50 {
		f.clock.Advance(31 * time.Second)
		tok, err := f.a.Assert(testIdentity(), testSessionHash, testUpstream)
		require.NoError(t, err)
		c, _, err := verify(t, f.a.JWKS(), tok, testUpstream, f.clock.Now())
		require.NoError(t, err)
		require.False(t, seen[c.ID], "token %d repeats a jti", i)
		seen[c.ID] = true
	}
}

func TestAssertRefusesBadInput(t *testing.T) {
	f := newAssertionFixture(t, false, 0)
	tests := []struct {
		name     string
		id       chartguard.Identity
		audience string
	}{
		{"no subject", chartguard.Identity{Name: "Ada"}, testUpstream},
		{"no audience", testIdentity(), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := f.a.Assert(tt.id, testSessionHash, tt.audience)
			assert.ErrorIs(t, err, errAssertInput)
			assert.Empty(t, tok)
		})
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("entropy exhausted") }

func TestAssertFailsClosedWithoutRandomness(t *testing.T) {
	key := writeKey(t, t.TempDir(), "k.pem", pkcs8PEM(t, mustEC(t)), 0o600)
	a, err := NewAsserter(AssertionConfig{SigningKeyFile: key}, testAssertIssuer, nil, failingReader{})
	require.NoError(t, err)
	tok, err := a.Assert(testIdentity(), testSessionHash, testUpstream)
	assert.ErrorContains(t, err, "entropy exhausted")
	assert.Empty(t, tok)
}

func TestAsserterJWKSRotation(t *testing.T) {
	f := newAssertionFixture(t, true, 0)
	keys := parseJWKS(t, f.a.JWKS())
	require.Len(t, keys, 2, "current and previous key")
	curKid, prevKid := kidOf(t, f.cur), kidOf(t, f.prev)
	require.Contains(t, keys, curKid)
	require.Contains(t, keys, prevKid)
	assert.True(t, keys[curKid].Equal(f.cur.Public()))
	assert.True(t, keys[prevKid].Equal(f.prev.Public()))

	for i := range 5 {
		f.clock.Advance(31 * time.Second)
		tok, err := f.a.Assert(testIdentity(), testSessionHash, testUpstream)
		require.NoError(t, err)
		_, parsed, err := verify(t, f.a.JWKS(), tok, testUpstream, f.clock.Now())
		require.NoError(t, err)
		assert.Equal(t, curKid, parsed.Header["kid"], "token %d: the previous key never signs", i)
	}

	// An assertion the previous key signed before the rotation still
	// verifies against the published set.
	old := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.RegisteredClaims{
		Issuer: testAssertIssuer, Subject: "u-1", Audience: jwt.ClaimStrings{testUpstream},
		IssuedAt: jwt.NewNumericDate(f.clock.Now()), ExpiresAt: jwt.NewNumericDate(f.clock.Now().Add(time.Minute)),
	})
	old.Header["kid"] = prevKid
	oldTok, err := old.SignedString(f.prev)
	require.NoError(t, err)
	_, _, err = verify(t, f.a.JWKS(), oldTok, testUpstream, f.clock.Now())
	assert.NoError(t, err)

	// JWKS hands out a copy.
	b := f.a.JWKS()
	b[0] = 'X'
	assert.Len(t, parseJWKS(t, f.a.JWKS()), 2)
}

// TestAssertionAlgConfusion shows the verifier setup this package
// documents is safe: a token re-signed with HS256, using the public key
// as the HMAC secret, or sent unsigned, is refused.
func TestAssertionAlgConfusion(t *testing.T) {
	f := newAssertionFixture(t, false, 0)
	tok, err := f.a.Assert(testIdentity(), testSessionHash, testUpstream)
	require.NoError(t, err)
	claims, parsed, err := verify(t, f.a.JWKS(), tok, testUpstream, f.clock.Now())
	require.NoError(t, err)
	require.Equal(t, "ES256", parsed.Method.Alg())

	point, err := f.cur.PublicKey.Bytes()
	require.NoError(t, err)
	secrets := map[string][]byte{
		"public key PEM":   publicPEM(t, f.cur.Public()),
		"public key point": point,
		"JWKS document":    f.a.JWKS(),
	}
	for name, secret := range secrets {
		t.Run("HS256 with "+name, func(t *testing.T) {
			forged := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
			forged.Header["kid"] = parsed.Header["kid"]
			s, err := forged.SignedString(secret)
			require.NoError(t, err)
			_, _, err = verify(t, f.a.JWKS(), s, testUpstream, f.clock.Now())
			assert.ErrorIs(t, err, jwt.ErrTokenSignatureInvalid)
		})
	}
	t.Run("alg none", func(t *testing.T) {
		forged := jwt.NewWithClaims(jwt.SigningMethodNone, claims)
		forged.Header["kid"] = parsed.Header["kid"]
		s, err := forged.SignedString(jwt.UnsafeAllowNoneSignatureType)
		require.NoError(t, err)
		_, _, err = verify(t, f.a.JWKS(), s, testUpstream, f.clock.Now())
		assert.ErrorIs(t, err, jwt.ErrTokenSignatureInvalid)
	})
}

func TestAssertionCacheBounded(t *testing.T) {
	f := newAssertionFixture(t, false, 0)
	f.a.cache.max = 8
	for i := range 50 {
		if i == 20 {
			f.clock.Advance(31 * time.Second) // older entries are past reuse
		}
		tok, err := f.a.Assert(testIdentity(), strings.Repeat("s", i+1), testUpstream)
		require.NoError(t, err)
		_, _, err = verify(t, f.a.JWKS(), tok, testUpstream, f.clock.Now())
		require.NoError(t, err)
		assert.LessOrEqual(t, f.a.cache.len(), 8)
	}
}

func TestAssertionCacheEvictsStaleFirst(t *testing.T) {
	f := newAssertionFixture(t, false, 0)
	f.a.cache.max = 4
	for i := range 4 {
		_, err := f.a.Assert(testIdentity(), "stale-"+strings.Repeat("s", i), testUpstream)
		require.NoError(t, err)
	}
	f.clock.Advance(31 * time.Second)
	keep, err := f.a.Assert(testIdentity(), "keep", testUpstream)
	require.NoError(t, err)
	for i := range 3 {
		_, err := f.a.Assert(testIdentity(), "new-"+strings.Repeat("n", i), testUpstream)
		require.NoError(t, err)
	}
	again, err := f.a.Assert(testIdentity(), "keep", testUpstream)
	require.NoError(t, err)
	assert.Equal(t, keep, again, "a full cache drops stale entries before live ones")
}

func TestAssertConcurrent(t *testing.T) {
	f := newAssertionFixture(t, false, 0)
	var wg sync.WaitGroup
	toks := make([]string, 16)
	errs := make([]error, 16)
	for i := range toks {
		wg.Go(func() {
			toks[i], errs[i] = f.a.Assert(testIdentity(), testSessionHash, testUpstream)
		})
	}
	wg.Wait()
	for i, tok := range toks {
		require.NoError(t, errs[i])
		_, _, err := verify(t, f.a.JWKS(), tok, testUpstream, f.clock.Now())
		assert.NoError(t, err)
	}
	again, err := f.a.Assert(testIdentity(), testSessionHash, testUpstream)
	require.NoError(t, err)
	assert.Contains(t, toks, again, "later calls reuse one of the racing tokens")
}

func TestAsserterHeader(t *testing.T) {
	f := newAssertionFixture(t, false, 0)
	assert.Equal(t, "X-Chartguard-Assertion", f.a.Header())
}

// BenchmarkAssert compares a reused assertion (hash and map lookup) with
// signing a fresh one (ES256 signature).
func BenchmarkAssert(b *testing.B) {
	f := newAssertionFixture(b, false, 0)
	id := testIdentity()
	b.Run("cached", func(b *testing.B) {
		_, err := f.a.Assert(id, testSessionHash, testUpstream)
		require.NoError(b, err)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := f.a.Assert(id, testSessionHash, testUpstream); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("fresh", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			f.clock.Advance(31 * time.Second) // past reuse: every call signs
			if _, err := f.a.Assert(id, testSessionHash, testUpstream); err != nil {
				b.Fatal(err)
			}
		}
	})
}
