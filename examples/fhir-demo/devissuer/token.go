package devissuer

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// ErrInvalidRequest reports a token request with a bad parameter. Its
// message names the parameter, never the value.
var ErrInvalidRequest = errors.New("devissuer: invalid token request")

// Token request limits.
const (
	maxOffset    = 24 * time.Hour
	maxFormBytes = 16 << 10
)

// TokenRequest describes the token to mint. Only Role is required.
type TokenRequest struct {
	// Role becomes the group "chartguard-"+Role. [A-Za-z0-9._-]{1,64}.
	Role string
	// Subject is the sub claim. If empty, "dev-"+Role.
	Subject string
	// FHIRUser is the fhirUser claim, e.g. "Practitioner/pr1". Optional.
	FHIRUser string
	// ClientID is the client_id claim. If empty, "dev-client".
	ClientID string
	// Scope is the space-separated scope claim. If empty, "user/*.*".
	Scope string
	// TTL is the lifetime. If zero, the issuer's TTL; at most 24h.
	TTL time.Duration
	// Name and Email are display claims. If empty, Name is "Dev "+Role and
	// Email is Subject+"@example.org" (only when Subject is a plain local
	// part; set Email explicitly to test odd addresses).
	Name  string
	Email string
	// AMR is the amr claim (authentication methods, e.g. "pwd", "otp").
	AMR []string

	// Test knobs for negative tests of token verification.

	// ExpOffset, if non-zero, sets exp to now+ExpOffset instead of
	// now+TTL; negative values mint expired tokens. Within ±24h.
	ExpOffset time.Duration
	// NBFOffset sets nbf to now+NBFOffset (default now). Within ±24h.
	NBFOffset time.Duration
	// Typ overrides the header typ ("at+jwt"), e.g. "JWT" or "id+jwt".
	Typ string
	// Nonce, if set, adds a nonce claim (makes the token look like an ID
	// token).
	Nonce string
	// Audience overrides the aud claim.
	Audience string
}

type header struct {
	Alg string `json:"alg"`
	Typ string `json:"typ"`
	Kid string `json:"kid"`
}

type claims struct {
	Iss      string   `json:"iss"`
	Sub      string   `json:"sub"`
	Aud      string   `json:"aud"`
	Exp      int64    `json:"exp"`
	Iat      int64    `json:"iat"`
	Nbf      int64    `json:"nbf"`
	Jti      string   `json:"jti"`
	ClientID string   `json:"client_id"`
	Scope    string   `json:"scope"`
	Groups   []string `json:"groups"`
	Name     string   `json:"name,omitempty"`
	Email    string   `json:"email,omitempty"`
	FHIRUser string   `json:"fhirUser,omitempty"`
	AMR      []string `json:"amr,omitempty"`
	Nonce    string   `json:"nonce,omitempty"`
}

// Token mints a signed access token for req.
func (is *Issuer) Token(req TokenRequest) (string, error) {
	tok, _, err := is.mint(req)
	return tok, err
}

// mint returns the token and its lifetime from now (negative if expired).
func (is *Issuer) mint(req TokenRequest) (string, time.Duration, error) {
	if err := req.validate(); err != nil {
		return "", 0, err
	}
	req.defaults(is)
	var id [16]byte
	if _, err := io.ReadFull(is.rand, id[:]); err != nil {
		return "", 0, fmt.Errorf("devissuer: token id: %w", err)
	}
	now := is.now()
	life := req.TTL
	if req.ExpOffset != 0 {
		life = req.ExpOffset
	}
	b64 := base64.RawURLEncoding
	c := claims{
		Iss: is.issuer, Sub: req.Subject, Aud: req.Audience,
		Exp: now.Add(life).Unix(), Iat: now.Unix(), Nbf: now.Add(req.NBFOffset).Unix(),
		Jti: b64.EncodeToString(id[:]), ClientID: req.ClientID, Scope: req.Scope,
		Groups: []string{"chartguard-" + req.Role}, Name: req.Name, Email: req.Email,
		FHIRUser: req.FHIRUser, AMR: req.AMR, Nonce: req.Nonce,
	}
	hj, err := json.Marshal(header{Alg: "RS256", Typ: req.Typ, Kid: is.kid})
	if err != nil {
		return "", 0, fmt.Errorf("devissuer: header: %w", err)
	}
	cj, err := json.Marshal(c)
	if err != nil {
		return "", 0, fmt.Errorf("devissuer: claims: %w", err)
	}
	input := b64.EncodeToString(hj) + "." + b64.EncodeToString(cj)
	digest := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(nil, is.key, crypto.SHA256, digest[:])
	if err != nil {
		return "", 0, fmt.Errorf("devissuer: sign: %w", err)
	}
	return input + "." + b64.EncodeToString(sig), life, nil
}

func (req *TokenRequest) defaults(is *Issuer) {
	if req.Subject == "" {
		req.Subject = "dev-" + req.Role
	}
	if req.ClientID == "" {
		req.ClientID = "dev-client"
	}
	if req.Scope == "" {
		req.Scope = "user/*.*"
	}
	if req.TTL == 0 {
		req.TTL = is.ttl
	}
	if req.Typ == "" {
		req.Typ = "at+jwt"
	}
	if req.Audience == "" {
		req.Audience = is.audience
	}
	if req.Name == "" {
		req.Name = "Dev " + req.Role
	}
	if req.Email == "" && matches(req.Subject, 64, "._+-") {
		req.Email = req.Subject + "@example.org"
	}
}

func invalid(param, rule string) error {
	return fmt.Errorf("%w: %s %s", ErrInvalidRequest, param, rule)
}

