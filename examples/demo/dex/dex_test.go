package dex_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/chartguard/chartguard/examples/demo/dex"
)

const redirectURL = "http://127.0.0.1:8443/oauth2/callback"

// client is a browser stand-in: it keeps cookies and follows redirects
// inside Dex, and stops at the first redirect that leaves it (the
// redirect_uri), so the test can read the code.
func client(t *testing.T, idp *dex.IdP) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	issuer, err := url.Parse(idp.Issuer)
	require.NoError(t, err)
	return &http.Client{
		Jar: jar,
		// Only a guard against a hung Dex: parallel logins each check a
		// bcrypt password, which takes seconds under -race on 2 busy cores.
		Timeout: 30 * time.Second,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.URL.Host != issuer.Host || len(via) > 10 {
				return http.ErrUseLastResponse
			}
			return nil
		},
	}
}

func randomValue(t *testing.T) string {
	t.Helper()
	b := make([]byte, 16)
	_, err := io.ReadFull(rand.Reader, b)
	require.NoError(t, err)
	return base64.RawURLEncoding.EncodeToString(b)
}

func oauthConfig(idp *dex.IdP, p *oidc.Provider) *oauth2.Config {
	return &oauth2.Config{
		ClientID:     idp.ClientID,
		ClientSecret: idp.ClientSecret,
		Endpoint:     p.Endpoint(),
		RedirectURL:  idp.RedirectURL,
		Scopes:       []string{oidc.ScopeOpenID, "email", "profile", "groups"},
	}
}

// login runs the browser part of the code flow: open the authorization
// URL, land on the password form, post it. It returns the answer to the
// post (after redirects inside Dex).
func login(t *testing.T, c *http.Client, authURL, email, password string) *http.Response {
	t.Helper()
	resp, err := c.Get(authURL)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "login form")
	form := resp.Request.URL // /dex/auth/local/login?back=&state=<id>
	require.True(t, strings.HasSuffix(form.Path, "/auth/local/login"), "login form at %s", form.Path)

	resp, err = c.PostForm(form.String(), url.Values{"login": {email}, "password": {password}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = resp.Body.Close() })
	return resp
}

func testDiscovery(t *testing.T, idp *dex.IdP) {
	t.Parallel()
	require.True(t, strings.HasPrefix(idp.Issuer, "http://127.0.0.1:"), idp.Issuer)
	require.True(t, strings.HasSuffix(idp.Issuer, "/dex"), idp.Issuer)

	// NewProvider fails unless the discovered issuer equals idp.Issuer.
	p, err := oidc.NewProvider(t.Context(), idp.Issuer)
	require.NoError(t, err)
	var doc struct {
		Issuer     string   `json:"issuer"`
		Auth       string   `json:"authorization_endpoint"`
		Token      string   `json:"token_endpoint"`
		JWKS       string   `json:"jwks_uri"`
		Grants     []string `json:"grant_types_supported"`
		Scopes     []string `json:"scopes_supported"`
		Challenges []string `json:"code_challenge_methods_supported"`
	}
	require.NoError(t, p.Claims(&doc))
	assert.Equal(t, idp.Issuer, doc.Issuer)
	assert.Equal(t, idp.Issuer+"/auth", doc.Auth)
	assert.Equal(t, idp.Issuer+"/token", doc.Token)
	assert.Equal(t, idp.Issuer+"/keys", doc.JWKS)
	assert.ElementsMatch(t, []string{"authorization_code", "refresh_token"}, doc.Grants)
	assert.Contains(t, doc.Scopes, "groups")
	assert.Equal(t, []string{"S256"}, doc.Challenges)
}

