package authn

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chartguard/chartguard/chartguard"
)

func TestBearerAuthenticate(t *testing.T) {
	idp := newTestIdP(t)
	skew := DefaultClockSkew

	// claimsToken returns a case's token builder: valid claims edited by mod.
	claimsToken := func(mod func(jwt.MapClaims)) func(t *testing.T) string {
		return func(t *testing.T) string { return idp.token(t, mod) }
	}
	// headerToken signs valid claims with an edited JOSE header.
	headerToken := func(hdr map[string]any) func(t *testing.T) string {
		return func(t *testing.T) string {
			return sign(t, jwt.SigningMethodRS256, idp.rsa, "rsa1", idp.claims(), hdr)
		}
	}

	tests := []struct {
		name string
		// token builds the bearer token; authz, if set, is sent instead
		// of "Bearer <token>" (with %s replaced by the token).
		token  func(t *testing.T) string
		authz  []string
		edit   func(*Config)
		want   error // sentinel; nil = success
		reason error // fixed reason wrapped in the error
		check  func(t *testing.T, p *chartguard.Principal)
	}{
		{
			name:  "valid RS256",
			token: claimsToken(nil),
			check: func(t *testing.T, p *chartguard.Principal) {
				assert.Equal(t, chartguard.Identity{
					Issuer:   idp.issuer(),
					Subject:  testSubject,
					Name:     "Dr Grey",
					Email:    testEmail,
					Roles:    []string{"physician"},
					Groups:   []string{"emr-physicians"},
					FHIRUser: "Practitioner/42",
				}, p.Identity)
				assert.Equal(t, chartguard.Token{
					Kind:     chartguard.TokenBearer,
					ClientID: "smart-app",
					Scopes:   []string{"openid", "patient/*.read"},
				}, p.Token)
				assert.Len(t, p.TokenHash, 64)
			},
		},
		{
			name: "valid ES256",
			token: func(t *testing.T) string {
				return sign(t, jwt.SigningMethodES256, idp.ec, "ec1", idp.claims(), nil)
			},
			check: func(t *testing.T, p *chartguard.Principal) { assert.Equal(t, testSubject, p.Identity.Subject) },
		},
		{
			name: "valid PS256",
			token: func(t *testing.T) string {
				return sign(t, jwt.SigningMethodPS256, idp.rsa, "rsa1", idp.claims(), nil)
			},
		},
		{
			name: "HS256 with the public key as secret",
			token: func(t *testing.T) string {
				return sign(t, jwt.SigningMethodHS256, idp.publicPEM(t), "rsa1", idp.claims(), nil)
			},
			want: ErrInvalidCredentials, reason: errMalformed,
		},
		{
			name: "alg none",
			token: func(t *testing.T) string {
				return sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "rsa1", idp.claims(), nil)
			},
			want: ErrInvalidCredentials, reason: errMalformed,
		},
		{
			name: "RS512 when config lacks it",
			token: func(t *testing.T) string {
				return sign(t, jwt.SigningMethodRS512, idp.rsa, "rsa1", idp.claims(), nil)
			},
			want: ErrInvalidCredentials, reason: errMalformed,
		},
		{
			name: "RS512 when config allows it",
			token: func(t *testing.T) string {
				return sign(t, jwt.SigningMethodRS512, idp.rsa, "rsa1", idp.claims(), nil)
			},
			edit: func(c *Config) { c.SigningAlgs = []string{"RS512"} },
		},
		{
			name:  "RS256 when config allows only ES256",
			token: claimsToken(nil),
			edit:  func(c *Config) { c.SigningAlgs = []string{"ES256"} },
			want:  ErrInvalidCredentials, reason: errMalformed,
		},
		{
			name:  "wrong issuer",
			token: claimsToken(func(c jwt.MapClaims) { c["iss"] = "https://evil.example" }),
			want:  ErrInvalidCredentials, reason: errIssuer,
		},
		{
			name:  "issuer with trailing slash",
			token: claimsToken(func(c jwt.MapClaims) { c["iss"] = idp.issuer() + "/" }),
			want:  ErrInvalidCredentials, reason: errIssuer,
		},
		{
			name:  "wrong audience",
			token: claimsToken(func(c jwt.MapClaims) { c["aud"] = "other-api" }),
			want:  ErrInvalidCredentials, reason: errAudience,
		},
		{
			name:  "client id is not the audience",
			token: claimsToken(func(c jwt.MapClaims) { c["aud"] = "chartguard" }),
			want:  ErrInvalidCredentials, reason: errAudience,
		},
		{
			name:  "audience in a list",
			token: claimsToken(func(c jwt.MapClaims) { c["aud"] = []string{"other-api", testAudience} }),
		},
		{
			name:  "expired within skew",
			token: claimsToken(func(c jwt.MapClaims) { c["exp"] = t0.Add(-skew + time.Second).Unix() }),
		},
		{
			name:  "expired beyond skew",
			token: claimsToken(func(c jwt.MapClaims) { c["exp"] = t0.Add(-skew - time.Second).Unix() }),
			want:  ErrInvalidCredentials, reason: errExpired,
		},
		{
			name:  "nbf in the future within skew",
			token: claimsToken(func(c jwt.MapClaims) { c["nbf"] = t0.Add(skew - time.Second).Unix() }),
		},
		{
			name:  "nbf in the future beyond skew",
			token: claimsToken(func(c jwt.MapClaims) { c["nbf"] = t0.Add(skew + time.Second).Unix() }),
			want:  ErrInvalidCredentials, reason: errNotYetValid,
		},
		{
			name:  "iat in the future beyond skew",
			token: claimsToken(func(c jwt.MapClaims) { c["iat"] = t0.Add(skew + time.Second).Unix() }),
			want:  ErrInvalidCredentials, reason: errIssuedInFuture,
		},
		{
			name:  "missing exp",
			token: claimsToken(func(c jwt.MapClaims) { delete(c, "exp") }),
			want:  ErrInvalidCredentials, reason: errMissingExp,
		},
		{
			name:  "exp not a number",
			token: claimsToken(func(c jwt.MapClaims) { c["exp"] = "tomorrow" }),
			want:  ErrInvalidCredentials, reason: errClaims,
		},
		{
			name:  "missing sub",
			token: claimsToken(func(c jwt.MapClaims) { delete(c, "sub") }),
			want:  ErrInvalidCredentials, reason: errMissingSub,
		},
		{
			name:  "nonce present",
			token: claimsToken(func(c jwt.MapClaims) { c["nonce"] = "n-0S6_WzA2Mj" }),
			want:  ErrInvalidCredentials, reason: errIDToken,
		},
		{
			name:  "at_hash present",
			token: claimsToken(func(c jwt.MapClaims) { c["at_hash"] = "77QmUPtjPfzWtF2AnpK9RQ" }),
			want:  ErrInvalidCredentials, reason: errIDToken,
		},
		{
			name:  "typ id+jwt",
			token: headerToken(map[string]any{"typ": "id+jwt"}),
			want:  ErrInvalidCredentials, reason: errTokenType,
		},
		{
			name:  "typ not a string",
			token: headerToken(map[string]any{"typ": 7}),
			want:  ErrInvalidCredentials, reason: errTokenType,
		},
		{name: "typ JWT", token: headerToken(map[string]any{"typ": "JWT"})},
		{name: "typ at+jwt", token: headerToken(map[string]any{"typ": "at+jwt"})},
		{name: "typ application/at+jwt upper case", token: headerToken(map[string]any{"typ": "APPLICATION/AT+JWT"})},
		{name: "typ absent", token: headerToken(map[string]any{"typ": nil})},
		{
			name: "signed by an unknown key",
			token: func(t *testing.T) string {
				return sign(t, jwt.SigningMethodRS256, idp.rogue, "rogue", idp.claims(), nil)
			},
			want: ErrInvalidCredentials, reason: errUnknownKey,
		},
		{
			name: "signed by another key under a known kid",
			token: func(t *testing.T) string {
				return sign(t, jwt.SigningMethodRS256, idp.rogue, "rsa1", idp.claims(), nil)
			},
			want: ErrInvalidCredentials, reason: errBadSignature,
		},
		{
			name: "tampered payload",
			token: func(t *testing.T) string {
				return tamper(t, idp.token(t, nil), func(c map[string]any) { c["groups"] = []string{"emr-admins"} })
			},
			want: ErrInvalidCredentials, reason: errBadSignature,
		},
		{
			name:  "two Authorization headers",
			token: claimsToken(nil),
			authz: []string{"Bearer %s", "Bearer %s"},
			want:  ErrInvalidCredentials, reason: errMultipleHeaders,
		},
		{
			name:  "Basic scheme",
			token: claimsToken(nil),
			authz: []string{"Basic dXNlcjpwYXNz"},
			want:  ErrInvalidCredentials, reason: errNotBearer,
		},
		{
			name:  "Bearer with empty token",
			token: claimsToken(nil),
			authz: []string{"Bearer "},
			want:  ErrInvalidCredentials, reason: errMalformed,
		},
		{
			name:  "Bearer without a space",
			token: claimsToken(nil),
			authz: []string{"Bearer"},
			want:  ErrInvalidCredentials, reason: errNotBearer,
		},
		{
			name:  "Bearer with two spaces",
			token: claimsToken(nil),
			authz: []string{"Bearer  %s"},
			want:  ErrInvalidCredentials, reason: errMalformed,
		},
		{
			name:  "lower-case scheme",
			token: claimsToken(nil),
			authz: []string{"bearer %s"},
		},
		{
			name:  "empty Authorization header",
			token: claimsToken(nil),
			authz: []string{""},
			want:  ErrInvalidCredentials, reason: errNotBearer,
		},
		{
			name:  "no Authorization header",
			token: claimsToken(nil),
			authz: []string{},
			want:  ErrNoCredentials,
		},
		{
			name:  "oversized token",
			token: claimsToken(func(c jwt.MapClaims) { c["pad"] = strings.Repeat("x", MaxTokenBytes) }),
			want:  ErrInvalidCredentials, reason: errTooLarge,
		},
		{
			name:  "not a JWS",
			token: func(*testing.T) string { return "abc.def" },
			want:  ErrInvalidCredentials, reason: errMalformed,
		},
		{
			name:  "email with two @",
			token: claimsToken(func(c jwt.MapClaims) { c["email"] = "a@b@c" }),
			want:  ErrInvalidCredentials, reason: errEmail,
		},
		{
			name: "roles: mapped, unmapped and duplicate groups",
			token: claimsToken(func(c jwt.MapClaims) {
				c["groups"] = []string{"emr-nurses", "Emr-Physicians", "emr-physicians", "emr-doctors", "wifi-users"}
			}),
			check: func(t *testing.T, p *chartguard.Principal) {
				assert.Equal(t, []string{"nurse", "physician"}, p.Identity.Roles)
				assert.Equal(t, []string{"emr-nurses", "Emr-Physicians", "emr-physicians", "emr-doctors", "wifi-users"}, p.Identity.Groups)
			},
		},
		{
			name:  "roles: only unmapped groups give an empty list",
			token: claimsToken(func(c jwt.MapClaims) { c["groups"] = []string{"wifi-users"} }),
			check: func(t *testing.T, p *chartguard.Principal) {
				assert.NotNil(t, p.Identity.Roles)
				assert.Empty(t, p.Identity.Roles)
			},
		},
		{
			name:  "roles: string-valued claim under a custom name",
			token: claimsToken(func(c jwt.MapClaims) { delete(c, "groups"); c["roles"] = "emr-nurses" }),
			edit:  func(c *Config) { c.RolesClaim = "roles" },
			check: func(t *testing.T, p *chartguard.Principal) {
				assert.Equal(t, []string{"nurse"}, p.Identity.Roles)
				assert.Equal(t, []string{"emr-nurses"}, p.Identity.Groups)
			},
		},
		{
			name:  "roles: claim of the wrong type",
			token: claimsToken(func(c jwt.MapClaims) { c["groups"] = map[string]any{"a": 1} }),
			want:  ErrInvalidCredentials, reason: errClaims,
		},
		{
			name:  "fhirUser Patient link",
			token: claimsToken(func(c jwt.MapClaims) { c["fhirUser"] = "Patient/p-123" }),
			check: func(t *testing.T, p *chartguard.Principal) {
				assert.Equal(t, "Patient/p-123", p.Identity.FHIRUser)
				assert.Equal(t, []string{"Patient/p-123"}, p.Identity.PatientLinks)
			},
		},
		{
			name:  "fhirUser absolute Patient URL under a custom claim",
			token: claimsToken(func(c jwt.MapClaims) { c["fhir_user"] = "https://emr.example.org/fhir/Patient/p-123" }),
			edit:  func(c *Config) { c.FHIRUserClaim = "fhir_user" },
			check: func(t *testing.T, p *chartguard.Principal) {
				assert.Equal(t, []string{"Patient/p-123"}, p.Identity.PatientLinks)
			},
		},
		{
			name:  "fhirUser Practitioner links no patient",
			token: claimsToken(nil),
			check: func(t *testing.T, p *chartguard.Principal) { assert.Nil(t, p.Identity.PatientLinks) },
		},
		{
			name: "scp array, azp as client, purpose of use, preferred_username",
			token: claimsToken(func(c jwt.MapClaims) {
				delete(c, "scope")
				delete(c, "client_id")
				delete(c, "name")
				c["scp"] = []string{"system/Patient.rs", "system/Observation.rs"}
				c["azp"] = "backend-svc"
				c["purpose_of_use"] = "TREAT"
				c["preferred_username"] = "grey"
			}),
			check: func(t *testing.T, p *chartguard.Principal) {
				assert.Equal(t, []string{"system/Patient.rs", "system/Observation.rs"}, p.Token.Scopes)
				assert.Equal(t, "backend-svc", p.Token.ClientID)
				assert.Equal(t, "TREAT", p.Token.PurposeOfUse)
				assert.Equal(t, "grey", p.Identity.Name)
			},
		},
		{
			name:  "client_id wins over azp; non-string purpose of use is ignored",
			token: claimsToken(func(c jwt.MapClaims) { c["azp"] = "other"; c["purpose_of_use"] = []string{"TREAT"} }),
			check: func(t *testing.T, p *chartguard.Principal) {
				assert.Equal(t, "smart-app", p.Token.ClientID)
				assert.Empty(t, p.Token.PurposeOfUse)
			},
		},
		{
			name:  "scope of the wrong type",
			token: claimsToken(func(c jwt.MapClaims) { c["scope"] = 42 }),
			want:  ErrInvalidCredentials, reason: errClaims,
		},
		{
			name:  "revoked by the hook",
			token: claimsToken(nil),
			edit: func(c *Config) {
				c.Revoked = func(p *chartguard.Principal) bool { return p.Identity.Subject == testSubject }
			},
			want: ErrInvalidCredentials, reason: errRevoked,
		},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, idp, tt.edit)
			tok := tt.token(t)
			authz := []string{"Bearer " + tok}
			if tt.authz != nil {
				authz = authz[:0]
				for _, a := range tt.authz {
					authz = append(authz, strings.ReplaceAll(a, "%s", tok))
				}
			}

			p, err := f.auth(t, authz...)

			if tt.want == nil {
				require.NoError(t, err)
				require.NotNil(t, p)
				if tt.check != nil {
					tt.check(t, p)
				}
				assert.Equal(t, 1.0, f.counter(t, "chartguard_authn_total", "ok"))
			} else {
				require.ErrorIs(t, err, tt.want, "Authenticate() = %v, want %v", err, tt.want)
				assert.Nil(t, p)
				if tt.reason != nil {
					assert.ErrorIs(t, err, tt.reason, "Authenticate() = %v, want reason %v", err, tt.reason)
				}
				assert.NotContains(t, err.Error(), tok)
			}
			logs := f.logs.String()
			for _, secret := range []string{tok, testSubject, testEmail} {
				assert.NotContains(t, logs, secret, "logs leak a secret")
			}
		})
	}
}

