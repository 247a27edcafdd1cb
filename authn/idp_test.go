package authn

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/chartguard/chartguard/chartguard"
)

const (
	testAudience = "chartguard-api"
	testSubject  = "user-7f3a9c"
	testEmail    = "dr.grey@example.org"
)

// t0 is the fixed "now" of every test.
var t0 = time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)

// testIdP is a local OIDC issuer: discovery and a JWKS with an RSA and an
// EC key. Keys not in the JWKS are kept for forging and rotation tests.
type testIdP struct {
	srv    *httptest.Server
	rsa    *rsa.PrivateKey // kid "rsa1", published
	ec     *ecdsa.PrivateKey
	rogue  *rsa.PrivateKey // never published
	rotate *rsa.PrivateKey // kid "rsa2", published after rotate()

	down            atomic.Bool // every endpoint answers 503
	discoveryDown   atomic.Bool // only discovery answers 503
	rotated         atomic.Bool
	discoveryHits   atomic.Int64
	jwksHits        atomic.Int64
	discoveryIssuer atomic.Pointer[string] // overrides "issuer" in discovery
	block           chan struct{}          // if set, JWKS waits on it
}

func newTestIdP(t testing.TB) *testIdP {
	t.Helper()
	idp := &testIdP{
		rsa:    mustRSA(t),
		ec:     mustEC(t),
		rogue:  mustRSA(t),
		rotate: mustRSA(t),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", idp.serveDiscovery)
	mux.HandleFunc("GET /jwks", idp.serveJWKS)
	idp.srv = httptest.NewServer(mux)
	t.Cleanup(idp.srv.Close)
	return idp
}

func (idp *testIdP) issuer() string { return idp.srv.URL }

func (idp *testIdP) serveDiscovery(w http.ResponseWriter, _ *http.Request) {
	idp.discoveryHits.Add(1)
	if idp.down.Load() || idp.discoveryDown.Load() {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	iss := idp.issuer()
	if p := idp.discoveryIssuer.Load(); p != nil {
		iss = *p
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"issuer":                                iss,
		"jwks_uri":                              idp.srv.URL + "/jwks",
		"authorization_endpoint":                idp.srv.URL + "/auth",
		"token_endpoint":                        idp.srv.URL + "/token",
		"id_token_signing_alg_values_supported": []string{"RS256", "HS256", "none"},
	})
}

func (idp *testIdP) serveJWKS(w http.ResponseWriter, r *http.Request) {
	idp.jwksHits.Add(1)
	if idp.block != nil {
		select {
		case <-idp.block:
		case <-r.Context().Done():
			return
		}
	}
	if idp.down.Load() {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: &idp.rsa.PublicKey, KeyID: "rsa1", Use: "sig"},
		{Key: &idp.ec.PublicKey, KeyID: "ec1", Algorithm: "ES256", Use: "sig"},
	}}
	if idp.rotated.Load() {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: &idp.rotate.PublicKey, KeyID: "rsa2", Use: "sig"})
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(set)
}

// claims returns valid access-token claims issued at t0.
func (idp *testIdP) claims() jwt.MapClaims {
	return jwt.MapClaims{
		"iss":       idp.issuer(),
		"sub":       testSubject,
		"aud":       testAudience,
		"exp":       t0.Add(time.Hour).Unix(),
		"iat":       t0.Unix(),
		"email":     testEmail,
		"name":      "Dr Grey",
		"client_id": "smart-app",
		"scope":     "openid patient/*.read",
		"groups":    []string{"emr-physicians"},
		"fhirUser":  "Practitioner/42",
	}
}

// sign signs claims with method and key under kid; hdr edits the header
// (a nil value deletes the entry).
func sign(t testing.TB, method jwt.SigningMethod, key any, kid string, c jwt.MapClaims, hdr map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	for k, v := range hdr {
		if v == nil {
			delete(tok.Header, k)
		} else {
			tok.Header[k] = v
		}
	}
	s, err := tok.SignedString(key)
	require.NoError(t, err)
	return s
}

// token signs claims (edited by mod) with the published RSA key.
func (idp *testIdP) token(t testing.TB, mod func(jwt.MapClaims)) string {
	t.Helper()
	c := idp.claims()
	if mod != nil {
		mod(c)
	}
	return sign(t, jwt.SigningMethodRS256, idp.rsa, "rsa1", c, nil)
}

func (idp *testIdP) publicPEM(t testing.TB) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(&idp.rsa.PublicKey)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func mustRSA(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	return k
}

func mustEC(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return k
}

// fakeClock is an injectable clock that only moves when told.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *fakeClock { return &fakeClock{now: t0} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// syncBuffer collects log output written from several goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// fixture is a Bearer wired to a test IdP, a fake clock, a debug logger
// and its own metrics registry.
type fixture struct {
	idp   *testIdP
	clock *fakeClock
	logs  *syncBuffer
	reg   *prometheus.Registry
	b     *Bearer
}

func (idp *testIdP) config(clock *fakeClock) Config {
	return Config{
		Issuer:     idp.issuer(),
		ClientID:   "chartguard",
		Audience:   testAudience,
		RoleMap:    map[string]string{"emr-physicians": "physician", "emr-nurses": "nurse", "emr-doctors": "physician"},
		Now:        clock.Now,
		HTTPClient: idp.srv.Client(),
	}
}

func newFixture(t testing.TB, idp *testIdP, edit func(*Config)) *fixture {
	t.Helper()
	f := &fixture{idp: idp, clock: newClock(), logs: &syncBuffer{}, reg: prometheus.NewRegistry()}
	cfg := idp.config(f.clock)
	if edit != nil {
		edit(&cfg)
	}
	logger := slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b, err := NewBearer(cfg, logger, f.reg)
	require.NoError(t, err)
	f.b = b
	return f
}

// auth authenticates a request carrying the given Authorization values.
func (f *fixture) auth(t testing.TB, authz ...string) (*chartguard.Principal, error) {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "/fhir/Patient/1", nil)
	for _, v := range authz {
		r.Header.Add("Authorization", v)
	}
	return f.b.Authenticate(r.Context(), r)
}

// counter returns the value of metric name with label result=value.
func (f *fixture) counter(t testing.TB, name, result string) float64 {
	t.Helper()
	families, err := f.reg.Gather()
	require.NoError(t, err)
	for _, mf := range families {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if labelIs(m, "result", result) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func labelIs(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}

// tamper replaces the payload of a signed token, keeping its signature.
func tamper(t testing.TB, tok string, edit func(map[string]any)) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	require.Len(t, parts, 3)
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	require.NoError(t, err)
	var c map[string]any
	require.NoError(t, json.Unmarshal(raw, &c))
	edit(c)
	out, err := json.Marshal(c)
	require.NoError(t, err)
	parts[1] = base64.RawURLEncoding.EncodeToString(out)
	return strings.Join(parts, ".")
}