// validate checks every field; errors name the field and the rule.
func (req *TokenRequest) validate() error {
	checks := []struct {
		ok          bool
		param, rule string
	}{
		{matches(req.Role, 64, "._-"), "role", "is required and must match [A-Za-z0-9._-]{1,64}"},
		{req.Subject == "" || printable(req.Subject, 255), "sub", "must be 1-255 printable characters"},
		{req.FHIRUser == "" || validFHIRUser(req.FHIRUser), "fhir_user", "must be Practitioner|Patient|RelatedPerson|Person/<id>"},
		{req.ClientID == "" || matches(req.ClientID, 128, "._:-"), "client_id", "must match [A-Za-z0-9._:-]{1,128}"},
		{req.Scope == "" || validScope(req.Scope), "scope", "must be space-separated RFC 6749 scope tokens"},
		{req.TTL == 0 || req.TTL >= time.Second && req.TTL <= maxTTL, "ttl", "must be between 1s and 24h"},
		{req.Name == "" || printable(req.Name, 128), "name", "must be 1-128 printable characters"},
		{req.Email == "" || printable(req.Email, 254), "email", "must be 1-254 printable characters"},
		{validAMR(req.AMR), "amr", "must be comma-separated [A-Za-z0-9._-]{1,32} values"},
		{req.ExpOffset >= -maxOffset && req.ExpOffset <= maxOffset, "exp_offset", "must be within ±24h"},
		{req.NBFOffset >= -maxOffset && req.NBFOffset <= maxOffset, "nbf_offset", "must be within ±24h"},
		{req.Typ == "" || matches(req.Typ, 32, "+.-/"), "typ", "must match [A-Za-z0-9+./-]{1,32}"},
		{req.Nonce == "" || printable(req.Nonce, 128), "nonce", "must be 1-128 printable characters"},
		{req.Audience == "" || printable(req.Audience, 256), "aud", "must be 1-256 printable characters"},
	}
	for _, c := range checks {
		if !c.ok {
			return invalid(c.param, c.rule)
		}
	}
	return nil
}

// matches reports whether s is 1..max ASCII letters, digits or extra.
func matches(s string, max int, extra string) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			strings.IndexByte(extra, c) >= 0) {
			return false
		}
	}
	return true
}

// printable reports whether s is 1..max bytes of valid UTF-8 without
// control characters.
func printable(s string, max int) bool {
	if s == "" || len(s) > max || !utf8.ValidString(s) {
		return false
	}
	return strings.IndexFunc(s, unicode.IsControl) < 0
}

func validFHIRUser(s string) bool {
	typ, id, ok := strings.Cut(s, "/")
	switch typ {
	case "Practitioner", "Patient", "RelatedPerson", "Person":
	default:
		return false
	}
	return ok && matches(id, 64, "-.")
}

// validScope checks RFC 6749 §3.3 scope tokens separated by single spaces.
func validScope(s string) bool {
	if len(s) > 1024 {
		return false
	}
	for tok := range strings.SplitSeq(s, " ") {
		if tok == "" {
			return false
		}
		for i := 0; i < len(tok); i++ {
			if c := tok[i]; c < 0x21 || c == '"' || c == '\\' || c > 0x7e {
				return false
			}
		}
	}
	return true
}

func validAMR(amr []string) bool {
	if len(amr) > 8 {
		return false
	}
	for _, a := range amr {
		if !matches(a, 32, "._-") {
			return false
		}
	}
	return true
}

// serveToken answers POST /dev/token.
func (is *Issuer) serveToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		writeError(w, http.StatusMethodNotAllowed, "invalid_request", "use POST")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", "malformed parameters")
		return
	}
	req, err := parseTokenRequest(r.Form)
	var tok string
	var life time.Duration
	if err == nil {
		tok, life, err = is.mint(req)
	}
	if err != nil {
		if errors.Is(err, ErrInvalidRequest) {
			writeError(w, http.StatusBadRequest, "invalid_request",
				strings.TrimPrefix(err.Error(), ErrInvalidRequest.Error()+": "))
			return
		}
		writeError(w, http.StatusInternalServerError, "server_error", "")
		return
	}
	writeJSON(w, http.StatusOK, struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int64  `json:"expires_in"`
	}{tok, "Bearer", max(0, int64(life/time.Second))})
}

// parseTokenRequest maps form parameters onto a TokenRequest. Unknown and
// repeated parameters are refused so that a typo in a test fails loudly.
func parseTokenRequest(form map[string][]string) (TokenRequest, error) {
	var req TokenRequest
	strs := map[string]*string{
		"role": &req.Role, "sub": &req.Subject, "fhir_user": &req.FHIRUser,
		"client_id": &req.ClientID, "scope": &req.Scope, "name": &req.Name,
		"email": &req.Email, "typ": &req.Typ, "nonce": &req.Nonce, "aud": &req.Audience,
	}
	durs := map[string]*time.Duration{
		"ttl": &req.TTL, "exp_offset": &req.ExpOffset, "nbf_offset": &req.NBFOffset,
	}
	for key, vals := range form {
		_, isStr := strs[key]
		_, isDur := durs[key]
		if !isStr && !isDur && key != "amr" {
			return req, invalid("parameter", "is not supported") // never echo the name
		}
		if len(vals) != 1 {
			return req, invalid(key, "must be given once")
		}
		v := vals[0]
		if p, ok := strs[key]; ok {
			if v == "" {
				return req, invalid(key, "must not be empty")
			}
			*p = v
			continue
		}
		if p, ok := durs[key]; ok {
			d, err := time.ParseDuration(v)
			if err != nil || (key == "ttl" && d <= 0) {
				return req, invalid(key, "must be a Go duration such as 60s or -10m (ttl: positive)")
			}
			*p = d
			continue
		}
		req.AMR = strings.Split(v, ",")
	}
	return req, nil
}
