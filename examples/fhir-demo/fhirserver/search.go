package fhirserver

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Limits on search and paging parameters.
const (
	defaultCount = 50
	maxCount     = 1000
	maxOffset    = 1 << 30
	maxFormBody  = 64 << 10
	maxBody      = 1 << 20
)

// httpError is a client error answered with an OperationOutcome. Its text is
// fixed by this package and never contains request values; expr, if set, is
// the FHIRPath of the element at fault (issue.expression), built from fixed
// names and indexes.
type httpError struct {
	status int
	code   string
	msg    string
	expr   string
}

func (e *httpError) Error() string { return e.msg }

func badRequest(msg string) error {
	return &httpError{status: http.StatusBadRequest, code: "invalid", msg: msg}
}

// failErr answers err, which is normally an *httpError.
func (s *Server) failErr(w http.ResponseWriter, err error) {
	var he *httpError
	if errors.As(err, &he) {
		s.failAt(w, he.status, he.code, he.msg, he.expr)
		return
	}
	s.fail(w, http.StatusInternalServerError, "exception", "internal error")
}

type filterKind int

const (
	filterID filterKind = iota
	filterRef
	filterToken
)

// filter is one search parameter occurrence: its alternatives are ORed,
// filters are ANDed. A filter with no valid alternative matches nothing; with
// not set (the :not modifier) it matches what it would not match otherwise,
// including resources without a value.
type filter struct {
	kind   filterKind
	param  string
	not    bool
	values []string // ids, or normalised "Type/id" references
	tokens []tokenMatch
}

type tokenMatch struct {
	system, code       string
	anySystem, anyCode bool
}

// query is a parsed search or history request.
type query struct {
	filters     []filter
	includes    []include // _include values, in request order
	revincludes []include // _revinclude values, in request order
	count       int
	offset      int
	noTotal     bool
	params      url.Values // as received, for the links
}

// parseQuery parses params for spec (nil: history, result parameters only).
func (s *Server) parseQuery(spec *typeSpec, params url.Values, strict bool) (*query, error) {
	q := &query{count: defaultCount, params: params}
	for key, vals := range params {
		name, mod, hasMod := strings.Cut(key, ":")
		switch name {
		case "_count", "_offset", "_total":
			if hasMod || len(vals) != 1 {
				return nil, badRequest("_count, _offset and _total take one value and no modifier")
			}
			if err := q.setResultParam(name, vals[0]); err != nil {
				return nil, err
			}
			continue
		case "_format", "_pretty":
			continue // representation only: JSON is all we serve
		case "_include", "_revinclude":
			if spec != nil {
				if hasMod {
					return nil, badRequest("_include and _revinclude take no modifier (:iterate is not supported)")
				}
				if err := q.addIncludes(s.specs, spec, name == "_revinclude", vals, strict); err != nil {
					return nil, err
				}
				continue
			}
		}
		kind, target, known := paramKind(spec, name)
		if !known {
			if strict {
				return nil, badRequest("unsupported search parameter")
			}
			continue // lenient handling (FHIR R4 search 3.1.1.5)
		}
		m, err := parseModifier(kind, mod, hasMod)
		if err != nil {
			return nil, err
		}
		if m.typ != "" {
			target = m.typ
		}
		for _, v := range vals {
			if v != "" { // empty values are ignored
				q.filters = append(q.filters, newFilter(kind, name, target, m, v))
			}
		}
	}
	return q, nil
}

// modifier is a supported search modifier: :not, or a type (:Patient) on a
// reference parameter.
type modifier struct {
	not bool
	typ string
}

// parseModifier accepts :not on every parameter (all are token or
// reference parameters) and :[type] on reference parameters; the rest
// (:missing, :exact, :identifier, :above, …) is refused.
func parseModifier(kind filterKind, mod string, hasMod bool) (modifier, error) {
	switch {
	case !hasMod:
		return modifier{}, nil
	case mod == "not":
		return modifier{not: true}, nil
	case kind == filterRef && validType(mod):
		return modifier{typ: mod}, nil
	}
	return modifier{}, badRequest("unsupported search modifier (only :not, and :[type] on references)")
}

