package fhirserver

import (
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Defaults for [Options].
const (
	DefaultBase     = "/fhir"
	DefaultSeed     = 1
	DefaultPatients = 60
	maxPatients     = 10000
)

// Options configures a [Server].
type Options struct {
	// Base is the path of the FHIR base. If empty, "/fhir". A trailing
	// slash is dropped; "/" serves at the root.
	Base string
	// Seed selects the synthetic data set. If zero, 1.
	Seed int64
	// Patients is the number of synthetic patients p1…pN. If zero or
	// negative, 60; at most 10000.
	Patients int
	// Now is the clock for meta.lastUpdated and the day clinical dates are
	// relative to. If nil, time.Now.
	Now func() time.Time
	// OnRequest, if set, is called at the start of every request, before
	// routing. Tests use it to see what the upstream receives. It must not
	// retain or modify r.
	OnRequest func(r *http.Request)
}

// Server is an in-memory FHIR R4 server. It is an http.Handler and safe for
// concurrent use.
type Server struct {
	base      string
	now       func() time.Time
	onRequest func(*http.Request)
	specs     map[string]*typeSpec

	capability []byte
	bufs       sync.Pool
	gzip       *gzipCodec
	// Shared header values.
	contentType, vary, contentEncoding []string

	mu     sync.RWMutex
	types  map[string]*typeStore
	log    []*version // every version in commit order (system history)
	nextID int
}

// New returns a server loaded with the synthetic data set for opts.
func New(opts Options) *Server {
	base := strings.TrimRight(opts.Base, "/")
	if opts.Base == "" {
		base = DefaultBase
	}
	if base != "" && !strings.HasPrefix(base, "/") {
		base = "/" + base
	}
	s := &Server{
		base:            base,
		now:             opts.Now,
		onRequest:       opts.OnRequest,
		specs:           newTypeSpecs(),
		contentType:     headerValue("application/fhir+json; charset=utf-8"),
		vary:            headerValue("Accept-Encoding"),
		contentEncoding: headerValue("gzip"),
		bufs:            sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }},
		gzip:            newGzipCodec(),
		types:           map[string]*typeStore{},
	}
	if s.now == nil {
		s.now = time.Now
	}
	for name, spec := range s.specs {
		s.types[name] = &typeStore{spec: spec, byID: map[string]*entry{}}
	}
	seed := opts.Seed
	if seed == 0 {
		seed = DefaultSeed
	}
	n := opts.Patients
	if n <= 0 {
		n = DefaultPatients
	}
	anchor := s.now().UTC().Truncate(24 * time.Hour)
	s.capability = s.capabilityStatement(anchor)
	s.seed(seed, min(n, maxPatients), anchor)
	return s
}

// PatientIDs returns the ids of the live Patient resources in creation order.
func (s *Server) PatientIDs() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var ids []string
	for _, e := range s.types["Patient"].order {
		if v := e.current(); !v.deleted {
			ids = append(ids, v.id)
		}
	}
	return ids
}

// ServeHTTP routes one FHIR request. POST to the base itself is a batch or
// transaction; everything else is addressed below the base. Bodies are
// gzip-compressed when the client accepts gzip, except for HEAD.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.onRequest != nil {
		s.onRequest(r)
	}
	if r.Method != http.MethodHead && acceptsGzip(r) {
		w = &gzipWriter{w}
	}
	if p := r.URL.EscapedPath(); p == s.base || (s.base == "" && p == "/") {
		s.serveBundle(w, r)
		return
	}
	s.dispatch(w, r, nil)
}

// dispatch routes a request below the base: one of its own (tx nil) or a
// Bundle entry.
func (s *Server) dispatch(w http.ResponseWriter, r *http.Request, tx *txn) {
	segs, err := s.splitPath(r.URL.EscapedPath())
	if err != nil {
		s.failErr(w, err)
		return
	}
	s.route(w, r, tx, segs)
}

// splitPath returns the unescaped segments of an escaped path below the
// base. The path is split on its escaped form, so an encoded slash stays
// inside its segment (and fails id validation) instead of creating a new
// one.
func (s *Server) splitPath(p string) ([]string, error) {
	notFound := &httpError{status: http.StatusNotFound, code: "not-found", msg: "unknown path"}
	if !strings.HasPrefix(p, s.base+"/") {
		return nil, notFound
	}
	raw := strings.Split(p[len(s.base)+1:], "/")
	segs := make([]string, len(raw))
	for i, seg := range raw {
		u, err := url.PathUnescape(seg)
		if err != nil {
			return nil, badRequest("malformed path")
		}
		if u == "" {
			return nil, notFound
		}
		segs[i] = u
	}
	return segs, nil
}