func TestBearerCache(t *testing.T) {
	idp := newTestIdP(t)

	t.Run("second call is a cache hit and fetches nothing", func(t *testing.T) {
		f := newFixture(t, idp, nil)
		tok := idp.token(t, nil)
		p1, err := f.auth(t, "Bearer "+tok)
		require.NoError(t, err)
		fetches := idp.jwksHits.Load()

		p2, err := f.auth(t, "Bearer "+tok)
		require.NoError(t, err)

		assert.Equal(t, p1, p2)
		assert.Equal(t, fetches, idp.jwksHits.Load(), "JWKS fetched again")
		assert.Equal(t, 1.0, f.counter(t, "chartguard_authn_cache_total", "hit"))
		assert.Equal(t, 1.0, f.counter(t, "chartguard_authn_cache_total", "miss"))
	})

	t.Run("callers cannot change the cached principal", func(t *testing.T) {
		f := newFixture(t, idp, nil)
		tok := idp.token(t, nil)
		p1, err := f.auth(t, "Bearer "+tok)
		require.NoError(t, err)
		p1.Identity.Roles[0] = "admin"
		p1.Identity.Roles = append(p1.Identity.Roles, "auditor")

		p2, err := f.auth(t, "Bearer "+tok)
		require.NoError(t, err)
		assert.Equal(t, []string{"physician"}, p2.Identity.Roles)
	})

	t.Run("expired cached entry is rejected when the clock moves", func(t *testing.T) {
		f := newFixture(t, idp, nil)
		tok := idp.token(t, func(c jwt.MapClaims) { c["exp"] = t0.Add(2 * time.Minute).Unix() })
		_, err := f.auth(t, "Bearer "+tok)
		require.NoError(t, err)

		f.clock.Advance(2*time.Minute + DefaultClockSkew/2)
		_, err = f.auth(t, "Bearer "+tok)
		require.NoError(t, err, "within skew the token is still good")

		f.clock.Advance(DefaultClockSkew)
		_, err = f.auth(t, "Bearer "+tok)
		require.ErrorIs(t, err, ErrInvalidCredentials)
		assert.ErrorIs(t, err, errExpired)
	})

	t.Run("entries live at most five minutes", func(t *testing.T) {
		f := newFixture(t, idp, nil)
		tok := idp.token(t, nil)
		_, err := f.auth(t, "Bearer "+tok)
		require.NoError(t, err)

		f.clock.Advance(cacheMaxAge)
		_, err = f.auth(t, "Bearer "+tok)
		require.NoError(t, err)
		assert.Equal(t, 0.0, f.counter(t, "chartguard_authn_cache_total", "hit"))
		assert.Equal(t, 2.0, f.counter(t, "chartguard_authn_cache_total", "miss"))
	})

	t.Run("revocation is checked on every hit", func(t *testing.T) {
		var mu sync.Mutex
		revoked := false
		f := newFixture(t, idp, func(c *Config) {
			c.Revoked = func(*chartguard.Principal) bool {
				mu.Lock()
				defer mu.Unlock()
				return revoked
			}
		})
		tok := idp.token(t, nil)
		_, err := f.auth(t, "Bearer "+tok)
		require.NoError(t, err)

		mu.Lock()
		revoked = true
		mu.Unlock()
		_, err = f.auth(t, "Bearer "+tok)
		require.ErrorIs(t, err, ErrInvalidCredentials)
		assert.ErrorIs(t, err, errRevoked)
		assert.Equal(t, 1.0, f.counter(t, "chartguard_authn_cache_total", "hit"))
	})

	t.Run("refused tokens are not cached", func(t *testing.T) {
		f := newFixture(t, idp, nil)
		tok := idp.token(t, func(c jwt.MapClaims) { c["aud"] = "other" })
		for range 2 {
			_, err := f.auth(t, "Bearer "+tok)
			require.ErrorIs(t, err, ErrInvalidCredentials)
		}
		assert.Equal(t, 0, f.b.cache.len())
		assert.Equal(t, 2.0, f.counter(t, "chartguard_authn_total", "invalid"))
	})
}

