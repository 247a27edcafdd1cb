package devissuer

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testKey is generated once: RSA key generation dominates test time.
var testKey = sync.OnceValues(func() (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, 2048) })

func key(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	k, err := testKey()
	require.NoError(t, err)
	return k
}

var testTime = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

func testNow() time.Time { return testTime }

// newServer starts an issuer behind httptest and returns it with its URL.
func newServer(t *testing.T) (*Issuer, string) {
	t.Helper()
	var is *Issuer
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { is.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	var err error
	is, err = New(Options{Issuer: srv.URL, Audience: "chartguard", Now: testNow, Key: key(t)})
	require.NoError(t, err)
	return is, srv.URL
}

func getJSON(t *testing.T, u string, v any) *http.Response {
	t.Helper()
	resp, err := http.Get(u)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.NoError(t, json.NewDecoder(resp.Body).Decode(v))
	return resp
}

// jwksKeys fetches the JWKS and returns its RSA keys by kid.
func jwksKeys(t *testing.T, jwksURL string) map[string]*rsa.PublicKey {
	t.Helper()
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	resp := getJSON(t, jwksURL, &set)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	out := map[string]*rsa.PublicKey{}
	for _, k := range set.Keys {
		require.Equal(t, "RSA", k["kty"])
		require.Equal(t, "RS256", k["alg"])
		require.Equal(t, "sig", k["use"])
		n, err := base64.RawURLEncoding.DecodeString(k["n"])
		require.NoError(t, err)
		e, err := base64.RawURLEncoding.DecodeString(k["e"])
		require.NoError(t, err)
		out[k["kid"]] = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
	}
	return out
}

func TestDiscovery(t *testing.T) {
	t.Parallel()
	is, base := newServer(t)
	var doc map[string]any
	resp := getJSON(t, base+"/.well-known/openid-configuration", &doc)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	assert.Equal(t, base, doc["issuer"])
	assert.Equal(t, base+"/jwks", doc["jwks_uri"])
	assert.Equal(t, base+"/dev/token", doc["token_endpoint"])
	assert.Equal(t, []any{"RS256"}, doc["id_token_signing_alg_values_supported"])

	keys := jwksKeys(t, doc["jwks_uri"].(string))
	require.Len(t, keys, 1)
	pub := keys[is.KeyID()]
	require.NotNil(t, pub, "the JWKS publishes the signing kid")
	assert.True(t, pub.Equal(is.PublicKey()))
}

func TestKeyIDIsRFC7638Thumbprint(t *testing.T) {
	t.Parallel()
	// RFC 7638 section 3.1 example key and thumbprint.
	n, err := base64.RawURLEncoding.DecodeString("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw")
	require.NoError(t, err)
	k := *key(t)
	k.PublicKey = rsa.PublicKey{N: new(big.Int).SetBytes(n), E: 65537}
	is := &Issuer{key: &k, issuer: "http://127.0.0.1"}
	require.NoError(t, is.precompute())
	assert.Equal(t, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs", is.KeyID())
}

// mintHTTP posts to /dev/token and returns the status and decoded body.
func mintHTTP(t *testing.T, base, query string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(base+"/dev/token?"+query, "", nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
	var body map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	return resp.StatusCode, body
}

// verify checks tok against the published JWKS with golang-jwt, as a
// relying party would, and returns its header and claims.
func verify(t *testing.T, base, tok, aud string) (map[string]any, jwt.MapClaims, error) {
	t.Helper()
	keys := jwksKeys(t, base+"/jwks")
	claims := jwt.MapClaims{}
	parsed, err := jwt.ParseWithClaims(tok, claims, func(tk *jwt.Token) (any, error) {
		kid, _ := tk.Header["kid"].(string)
		if k := keys[kid]; k != nil {
			return k, nil
		}
		return nil, errors.New("unknown kid")
	}, jwt.WithValidMethods([]string{"RS256"}), jwt.WithIssuer(base), jwt.WithAudience(aud),
		jwt.WithTimeFunc(testNow), jwt.WithIssuedAt(), jwt.WithExpirationRequired())
	if parsed == nil {
		return nil, claims, err
	}
	return parsed.Header, claims, err
}

func TestTokenVerifiesAgainstJWKS(t *testing.T) {
	t.Parallel()
	is, base := newServer(t)
	status, body := mintHTTP(t, base, "role=physician&fhir_user=Practitioner/pr1")
	require.Equal(t, http.StatusOK, status, body)
	assert.Equal(t, "Bearer", body["token_type"])
	assert.Equal(t, float64(3600), body["expires_in"])

	header, claims, err := verify(t, base, body["access_token"].(string), "chartguard")
	require.NoError(t, err)
	assert.Equal(t, "at+jwt", header["typ"])
	assert.Equal(t, is.KeyID(), header["kid"])
	assert.Equal(t, base, claims["iss"])
	assert.Equal(t, "dev-physician", claims["sub"])
	assert.Equal(t, "chartguard", claims["aud"])
	assert.Equal(t, float64(testTime.Unix()), claims["iat"])
	assert.Equal(t, float64(testTime.Unix()), claims["nbf"])
	assert.Equal(t, float64(testTime.Add(time.Hour).Unix()), claims["exp"])
	assert.Equal(t, "dev-client", claims["client_id"])
	assert.Equal(t, "user/*.*", claims["scope"])
	assert.Equal(t, []any{"chartguard-physician"}, claims["groups"])
	assert.Equal(t, "Dev physician", claims["name"])
	assert.Equal(t, "dev-physician@example.org", claims["email"])
	assert.Equal(t, "Practitioner/pr1", claims["fhirUser"])
	assert.NotEmpty(t, claims["jti"])
	assert.NotContains(t, claims, "nonce")
}

func TestTokenParameters(t *testing.T) {
	t.Parallel()
	_, base := newServer(t)
	tests := []struct {
		name       string
		query      string
		aud        string // audience to verify with; default chartguard
		wantErr    error  // verification error
		wantHeader map[string]any
		wantClaims map[string]any
		wantExpIn  float64
	}{
		{name: "subject and client", query: "role=nurse&sub=alice&client_id=smart-app&scope=" +
			url.QueryEscape("openid patient/Observation.rs"),
			wantClaims: map[string]any{"sub": "alice", "client_id": "smart-app", "scope": "openid patient/Observation.rs",
				"email": "alice@example.org", "groups": []any{"chartguard-nurse"}}, wantExpIn: 3600},
		{name: "subject with slash gets no default email", query: "role=nurse&sub=" + url.QueryEscape("a/b"),
			wantClaims: map[string]any{"sub": "a/b", "email": nil}, wantExpIn: 3600},
		{name: "explicit odd email", query: "role=nurse&email=" + url.QueryEscape("a@b@example.org"),
			wantClaims: map[string]any{"email": "a@b@example.org"}, wantExpIn: 3600},
		{name: "name and amr", query: "role=admin&name=" + url.QueryEscape("Ada Admin") + "&amr=pwd,otp",
			wantClaims: map[string]any{"name": "Ada Admin", "amr": []any{"pwd", "otp"}}, wantExpIn: 3600},
		{name: "ttl", query: "role=physician&ttl=60s",
			wantClaims: map[string]any{"exp": float64(testTime.Unix() + 60)}, wantExpIn: 60},
		{name: "expired", query: "role=physician&exp_offset=-10m", wantErr: jwt.ErrTokenExpired,
			wantClaims: map[string]any{"exp": float64(testTime.Add(-10 * time.Minute).Unix())}, wantExpIn: 0},
		{name: "not yet valid", query: "role=physician&nbf_offset=10m", wantErr: jwt.ErrTokenNotValidYet,
			wantClaims: map[string]any{"nbf": float64(testTime.Add(10 * time.Minute).Unix())}, wantExpIn: 3600},
		{name: "typ JWT", query: "role=physician&typ=JWT", wantHeader: map[string]any{"typ": "JWT"}, wantExpIn: 3600},
		{name: "typ id+jwt", query: "role=physician&typ=id%2Bjwt", wantHeader: map[string]any{"typ": "id+jwt"}, wantExpIn: 3600},
		{name: "nonce", query: "role=physician&nonce=n-0S6", wantClaims: map[string]any{"nonce": "n-0S6"}, wantExpIn: 3600},
		{name: "audience override", query: "role=physician&aud=other", aud: "other",
			wantClaims: map[string]any{"aud": "other"}, wantExpIn: 3600},
		{name: "audience override is not chartguard's", query: "role=physician&aud=other",
			wantErr: jwt.ErrTokenInvalidAudience, wantExpIn: 3600},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body := mintHTTP(t, base, tc.query)
			require.Equal(t, http.StatusOK, status, body)
			assert.Equal(t, tc.wantExpIn, body["expires_in"])
			aud := tc.aud
			if aud == "" {
				aud = "chartguard"
			}
			header, claims, err := verify(t, base, body["access_token"].(string), aud)
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
			} else {
				require.NoError(t, err)
			}
			for k, v := range tc.wantHeader {
				assert.Equal(t, v, header[k], k)
			}
			for k, v := range tc.wantClaims {
				assert.Equal(t, v, claims[k], k)
			}
		})
	}
}

