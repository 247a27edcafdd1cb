package proxy

import "strings"

// safeReturnPath checks the rd parameter of /.chartguard/login: where to
// send the browser after sign-in. It returns the canonical origin-form path
// (and query) on this host, or false.
//
// Security: the threat is an open redirect — a link to ChartGuard's real
// login page that, after a genuine sign-in, lands the clinician on an
// attacker's look-alike. Browsers read "//evil", "/\evil", "/%09/evil",
// "https:evil" and their encoded forms as other hosts, so rd must be a
// relative path that the proxy's own normaliser accepts (no encoded '/' or
// '\', no backslash, no control characters, no dot segments) and that still
// starts with exactly one '/' afterwards. Reserved /.chartguard/ paths are
// refused so sign-in cannot loop or trigger a logout. Accepted cost: an odd
// but harmless return path sends the user to "/" instead.
func safeReturnPath(rd string, lim Limits) (string, bool) {
	if len(rd) < 1 || rd[0] != '/' || strings.HasPrefix(rd, "//") || strings.ContainsAny(rd, "\\#") {
		return "", false
	}
	for i := 0; i < len(rd); i++ {
		if c := rd[i]; c < 0x21 || c == 0x7f {
			return "", false // whitespace and controls: browsers strip tabs and newlines
		}
	}
	t, err := normaliseTarget(rd, lim)
	if err != nil || !strings.HasPrefix(t.EscapedPath, "/") || strings.HasPrefix(t.EscapedPath, "//") ||
		strings.HasPrefix(t.Path+"/", reservedPrefix) {
		return "", false
	}
	out := t.EscapedPath
	if t.RawQuery != "" {
		out += "?" + t.RawQuery
	}
	return out, true
}
