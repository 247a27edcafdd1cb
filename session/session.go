package session

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/chartguard/chartguard/chartguard"
)

// IDLen is the length of a session id: 32 random bytes (256 bits) in
// unpadded base64url.
const IDLen = 43

// idBytes is the entropy in a session id and in a CSRF secret.
const idBytes = 32

// idEncoding decodes ids strictly: unused trailing bits must be zero, so
// every id has exactly one spelling.
var idEncoding = base64.RawURLEncoding.Strict()

// Session is one browser session. Its ID is a bearer secret: it is never
// logged, printed or put in an audit event; use [Hash] instead. A Session
// prints and logs as its hash only ([Session.String], [Session.LogValue]).
type Session struct {
	// ID is 256 random bits, unpadded base64url ([IDLen] characters).
	ID string
	// Identity is the verified user. The user is Issuer+Subject.
	Identity chartguard.Identity

	// MFA reports whether a second factor was verified; MFAMethod is
	// "totp", "idp", "recovery" or "none"; MFATime is when the last factor
	// was verified (zero if none).
	MFA       bool
	MFAMethod string
	MFATime   time.Time

	// CreatedAt is when ChartGuard issued the session (the login);
	// the absolute timeout counts from it. AuthTime is when the user last
	// authenticated at the IdP (its auth_time), at or before CreatedAt.
	CreatedAt time.Time
	AuthTime  time.Time
	// LastActivity is the last user activity the store knows of. The
	// [Manager] keeps newer activity in memory and writes it behind.
	LastActivity time.Time

	// IP is the client address at login, canonical ([netip.Addr.String]),
	// or empty if unknown. It selects the idle timeout by network.
	IP string
	// IDTokenHint is the IdP's ID token, sent back as id_token_hint on
	// RP-initiated logout. Secret like ID.
	IDTokenHint string
	// CSRFSecret is a per-session random secret (32 bytes, base64url) the
	// proxy derives CSRF tokens from. Secret like ID.
	CSRFSecret string

	// ExpiresAt and IdleRetention tell a store when it may forget the
	// session: at ExpiresAt, or once IdleRetention has passed since
	// LastActivity (zero: only at ExpiresAt). The [Manager] sets them at
	// login from its config; they are garbage-collection bounds for the
	// store, while the Manager decides expiry on every lookup.
	ExpiresAt     time.Time
	IdleRetention time.Duration
}

// Hash returns the hex SHA-256 of a session id: what audit events
// (user.session), logs and admin listings use to name a session.
// It cannot be turned back into the id.
func Hash(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}

// ValidID reports whether id is well formed: exactly [IDLen] characters of
// the base64url alphabet, canonically encoded. It says nothing about
// whether the session exists.
func ValidID(id string) bool {
	if len(id) != IDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	var buf [idBytes]byte
	n, err := idEncoding.Decode(buf[:], []byte(id))
	return err == nil && n == idBytes
}

// newSecret reads 32 bytes from r and encodes them as unpadded base64url.
func newSecret(r io.Reader) (string, error) {
	var b [idBytes]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return "", fmt.Errorf("session: read random: %w", err)
	}
	return idEncoding.EncodeToString(b[:]), nil
}

// Clone returns a deep copy of s, so stores never share memory with their
// callers.
func (s *Session) Clone() *Session {
	c := *s
	c.Identity.Roles = slices.Clone(s.Identity.Roles)
	c.Identity.Groups = slices.Clone(s.Identity.Groups)
	c.Identity.PatientLinks = slices.Clone(s.Identity.PatientLinks)
	return &c
}

// Info returns the policy input "session" as of now. Break-glass grants are
// not owned here and are left empty.
func (s *Session) Info(now time.Time) chartguard.SessionInfo {
	info := chartguard.SessionInfo{
		MFA:        s.MFA,
		MFAMethod:  s.MFAMethod,
		AuthAgeS:   ageSeconds(now, s.AuthTime),
		BreakGlass: []chartguard.BTGGrant{},
	}
	if info.MFAMethod == "" {
		info.MFAMethod = "none"
	}
	if s.MFA {
		info.MFAAgeS = ageSeconds(now, s.MFATime)
	}
	return info
}

// ageSeconds is whole seconds from t to now, never negative (a clock that
// stepped back must not make a factor look fresher than "just now").
func ageSeconds(now, t time.Time) int64 {
	if t.IsZero() || now.Before(t) {
		return 0
	}
	return int64(now.Sub(t) / time.Second)
}

// String names the session by its hash, never by its id. The value
// receiver covers both Session and *Session in fmt.
func (s Session) String() string { return "session:" + Hash(s.ID) }

// GoString is String, so %#v cannot print the secrets either.
func (s Session) GoString() string { return s.String() }

// LogValue logs the session as its hash only: no id, user, token or
// address reaches a log through slog.
func (s Session) LogValue() slog.Value { return slog.StringValue(Hash(s.ID)) }