func testLogin(t *testing.T, idp *dex.IdP) {
	t.Parallel()
	physician, ok := idp.User("physician")
	require.True(t, ok)
	p, err := oidc.NewProvider(t.Context(), idp.Issuer)
	require.NoError(t, err)
	conf := oauthConfig(idp, p)

	tests := []struct {
		name, email, password string
		wantCode              bool
	}{
		{"right password", physician.Email, physician.Password, true},
		{"email in another case", strings.ToUpper(physician.Email), physician.Password, true},
		{"wrong password", physician.Email, physician.Password + "x", false},
		{"unknown user", "nobody@" + dex.EmailDomain, physician.Password, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			state, nonce, verifier := randomValue(t), randomValue(t), oauth2.GenerateVerifier()
			authURL := conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce))
			resp := login(t, client(t, idp), authURL, tc.email, tc.password)
			if !tc.wantCode {
				assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
				assert.Empty(t, resp.Header.Get("Location"))
				return
			}
			require.Equal(t, http.StatusSeeOther, resp.StatusCode)
			loc, err := url.Parse(resp.Header.Get("Location"))
			require.NoError(t, err)
			assert.Equal(t, redirectURL, loc.Scheme+"://"+loc.Host+loc.Path)
			assert.Equal(t, state, loc.Query().Get("state"))
			code := loc.Query().Get("code")
			require.NotEmpty(t, code)

			tok, err := conf.Exchange(t.Context(), code, oauth2.VerifierOption(verifier))
			require.NoError(t, err)
			raw, ok := tok.Extra("id_token").(string)
			require.True(t, ok, "no id_token")
			idt, err := p.Verifier(&oidc.Config{ClientID: dex.ClientID}).Verify(t.Context(), raw)
			require.NoError(t, err)
			var claims struct {
				Email    string   `json:"email"`
				Verified bool     `json:"email_verified"`
				Groups   []string `json:"groups"`
				Nonce    string   `json:"nonce"`
			}
			require.NoError(t, idt.Claims(&claims))
			assert.Equal(t, "physician@demo.chartguard.example", claims.Email)
			assert.True(t, claims.Verified)
			assert.Contains(t, claims.Groups, "chartguard-physician")
			assert.Equal(t, nonce, claims.Nonce)
		})
	}
}

func testPKCE(t *testing.T, idp *dex.IdP) {
	t.Parallel()
	u, _ := idp.User("nurse")
	p, err := oidc.NewProvider(t.Context(), idp.Issuer)
	require.NoError(t, err)
	conf := oauthConfig(idp, p)

	t.Run("authorization request without a challenge is refused", func(t *testing.T) {
		t.Parallel()
		resp, err := client(t, idp).Get(conf.AuthCodeURL(randomValue(t)))
		require.NoError(t, err)
		_ = resp.Body.Close()
		loc, err := url.Parse(resp.Header.Get("Location"))
		require.NoError(t, err)
		assert.Equal(t, "invalid_request", loc.Query().Get("error"), "got %d %s", resp.StatusCode, loc)
		assert.Empty(t, loc.Query().Get("code"))
	})
	t.Run("plain challenge is refused", func(t *testing.T) {
		t.Parallel()
		v := oauth2.GenerateVerifier()
		authURL := conf.AuthCodeURL(randomValue(t),
			oauth2.SetAuthURLParam("code_challenge", v), oauth2.SetAuthURLParam("code_challenge_method", "plain"))
		resp, err := client(t, idp).Get(authURL)
		require.NoError(t, err)
		_ = resp.Body.Close()
		loc, err := url.Parse(resp.Header.Get("Location"))
		require.NoError(t, err)
		assert.Equal(t, "invalid_request", loc.Query().Get("error"), "got %d %s", resp.StatusCode, loc)
	})
	t.Run("code without the verifier is refused", func(t *testing.T) {
		t.Parallel()
		verifier := oauth2.GenerateVerifier()
		resp := login(t, client(t, idp), conf.AuthCodeURL(randomValue(t), oauth2.S256ChallengeOption(verifier)), u.Email, u.Password)
		require.Equal(t, http.StatusSeeOther, resp.StatusCode)
		loc, err := url.Parse(resp.Header.Get("Location"))
		require.NoError(t, err)
		code := loc.Query().Get("code")
		require.NotEmpty(t, code)
		_, err = conf.Exchange(t.Context(), code, oauth2.VerifierOption(oauth2.GenerateVerifier()))
		var re *oauth2.RetrieveError
		require.ErrorAs(t, err, &re)
		assert.Equal(t, "invalid_grant", re.ErrorCode)
	})
}

