package pages

import (
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Length caps keep every page well under 30 KB even when every value is
// hostile and every byte needs escaping (a worst case the tests render).
const (
	maxUserLen      = 100  // runes
	maxRequestIDLen = 128  // runes
	maxMessageLen   = 500  // runes
	maxReasonLen    = 300  // runes
	maxReasons      = 10   // items
	maxTokenLen     = 512  // bytes
	maxPathLen      = 2048 // bytes
	maxAuthURLLen   = 2048 // bytes: an IdP authorization URL with PKCE, state and nonce is ~600
)

// clean makes untrusted text safe to display: invalid UTF-8 and control
// characters become U+FFFD or spaces, surrounding space is trimmed, and
// anything longer than max runes is cut with an ellipsis. Escaping is
// html/template's job, not this function's.
func clean(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		switch {
		case r == '\t' || r == '\n' || r == '\r':
			return ' '
		case unicode.IsControl(r):
			return '\uFFFD'
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	n := 0
	for i := range s {
		if n == max-1 {
			return strings.TrimSpace(s[:i]) + "…"
		}
		n++
	}
	return s
}

// isToken reports whether s may go into the CSRF hidden field unchanged. A
// token is opaque, so it is refused rather than altered: a form that would
// post a mangled token is worse than no form.
func isToken(s string) bool {
	if s == "" || len(s) > maxTokenLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// localPath returns s if it is a path on this origin ("/…"), else "".
//
// Threat: a sign-in or try-again link built from request data becomes an
// open redirect or a script URL. Choice: accept only an absolute path with
// no scheme and no authority; refuse "//host" and "/\host" (browsers read
// both as another host), any backslash, control character or space, and
// anything that does not parse. Accepted risk: a local path may still lead
// anywhere on our own origin, which the pipeline authorises as usual.
func localPath(s string) string {
	if len(s) == 0 || len(s) > maxPathLen || s[0] != '/' {
		return ""
	}
	if len(s) > 1 && (s[1] == '/' || s[1] == '\\') {
		return ""
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '\\' {
			return ""
		}
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return ""
	}
	return s
}
