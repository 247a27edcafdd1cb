package authn

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/chartguard/chartguard/chartguard"
)

// Defaults applied by [Config.SetDefaults].
const (
	DefaultRolesClaim    = "groups"
	DefaultFHIRUserClaim = "fhirUser"
	DefaultClockSkew     = 60 * time.Second

	// maxClockSkew bounds oidc.clock_skew. Threat: a large skew silently
	// extends every token's life. Choice: refuse anything above 5 minutes,
	// the usual upper bound for NTP-less fleets.
	maxClockSkew = 5 * time.Minute
)

// DefaultSigningAlgs are the JWS algorithms accepted when oidc.signing_algs
// is empty. They never come from discovery: an IdP (or whoever answers in
// its name) must not be able to widen what we accept.
func DefaultSigningAlgs() []string { return []string{"RS256", "ES256", "PS256"} }

// DefaultScopes are requested at browser login when oidc.scopes is empty.
func DefaultScopes() []string { return []string{"openid", "profile", "email"} }

// allowedAlgs are the asymmetric algorithms oidc.signing_algs may name.
// HMAC and "none" are refused: a shared secret would let anyone holding the
// JWKS (public by design) forge tokens.
var allowedAlgs = []string{
	"RS256", "RS384", "RS512",
	"PS256", "PS384", "PS512",
	"ES256", "ES384", "ES512",
	"EdDSA",
}

// Config configures bearer-token authentication. Its YAML keys are the
// `oidc:` keys of DESIGN.md; keys for browser SSO are added by the
// session issue.
type Config struct {
	// Issuer is the exact "iss" of accepted tokens and the discovery base.
	// Required; https, or http only on a loopback host.
	Issuer string `yaml:"issuer"`
	// ClientID is ChartGuard's client at the IdP.
	ClientID string `yaml:"client_id"`
	// Audience is the "aud" bearer tokens must carry. If empty, ClientID.
	Audience string `yaml:"audience"`
	// RolesClaim names the claim holding the caller's groups (an array of
	// strings or one string). If empty, "groups".
	RolesClaim string `yaml:"roles_claim"`
	// RoleMap maps a group exactly (case-sensitive) to a ChartGuard role.
	// Groups not in the map give no role.
	RoleMap map[string]string `yaml:"role_map"`
	// FHIRUserClaim names the claim holding the caller's FHIR user
	// reference ("Practitioner/1", "Patient/7"). If empty, "fhirUser".
	FHIRUserClaim string `yaml:"fhir_user_claim"`
	// SigningAlgs are the accepted JWS algorithms. If empty,
	// [DefaultSigningAlgs]. Never taken from discovery.
	SigningAlgs []string `yaml:"signing_algs"`
	// ClockSkew is the leeway for exp, nbf and iat. If zero, 60s; at most 5m.
	ClockSkew time.Duration `yaml:"clock_skew"`
	// JWKSURL is the IdP's key set. If empty, it is discovered from
	// Issuer/.well-known/openid-configuration on first use.
	JWKSURL string `yaml:"jwks_url"`

	// ClientSecret authenticates ChartGuard at the token endpoint during
	// browser login. The proxy reads it from oidc.client_secret_file; it
	// is never in YAML. If empty, ChartGuard is a public client and PKCE
	// alone binds the code to the login.
	ClientSecret string `yaml:"-"`
	// ClientSecretFile holds ClientSecret; proxy.LoadConfig reads it (the
	// secret never sits in the YAML). Setting it turns browser sign-in on.
	ClientSecretFile string `yaml:"client_secret_file"`
	// Scopes are requested at browser login. If empty, [DefaultScopes];
	// when set they must include "openid". Add "groups" if the IdP only
	// releases the roles claim on request.
	Scopes []string `yaml:"scopes"`
	// MaxAge, when positive, is sent as max_age at browser login and the
	// ID token's auth_time must be at most this old. If zero, not sent.
	MaxAge time.Duration `yaml:"max_age"`

	// Now is the clock. If nil, time.Now.
	Now func() time.Time `yaml:"-"`
	// HTTPClient fetches discovery and JWKS documents. If nil, a client
	// with a 10s timeout that does not follow redirects.
	HTTPClient *http.Client `yaml:"-"`
	// Rand is the source of login state, nonce and PKCE verifier. If nil,
	// crypto/rand.
	Rand io.Reader `yaml:"-"`
	// Revoked, if set, is asked about every principal before it is
	// returned, cached or not; true rejects the token. If nil, nothing is
	// revoked. It must be fast and must not modify the principal.
	Revoked func(p *chartguard.Principal) bool `yaml:"-"`
}