func TestTokenRejectsBadParameters(t *testing.T) {
	t.Parallel()
	_, base := newServer(t)
	tests := []struct {
		name, query string
		wantIn      string // error_description mentions this
	}{
		{"missing role", "sub=alice", "role"},
		{"role with space", "role=" + url.QueryEscape("a b"), "role"},
		{"empty role", "role=", "role"},
		{"repeated role", "role=a&role=b", "role"},
		{"unknown parameter", "role=a&colour=blue", "parameter"},
		{"bad ttl", "role=a&ttl=soon", "ttl"},
		{"zero ttl", "role=a&ttl=0s", "ttl"},
		{"negative ttl", "role=a&ttl=-1m", "ttl"},
		{"ttl too long", "role=a&ttl=48h", "ttl"},
		{"exp offset too far", "role=a&exp_offset=-100h", "exp_offset"},
		{"fhir_user type", "role=a&fhir_user=Device/d1", "fhir_user"},
		{"fhir_user id", "role=a&fhir_user=Practitioner/pr_1", "fhir_user"},
		{"scope with quote", "role=a&scope=" + url.QueryEscape(`user/*.* "x"`), "scope"},
		{"scope with double space", "role=a&scope=" + url.QueryEscape("a  b"), "scope"},
		{"sub with control", "role=a&sub=" + url.QueryEscape("a\nb"), "sub"},
		{"typ with space", "role=a&typ=" + url.QueryEscape("at jwt"), "typ"},
		{"bad amr", "role=a&amr=pwd,", "amr"},
		{"malformed query", "role=%zz", "malformed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body := mintHTTP(t, base, tc.query)
			require.Equal(t, http.StatusBadRequest, status)
			assert.Equal(t, "invalid_request", body["error"])
			assert.Contains(t, body["error_description"], tc.wantIn)
			assert.NotContains(t, body, "access_token")
		})
	}
	// Unknown parameter names are not echoed.
	_, body := mintHTTP(t, base, "role=a&SECRETNAME=1")
	assert.NotContains(t, body["error_description"], "SECRETNAME")
}

