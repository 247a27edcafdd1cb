package proxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chartguard/chartguard/chartguard"
	"github.com/chartguard/chartguard/session"
)

// fakeIdP is a minimal OIDC provider: discovery, keys, an authorize
// endpoint that signs the user in at once, a token endpoint checking PKCE,
// and an end-session endpoint.
type fakeIdP struct {
	srv    *httptest.Server
	key    *rsa.PrivateKey
	mu     sync.Mutex
	codes  map[string]authz
	groups []string
}

type authz struct{ nonce, challenge, redirect string }

func newFakeIdP(t *testing.T) *fakeIdP {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	f := &fakeIdP{key: key, codes: map[string]authz{}, groups: []string{"emr-physicians"}}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		b := f.srv.URL
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": b, "authorization_endpoint": b + "/authorize",
			"token_endpoint": b + "/token", "jwks_uri": b + "/jwks", "end_session_endpoint": b + "/logout",
			"id_token_signing_alg_values_supported": []string{"RS256"}, "response_types_supported": []string{"code"},
			"subject_types_supported": []string{"public"}})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	})
	mux.HandleFunc("/authorize", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Get("code_challenge_method") != "S256" || q.Get("response_type") != "code" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		code := base64.RawURLEncoding.EncodeToString(randomBytes(16))
		f.mu.Lock()
		f.codes[code] = authz{nonce: q.Get("nonce"), challenge: q.Get("code_challenge"), redirect: q.Get("redirect_uri")}
		f.mu.Unlock()
		http.Redirect(w, r, q.Get("redirect_uri")+"?code="+code+"&state="+url.QueryEscape(q.Get("state")), http.StatusFound)
	})
	mux.HandleFunc("/token", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		a, ok := f.codes[r.FormValue("code")]
		delete(f.codes, r.FormValue("code"))
		groups := f.groups
		f.mu.Unlock()
		sum := sha256.Sum256([]byte(r.FormValue("code_verifier")))
		if !ok || base64.RawURLEncoding.EncodeToString(sum[:]) != a.challenge {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":"invalid_grant"}`)
			return
		}
		now := time.Now()
		claims := map[string]any{"iss": f.srv.URL, "aud": "chartguard", "sub": "dr-1", "name": "Dr One",
			"email": "dr1@example.org", "groups": groups, "fhirUser": "Practitioner/pr1", "nonce": a.nonce,
			"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "auth_time": now.Unix()}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "at", "token_type": "Bearer", "expires_in": 300,
			"id_token": f.sign(t, claims)})
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeIdP) sign(t *testing.T, claims map[string]any) string {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: f.key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1"))
	require.NoError(t, err)
	payload, _ := json.Marshal(claims)
	jws, err := signer.Sign(payload)
	require.NoError(t, err)
	s, err := jws.CompactSerialize()
	require.NoError(t, err)
	return s
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// ssoHarness is the pipeline with browser sign-in against the fake IdP,
// on a test clock, and a browser-like client that keeps cookies.
type ssoHarness struct {
	*harness
	idp    *fakeIdP
	clock  *testClock
	jar    map[string]*http.Cookie
	client *http.Client
}

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newSSOHarness(t *testing.T, mutate func(*Config)) *ssoHarness {
	idp := newFakeIdP(t)
	clock := &testClock{t: time.Now()}
	secret := t.TempDir() + "/client-secret"
	require.NoError(t, writeFile(secret, "s3cret"))
	h := newHarness(t, allowAll, func(c *Config) {
		c.Listen = "127.0.0.1:0"
		c.OIDC.Issuer, c.OIDC.ClientID, c.OIDC.ClientSecretFile = idp.srv.URL, "chartguard", secret
		c.OIDC.RoleMap = map[string]string{"emr-physicians": "physician"}
		c.Session.InsecureDev = true
		c.Session.Now = clock.Now
		if mutate != nil {
			mutate(c)
		}
	}, nil)
	return &ssoHarness{harness: h, idp: idp, clock: clock, jar: map[string]*http.Cookie{},
		client: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// get sends a browser request (cookies from the jar) to the proxy.
func (s *ssoHarness) send(t *testing.T, method, target string, hdr map[string]string, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, s.server.URL+target, strings.NewReader(body))
	require.NoError(t, err)
	for _, c := range s.jar {
		req.AddCookie(c)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := s.client.Do(req)
	require.NoError(t, err)
	for _, c := range resp.Cookies() {
		if c.MaxAge < 0 {
			delete(s.jar, c.Name)
		} else {
			s.jar[c.Name] = c
		}
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

var navigate = map[string]string{"Accept": "text/html", "Sec-Fetch-Mode": "navigate"}

// refreshURL finds the sign-in interstitial's zero-delay refresh target.
var refreshURL = regexp.MustCompile(`<meta http-equiv="refresh" content="0; url=([^"]+)"/>`)

// continueURL checks that resp is the sign-in interstitial and returns
// where it sends the browser: its refresh and its link agree.
func continueURL(t *testing.T, resp *http.Response) string {
	t.Helper()
	require.Equal(t, http.StatusOK, resp.StatusCode, "sign-in interstitial")
	require.Contains(t, resp.Header.Get("Content-Type"), "text/html")
	assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
	body := readBody(t, resp)
	m := refreshURL.FindStringSubmatch(body)
	require.Len(t, m, 2, "no refresh in %s", body)
	target := html.UnescapeString(m[1])
	assert.Contains(t, body, `href="`+m[1]+`"`, "the Continue link goes where the refresh goes")
	return target
}

// signIn runs the whole login and returns the callback's response.
func (s *ssoHarness) signIn(t *testing.T, rd string) *http.Response {
	t.Helper()
	resp := s.send(t, "GET", "/.chartguard/login?rd="+url.QueryEscape(rd), navigate, "")
	authURL := continueURL(t, resp)
	require.True(t, strings.HasPrefix(authURL, s.idp.srv.URL+"/authorize?"), authURL)
	idpResp, err := s.client.Get(authURL)
	require.NoError(t, err)
	idpResp.Body.Close()
	cb, err := url.Parse(idpResp.Header.Get("Location"))
	require.NoError(t, err)
	require.Equal(t, "/.chartguard/callback", cb.Path)
	return s.send(t, "GET", cb.Path+"?"+cb.RawQuery, navigate, "")
}

func TestBrowserSignInThenUseTheEMR(t *testing.T) {
	s := newSSOHarness(t, nil)
	resp := s.signIn(t, "/fhir/Patient/p1?_count=1")
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, readBody(t, resp))
	assert.Equal(t, "/fhir/Patient/p1?_count=1", resp.Header.Get("Location"))
	c := s.jar["chartguard_session"]
	require.NotNil(t, c, "session cookie set")
	assert.True(t, c.HttpOnly)
	assert.Equal(t, http.SameSiteLaxMode, c.SameSite)
	assert.True(t, session.ValidID(c.Value))

	login := lastEvent(t, s.harness)
	assert.Equal(t, chartguard.ActionLogin, login.Action)
	assert.Equal(t, chartguard.OutcomeAllowed, login.Outcome)
	assert.Equal(t, "dr-1", login.User.Subject)
	assert.Equal(t, session.Hash(c.Value), login.User.Session)

	resp = s.send(t, "GET", "/fhir/Patient/p1", navigate, "")
	assert.Equal(t, http.StatusOK, resp.StatusCode, readBody(t, resp))
	ev := lastEvent(t, s.harness)
	assert.Equal(t, "dr-1", ev.User.Subject)
	assert.Equal(t, []string{"physician"}, ev.User.Roles)
	assert.Equal(t, session.Hash(c.Value), ev.User.Session)
	raw, _ := json.Marshal(ev)
	assert.NotContains(t, string(raw), c.Value, "the session id never reaches the audit log")
	for _, rec := range s.seen() {
		assert.NotContains(t, rec.Header.Get("Cookie"), c.Value, "nor the EMR")
	}

	resp = s.send(t, "GET", "/.chartguard/session", nil, "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var info struct {
		User          string `json:"user"`
		ExpiresIn     int    `json:"expires_in"`
		IdleExpiresIn int    `json:"idle_expires_in"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&info))
	assert.Equal(t, "Dr One", info.User)
	assert.InDelta(t, (12 * time.Hour).Seconds(), info.ExpiresIn, 5)
	assert.InDelta(t, (15 * time.Minute).Seconds(), info.IdleExpiresIn, 5)
}

func TestBrowserSignInBadInput(t *testing.T) {
	t.Run("replayed state", func(t *testing.T) {
		s := newSSOHarness(t, nil)
		resp := s.send(t, "GET", "/.chartguard/login?rd=/", navigate, "")
		idpResp, err := s.client.Get(continueURL(t, resp))
		require.NoError(t, err)
		cb, _ := url.Parse(idpResp.Header.Get("Location"))
		first := s.send(t, "GET", cb.Path+"?"+cb.RawQuery, navigate, "")
		require.Equal(t, http.StatusSeeOther, first.StatusCode)
		again := s.send(t, "GET", cb.Path+"?"+cb.RawQuery, navigate, "")
		assert.Equal(t, http.StatusUnauthorized, again.StatusCode)
		assert.Contains(t, readBody(t, again), "expired or was already used")
		assert.Equal(t, []string{"expired_state"}, lastEvent(t, s.harness).Decision.Reasons)
	})
	t.Run("callback without the browser that started it", func(t *testing.T) {
		s := newSSOHarness(t, nil)
		resp := s.send(t, "GET", "/.chartguard/login?rd=/", navigate, "")
		idpResp, err := s.client.Get(continueURL(t, resp))
		require.NoError(t, err)
		cb, _ := url.Parse(idpResp.Header.Get("Location"))
		delete(s.jar, "chartguard_login")
		got := s.send(t, "GET", cb.Path+"?"+cb.RawQuery, navigate, "")
		assert.Equal(t, http.StatusUnauthorized, got.StatusCode)
		assert.Nil(t, s.jar["chartguard_session"])
	})
	t.Run("missing state", func(t *testing.T) {
		s := newSSOHarness(t, nil)
		got := s.send(t, "GET", "/.chartguard/callback?code=x", navigate, "")
		assert.Equal(t, http.StatusUnauthorized, got.StatusCode)
	})
	t.Run("no role", func(t *testing.T) {
		s := newSSOHarness(t, nil)
		s.idp.groups = []string{"cafeteria"}
		got := s.signIn(t, "/")
		assert.Equal(t, http.StatusForbidden, got.StatusCode)
		assert.Contains(t, readBody(t, got), "no role")
		ev := lastEvent(t, s.harness)
		assert.Equal(t, chartguard.ActionLogin, ev.Action)
		assert.Equal(t, chartguard.OutcomeDenied, ev.Outcome)
		assert.Equal(t, []string{"no_role"}, ev.Decision.Reasons)
		assert.Nil(t, s.jar["chartguard_session"])
	})
	for _, rd := range []string{"//evil.example.com", "/\\evil.example.com", "/%09/evil.example.com", "https:evil.example.com", "/%2F%2Fevil"} {
		t.Run("open redirect "+rd, func(t *testing.T) {
			s := newSSOHarness(t, nil)
			start := s.send(t, "GET", "/.chartguard/login?rd="+url.QueryEscape(rd), navigate, "")
			if start.StatusCode == http.StatusBadRequest {
				return // the normaliser refused the request outright: no redirect at all
			}
			got := s.signIn(t, rd)
			require.Equal(t, http.StatusSeeOther, got.StatusCode)
			assert.Equal(t, "/", got.Header.Get("Location"), "an unsafe rd returns to the start page")
		})
	}
	t.Run("forged session cookie", func(t *testing.T) {
		s := newSSOHarness(t, nil)
		s.jar["chartguard_session"] = &http.Cookie{Name: "chartguard_session", Value: strings.Repeat("A", 43)}
		got := s.send(t, "GET", "/fhir/Patient/p1", navigate, "")
		assert.Equal(t, http.StatusFound, got.StatusCode)
		assert.True(t, strings.HasPrefix(got.Header.Get("Location"), "/.chartguard/login?rd="))
		assert.Nil(t, s.jar["chartguard_session"], "the forged cookie is cleared")
		assert.Empty(t, s.seen(), "nothing reached the EMR")
	})
}

func TestBrowserWithoutSession(t *testing.T) {
	s := newSSOHarness(t, nil)
	got := s.send(t, "GET", "/fhir/Patient/p1?_count=2", navigate, "")
	assert.Equal(t, http.StatusFound, got.StatusCode)
	assert.Equal(t, "/.chartguard/login?rd="+url.QueryEscape("/fhir/Patient/p1?_count=2"), got.Header.Get("Location"))
	got = s.send(t, "GET", "/fhir/Patient/p1", map[string]string{"Accept": "application/fhir+json"}, "")
	assert.Equal(t, http.StatusUnauthorized, got.StatusCode, "API calls are not redirected")
	got = s.send(t, "GET", "/fhir/Patient/p1", map[string]string{"Authorization": "Bearer good"}, "")
	assert.Equal(t, http.StatusOK, got.StatusCode, "bearer tokens still work")
}

func TestIdleAndAbsoluteExpiry(t *testing.T) {
	s := newSSOHarness(t, nil)
	require.Equal(t, http.StatusSeeOther, s.signIn(t, "/").StatusCode)
	s.clock.Add(14 * time.Minute)
	require.Equal(t, http.StatusOK, s.send(t, "GET", "/fhir/Patient/p1", navigate, "").StatusCode, "activity")
	s.clock.Add(14 * time.Minute)
	// Asking about the session is not activity.
	require.Equal(t, http.StatusOK, s.send(t, "GET", "/.chartguard/session", nil, "").StatusCode)
	s.clock.Add(65 * time.Second) // 15 min and 5 s after the last activity
	got := s.send(t, "POST", "/fhir/Observation", map[string]string{"Content-Type": "application/fhir+json"}, obsP1)
	assert.Equal(t, http.StatusUnauthorized, got.StatusCode)
	body := readBody(t, got)
	assert.Contains(t, body, "not saved")
	assert.Contains(t, body, `target="_blank"`)
	ev := lastEvent(t, s.harness)
	assert.Equal(t, chartguard.ActionLogout, ev.Action)
	assert.Equal(t, []string{"session expired (idle)"}, ev.Decision.Reasons)
	assert.Empty(t, func() []upstreamRecord {
		var posts []upstreamRecord
		for _, r := range s.seen() {
			if r.Method == "POST" {
				posts = append(posts, r)
			}
		}
		return posts
	}(), "the submission never reached the EMR")

	s2 := newSSOHarness(t, nil)
	require.Equal(t, http.StatusSeeOther, s2.signIn(t, "/").StatusCode)
	for i := range 800 { // active all day: only the absolute lifetime ends it
		step := 13 * time.Minute
		if i >= 55 { // near the 12 h mark, minute by minute
			step = time.Minute
		}
		s2.clock.Add(step)
		if resp := s2.send(t, "GET", "/fhir/Patient/p1", navigate, ""); resp.Header.Get("Content-Type") != "application/fhir+json" {
			require.Equal(t, http.StatusOK, resp.StatusCode, "step %d", i)
			assert.Contains(t, readBody(t, resp), "Sign in", "the logged-off page")
			assert.Equal(t, []string{"session expired (absolute)"}, lastEvent(t, s2.harness).Decision.Reasons)
			return
		}
	}
	t.Fatal("the session outlived its absolute lifetime")
}

func TestLogout(t *testing.T) {
	s := newSSOHarness(t, nil)
	require.Equal(t, http.StatusSeeOther, s.signIn(t, "/").StatusCode)
	confirm := s.send(t, "GET", "/.chartguard/logout", navigate, "")
	require.Equal(t, http.StatusOK, confirm.StatusCode)
	page := readBody(t, confirm)
	assert.Contains(t, page, `name="csrf"`)

	got := s.send(t, "POST", "/.chartguard/logout", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, "csrf=wrong")
	assert.Equal(t, http.StatusForbidden, got.StatusCode, "no CSRF token, no logout")
	require.Equal(t, http.StatusOK, s.send(t, "GET", "/fhir/Patient/p1", navigate, "").StatusCode, "still signed in")

	i := strings.Index(page, `name="csrf" value="`)
	require.Positive(t, i)
	token := page[i+len(`name="csrf" value="`):]
	token = token[:strings.IndexByte(token, '"')]
	got = s.send(t, "POST", "/.chartguard/logout", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, "csrf="+url.QueryEscape(token))
	require.Equal(t, http.StatusSeeOther, got.StatusCode)
	assert.True(t, strings.HasPrefix(got.Header.Get("Location"), s.idp.srv.URL+"/logout?"), "RP-initiated logout at the IdP")
	assert.Equal(t, chartguard.ActionLogout, lastEvent(t, s.harness).Action)
	assert.Nil(t, s.jar["chartguard_session"])
	assert.Equal(t, http.StatusFound, s.send(t, "GET", "/fhir/Patient/p1", navigate, "").StatusCode, "signed out")
}

func TestSSOConfig(t *testing.T) {
	cfg := defaults()
	cfg.PublicURL, cfg.Upstream.URL = "http://emr.example.org", "http://127.0.0.1:8081"
	cfg.Audit.Dir, cfg.Admin.Listen = t.TempDir(), ""
	cfg.Audit.SigningKeyFile = "unused.key" // validate only
	cfg.OIDC.Issuer, cfg.OIDC.ClientID = "https://idp.example.org", "chartguard"
	cfg.OIDC.ClientSecretFile = t.TempDir() + "/missing"
	err := cfg.validate()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "oidc.client_secret_file")
	assert.Contains(t, err.Error(), "public_url: must be https for browser sign-in")

	cfg.Session.InsecureDev = true
	cfg.Listen = ":8443"
	err = cfg.validate()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "session.insecure_dev: only allowed when listen is a loopback address")
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }

func TestIdentityAssertion(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	keyFile := t.TempDir() + "/assertion.pem"
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600))
	h := newHarness(t, nil, func(c *Config) { c.Assertion.SigningKeyFile = keyFile }, nil)

	hdr := good.Clone()
	hdr.Set("X-Chartguard-Assertion", "forged")
	resp := h.do(t, "GET", "/fhir/Patient/p1", hdr, "")
	require.Equal(t, http.StatusOK, resp.StatusCode, readBody(t, resp))
	seen := h.seen()
	require.Len(t, seen, 1)
	tok := seen[0].Header.Get("X-Chartguard-Assertion")
	require.NotEqual(t, "forged", tok, "a client-sent assertion never reaches the EMR")

	jwksResp := h.do(t, "GET", "/.chartguard/jwks.json", nil, "")
	require.Equal(t, http.StatusOK, jwksResp.StatusCode)
	var set jose.JSONWebKeySet
	require.NoError(t, json.NewDecoder(jwksResp.Body).Decode(&set))
	require.Len(t, set.Keys, 1)
	jws, err := jose.ParseSigned(tok, []jose.SignatureAlgorithm{jose.ES256})
	require.NoError(t, err)
	payload, err := jws.Verify(set.Keys[0])
	require.NoError(t, err, "the assertion verifies with the published key")
	var claims map[string]any
	require.NoError(t, json.Unmarshal(payload, &claims))
	assert.Equal(t, "u1", claims["sub"])
	assert.Equal(t, "https://emr.example.org", claims["iss"])
	assert.Contains(t, fmt.Sprint(claims["aud"]), h.upstream.URL)
	exp, iat := claims["exp"].(float64), claims["iat"].(float64)
	assert.LessOrEqual(t, exp-iat, (5 * time.Minute).Seconds())
}

// ChartGuard starts while the IdP is down: /readyz says so (and keeps the
// replica in service), sign-in answers 503, bearer-less API calls 401.
func TestIdPDownAtStart(t *testing.T) {
	s := newSSOHarness(t, nil)
	s.idp.srv.Close() // before anything was discovered
	got := s.send(t, "GET", "/.chartguard/login?rd=/", navigate, "")
	assert.Equal(t, http.StatusServiceUnavailable, got.StatusCode)
	assert.Contains(t, readBody(t, got), "identity provider cannot be reached")
	rec := httptest.NewRecorder()
	s.proxy.readyz(rec, httptest.NewRequest("GET", "/readyz", nil))
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.Contains(t, rec.Body.String(), "identity provider unreachable")
	assert.Equal(t, http.StatusUnauthorized, s.send(t, "GET", "/fhir/Patient/p1", nil, "").StatusCode)
}

// A browser page load that policy refuses gets ChartGuard's access-denied
// page with the reasons and a Sign out button; an API call gets FHIR JSON.
func TestBrowserDeniedPage(t *testing.T) {
	s := newSSOHarness(t, nil)
	s.proxy.policy = decideFunc(func(in *chartguard.Input) (chartguard.Decision, error) {
		return chartguard.Decision{Reasons: []string{"not on the patient's care team"}}, nil
	})
	require.Equal(t, http.StatusSeeOther, s.signIn(t, "/").StatusCode)
	got := s.send(t, "GET", "/fhir/Patient/p2", navigate, "")
	require.Equal(t, http.StatusForbidden, got.StatusCode)
	assert.Contains(t, got.Header.Get("Content-Type"), "text/html")
	body := readBody(t, got)
	assert.Contains(t, body, "not on the patient")
	assert.Contains(t, body, "Sign out")
	assert.Contains(t, body, `name="csrf"`)
	got = s.send(t, "GET", "/fhir/Patient/p2", map[string]string{"Accept": "application/fhir+json"}, "")
	assert.Equal(t, http.StatusForbidden, got.StatusCode)
	assert.Contains(t, readBody(t, got), "OperationOutcome")
}

// Sign-in starts count against limits.unauthenticated_rps: nobody can
// fill the pending sign-ins or the audit log from one address.
func TestSignInIsRateLimited(t *testing.T) {
	s := newSSOHarness(t, func(c *Config) { c.Limits.UnauthenticatedRPS = 2 })
	codes := map[int]int{}
	for range 10 {
		codes[s.send(t, "GET", "/.chartguard/login?rd=/", navigate, "").StatusCode]++
	}
	assert.Positive(t, codes[http.StatusTooManyRequests])
	assert.Positive(t, codes[http.StatusOK])
	assert.Equal(t, 10, codes[http.StatusTooManyRequests]+codes[http.StatusOK])
}