func testUsers(t *testing.T, idp *dex.IdP) {
	t.Parallel()
	wantFHIR := map[string]string{"physician": "Practitioner/pr1", "nurse": "Practitioner/pr9"}

	require.Len(t, idp.Users, len(dex.Roles()))
	seen := map[string]bool{}
	for i, role := range dex.Roles() {
		u := idp.Users[i]
		assert.Equal(t, role, u.Role)
		assert.Equal(t, role+"@demo.chartguard.example", u.Email)
		assert.Equal(t, []string{"chartguard-" + role}, u.Groups)
		assert.Equal(t, wantFHIR[role], u.FHIRUser, role)
		assert.GreaterOrEqual(t, len(u.Password), 20, "password of %s too short", role)
		assert.False(t, seen[u.Password], "password of %s repeated", role)
		seen[u.Password] = true
		got, ok := idp.User(role)
		assert.True(t, ok)
		assert.Equal(t, u, got)
	}
	_, ok := idp.User("admin")
	assert.False(t, ok)
	assert.NotEmpty(t, idp.ClientSecret)
	assert.False(t, seen[idp.ClientSecret])
	assert.Equal(t, "chartguard", idp.ClientID)

	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("user", "user", idp.Users[0])
	assert.Contains(t, buf.String(), idp.Users[0].Email)
	assert.NotContains(t, buf.String(), idp.Users[0].Password)
}

func TestStartRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		opts    dex.Options
		wantErr error
	}{
		{"all interfaces", dex.Options{RedirectURL: redirectURL, Addr: "0.0.0.0:0"}, dex.ErrNotLoopback},
		{"empty host", dex.Options{RedirectURL: redirectURL, Addr: ":0"}, dex.ErrNotLoopback},
		{"LAN address", dex.Options{RedirectURL: redirectURL, Addr: "10.0.0.1:0"}, dex.ErrNotLoopback},
		{"host name", dex.Options{RedirectURL: redirectURL, Addr: "example.com:0"}, dex.ErrNotLoopback},
		{"no port", dex.Options{RedirectURL: redirectURL, Addr: "127.0.0.1"}, dex.ErrNotLoopback},
		{"no redirect URL", dex.Options{}, dex.ErrOptions},
		{"relative redirect URL", dex.Options{RedirectURL: "/oauth2/callback"}, dex.ErrOptions},
		{"redirect URL with fragment", dex.Options{RedirectURL: redirectURL + "#x"}, dex.ErrOptions},
		{"redirect URL with user info", dex.Options{RedirectURL: "http://u:p@127.0.0.1/cb"}, dex.ErrOptions},
		{"redirect URL of another scheme", dex.Options{RedirectURL: "javascript://127.0.0.1/cb"}, dex.ErrOptions},
		{"broken randomness", dex.Options{RedirectURL: redirectURL, Rand: bytes.NewReader(nil)}, io.EOF},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			idp, err := dex.Start(t.Context(), tc.opts)
			require.Error(t, err)
			assert.Nil(t, idp)
			assert.True(t, errors.Is(err, tc.wantErr), "Start() = %v, want %v", err, tc.wantErr)
		})
	}
}

// TestIdP starts one Dex for all the behaviour tests: a start hashes nine
// bcrypt passwords and makes an RSA key, seconds under -race.
func TestIdP(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	idp, err := dex.Start(ctx, dex.Options{RedirectURL: redirectURL, Addr: "localhost:0"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = idp.Close() })
	// Cancelling the start context must not stop Dex: every test below
	// runs after it.
	cancel()

	t.Run("group", func(t *testing.T) {
		t.Run("discovery", func(t *testing.T) { testDiscovery(t, idp) })
		t.Run("login", func(t *testing.T) { testLogin(t, idp) })
		t.Run("PKCE", func(t *testing.T) { testPKCE(t, idp) })
		t.Run("users", func(t *testing.T) { testUsers(t, idp) })
	})

	t.Run("close", func(t *testing.T) {
		require.NoError(t, idp.Close())
		require.NoError(t, idp.Close(), "second Close")
		c := &http.Client{Timeout: 5 * time.Second}
		_, err := c.Get(idp.Issuer + "/.well-known/openid-configuration")
		assert.Error(t, err, "Dex still answers after Close")
	})
}