func TestTokenFormBody(t *testing.T) {
	t.Parallel()
	_, base := newServer(t)
	resp, err := http.PostForm(base+"/dev/token", url.Values{"role": {"nurse"}, "sub": {"bob"}})
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var body map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	_, claims, err := verify(t, base, body["access_token"].(string), "chartguard")
	require.NoError(t, err)
	assert.Equal(t, "bob", claims["sub"])
}

func TestEndpointsAndMethods(t *testing.T) {
	t.Parallel()
	_, base := newServer(t)
	tests := []struct {
		name, method, path string
		wantStatus         int
		wantAllow          string
	}{
		{"token by GET", http.MethodGet, "/dev/token?role=a", 405, "POST"},
		{"discovery by POST", http.MethodPost, "/.well-known/openid-configuration", 405, "GET, HEAD"},
		{"jwks by DELETE", http.MethodDelete, "/jwks", 405, "GET, HEAD"},
		{"unknown path", http.MethodGet, "/authorize", 404, ""},
		{"jwks HEAD", http.MethodHead, "/jwks", 200, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := http.NewRequest(tc.method, base+tc.path, nil)
			require.NoError(t, err)
			resp, err := http.DefaultClient.Do(r)
			require.NoError(t, err)
			defer resp.Body.Close()
			_, _ = io.Copy(io.Discard, resp.Body)
			assert.Equal(t, tc.wantStatus, resp.StatusCode)
			assert.Equal(t, tc.wantAllow, resp.Header.Get("Allow"))
		})
	}
}