// SetDefaults fills empty fields with their documented defaults.
func (c *Config) SetDefaults() {
	if c.Audience == "" {
		c.Audience = c.ClientID
	}
	if c.RolesClaim == "" {
		c.RolesClaim = DefaultRolesClaim
	}
	if c.FHIRUserClaim == "" {
		c.FHIRUserClaim = DefaultFHIRUserClaim
	}
	if len(c.SigningAlgs) == 0 {
		c.SigningAlgs = DefaultSigningAlgs()
	}
	if c.ClockSkew == 0 {
		c.ClockSkew = DefaultClockSkew
	}
}

// Validate reports every problem at once. Each error names the key path
// and the fix. Empty fields are judged as [Config.SetDefaults] would fill
// them, so Validate may run before or after it.
func (c Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(format, args...))
	}

	if c.Issuer == "" {
		add("oidc.issuer: required: set it to the IdP's issuer URL, exactly as in its tokens' \"iss\"")
	} else if err := checkFetchURL(c.Issuer); err != nil {
		add("oidc.issuer: %w", err)
	}
	if c.Audience == "" && c.ClientID == "" {
		add("oidc.audience: required: set oidc.audience (or oidc.client_id) to the \"aud\" your IdP puts in access tokens")
	}
	for _, alg := range c.SigningAlgs {
		if !slices.Contains(allowedAlgs, alg) {
			add("oidc.signing_algs: %q is not allowed: use asymmetric algorithms only (%s)",
				alg, strings.Join(allowedAlgs, ", "))
		}
	}
	if c.ClockSkew < 0 || c.ClockSkew > maxClockSkew {
		add("oidc.clock_skew: %s is out of range: use a duration between 0s and %s", c.ClockSkew, maxClockSkew)
	}
	if c.JWKSURL != "" {
		if err := checkFetchURL(c.JWKSURL); err != nil {
			add("oidc.jwks_url: %w", err)
		}
	}
	if len(c.Scopes) > 0 && !slices.Contains(c.Scopes, "openid") {
		add("oidc.scopes: \"openid\" is missing: add it (or leave oidc.scopes empty for %s)",
			strings.Join(DefaultScopes(), ", "))
	}
	for _, s := range c.Scopes {
		if !isScopeToken(s) {
			add("oidc.scopes: %q is not a scope: use non-empty names without spaces or quotes", s)
			break
		}
	}
	if c.MaxAge < 0 || (c.MaxAge > 0 && c.MaxAge < time.Second) {
		add("oidc.max_age: %s is out of range: use 0 (not sent) or at least 1s", c.MaxAge)
	}
	for group, role := range c.RoleMap {
		if group == "" || role == "" {
			add("oidc.role_map: empty group or role: map each IdP group to a non-empty role")
			break
		}
	}
	return errors.Join(errs...)
}

// isScopeToken reports whether s is an RFC 6749 §3.3 scope-token:
// one or more of %x21 / %x23-5B / %x5D-7E.
func isScopeToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// errBadURL explains what an IdP URL must look like.
var errBadURL = errors.New("must be an absolute https URL without query or fragment (http only on loopback hosts)")

// checkFetchURL accepts absolute https URLs, and http on loopback hosts for
// development and tests. Threat: keys fetched over plain http on a network
// can be swapped, and every token would then verify against the attacker's
// key. Accepted risk: a loopback IdP is as trusted as the host itself.
func checkFetchURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return errBadURL
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if isLoopback(u.Hostname()) {
			return nil
		}
	}
	return errBadURL
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
