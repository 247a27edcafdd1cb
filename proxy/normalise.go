package proxy

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"
)

// target is the one canonical form of a request target. Policy decides on it
// and the upstream receives exactly it: the outbound URL's Path, RawPath and
// RawQuery are set from these fields, never from the client's bytes.
type target struct {
	// Path is the decoded canonical path ("/fhir/Patient/p1").
	Path string
	// EscapedPath is Path in its canonical escaped form.
	EscapedPath string
	// Params are the decoded query parameters in request order.
	Params []param
	// RawQuery is the canonical encoding of Params.
	RawQuery string
	// Form is the canonical form body of a FHIR POST _search: URL and body
	// parameters merged, forwarded as one body with RawQuery empty.
	Form []byte
}

// param is one decoded query (or form) parameter.
type param struct{ Name, Value string }

// errRejected marks input the normaliser refuses; the message is safe to show.
var errRejected = errors.New("request target rejected")

func reject(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errRejected, fmt.Sprintf(format, args...))
}

// singleValued are FHIR control parameters that must appear at most once: a
// repeat would let policy and upstream read different values.
var singleValued = map[string]bool{
	"_count": true, "_format": true, "_summary": true, "_elements": true, "_sort": true,
}

// normaliseTarget turns a raw request target (origin-form, as in
// http.Request.RequestURI) into its canonical form, or rejects it.
//
// Security: the threat is a parser differential — policy reading one path or
// parameter set and the upstream (or a framework behind it) another. We do not
// "fix up" ambiguous input; we refuse it: encoded '/' and '\', dot segments in
// any encoding, double encoding, control characters, '#', ';' path parameters
// and query separators, backslashes, invalid escapes and invalid UTF-8. The
// accepted risk is that a few legal-but-odd requests (e.g. FHIR search values
// escaped with '\') are refused with a 400.
func normaliseTarget(raw string, lim Limits) (target, error) {
	if raw == "" || raw[0] != '/' {
		return target{}, reject("target must be origin-form")
	}
	if lim.MaxTargetLength > 0 && len(raw) > lim.MaxTargetLength {
		return target{}, reject("target longer than %d bytes", lim.MaxTargetLength)
	}
	rawPath, rawQuery, hasQuery := strings.Cut(raw, "?")
	if strings.IndexByte(raw, '#') >= 0 {
		return target{}, reject("fragment in target")
	}
	segs, trailing, err := pathSegments(rawPath)
	if err != nil {
		return target{}, err
	}
	var t target
	t.Path, t.EscapedPath = joinSegments(segs, trailing)
	if hasQuery {
		t.Params, err = parseQuery(rawQuery, lim.MaxQueryParams)
		if err != nil {
			return target{}, err
		}
		t.RawQuery = encodeParams(t.Params)
	}
	return t, nil
}

// pathSegments decodes and checks each segment of a raw path. Empty segments
// ("//") collapse; a trailing slash is remembered.
func pathSegments(rawPath string) (segs []string, trailing bool, err error) {
	parts := strings.Split(rawPath[1:], "/")
	segs = make([]string, 0, len(parts))
	for _, p := range parts {
		if p == "" {
			continue
		}
		s, err := decodeComponent(p, true)
		if err != nil {
			return nil, false, err
		}
		if s == "." || s == ".." {
			return nil, false, reject("dot segment in path")
		}
		segs = append(segs, s)
	}
	trailing = len(segs) > 0 && strings.HasSuffix(rawPath, "/")
	return segs, trailing, nil
}

func joinSegments(segs []string, trailing bool) (path, escaped string) {
	var p, e strings.Builder
	for _, s := range segs {
		p.WriteByte('/')
		p.WriteString(s)
		e.WriteByte('/')
		e.WriteString(escape(s, false))
	}
	if len(segs) == 0 || trailing {
		p.WriteByte('/')
		e.WriteByte('/')
	}
	return p.String(), e.String()
}