func TestTokenCacheBounded(t *testing.T) {
	c := newTokenCache(3)
	until := t0.Add(time.Minute)
	for i := range 10 {
		c.put(tokenKey{byte(i)}, cacheEntry{principal: &chartguard.Principal{}, exp: until, until: until})
	}
	assert.Equal(t, 3, c.len())
	_, ok := c.get(tokenKey{9}, t0)
	assert.True(t, ok, "the newest entry survives eviction")
	_, ok = c.get(tokenKey{9}, until)
	assert.False(t, ok, "an entry is gone at its end of life")
	assert.Equal(t, 2, c.len(), "an expired entry is dropped when looked up")
}

func TestNewBearerRefusesBadConfig(t *testing.T) {
	_, err := NewBearer(Config{Issuer: "http://idp.example.org", Audience: "api"}, nil, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "oidc.issuer:")
}

func TestNewBearerSharesRegistry(t *testing.T) {
	idp := newTestIdP(t)
	f := newFixture(t, idp, nil)
	// A reload builds a second Bearer on the same registry.
	b2, err := NewBearer(idp.config(f.clock), nil, f.reg)
	require.NoError(t, err)
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	_, err = b2.Authenticate(r.Context(), r)
	require.ErrorIs(t, err, ErrNoCredentials)
	assert.Equal(t, 1.0, f.counter(t, "chartguard_authn_total", "no_credentials"))
}

func TestAuthenticatorFunc(t *testing.T) {
	want := &chartguard.Principal{Identity: chartguard.Identity{Subject: "s"}}
	var a Authenticator = AuthenticatorFunc(func(context.Context, *http.Request) (*chartguard.Principal, error) {
		return want, nil
	})
	got, err := a.Authenticate(context.Background(), httptest.NewRequest(http.MethodGet, "/", nil))
	require.NoError(t, err)
	assert.Same(t, want, got)
}

func TestWWWAuthenticate(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"no credentials", ErrNoCredentials, `Bearer realm="chartguard"`},
		{"invalid", invalid(errExpired), `Bearer realm="chartguard", error="invalid_token", error_description="The access token is invalid or expired"`},
		{"unavailable", ErrUnavailable, `Bearer realm="chartguard"`},
		{"wrapped invalid", errors.Join(errors.New("x"), invalid(errEmail)), `Bearer realm="chartguard", error="invalid_token", error_description="The access token is invalid or expired"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, WWWAuthenticate(tt.err), "WWWAuthenticate(%v)", tt.err)
		})
	}
}