func (s *Server) route(w http.ResponseWriter, r *http.Request, tx *txn, segs []string) {
	if segs[0] == "metadata" || segs[0] == "_history" {
		switch {
		case len(segs) > 1:
			s.fail(w, http.StatusNotFound, "not-found", "unknown path")
		case !s.allow(w, r, "GET, HEAD"): // allow answered 405
		case segs[0] == "metadata":
			s.writeRaw(w, http.StatusOK, s.capability)
		default:
			s.history(w, r, tx, nil, "", "_history")
		}
		return
	}
	spec := s.specs[segs[0]]
	if spec == nil {
		s.fail(w, http.StatusNotFound, "not-supported", "unknown resource type or interaction")
		return
	}
	switch {
	case len(segs) == 1:
		s.routeType(w, r, tx, spec)
	case segs[1] == "_search" && len(segs) == 2:
		if s.allow(w, r, "POST") {
			s.search(w, r, tx, spec, "")
		}
	case segs[1] == "_history" && len(segs) == 2:
		if s.allow(w, r, "GET, HEAD") {
			s.history(w, r, tx, spec, "", spec.name+"/_history")
		}
	case !validID(segs[1]):
		s.fail(w, http.StatusBadRequest, "invalid", "invalid resource id")
	case len(segs) == 2:
		s.routeInstance(w, r, tx, spec, segs[1])
	default:
		s.routeBelowInstance(w, r, tx, spec, segs)
	}
}

func (s *Server) routeType(w http.ResponseWriter, r *http.Request, tx *txn, spec *typeSpec) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		s.search(w, r, tx, spec, "")
	case http.MethodPost:
		s.create(w, r, tx, spec)
	default:
		s.methodNotAllowed(w, "GET, HEAD, POST")
	}
}

func (s *Server) routeInstance(w http.ResponseWriter, r *http.Request, tx *txn, spec *typeSpec, id string) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		s.read(w, tx, spec, id, 0)
	case http.MethodPut:
		s.update(w, r, tx, spec, id)
	case http.MethodDelete:
		s.delete(w, r, tx, spec, id)
	default:
		s.methodNotAllowed(w, "GET, HEAD, PUT, DELETE")
	}
}

// routeBelowInstance handles /{type}/{id}/_history[/{vid}] and the Patient
// compartment /Patient/{id}/{type}.
func (s *Server) routeBelowInstance(w http.ResponseWriter, r *http.Request, tx *txn, spec *typeSpec, segs []string) {
	id := segs[1]
	switch {
	case segs[2] == "_history" && len(segs) == 3:
		if s.allow(w, r, "GET, HEAD") {
			s.history(w, r, tx, spec, id, spec.name+"/"+id+"/_history")
		}
	case segs[2] == "_history" && len(segs) == 4:
		vid, ok := parseVersionID(segs[3])
		if !ok {
			s.fail(w, http.StatusNotFound, "not-found", "unknown version")
			return
		}
		if s.allow(w, r, "GET, HEAD") {
			s.read(w, tx, spec, id, vid)
		}
	case spec.name == "Patient" && len(segs) == 3 && s.specs[segs[2]] != nil:
		target := s.specs[segs[2]]
		if target.compartment == "" {
			s.fail(w, http.StatusBadRequest, "not-supported", "type is not in the Patient compartment")
			return
		}
		if s.allow(w, r, "GET, HEAD") {
			s.search(w, r, tx, target, id)
		}
	default:
		s.fail(w, http.StatusNotFound, "not-supported", "unknown resource type or interaction")
	}
}

// parseVersionID accepts a canonical positive decimal version id.
func parseVersionID(s string) (int, bool) {
	if s == "" || len(s) > 9 || s[0] == '0' {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, true
}

// allow reports whether r's method is in allow ("GET, HEAD" or "POST");
// otherwise it answers 405.
func (s *Server) allow(w http.ResponseWriter, r *http.Request, allow string) bool {
	for m := range strings.SplitSeq(allow, ", ") {
		if r.Method == m {
			return true
		}
	}
	s.methodNotAllowed(w, allow)
	return false
}

func (s *Server) methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	s.fail(w, http.StatusMethodNotAllowed, "not-supported", "method not allowed")
}

// read answers a read (vid 0) or a vread.
func (s *Server) read(w http.ResponseWriter, tx *txn, spec *typeSpec, id string, vid int) {
	s.rlock(tx)
	var v *version
	if e := s.types[spec.name].byID[id]; e != nil {
		switch {
		case vid == 0:
			v = e.current()
		case vid <= len(e.versions):
			v = e.versions[vid-1]
		}
	}
	s.runlock(tx)
	switch {
	case v == nil:
		s.fail(w, http.StatusNotFound, "not-found", "resource not found")
	case v.deleted:
		s.fail(w, http.StatusGone, "deleted", "resource deleted")
	default:
		s.writeVersion(w, http.StatusOK, v)
	}
}

// writeVersion writes a stored version with its ETag and Last-Modified.
func (s *Server) writeVersion(w http.ResponseWriter, status int, v *version) {
	h := w.Header()
	h["Content-Type"] = s.contentType
	h["Etag"] = v.etag
	h["Last-Modified"] = v.lastModified
	s.writeBody(w, status, v.body, v.contentLength)
}

// writeRaw writes a FHIR JSON body.
func (s *Server) writeRaw(w http.ResponseWriter, status int, body []byte) {
	w.Header()["Content-Type"] = s.contentType
	s.writeBody(w, status, body, nil)
}

// baseURL is the absolute URL of the FHIR base as the client addressed it.
func (s *Server) baseURL(r *http.Request) string {
	scheme := "http://"
	if r.TLS != nil {
		scheme = "https://"
	}
	host := r.Host
	if host == "" {
		host = "localhost"
	}
	return scheme + host + s.base
}
