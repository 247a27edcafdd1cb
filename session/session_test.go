package session

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestValidID(t *testing.T) {
	good := base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 32))
	require.Len(t, good, IDLen)
	// The last character of a canonical id carries 2 unused bits, which
	// must be zero; flip one to get a non-canonical spelling of 256 bits.
	last := strings.IndexByte(base64URLAlphabet, good[IDLen-1])
	nonCanonical := good[:IDLen-1] + string(base64URLAlphabet[last|1])

	tests := []struct {
		name string
		id   string
		want bool
	}{
		{"canonical", good, true},
		{"all zero", strings.Repeat("A", IDLen-1) + "A", true},
		{"empty", "", false},
		{"one short", good[:IDLen-1], false},
		{"one long", good + "A", false},
		{"padded", good + "=", false},
		{"std alphabet plus", "+" + good[1:], false},
		{"std alphabet slash", "/" + good[1:], false},
		{"newline inside", good[:20] + "\n" + good[21:], false},
		{"space", good[:IDLen-1] + " ", false},
		{"non-ascii", good[:IDLen-2] + "é", false},
		{"non-canonical trailing bits", nonCanonical, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, ValidID(tt.id), "ValidID(%q)", tt.id)
		})
	}
}

const base64URLAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

func TestHash(t *testing.T) {
	a, b := Hash("id-a"), Hash("id-b")
	assert.Regexp(t, regexp.MustCompile(`^[0-9a-f]{64}$`), a)
	assert.Equal(t, a, Hash("id-a"), "Hash is deterministic")
	assert.NotEqual(t, a, b)
}

func TestSessionNeverPrintsSecrets(t *testing.T) {
	clk := newClock()
	m, _ := newTestManager(t, clk, Config{})
	s, err := m.New(t.Context(), alice(), Login{IP: "10.1.2.3", IDTokenHint: "eyJ.id-token.sig"})
	require.NoError(t, err)

	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "session", s, "value", *s)
	outputs := map[string]string{
		"slog": logs.String(),
		"%v":   fmt.Sprintf("%v", s),
		"%+v":  fmt.Sprintf("%+v", *s),
		"%#v":  fmt.Sprintf("%#v", s),
		//lint:ignore S1025 the %s verb itself is what is tested
		"%s":    fmt.Sprintf("%s", s),
		"value": fmt.Sprint(*s),
	}
	for name, out := range outputs {
		assert.Contains(t, out, Hash(s.ID), name)
		for _, secret := range []string{s.ID, s.CSRFSecret, s.IDTokenHint, "alice", "10.1.2.3"} {
			assert.NotContains(t, out, secret, name)
		}
	}
}

func TestInfo(t *testing.T) {
	login := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	now := login.Add(10 * time.Minute)
	tests := []struct {
		name string
		s    Session
		want string // mfa,method,mfa_age,auth_age
	}{
		{"no mfa", Session{AuthTime: login}, "false,none,0,600"},
		{"totp", Session{AuthTime: login, MFA: true, MFAMethod: "totp", MFATime: login.Add(4 * time.Minute)}, "true,totp,360,600"},
		{"clock stepped back", Session{AuthTime: now.Add(time.Minute), MFA: true, MFAMethod: "idp", MFATime: now.Add(time.Minute)}, "true,idp,0,0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.s.Info(now)
			assert.Equal(t, tt.want, fmt.Sprintf("%t,%s,%d,%d", got.MFA, got.MFAMethod, got.MFAAgeS, got.AuthAgeS))
			assert.NotNil(t, got.BreakGlass, "break_glass is [] not null in policy input")
		})
	}
}

func TestClone(t *testing.T) {
	s := &Session{Identity: alice()}
	c := s.Clone()
	c.Identity.Roles[0] = "admin"
	c.Identity.Groups = append(c.Identity.Groups, "x")
	assert.Equal(t, []string{"physician"}, s.Identity.Roles)
	assert.Equal(t, []string{"emr-physicians"}, s.Identity.Groups)
}

func TestMatchGlob(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"/api/poll*", "/api/poll", true},
		{"/api/poll*", "/api/polling", true},
		{"/api/poll*", "/api/poll/status/1", true},
		{"/api/poll*", "/api/pol", false},
		{"/api/poll*", "/x/api/poll", false},
		{"/api/*/status", "/api/a/b/status", true},
		{"/api/*/status", "/api/a/status/x", false},
		{"/exact", "/exact", true},
		{"/exact", "/exact/", false},
		{"*", "/anything", true},
		{"/a*b*c", "/aXbYbZc", true},
		{"/a*b*c", "/aXbYbZ", false},
		{"/**", "/", true},
	}
	for _, tt := range tests {
		t.Run(tt.pattern+" "+tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, matchGlob(tt.pattern, tt.name), "matchGlob(%q, %q)", tt.pattern, tt.name)
		})
	}
}
