package fhirserver

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// errBadMeta reports a resource whose meta element is not an object.
var errBadMeta = errors.New("fhirserver: meta must be an object")

// instantLayout is the FHIR instant format used for meta.lastUpdated.
const instantLayout = "2006-01-02T15:04:05.000Z07:00"

// version is one immutable version of a resource. Everything a read needs is
// computed once when the version is stored, so reads only copy bytes.
type version struct {
	typ, id string
	ref     string // "Type/id"
	vid     int
	method  string // POST, PUT or DELETE (history request.method)
	status  string // history response.status
	deleted bool
	updated time.Time
	body    []byte // nil for a deletion

	// Shared, read-only header values (len == cap, so an append by a
	// wrapper copies instead of writing into our array).
	etag, lastModified, contentLength []string

	refs   map[string][]string // search parameter → normalised "Type/id"
	tokens map[string][]token  // search parameter → system|code
}

// token is a coding (system, code) or an identifier (system, value).
type token struct{ system, code string }

// entry holds every version of one resource, oldest first.
type entry struct{ versions []*version }

func (e *entry) current() *version { return e.versions[len(e.versions)-1] }

// typeStore holds the resources of one type.
type typeStore struct {
	spec  *typeSpec
	byID  map[string]*entry
	order []*entry // creation order: search results are deterministic
}

func headerValue(s string) []string { return []string{s}[:1:1] }

// newVersion stamps res with id and meta and marshals it. It takes
// ownership of res.
func newVersion(spec *typeSpec, id string, vid int, method string, res map[string]any, now time.Time) (*version, error) {
	var meta map[string]any
	switch m := res["meta"].(type) {
	case nil:
		meta = map[string]any{}
	case map[string]any:
		meta = m
	default:
		return nil, errBadMeta
	}
	now = now.UTC()
	meta["versionId"] = strconv.Itoa(vid)
	meta["lastUpdated"] = now.Format(instantLayout)
	res["meta"] = meta
	res["id"] = id
	delete(res, "resourceType")
	rest, err := json.Marshal(res)
	if err != nil {
		return nil, err
	}
	// resourceType first, by convention; rest is a non-empty object.
	body := make([]byte, 0, len(rest)+len(spec.name)+20)
	body = append(body, `{"resourceType":"`...)
	body = append(body, spec.name...)
	body = append(body, `",`...)
	body = append(body, rest[1:]...)

	v := stub(spec.name, id, vid, method, now)
	v.body = body
	v.contentLength = headerValue(strconv.Itoa(len(body)))
	v.refs = indexRefs(spec, res)
	v.tokens = indexTokens(spec, res)
	return v, nil
}

// stub returns a version without content (a deletion, until filled in).
func stub(typ, id string, vid int, method string, now time.Time) *version {
	status := "200 OK"
	switch method {
	case http.MethodPost:
		status = "201 Created"
	case http.MethodDelete:
		status = "204 No Content"
	}
	return &version{
		typ: typ, id: id, ref: typ + "/" + id, vid: vid,
		method: method, status: status, deleted: method == http.MethodDelete,
		updated:      now,
		etag:         headerValue(`W/"` + strconv.Itoa(vid) + `"`),
		lastModified: headerValue(now.Format(http.TimeFormat)),
	}
}

func indexRefs(spec *typeSpec, res map[string]any) map[string][]string {
	if len(spec.refs) == 0 {
		return nil
	}
	out := make(map[string][]string, len(spec.refs))
	for name, p := range spec.refs {
		for _, path := range p.paths {
			walk(res, path, func(v any) {
				o, _ := v.(map[string]any)
				s, _ := o["reference"].(string)
				ref, ok := normaliseRef(s)
				if ok && (!p.onlyTarget || strings.HasPrefix(ref, p.target+"/")) {
					out[name] = append(out[name], ref)
				}
			})
		}
	}
	return out
}

func indexTokens(spec *typeSpec, res map[string]any) map[string][]token {
	if len(spec.tokens) == 0 {
		return nil
	}
	out := make(map[string][]token, len(spec.tokens))
	for name, p := range spec.tokens {
		walk(res, p.path, func(v any) {
			o, _ := v.(map[string]any)
			if p.identifier {
				sys, _ := o["system"].(string)
				val, _ := o["value"].(string)
				out[name] = append(out[name], token{sys, val})
				return
			}
			walk(o["coding"], nil, func(c any) {
				co, _ := c.(map[string]any)
				sys, _ := co["system"].(string)
				code, _ := co["code"].(string)
				out[name] = append(out[name], token{sys, code})
			})
		})
	}
	return out
}

// walk calls fn for every value at path below v, descending into arrays.
func walk(v any, path []string, fn func(any)) {
	if a, ok := v.([]any); ok {
		for _, e := range a {
			walk(e, path, fn)
		}
		return
	}
	if v == nil {
		return
	}
	if len(path) == 0 {
		fn(v)
		return
	}
	if o, ok := v.(map[string]any); ok {
		walk(o[path[0]], path[1:], fn)
	}
}

// normaliseRef reduces a literal reference ("Patient/p1",
// "http://host/fhir/Patient/p1", "Patient/p1/_history/2") to "Type/id".
func normaliseRef(s string) (string, bool) {
	if i := strings.Index(s, "/_history/"); i >= 0 {
		s = s[:i]
	}
	i := strings.LastIndexByte(s, '/')
	if i <= 0 {
		return "", false
	}
	id := s[i+1:]
	typ := s[:i]
	if j := strings.LastIndexByte(typ, '/'); j >= 0 {
		typ = typ[j+1:]
	}
	if !validType(typ) || !validID(id) {
		return "", false
	}
	return typ + "/" + id, true
}

// validType reports whether s looks like a FHIR resource type name.
func validType(s string) bool {
	if s == "" || len(s) > 64 || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// commit stores v as the newest version of its resource and returns the
// entry. The caller holds s.mu for writing.
func (s *Server) commit(ts *typeStore, v *version) *entry {
	e := ts.byID[v.id]
	if e == nil {
		e = &entry{}
		ts.byID[v.id] = e
		ts.order = append(ts.order, e)
	}
	e.versions = append(e.versions, v)
	s.log = append(s.log, v)
	return e
}
