package authn

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chartguard/chartguard/chartguard"
)

const (
	testClientID     = "chartguard"
	testClientSecret = "s3cret-value"
	testCallback     = "https://emr.example.org/.chartguard/callback"
)

// fakeOP is an OpenID provider: discovery and a token endpoint of its
// own, keys from a testIdP's JWKS (so issuer = fakeOP's URL).
type fakeOP struct {
	idp        *testIdP
	srv        *httptest.Server
	endSession bool
	down       atomic.Bool
	status     atomic.Int64 // if non-zero, the token endpoint answers this

	gate        chan struct{} // if set, discovery waits until it is closed
	discoveries atomic.Int64

	mu       sync.Mutex
	pending  map[string]url.Values // code -> authorization request
	mint     func(nonce string) string
	pkceFail int
}

func newFakeOP(t *testing.T, endSession bool) *fakeOP {
	t.Helper()
	op := &fakeOP{idp: newTestIdP(t), endSession: endSession, pending: map[string]url.Values{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", op.serveDiscovery)
	mux.HandleFunc("POST /token", op.serveToken)
	op.srv = httptest.NewServer(mux)
	t.Cleanup(op.srv.Close)
	op.mint = func(nonce string) string { return op.idToken(t, nonce, nil) }
	return op
}

func (op *fakeOP) serveDiscovery(w http.ResponseWriter, _ *http.Request) {
	op.discoveries.Add(1)
	if op.gate != nil {
		<-op.gate
	}
	if op.down.Load() {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	doc := map[string]any{
		"issuer":                 op.srv.URL,
		"jwks_uri":               op.idp.srv.URL + "/jwks",
		"authorization_endpoint": op.srv.URL + "/auth",
		"token_endpoint":         op.srv.URL + "/token",
	}
	if op.endSession {
		doc["end_session_endpoint"] = op.srv.URL + "/logout?tenant=emr"
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(doc)
}

// serveToken redeems a code once, checking client auth, redirect_uri and
// the PKCE verifier against the challenge of the authorization request.
func (op *fakeOP) serveToken(w http.ResponseWriter, r *http.Request) {
	if s := op.status.Load(); s != 0 {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(int(s))
		_, _ = w.Write([]byte(`{"error":"invalid_grant","error_description":"bad code"}`))
		return
	}
	id, secret, ok := r.BasicAuth()
	if err := r.ParseForm(); err != nil || !ok || id != testClientID || secret != testClientSecret {
		http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
		return
	}
	op.mu.Lock()
	authz, found := op.pending[r.PostForm.Get("code")]
	delete(op.pending, r.PostForm.Get("code"))
	sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
	pkceOK := found && base64.RawURLEncoding.EncodeToString(sum[:]) == authz.Get("code_challenge")
	if found && !pkceOK {
		op.pkceFail++
	}
	mint := op.mint
	op.mu.Unlock()
	if !found || !pkceOK || r.PostForm.Get("grant_type") != "authorization_code" ||
		r.PostForm.Get("redirect_uri") != authz.Get("redirect_uri") {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"error":"invalid_grant"}`))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"access_token": "opaque-access-token",
		"token_type":   "Bearer",
		"expires_in":   300,
		"id_token":     mint(authz.Get("nonce")),
	})
}

// authorize plays the user's visit to authURL and returns the code the
// IdP would send to the callback.
func (op *fakeOP) authorize(t *testing.T, authURL string) string {
	t.Helper()
	u, err := url.Parse(authURL)
	require.NoError(t, err)
	require.Equal(t, op.srv.URL+"/auth", u.Scheme+"://"+u.Host+u.Path)
	code := "code-" + u.Query().Get("state")[:8]
	op.mu.Lock()
	op.pending[code] = u.Query()
	op.mu.Unlock()
	return code
}

func (op *fakeOP) setMint(mint func(nonce string) string) {
	op.mu.Lock()
	defer op.mu.Unlock()
	op.mint = mint
}

func (op *fakeOP) claims(nonce string) jwt.MapClaims {
	return jwt.MapClaims{
		"iss":       op.srv.URL,
		"sub":       testSubject,
		"aud":       testClientID,
		"exp":       t0.Add(5 * time.Minute).Unix(),
		"iat":       t0.Unix(),
		"auth_time": t0.Add(-2 * time.Minute).Unix(),
		"nonce":     nonce,
		"email":     testEmail,
		"name":      "Dr Grey",
		"amr":       []string{"pwd", "otp"},
		"groups":    []string{"emr-physicians", "staff"},
		"fhirUser":  "Practitioner/42",
	}
}

// idToken signs the claims (edited by mod) with the published RSA key.
func (op *fakeOP) idToken(t *testing.T, nonce string, mod func(jwt.MapClaims)) string {
	c := op.claims(nonce)
	if mod != nil {
		mod(c)
	}
	return sign(t, jwt.SigningMethodRS256, op.idp.rsa, "rsa1", c, nil)
}

type loginFixture struct {
	op    *fakeOP
	clock *fakeClock
	logs  *syncBuffer
	l     *Login
}

func newLoginFixture(t *testing.T, op *fakeOP, edit func(*Config)) *loginFixture {
	t.Helper()
	f := &loginFixture{op: op, clock: newClock(), logs: &syncBuffer{}}
	cfg := Config{
		Issuer:       op.srv.URL,
		ClientID:     testClientID,
		ClientSecret: testClientSecret,
		RoleMap:      map[string]string{"emr-physicians": "physician"},
		Now:          f.clock.Now,
		HTTPClient:   op.srv.Client(),
	}
	if edit != nil {
		edit(&cfg)
	}
	logger := slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	l, err := NewLogin(cfg, logger)
	require.NoError(t, err)
	f.l = l
	return f
}

// login runs Start, the IdP visit and Finish.
func (f *loginFixture) login(t *testing.T) (*LoginResult, LoginRequest, error) {
	t.Helper()
	authURL, req, err := f.l.Start(context.Background(), testCallback)
	require.NoError(t, err)
	code := f.op.authorize(t, authURL)
	res, err := f.l.Finish(context.Background(), req, code)
	return res, req, err
}

func TestLoginFinish(t *testing.T) {
	op := newFakeOP(t, false)
	claimsToken := func(mod func(jwt.MapClaims)) func(t *testing.T, nonce string) string {
		return func(t *testing.T, nonce string) string { return op.idToken(t, nonce, mod) }
	}
	tests := []struct {
		name   string
		token  func(t *testing.T, nonce string) string
		edit   func(*Config)
		reason error // wrapped in the error; nil = success
		check  func(t *testing.T, res *LoginResult)
	}{
		{
			name:  "valid",
			token: claimsToken(nil),
			check: func(t *testing.T, res *LoginResult) {
				assert.Equal(t, chartguard.Identity{
					Issuer:   op.srv.URL,
					Subject:  testSubject,
					Name:     "Dr Grey",
					Email:    testEmail,
					Roles:    []string{"physician"},
					Groups:   []string{"emr-physicians", "staff"},
					FHIRUser: "Practitioner/42",
				}, res.Identity)
				assert.True(t, res.AuthTime.Equal(t0.Add(-2*time.Minute)), "auth_time")
				assert.Equal(t, []string{"pwd", "otp"}, res.AMR)
				assert.Equal(t, 3, strings.Count(res.IDToken, ".")+1)
			},
		},
		{
			name:  "no auth_time: AuthTime is iat",
			token: claimsToken(func(c jwt.MapClaims) { delete(c, "auth_time"); delete(c, "amr") }),
			check: func(t *testing.T, res *LoginResult) {
				assert.True(t, res.AuthTime.Equal(t0))
				assert.Empty(t, res.AMR)
			},
		},
		{
			name:  "max_age met",
			edit:  func(c *Config) { c.MaxAge = 10 * time.Minute },
			token: claimsToken(nil),
		},
		{
			name:  "expired within skew",
			token: claimsToken(func(c jwt.MapClaims) { c["exp"] = t0.Add(-30 * time.Second).Unix() }),
		},
		{name: "wrong nonce", reason: errNonce, token: func(t *testing.T, _ string) string { return op.idToken(t, "other-nonce", nil) }},
		{name: "nonce missing", reason: errNonce, token: claimsToken(func(c jwt.MapClaims) { delete(c, "nonce") })},
		{
			name:   "alg none",
			reason: errMalformed,
			token: func(t *testing.T, nonce string) string {
				return sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "rsa1", op.claims(nonce), nil)
			},
		},
		{
			name:   "HS256 signed with the public key",
			reason: errMalformed,
			token: func(t *testing.T, nonce string) string {
				return sign(t, jwt.SigningMethodHS256, op.idp.publicPEM(t), "rsa1", op.claims(nonce), nil)
			},
		},
		{
			name:   "signed by an unpublished key",
			reason: errBadSignature,
			token: func(t *testing.T, nonce string) string {
				return sign(t, jwt.SigningMethodRS256, op.idp.rogue, "rsa1", op.claims(nonce), nil)
			},
		},
		{name: "wrong aud", reason: errAudience, token: claimsToken(func(c jwt.MapClaims) { c["aud"] = "other-client" })},
		{
			name:   "several audiences without azp",
			reason: errAZP,
			token:  claimsToken(func(c jwt.MapClaims) { c["aud"] = []string{testClientID, "other"} }),
		},
		{
			name:  "several audiences with our azp",
			token: claimsToken(func(c jwt.MapClaims) { c["aud"] = []string{testClientID, "other"}; c["azp"] = testClientID }),
		},
		{name: "foreign azp", reason: errAZP, token: claimsToken(func(c jwt.MapClaims) { c["azp"] = "other" })},
		{name: "wrong iss", reason: errIssuer, token: claimsToken(func(c jwt.MapClaims) { c["iss"] = "https://evil.example" })},
		{
			name:   "expired beyond skew",
			reason: errExpired,
			token:  claimsToken(func(c jwt.MapClaims) { c["exp"] = t0.Add(-2 * time.Minute).Unix() }),
		},
		{name: "exp missing", reason: errMissingExp, token: claimsToken(func(c jwt.MapClaims) { delete(c, "exp") })},
		{
			name:   "iat in the future",
			reason: errIssuedInFuture,
			token:  claimsToken(func(c jwt.MapClaims) { c["iat"] = t0.Add(5 * time.Minute).Unix() }),
		},
		{
			name:   "max_age exceeded",
			edit:   func(c *Config) { c.MaxAge = 10 * time.Minute },
			reason: errAuthTime,
			token:  claimsToken(func(c jwt.MapClaims) { c["auth_time"] = t0.Add(-time.Hour).Unix() }),
		},
		{
			name:   "max_age without auth_time",
			edit:   func(c *Config) { c.MaxAge = 10 * time.Minute },
			reason: errAuthTime,
			token:  claimsToken(func(c jwt.MapClaims) { delete(c, "auth_time") }),
		},
		{
			name:   "auth_time in the future",
			reason: errAuthTime,
			token:  claimsToken(func(c jwt.MapClaims) { c["auth_time"] = t0.Add(time.Hour).Unix() }),
		},
		{name: "at_hash mismatch", reason: errAtHash, token: claimsToken(func(c jwt.MapClaims) { c["at_hash"] = "AAAAAAAAAAAAAAAAAAAAAA" })},
		{name: "email with two @", reason: errEmail, token: claimsToken(func(c jwt.MapClaims) { c["email"] = "a@b@example.org" })},
		{name: "sub missing", reason: errMissingSub, token: claimsToken(func(c jwt.MapClaims) { delete(c, "sub") })},
		{name: "no ID token in the response", reason: errNoIDToken, token: func(*testing.T, string) string { return "" }},
		{name: "no role", reason: ErrNoRole, token: claimsToken(func(c jwt.MapClaims) { c["groups"] = []string{"staff"} })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newLoginFixture(t, op, tt.edit)
			op.setMint(func(nonce string) string { return tt.token(t, nonce) })
			res, _, err := f.login(t)
			if tt.reason == nil {
				require.NoError(t, err)
				if tt.check != nil {
					tt.check(t, res)
				}
				return
			}
			require.ErrorIs(t, err, ErrLogin)
			require.ErrorIs(t, err, tt.reason)
			assert.NotErrorIs(t, err, ErrUnavailable)
			assert.Nil(t, res)
			assert.Equal(t, tt.reason == ErrNoRole, errors.Is(err, ErrNoRole))
			assert.NotContains(t, err.Error(), testSubject)
			assert.NotContains(t, f.logs.String(), testSubject)
		})
	}
}

func TestLoginStart(t *testing.T) {
	op := newFakeOP(t, false)
	f := newLoginFixture(t, op, nil)
	authURL, req, err := f.l.Start(context.Background(), testCallback)
	require.NoError(t, err)

	q, err := url.ParseQuery(strings.SplitN(authURL, "?", 2)[1])
	require.NoError(t, err)
	sum := sha256.Sum256([]byte(req.Verifier))
	assert.Equal(t, "code", q.Get("response_type"))
	assert.Equal(t, testClientID, q.Get("client_id"))
	assert.Equal(t, testCallback, q.Get("redirect_uri"))
	assert.Equal(t, "openid profile email", q.Get("scope"))
	assert.Equal(t, req.State, q.Get("state"))
	assert.Equal(t, req.Nonce, q.Get("nonce"))
	assert.Equal(t, "S256", q.Get("code_challenge_method"))
	assert.Equal(t, base64.RawURLEncoding.EncodeToString(sum[:]), q.Get("code_challenge"))
	assert.False(t, q.Has("prompt"), "prompt must not be sent")
	assert.False(t, q.Has("max_age"), "max_age 0 is not sent")
	assert.Empty(t, q.Get("code_verifier"), "the verifier never leaves the server")
	assert.Equal(t, testCallback, req.RedirectURL)
	for _, v := range []string{req.State, req.Nonce, req.Verifier} {
		assert.GreaterOrEqual(t, len(v), 43)
	}
	assert.NotEqual(t, req.State, req.Nonce)

	_, req2, err := f.l.Start(context.Background(), testCallback)
	require.NoError(t, err)
	assert.NotEqual(t, req.State, req2.State, "each login gets fresh values")
	assert.NotEqual(t, req.Verifier, req2.Verifier)

	t.Run("max_age and scopes from config", func(t *testing.T) {
		f := newLoginFixture(t, op, func(c *Config) {
			c.MaxAge = 10 * time.Minute
			c.Scopes = []string{"openid", "groups"}
		})
		authURL, _, err := f.l.Start(context.Background(), testCallback)
		require.NoError(t, err)
		u, err := url.Parse(authURL)
		require.NoError(t, err)
		assert.Equal(t, "600", u.Query().Get("max_age"))
		assert.Equal(t, "openid groups", u.Query().Get("scope"))
	})

	t.Run("bad redirect URL", func(t *testing.T) {
		for _, redirect := range []string{"", "/callback", "http://emr.example.org/cb", "https://emr.example.org/cb#x"} {
			_, _, err := f.l.Start(context.Background(), redirect)
			assert.ErrorIs(t, err, errBadRedirect, redirect)
		}
	})

	t.Run("random source fails", func(t *testing.T) {
		f := newLoginFixture(t, op, func(c *Config) { c.Rand = strings.NewReader("short") })
		_, _, err := f.l.Start(context.Background(), testCallback)
		require.Error(t, err)
	})
}

func TestLoginPKCE(t *testing.T) {
	op := newFakeOP(t, false)
	f := newLoginFixture(t, op, nil)
	_, _, err := f.login(t)
	require.NoError(t, err)
	assert.Zero(t, op.pkceFail, "the verifier matched the challenge")

	authURL, req, err := f.l.Start(context.Background(), testCallback)
	require.NoError(t, err)
	code := op.authorize(t, authURL)
	req.Verifier = strings.Repeat("x", 43) // an attacker's injected code and verifier
	_, err = f.l.Finish(context.Background(), req, code)
	require.ErrorIs(t, err, ErrLogin)
	require.ErrorIs(t, err, errExchange)
	assert.Equal(t, 1, op.pkceFail, "the fake token endpoint saw the wrong verifier")
}

func TestLoginFinishBadInput(t *testing.T) {
	op := newFakeOP(t, false)
	f := newLoginFixture(t, op, nil)
	authURL, req, err := f.l.Start(context.Background(), testCallback)
	require.NoError(t, err)
	code := op.authorize(t, authURL)

	tests := []struct {
		name   string
		req    LoginRequest
		code   string
		reason error
	}{
		{name: "empty request", req: LoginRequest{}, code: code, reason: errLoginRequest},
		{name: "short verifier", req: LoginRequest{State: req.State, Nonce: req.Nonce, Verifier: "abc", RedirectURL: testCallback}, code: code, reason: errLoginRequest},
		{name: "empty code", req: req, code: "", reason: errCodeMissing},
		{name: "huge code", req: req, code: strings.Repeat("c", maxCodeBytes+1), reason: errCodeMissing},
		{name: "unknown code", req: req, code: "code-forged", reason: errExchange},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.l.Finish(context.Background(), tt.req, tt.code)
			require.ErrorIs(t, err, ErrLogin)
			require.ErrorIs(t, err, tt.reason)
		})
	}

	t.Run("code is single use", func(t *testing.T) {
		_, err := f.l.Finish(context.Background(), req, code)
		require.NoError(t, err)
		_, err = f.l.Finish(context.Background(), req, code)
		require.ErrorIs(t, err, errExchange)
	})
}

func TestLoginTokenEndpointError(t *testing.T) {
	tests := []struct {
		name        string
		status      int
		unavailable bool
	}{
		{name: "invalid_grant", status: http.StatusBadRequest},
		{name: "client refused", status: http.StatusUnauthorized},
		{name: "redirect not followed", status: http.StatusFound},
		{name: "server error", status: http.StatusServiceUnavailable, unavailable: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op := newFakeOP(t, false)
			op.status.Store(int64(tt.status))
			f := newLoginFixture(t, op, nil)
			res, _, err := f.login(t)
			assert.Nil(t, res)
			require.ErrorIs(t, err, ErrLogin)
			assert.Equal(t, tt.unavailable, errors.Is(err, ErrUnavailable))
			assert.Equal(t, !tt.unavailable, errors.Is(err, errExchange))
			assert.NotContains(t, err.Error(), "bad code", "IdP error text is not passed on")
		})
	}

	t.Run("unreachable", func(t *testing.T) {
		op := newFakeOP(t, false)
		f := newLoginFixture(t, op, nil)
		authURL, req, err := f.l.Start(context.Background(), testCallback)
		require.NoError(t, err)
		code := op.authorize(t, authURL)
		op.srv.Close()
		_, err = f.l.Finish(context.Background(), req, code)
		require.ErrorIs(t, err, ErrLogin)
		require.ErrorIs(t, err, ErrUnavailable)
	})
}

func TestLoginLazyDiscovery(t *testing.T) {
	op := newFakeOP(t, false)
	op.down.Store(true)
	op.idp.down.Store(true)
	f := newLoginFixture(t, op, nil) // NewLogin must not need the IdP

	_, _, err := f.l.Start(context.Background(), testCallback)
	require.ErrorIs(t, err, ErrUnavailable)
	require.ErrorIs(t, f.l.Ready(context.Background()), ErrUnavailable)
	_, err = f.l.Finish(context.Background(), LoginRequest{
		State: "s", Nonce: "n", Verifier: strings.Repeat("v", 43), RedirectURL: testCallback,
	}, "code")
	require.ErrorIs(t, err, ErrLogin)
	require.ErrorIs(t, err, ErrUnavailable)

	op.down.Store(false)
	op.idp.down.Store(false)
	f.clock.Advance(minRefreshInterval) // past the refetch throttle
	require.NoError(t, f.l.Ready(context.Background()))
	res, _, err := f.login(t)
	require.NoError(t, err)
	assert.Equal(t, testSubject, res.Identity.Subject)

	// Keys down later: the ID token cannot be checked, and says so.
	t.Run("keys unavailable", func(t *testing.T) {
		op := newFakeOP(t, false)
		op.idp.down.Store(true)
		f := newLoginFixture(t, op, nil)
		_, _, err := f.login(t)
		require.ErrorIs(t, err, ErrLogin)
		require.ErrorIs(t, err, ErrUnavailable)
	})
}

func TestLoginEndSessionURL(t *testing.T) {
	t.Run("offered", func(t *testing.T) {
		op := newFakeOP(t, true)
		f := newLoginFixture(t, op, nil)
		got := f.l.EndSessionURL(context.Background(), "id.token.raw", "https://emr.example.org/bye")
		u, err := url.Parse(got)
		require.NoError(t, err)
		assert.Equal(t, op.srv.URL+"/logout", u.Scheme+"://"+u.Host+u.Path)
		assert.Equal(t, url.Values{
			"tenant":                   {"emr"},
			"id_token_hint":            {"id.token.raw"},
			"client_id":                {testClientID},
			"post_logout_redirect_uri": {"https://emr.example.org/bye"},
		}, u.Query())
	})
	t.Run("not offered", func(t *testing.T) {
		op := newFakeOP(t, false)
		f := newLoginFixture(t, op, nil)
		assert.Empty(t, f.l.EndSessionURL(context.Background(), "id.token.raw", "https://emr.example.org/bye"))
	})
	t.Run("IdP down", func(t *testing.T) {
		op := newFakeOP(t, true)
		op.down.Store(true)
		f := newLoginFixture(t, op, nil)
		assert.Empty(t, f.l.EndSessionURL(context.Background(), "id.token.raw", ""))
	})
}

func TestNewLoginConfig(t *testing.T) {
	base := func(edit func(*Config)) Config {
		c := Config{Issuer: "https://idp.example.org", ClientID: testClientID}
		if edit != nil {
			edit(&c)
		}
		return c
	}
	tests := []struct {
		name string
		cfg  Config
		want string // substring of the error; "" = valid
	}{
		{name: "public client", cfg: base(nil)},
		{name: "custom scopes", cfg: base(func(c *Config) { c.Scopes = []string{"openid", "groups"} })},
		{name: "client_id missing", cfg: base(func(c *Config) { c.ClientID = ""; c.Audience = "api" }), want: "oidc.client_id"},
		{name: "scopes without openid", cfg: base(func(c *Config) { c.Scopes = []string{"profile"} }), want: "oidc.scopes"},
		{name: "scope with a space", cfg: base(func(c *Config) { c.Scopes = []string{"openid", "a b"} }), want: "oidc.scopes"},
		{name: "negative max_age", cfg: base(func(c *Config) { c.MaxAge = -time.Second }), want: "oidc.max_age"},
		{name: "sub-second max_age", cfg: base(func(c *Config) { c.MaxAge = time.Millisecond }), want: "oidc.max_age"},
		{name: "HS256 refused", cfg: base(func(c *Config) { c.SigningAlgs = []string{"HS256"} }), want: "oidc.signing_algs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := NewLogin(tt.cfg, nil)
			if tt.want == "" {
				require.NoError(t, err)
				assert.NotNil(t, l)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

// Two sign-ins starting while the first discovery fetch is still running
// both wait for it; neither reports the IdP unavailable.
func TestLoginConcurrentFirstDiscovery(t *testing.T) {
	op := newFakeOP(t, false)
	gate := make(chan struct{})
	op.gate = gate
	f := newLoginFixture(t, op, nil)
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			_, _, err := f.l.Start(context.Background(), testCallback)
			errs <- err
		}()
	}
	require.Eventually(t, func() bool { return op.discoveries.Load() >= 1 }, 5*time.Second, time.Millisecond)
	close(gate)
	for range 2 {
		assert.NoError(t, <-errs, "a fetch in progress is not a failure")
	}
}
