package authn

import (
	"bytes"
	"encoding/json"
	"math"
	"net/url"
	"strings"
	"time"

	"github.com/chartguard/chartguard/chartguard"
)

// claims is a verified token payload, decoded lazily per claim so that
// configurable claim names (roles, fhirUser) need no reflection. Decoding
// uses encoding/json like go-oidc, so both read duplicate keys alike.
type claims map[string]json.RawMessage

func parseClaims(payload []byte) (claims, error) {
	var c claims
	if err := json.Unmarshal(payload, &c); err != nil || c == nil {
		return nil, errClaims
	}
	return c, nil
}

// has reports whether name is present, even as null.
func (c claims) has(name string) bool {
	_, ok := c[name]
	return ok
}

// isNull reports an absent claim or an explicit JSON null.
func (c claims) isNull(name string) bool {
	raw, ok := c[name]
	return !ok || bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
}

// str returns a string claim; "" when absent or null. Any other type is
// errClaims: we read claims strictly rather than guess.
func (c claims) str(name string) (string, error) {
	if c.isNull(name) {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(c[name], &s); err != nil {
		return "", errClaims
	}
	return s, nil
}

// stringList returns a claim that is an array of strings or a single string.
func (c claims) stringList(name string) ([]string, error) {
	if c.isNull(name) {
		return nil, nil
	}
	var list []string
	if err := json.Unmarshal(c[name], &list); err == nil {
		return list, nil
	}
	var s string
	if err := json.Unmarshal(c[name], &s); err != nil {
		return nil, errClaims
	}
	return []string{s}, nil
}

// maxNumericDate is 9999-12-31T23:59:59Z. Larger values cannot be real
// and would overflow time conversions.
const maxNumericDate = 253402300799

// time returns a NumericDate claim (RFC 7519 §2) and whether it is present.
func (c claims) time(name string) (time.Time, bool, error) {
	if c.isNull(name) {
		return time.Time{}, false, nil
	}
	// A float64 target refuses JSON strings (a json.Number would not).
	var f float64
	if err := json.Unmarshal(c[name], &f); err != nil || f < 0 || f > maxNumericDate {
		return time.Time{}, false, errClaims
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true, nil
}

// checkTimes enforces exp (required), nbf and iat (when present) with
// skew, and returns exp.
func (c claims) checkTimes(now time.Time, skew time.Duration) (time.Time, error) {
	exp, ok, err := c.time("exp")
	if err != nil {
		return time.Time{}, err
	}
	if !ok {
		return time.Time{}, errMissingExp
	}
	if now.After(exp.Add(skew)) {
		return time.Time{}, errExpired
	}
	nbf, ok, err := c.time("nbf")
	if err != nil {
		return time.Time{}, err
	}
	if ok && nbf.After(now.Add(skew)) {
		return time.Time{}, errNotYetValid
	}
	iat, ok, err := c.time("iat")
	if err != nil {
		return time.Time{}, err
	}
	if ok && iat.After(now.Add(skew)) {
		return time.Time{}, errIssuedInFuture
	}
	return exp, nil
}

// principal builds the caller from verified claims. iss, aud, exp, nbf and
// iat have been checked already.
func (c claims) principal(cfg *Config) (*chartguard.Principal, error) {
	// ID tokens are not access tokens (DESIGN.md "Identity"): they are
	// meant for the client that logged in, not as credentials for an API.
	if c.has("nonce") || c.has("at_hash") {
		return nil, errIDToken
	}
	var id chartguard.Identity
	var err error
	if id.Issuer, err = c.str("iss"); err != nil {
		return nil, err
	}
	if id.Subject, err = c.str("sub"); err != nil {
		return nil, err
	}
	if id.Subject == "" {
		return nil, errMissingSub
	}
	if id.Name, err = c.displayName(); err != nil {
		return nil, err
	}
	if id.Email, err = c.str("email"); err != nil {
		return nil, err
	}
	// Email is display only, but "a@b@c" is refused outright: downstream
	// tools that split on "@" would disagree about the domain.
	if strings.Count(id.Email, "@") > 1 {
		return nil, errEmail
	}
	if id.Groups, err = c.stringList(cfg.RolesClaim); err != nil {
		return nil, err
	}
	id.Roles = mapRoles(id.Groups, cfg.RoleMap)
	if id.FHIRUser, err = c.str(cfg.FHIRUserClaim); err != nil {
		return nil, err
	}
	if p, ok := patientLink(id.FHIRUser); ok {
		id.PatientLinks = []string{p}
	}
	tok, err := c.token()
	if err != nil {
		return nil, err
	}
	return &chartguard.Principal{Identity: id, Token: tok}, nil
}

func (c claims) displayName() (string, error) {
	name, err := c.str("name")
	if err != nil || name != "" {
		return name, err
	}
	return c.str("preferred_username")
}

// token describes the credential: client (client_id, else azp), scopes
// (scope as a space-separated string, else scp as an array or string) and
// purpose of use (a string, else ignored).
func (c claims) token() (chartguard.Token, error) {
	t := chartguard.Token{Kind: chartguard.TokenBearer}
	var err error
	if t.ClientID, err = c.str("client_id"); err != nil {
		return t, err
	}
	if t.ClientID == "" {
		if t.ClientID, err = c.str("azp"); err != nil {
			return t, err
		}
	}
	if !c.isNull("scope") {
		scope, err := c.str("scope")
		if err != nil {
			return t, err
		}
		t.Scopes = strings.Fields(scope)
	} else if t.Scopes, err = c.stringList("scp"); err != nil {
		return t, err
	}
	t.PurposeOfUse, _ = c.str("purpose_of_use")
	return t, nil
}

// mapRoles maps groups exactly through roleMap, without duplicates, in the
// order the groups came. The result is never nil: "no roles" is [].
func mapRoles(groups []string, roleMap map[string]string) []string {
	roles := []string{}
	for _, g := range groups {
		role, ok := roleMap[g]
		if !ok {
			continue
		}
		seen := false
		for _, r := range roles {
			if r == role {
				seen = true
				break
			}
		}
		if !seen {
			roles = append(roles, role)
		}
	}
	return roles
}

// patientLink returns "Patient/<id>" when fhirUser is a Patient reference,
// relative or an absolute http(s) URL. Anything else links no patient:
// failing to link only withholds the patient's own-record access.
func patientLink(fhirUser string) (string, bool) {
	ref := fhirUser
	if strings.Contains(fhirUser, "://") {
		u, err := url.Parse(fhirUser)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" ||
			u.RawQuery != "" || u.Fragment != "" || u.RawPath != "" {
			return "", false
		}
		i := strings.LastIndex(u.Path, "/Patient/")
		if i < 0 {
			return "", false
		}
		ref = u.Path[i+1:]
	}
	id, ok := strings.CutPrefix(ref, "Patient/")
	if !ok || !isFHIRID(id) {
		return "", false
	}
	return ref, true
}

// isFHIRID reports whether s is a FHIR R4 id: [A-Za-z0-9\-\.]{1,64}.
func isFHIRID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}
