package authn

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/chartguard/chartguard/chartguard"
)

// Authenticator establishes who is calling. It returns a verified
// principal, or an error matching [ErrNoCredentials],
// [ErrInvalidCredentials] or [ErrUnavailable]. Callers treat any other
// non-nil error like ErrUnavailable: the request is refused.
type Authenticator interface {
	Authenticate(ctx context.Context, r *http.Request) (*chartguard.Principal, error)
}

// AuthenticatorFunc adapts a function to [Authenticator].
type AuthenticatorFunc func(ctx context.Context, r *http.Request) (*chartguard.Principal, error)

// Authenticate calls f(ctx, r).
func (f AuthenticatorFunc) Authenticate(ctx context.Context, r *http.Request) (*chartguard.Principal, error) {
	return f(ctx, r)
}

var (
	// ErrNoCredentials means the request carries no Authorization header.
	// The caller answers 401 with [WWWAuthenticate] (or, for browsers,
	// starts a login).
	ErrNoCredentials = errors.New("authn: no credentials")
	// ErrInvalidCredentials means the presented token is unusable:
	// malformed, badly signed, expired, meant for someone else, an ID
	// token, or revoked. The wrapped detail is fixed text, safe to log and
	// audit; it never contains the token or claim values.
	ErrInvalidCredentials = errors.New("authn: invalid credentials")
	// ErrUnavailable means the token could not be checked because the
	// IdP's keys are not available (discovery or JWKS failed). The caller
	// answers 503; the request is refused either way.
	ErrUnavailable = errors.New("authn: identity provider unavailable")
)

// MaxTokenBytes is the largest bearer token considered. Threat: huge
// tokens cost parsing, hashing and JSON decoding before any signature
// check. Real access tokens are a few KiB.
const MaxTokenBytes = 16 << 10

// WWWAuthenticate returns the RFC 6750 WWW-Authenticate value for a 401
// caused by err. The description is generic: it never echoes request bytes.
func WWWAuthenticate(err error) string {
	const challenge = `Bearer realm="chartguard"`
	if errors.Is(err, ErrInvalidCredentials) {
		return challenge + `, error="invalid_token", error_description="The access token is invalid or expired"`
	}
	return challenge
}

// bearerToken extracts the token from the single Authorization header:
// "Bearer" (any case), one space, then an RFC 6750 token68. No header
// yields ErrNoCredentials; anything else malformed, ErrInvalidCredentials.
//
// Threat: two Authorization headers, or odd spacing, may be read
// differently by an intermediary or the upstream than by us. Choice:
// accept exactly one canonical form and refuse the rest.
func bearerToken(h http.Header) (string, error) {
	values := h.Values("Authorization")
	switch len(values) {
	case 0:
		return "", ErrNoCredentials
	case 1:
	default:
		return "", invalid(errMultipleHeaders)
	}
	const prefix = "Bearer "
	v := values[0]
	if len(v) < len(prefix) || !strings.EqualFold(v[:len(prefix)], prefix) {
		return "", invalid(errNotBearer)
	}
	tok := v[len(prefix):]
	if len(tok) > MaxTokenBytes {
		return "", invalid(errTooLarge)
	}
	if !isToken68(tok) {
		return "", invalid(errMalformed)
	}
	return tok, nil
}

// isToken68 reports whether s matches RFC 6750's b64token:
// 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isToken68(s string) bool {
	body := strings.TrimRight(s, "=")
	if body == "" {
		return false
	}
	for i := 0; i < len(body); i++ {
		if !token68Chars[body[i]] {
			return false
		}
	}
	return true
}

// token68Chars marks the bytes of RFC 7235 token68 other than the trailing
// '='. A table, because every request's token (about a kilobyte) passes
// through isToken68.
var token68Chars = func() (t [256]bool) {
	for c := range 256 {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
			t[c] = true
		case c == '-', c == '.', c == '_', c == '~', c == '+', c == '/':
			t[c] = true
		}
	}
	return t
}()
