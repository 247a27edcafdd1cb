package fhirscan

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"unicode/utf8"
)

// maxDepth bounds the nesting of objects and arrays. Real FHIR resources
// nest well under 20 levels even inside a Bundle; the limit keeps the
// recursive scan's stack small whatever the body.
const maxDepth = 64

// smallObject is the member count up to which duplicate names are found by
// comparing with every earlier name; larger objects use a map, so a hostile
// object with many members costs O(n), not O(n²).
const smallObject = 16

type kind uint8

const (
	kindObject kind = iota + 1
	kindArray
	kindString
	kindNumber
	kindBool
	kindNull
)

// token is one JSON value in a tape. An object's members follow it as
// (name, value subtree) pairs, an array's elements follow it in order, and
// next skips the whole subtree.
type token struct {
	start, end int32 // raw byte range in the body; strings include their quotes
	next       int32 // index of the first token after this value's subtree
	kind       kind
	esc        bool // a string with at least one backslash escape
	resource   bool // an object with a string "resourceType" member
}

// tape is a validated JSON document as a flat list of tokens.
type tape struct {
	body      []byte
	toks      []token
	resources int // objects marked resource
}

// parser builds a tape. It accepts exactly RFC 8259 JSON text in UTF-8 and
// additionally rejects duplicate member names and control characters in
// member names.
type parser struct {
	b    []byte
	pos  int
	toks []token
	keys []nameKey // names of the objects being parsed, innermost last
	nres int       // objects marked resource
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

// parse validates body and returns its tape.
func parse(body []byte) (*tape, error) {
	if len(body) > math.MaxInt32 {
		return nil, malformed("body too large")
	}
	// FHIR JSON averages 10-12 bytes per token; reserving for 10 avoids
	// growing the tape in the common case.
	p := &parser{b: body, toks: make([]token, 0, len(body)/10+16)}
	p.skipWS()
	if p.pos == len(p.b) {
		return nil, malformed("empty body")
	}
	if err := p.value(0); err != nil {
		return nil, err
	}
	p.skipWS()
	if p.pos != len(p.b) {
		return nil, malformed("data after the top-level value at byte %d", p.pos)
	}
	return &tape{body: body, toks: p.toks, resources: p.nres}, nil
}

func (p *parser) skipWS() {
	for p.pos < len(p.b) {
		switch p.b[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *parser) unexpected() error {
	if p.pos >= len(p.b) {
		return malformed("unexpected end of body")
	}
	return malformed("unexpected character at byte %d", p.pos)
}

func (p *parser) value(depth int) error {
	if p.pos >= len(p.b) {
		return p.unexpected()
	}
	switch c := p.b[p.pos]; {
	case c == '{':
		return p.object(depth + 1)
	case c == '[':
		return p.array(depth + 1)
	case c == '"':
		_, err := p.str()
		return err
	case c == 't':
		return p.literal("true", kindBool)
	case c == 'f':
		return p.literal("false", kindBool)
	case c == 'n':
		return p.literal("null", kindNull)
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	default:
		return p.unexpected()
	}
}

// open appends the token of an object or array and returns its index.
func (p *parser) open(k kind, depth int) (int32, error) {
	if depth > maxDepth {
		return 0, malformed("nesting deeper than %d", maxDepth)
	}
	i := int32(len(p.toks))
	p.toks = append(p.toks, token{kind: k, start: int32(p.pos)})
	p.pos++
	p.skipWS()
	return i, nil
}

func (p *parser) close(i int32) {
	p.pos++
	p.toks[i].end = int32(p.pos)
	p.toks[i].next = int32(len(p.toks))
}

func (p *parser) object(depth int) error {
	i, err := p.open(kindObject, depth)
	if err != nil {
		return err
	}
	base := len(p.keys)
	var seen map[string]struct{}
	if p.pos < len(p.b) && p.b[p.pos] == '}' {
		p.close(i)
		return nil
	}
	for {
		if p.pos >= len(p.b) || p.b[p.pos] != '"' {
			return p.unexpected()
		}
		k, err := p.str()
		if err != nil {
			return err
		}
		if seen, err = p.checkName(k, base, seen); err != nil {
			return err
		}
		p.skipWS()
		if p.pos >= len(p.b) || p.b[p.pos] != ':' {
			return p.unexpected()
		}
		p.pos++
		p.skipWS()
		if err := p.value(depth); err != nil {
			return err
		}
		if p.keys[len(p.keys)-1].sig == resourceTypeSig && p.toks[k+1].kind == kindString && p.isName(k, "resourceType") {
			p.toks[i].resource = true
			p.nres++
		}
		p.skipWS()
		if p.pos < len(p.b) && p.b[p.pos] == ',' {
			p.pos++
			p.skipWS()
			continue
		}
		if p.pos < len(p.b) && p.b[p.pos] == '}' {
			p.close(i)
			p.keys = p.keys[:base]
			return nil
		}
		return p.unexpected()
	}
}

// checkName rejects member name k if an earlier member of the same object
// (names p.keys[base:]) has the same decoded name, or if it contains a
// control character.
//
// Security: JSON leaves duplicate names to the parser; most keep the last,
// some the first. A body with two "resourceType", "id", "subject" or "meta"
// members could be decided on one value and read by the client as the other,
// so any duplicate makes the body malformed. FHIR JSON never repeats a name.
func (p *parser) checkName(k int32, base int, seen map[string]struct{}) (map[string]struct{}, error) {
	t := p.toks[k]
	name := p.b[t.start+1 : t.end-1]
	if t.esc {
		name = []byte(decodeString(name))
		if bytes.ContainsFunc(name, func(r rune) bool { return r < 0x20 }) {
			return seen, malformed("control character in a member name at byte %d", t.start)
		}
	}
	sig := nameSig(name)
	n := len(p.keys) - base
	switch {
	case n < smallObject:
		for _, j := range p.keys[base:] {
			if j.sig == sig && p.sameName(j.tok, k) {
				return seen, malformed("duplicate member name at byte %d", t.start)
			}
		}
	default:
		if seen == nil {
			seen = make(map[string]struct{}, 2*n)
			for _, j := range p.keys[base:] {
				seen[p.name(j.tok)] = struct{}{}
			}
		}
		if _, dup := seen[string(name)]; dup {
			return seen, malformed("duplicate member name at byte %d", t.start)
		}
		seen[string(name)] = struct{}{}
	}
	p.keys = append(p.keys, nameKey{sig: sig, tok: k})
	return seen, nil
}

// nameKey is a member name seen in an object being parsed. Equal names have
// equal sigs (length and first bytes), so most pairs are told apart without
// reading the names.
type nameKey struct {
	sig uint64
	tok int32
}

// resourceTypeSig is nameSig("resourceType"): length 12, then "resourc".
const resourceTypeSig = 12<<56 | 0x63_72_75_6f_73_65_72

func (p *parser) isName(k int32, name string) bool {
	t := p.toks[k]
	return string(p.b[t.start+1:t.end-1]) == name || t.esc && p.name(k) == name
}

func nameSig(name []byte) uint64 {
	sig := uint64(len(name)) << 56
	for i := 0; i < len(name) && i < 7; i++ {
		sig |= uint64(name[i]) << (8 * i)
	}
	return sig
}

func (p *parser) name(i int32) string {
	t := p.toks[i]
	raw := p.b[t.start+1 : t.end-1]
	if !t.esc {
		return string(raw)
	}
	return decodeString(raw)
}

func (p *parser) sameName(a, b int32) bool {
	ta, tb := p.toks[a], p.toks[b]
	if !ta.esc && !tb.esc {
		return bytes.Equal(p.b[ta.start+1:ta.end-1], p.b[tb.start+1:tb.end-1])
	}
	return p.name(a) == p.name(b)
}

func (p *parser) array(depth int) error {
	i, err := p.open(kindArray, depth)
	if err != nil {
		return err
	}
	if p.pos < len(p.b) && p.b[p.pos] == ']' {
		p.close(i)
		return nil
	}
	for {
		if err := p.value(depth); err != nil {
			return err
		}
		p.skipWS()
		if p.pos < len(p.b) && p.b[p.pos] == ',' {
			p.pos++
			p.skipWS()
			continue
		}
		if p.pos < len(p.b) && p.b[p.pos] == ']' {
			p.close(i)
			return nil
		}
		return p.unexpected()
	}
}

// plain marks the bytes a string may contain without further checks.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// hasSpecial reports whether any of the 8 bytes in x is not plain: a quote,
// a backslash, a control character or a non-ASCII byte. Each test is the
// exact "some byte is zero / less than n" bit trick (no false negatives).
func hasSpecial(x uint64) bool {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	zero := func(v uint64) uint64 { return (v - lo) &^ v & hi }
	ctrl := (x - 0x20*lo) &^ x & hi
	return (x&hi | ctrl | zero(x^0x22*lo) | zero(x^0x5C*lo)) != 0
}

// str scans a string starting at the opening quote and returns its token.
func (p *parser) str() (int32, error) {
	start := p.pos
	p.pos++
	esc := false
	for {
		for p.pos+8 <= len(p.b) && !hasSpecial(binary.LittleEndian.Uint64(p.b[p.pos:])) {
			p.pos += 8
		}
		for p.pos < len(p.b) && plain[p.b[p.pos]] {
			p.pos++
		}
		if p.pos >= len(p.b) {
			return 0, malformed("unterminated string at byte %d", start)
		}
		switch c := p.b[p.pos]; {
		case c == '"':
			p.pos++
			i := int32(len(p.toks))
			p.toks = append(p.toks, token{kind: kindString, start: int32(start), end: int32(p.pos), next: i + 1, esc: esc})
			return i, nil
		case c == '\\':
			esc = true
			if err := p.escape(); err != nil {
				return 0, err
			}
		case c < 0x20:
			return 0, malformed("control character in a string at byte %d", p.pos)
		default:
			r, size := utf8.DecodeRune(p.b[p.pos:])
			if r == utf8.RuneError && size == 1 {
				return 0, malformed("invalid UTF-8 at byte %d", p.pos)
			}
			p.pos += size
		}
	}
}

func (p *parser) escape() error {
	p.pos++
	if p.pos >= len(p.b) {
		return p.unexpected()
	}
	switch p.b[p.pos] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		p.pos++
		return nil
	case 'u':
		if p.pos+5 > len(p.b) {
			return p.unexpected()
		}
		for _, c := range p.b[p.pos+1 : p.pos+5] {
			if hexVal(c) < 0 {
				return malformed("bad \\u escape at byte %d", p.pos)
			}
		}
		p.pos += 5
		return nil
	default:
		return malformed("bad escape at byte %d", p.pos)
	}
}

func (p *parser) literal(word string, k kind) error {
	if !bytes.HasPrefix(p.b[p.pos:], []byte(word)) {
		return p.unexpected()
	}
	i := int32(len(p.toks))
	p.toks = append(p.toks, token{kind: k, start: int32(p.pos), end: int32(p.pos + len(word)), next: i + 1})
	p.pos += len(word)
	return nil
}

func (p *parser) digits() int {
	n := 0
	for p.pos < len(p.b) && p.b[p.pos] >= '0' && p.b[p.pos] <= '9' {
		p.pos++
		n++
	}
	return n
}

func (p *parser) number() error {
	start := p.pos
	if p.b[p.pos] == '-' {
		p.pos++
	}
	switch {
	case p.pos < len(p.b) && p.b[p.pos] == '0':
		p.pos++
	case p.digits() == 0:
		return p.unexpected()
	}
	if p.pos < len(p.b) && p.b[p.pos] == '.' {
		p.pos++
		if p.digits() == 0 {
			return p.unexpected()
		}
	}
	if p.pos < len(p.b) && (p.b[p.pos] == 'e' || p.b[p.pos] == 'E') {
		p.pos++
		if p.pos < len(p.b) && (p.b[p.pos] == '+' || p.b[p.pos] == '-') {
			p.pos++
		}
		if p.digits() == 0 {
			return p.unexpected()
		}
	}
	i := int32(len(p.toks))
	p.toks = append(p.toks, token{kind: kindNumber, start: int32(start), end: int32(p.pos), next: i + 1})
	return nil
}

func hexVal(c byte) rune {
	switch {
	case c >= '0' && c <= '9':
		return rune(c - '0')
	case c >= 'a' && c <= 'f':
		return rune(c - 'a' + 10)
	case c >= 'A' && c <= 'F':
		return rune(c - 'A' + 10)
	}
	return -1
}

// decodeString decodes the content of a string the parser has validated.
// A lone UTF-16 surrogate decodes to U+FFFD, as in encoding/json.
func decodeString(raw []byte) string {
	out := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			out = append(out, c)
			i++
			continue
		}
		e := raw[i+1]
		i += 2
		switch e {
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r := hex4(raw[i:])
			i += 4
			if r >= 0xD800 && r < 0xDC00 && i+6 <= len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
				if lo := hex4(raw[i+2:]); lo >= 0xDC00 && lo < 0xE000 {
					r = 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00)
					i += 6
				}
			}
			if r >= 0xD800 && r < 0xE000 {
				r = utf8.RuneError
			}
			out = utf8.AppendRune(out, r)
		default: // '"', '\\', '/'
			out = append(out, e)
		}
	}
	return string(out)
}