// decodeComponent percent-decodes one path segment or query component,
// refusing everything normaliseTarget's comment lists. In a query component
// '+' means a space and an encoded '/' is data.
func decodeComponent(s string, inPath bool) (string, error) {
	var b []byte // allocated only when s needs decoding
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return "", reject("invalid percent-encoding")
			}
			d := unhex(s[i+1])<<4 | unhex(s[i+2])
			if err := checkDecoded(d, s[i+3:], inPath); err != nil {
				return "", err
			}
			if b == nil {
				b = append(make([]byte, 0, len(s)), s[:i]...)
			}
			b = append(b, d)
			i += 2
			continue
		case c == '+' && !inPath:
			if b == nil {
				b = append(make([]byte, 0, len(s)), s[:i]...)
			}
			b = append(b, ' ')
			continue
		case c < 0x21 || c >= 0x7f:
			return "", reject("control, space or non-ASCII byte in target")
		case c == '\\':
			return "", reject("backslash in target")
		case c == ';':
			return "", reject("';' in target")
		}
		if b != nil {
			b = append(b, c)
		}
	}
	out := s
	if b != nil {
		out = string(b)
	}
	if !utf8.ValidString(out) {
		return "", reject("invalid UTF-8 in target")
	}
	return out, nil
}

// checkDecoded refuses decoded bytes that would change meaning downstream.
func checkDecoded(d byte, rest string, inPath bool) error {
	switch {
	case d < 0x20 || d == 0x7f:
		return reject("encoded control character")
	case d == '%':
		if inPath || (len(rest) >= 2 && isHex(rest[0]) && isHex(rest[1])) {
			return reject("double percent-encoding")
		}
	case d == '\\':
		return reject("encoded backslash")
	case d == '#':
		return reject("encoded '#'")
	case d == '/' && inPath:
		return reject("encoded '/' in path")
	case d == ';' && inPath:
		return reject("encoded ';' in path")
	}
	return nil
}

// parseQuery splits a raw query on '&' only and decodes each parameter.
func parseQuery(raw string, maxParams int) ([]param, error) {
	if raw == "" {
		return nil, nil
	}
	var params []param
	seen := map[string]bool{}
	for part := range strings.SplitSeq(raw, "&") {
		if part == "" {
			continue
		}
		if maxParams > 0 && len(params) >= maxParams {
			return nil, reject("more than %d query parameters", maxParams)
		}
		k, v, _ := strings.Cut(part, "=")
		name, err := decodeComponent(k, false)
		if err != nil {
			return nil, err
		}
		value, err := decodeComponent(v, false)
		if err != nil {
			return nil, err
		}
		if err := checkParamName(name); err != nil {
			return nil, err
		}
		if singleValued[name] {
			if seen[name] {
				return nil, reject("parameter %s repeated", name)
			}
			seen[name] = true
		}
		params = append(params, param{name, value})
	}
	return params, nil
}

// checkParamName accepts FHIR search parameter names with modifiers and
// chains (letters, digits, '_', '-', '.', ':') and refuses method overrides.
func checkParamName(name string) error {
	if name == "" {
		return reject("empty parameter name")
	}
	if name == "_method" {
		return reject("_method parameter refused")
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(isAlnum(c) || c == '_' || c == '-' || c == '.' || c == ':' || c == '$') {
			return reject("invalid character in parameter name")
		}
	}
	return nil
}

// encodeParams is the canonical query encoding of params.
func encodeParams(params []param) string {
	var b strings.Builder
	for i, p := range params {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(escape(p.Name, true))
		b.WriteByte('=')
		b.WriteString(escape(p.Value, true))
	}
	return b.String()
}

// escape percent-encodes everything but unreserved characters and the
// delimiters FHIR values use literally (",", ":", "$", "@", and "/" and "|"
// in query values). Hex digits are upper case. The path form stays within
// what net/url accepts as a valid RawPath, so the wire path is exactly it.
func escape(s string, query bool) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if !keepLiteral(s[i], query) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	const hex = "0123456789ABCDEF"
	b := make([]byte, 0, len(s)+2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if keepLiteral(c, query) {
			b = append(b, c)
			continue
		}
		b = append(b, '%', hex[c>>4], hex[c&15])
	}
	return string(b)
}

func keepLiteral(c byte, query bool) bool {
	switch {
	case isAlnum(c):
		return true
	case c == '-' || c == '.' || c == '_' || c == '~' || c == ':' || c == '@' || c == '$' || c == ',':
		return true
	case c == '*' || c == '!' || c == '\'' || c == '(' || c == ')':
		return true
	case c == '/' || c == '|':
		// Literal in query values (references, token system|code); in a
		// path '/' is the separator and '|' is not valid unescaped.
		return query
	}
	return false
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

// query returns the parameters as a multi-map (the policy input shape).
func (t *target) query() url.Values {
	v := make(url.Values, len(t.Params))
	for _, p := range t.Params {
		v[p.Name] = append(v[p.Name], p.Value)
	}
	return v
}