func (q *query) setResultParam(name, v string) error {
	if name == "_total" {
		switch v {
		case "none":
			q.noTotal = true
		case "estimate", "accurate":
		default:
			return badRequest("invalid _total")
		}
		return nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > maxOffset {
		return badRequest("invalid " + name)
	}
	if name == "_count" {
		q.count = min(n, maxCount)
	} else {
		q.offset = n
	}
	return nil
}

// paramKind reports how spec searches on name, and a reference parameter's
// default target type.
func paramKind(spec *typeSpec, name string) (filterKind, string, bool) {
	if spec == nil {
		return 0, "", false
	}
	if name == "_id" {
		return filterID, "", true
	}
	if p, ok := spec.refs[name]; ok {
		return filterRef, p.target, true
	}
	if _, ok := spec.tokens[name]; ok {
		return filterToken, "", true
	}
	return 0, "", false
}

// newFilter parses one parameter value. With a type modifier, target is
// that type and typed values of another type match nothing.
func newFilter(kind filterKind, name, target string, m modifier, raw string) filter {
	f := filter{kind: kind, param: name, not: m.not}
	for alt := range strings.SplitSeq(raw, ",") {
		switch kind {
		case filterID:
			f.values = append(f.values, alt)
		case filterRef:
			ref, ok := queryRef(alt, target)
			if ok && (m.typ == "" || strings.HasPrefix(ref, m.typ+"/")) {
				f.values = append(f.values, ref)
			}
		case filterToken:
			f.tokens = append(f.tokens, parseToken(alt))
		}
	}
	return f
}

// queryRef normalises a reference search value: "p1" means target/p1.
func queryRef(v, target string) (string, bool) {
	typ, id, ok := strings.Cut(v, "/")
	if !ok {
		return target + "/" + v, validID(v)
	}
	return v, validType(typ) && validID(id)
}

func parseToken(v string) tokenMatch {
	system, code, ok := strings.Cut(v, "|")
	if !ok {
		return tokenMatch{code: v, anySystem: true}
	}
	return tokenMatch{system: system, code: code, anyCode: code == ""}
}

func (q *query) matches(v *version) bool {
	for i := range q.filters {
		if !q.filters[i].matches(v) {
			return false
		}
	}
	return true
}

func (f *filter) matches(v *version) bool {
	return f.any(v) != f.not
}

// any reports whether some value of v matches some alternative of f.
func (f *filter) any(v *version) bool {
	switch f.kind {
	case filterID:
		for _, id := range f.values {
			if id == v.id {
				return true
			}
		}
	case filterRef:
		for _, have := range v.refs[f.param] {
			for _, want := range f.values {
				if have == want {
					return true
				}
			}
		}
	case filterToken:
		for _, have := range v.tokens[f.param] {
			for _, want := range f.tokens {
				if (want.anySystem || want.system == have.system) && (want.anyCode || want.code == have.code) {
					return true
				}
			}
		}
	}
	return false
}

// isStrict reports whether the client asked for strict parameter handling.
func isStrict(r *http.Request) bool {
	for _, h := range r.Header.Values("Prefer") {
		for pref := range strings.FieldsFuncSeq(h, func(c rune) bool { return c == ',' || c == ';' }) {
			if strings.EqualFold(strings.TrimSpace(pref), "handling=strict") {
				return true
			}
		}
	}
	return false
}

// searchParams returns the URL query, merged with the form body of a POST
// _search.
func searchParams(w http.ResponseWriter, r *http.Request) (url.Values, error) {
	params, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, badRequest("malformed query string")
	}
	if r.Method != http.MethodPost {
		return params, nil
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, &httpError{status: http.StatusUnsupportedMediaType, code: "not-supported",
			msg: "_search needs an application/x-www-form-urlencoded body"}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxFormBody))
	if err != nil {
		return nil, bodyError(err)
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, badRequest("malformed form body")
	}
	for k, vs := range form {
		params[k] = append(params[k], vs...)
	}
	return params, nil
}

func bodyError(err error) error {
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return &httpError{status: http.StatusRequestEntityTooLarge, code: "too-costly", msg: "request body too large"}
	}
	return badRequest("unreadable request body")
}

// search answers a type search, or a Patient compartment search when
// patientID is set.
func (s *Server) search(w http.ResponseWriter, r *http.Request, tx *txn, spec *typeSpec, patientID string) {
	params, err := searchParams(w, r)
	if err != nil {
		s.failErr(w, err)
		return
	}
	q, err := s.parseQuery(spec, params, isStrict(r))
	if err != nil {
		s.failErr(w, err)
		return
	}
	path := spec.name
	if patientID != "" {
		path = "Patient/" + patientID + "/" + spec.name
		q.filters = append(q.filters, filter{kind: filterRef, param: spec.compartment,
			values: []string{"Patient/" + patientID}})
	}
	page := make([]*version, 0, min(q.count, 64))
	total := 0
	s.rlock(tx)
	for _, e := range s.types[spec.name].order {
		v := e.current()
		if v.deleted || !q.matches(v) {
			continue
		}
		if total >= q.offset && len(page) < q.count {
			page = append(page, v)
		}
		total++
	}
	included := s.included(q, page)
	s.runlock(tx)
	s.writeBundle(w, r, "searchset", path, q, total, page, included)
}