func hex4(b []byte) rune {
	return hexVal(b[0])<<12 | hexVal(b[1])<<8 | hexVal(b[2])<<4 | hexVal(b[3])
}

// appendString appends s as a JSON string. It escapes only what JSON
// requires, plus U+2028 and U+2029 for embedding safety; invalid UTF-8
// becomes U+FFFD.
func appendString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	plainFrom := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < 0x80 && plain[c] {
			i++
			continue
		}
		dst = append(dst, s[plainFrom:i]...)
		size := 1
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
		default:
			var r rune
			r, size = utf8.DecodeRuneInString(s[i:])
			if r == 0x2028 || r == 0x2029 {
				dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xF])
			} else {
				dst = utf8.AppendRune(dst, r) // RuneError for invalid bytes
			}
		}
		i += size
		plainFrom = i
	}
	dst = append(dst, s[plainFrom:]...)
	return append(dst, '"')
}

// Navigation over a tape. Indexes are token indexes.

// str returns the decoded value of string token i.
func (t *tape) str(i int32) string {
	tk := t.toks[i]
	raw := t.body[tk.start+1 : tk.end-1]
	if !tk.esc {
		return string(raw)
	}
	return decodeString(raw)
}

// nameIs reports whether name token k decodes to name.
func (t *tape) nameIs(k int32, name string) bool {
	tk := t.toks[k]
	if !tk.esc {
		return string(t.body[tk.start+1:tk.end-1]) == name
	}
	return decodeString(t.body[tk.start+1:tk.end-1]) == name
}

// member returns the value token of member name of object o, or -1.
func (t *tape) member(o int32, name string) int32 {
	for k := o + 1; k < t.toks[o].next; k = t.toks[k+1].next {
		if t.nameIs(k, name) {
			return k + 1
		}
	}
	return -1
}

// stringMember returns the decoded string member name of object o.
func (t *tape) stringMember(o int32, name string) (string, bool) {
	v := t.member(o, name)
	if v < 0 || t.toks[v].kind != kindString {
		return "", false
	}
	return t.str(v), true
}

// elements calls fn for each element of array a.
func (t *tape) elements(a int32, fn func(e int32)) {
	for e := a + 1; e < t.toks[a].next; e = t.toks[e].next {
		fn(e)
	}
}