func TestTokenInProcess(t *testing.T) {
	t.Parallel()
	is, err := New(Options{Issuer: "http://127.0.0.1:9/idp", Audience: "chartguard", Now: testNow, Key: key(t)})
	require.NoError(t, err)
	a, err := is.Token(TokenRequest{Role: "physician", FHIRUser: "Practitioner/pr2", Subject: "dr-2"})
	require.NoError(t, err)
	b, err := is.Token(TokenRequest{Role: "physician", FHIRUser: "Practitioner/pr2", Subject: "dr-2"})
	require.NoError(t, err)

	jtis := map[string]bool{}
	for _, tok := range []string{a, b} {
		claims := jwt.MapClaims{}
		_, err := jwt.ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return is.PublicKey(), nil },
			jwt.WithValidMethods([]string{"RS256"}), jwt.WithTimeFunc(testNow),
			jwt.WithIssuer("http://127.0.0.1:9/idp"), jwt.WithAudience("chartguard"))
		require.NoError(t, err)
		assert.Equal(t, "dr-2", claims["sub"])
		assert.Equal(t, "Practitioner/pr2", claims["fhirUser"])
		jtis[claims["jti"].(string)] = true
	}
	assert.Len(t, jtis, 2, "every token has its own jti")

	_, err = is.Token(TokenRequest{})
	require.ErrorIs(t, err, ErrInvalidRequest)
	_, err = is.Token(TokenRequest{Role: "x", TTL: -time.Second})
	require.ErrorIs(t, err, ErrInvalidRequest)
}

func TestTokenFailsClosedWithoutRandomness(t *testing.T) {
	t.Parallel()
	is, err := New(Options{Issuer: "http://127.0.0.1:9", Audience: "a", Key: key(t),
		Rand: strings.NewReader("short")})
	require.NoError(t, err)
	_, err = is.Token(TokenRequest{Role: "x"})
	require.Error(t, err)
	require.NotErrorIs(t, err, ErrInvalidRequest)
}

func TestIssuerPathPrefix(t *testing.T) {
	t.Parallel()
	is, err := New(Options{Issuer: "http://localhost:8082/idp/", Audience: "a", Key: key(t)})
	require.NoError(t, err)
	for path, want := range map[string]int{
		"/idp/.well-known/openid-configuration": 200,
		"/idp/jwks":                             200,
		"/.well-known/openid-configuration":     404,
		"/jwks":                                 404,
	} {
		rec := httptest.NewRecorder()
		is.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		assert.Equal(t, want, rec.Code, path)
	}
	rec := httptest.NewRecorder()
	is.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/idp/.well-known/openid-configuration", nil))
	var doc map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &doc))
	assert.Equal(t, "http://localhost:8082/idp/", doc["issuer"], "issuer is kept verbatim")
	assert.Equal(t, "http://localhost:8082/idp/jwks", doc["jwks_uri"])
}

func TestNewValidatesOptions(t *testing.T) {
	t.Parallel()
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	require.NoError(t, err)
	tests := []struct {
		name string
		opts Options
	}{
		{"non-loopback issuer", Options{Issuer: "https://idp.example.org", Audience: "a"}},
		{"wildcard issuer", Options{Issuer: "http://0.0.0.0:8082", Audience: "a"}},
		{"private address issuer", Options{Issuer: "http://10.0.0.1:8082", Audience: "a"}},
		{"issuer not a URL", Options{Issuer: "127.0.0.1:8082", Audience: "a"}},
		{"issuer with query", Options{Issuer: "http://127.0.0.1:8082?x=1", Audience: "a"}},
		{"issuer with user", Options{Issuer: "http://u@127.0.0.1:8082", Audience: "a"}},
		{"ftp issuer", Options{Issuer: "ftp://127.0.0.1", Audience: "a"}},
		{"missing audience", Options{Issuer: "http://127.0.0.1:8082"}},
		{"negative ttl", Options{Issuer: "http://127.0.0.1:8082", Audience: "a", TTL: -time.Minute}},
		{"ttl too long", Options{Issuer: "http://127.0.0.1:8082", Audience: "a", TTL: 48 * time.Hour}},
		{"small key", Options{Issuer: "http://127.0.0.1:8082", Audience: "a", Key: small}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.opts.Key == nil {
				tc.opts.Key = key(t)
			}
			is, err := New(tc.opts)
			require.ErrorIs(t, err, ErrInvalidOptions)
			assert.Nil(t, is)
		})
	}
}

func TestNewGeneratesKey(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("generates an RSA key")
	}
	is, err := New(Options{Issuer: "http://[::1]:8082", Audience: "a"})
	require.NoError(t, err)
	assert.Equal(t, 2048, is.PublicKey().N.BitLen())
}
