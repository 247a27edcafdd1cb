package fhirserver

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Limits on batch and transaction Bundles (besides maxBody).
const (
	// maxEntries caps the entries of one Bundle; more is a 413.
	maxEntries = 1000
	// maxReadBytes caps what the successful GET entries of one Bundle
	// return in total; an entry past it fails with 400 too-costly.
	// Security: without it a 1 MiB Bundle of searches would make the
	// server build a response of gigabytes.
	maxReadBytes = 16 << 20
)

// bundleEntry is one entry of a batch or transaction request.
type bundleEntry struct {
	method, ifMatch, fullURL string
	u                        *url.URL        // request.url below the base, as a request URL
	segs                     []string        // u's path segments, nil if it has none
	resource                 json.RawMessage // nil if absent or null
}

// entryResult is what one entry answered.
type entryResult struct {
	status   int
	location string // relative: Type/id/_history/vid
	etag     string
	body     []byte // a resource, or the OperationOutcome of an error
}

func (r *entryResult) ok() bool { return r.status >= 200 && r.status < 300 }

// serveBundle answers POST [base]: a batch or transaction Bundle.
func (s *Server) serveBundle(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		s.methodNotAllowed(w, "POST")
		return
	}
	kind, entries, err := s.readBundle(w, r)
	if err != nil {
		s.failErr(w, err)
		return
	}
	if kind == "transaction" {
		s.transaction(w, r, entries)
		return
	}
	s.batch(w, r, entries)
}

// batch answers each entry on its own, in entry order, as if it were a
// request of its own; a failing entry does not stop the others.
func (s *Server) batch(w http.ResponseWriter, r *http.Request, entries []bundleEntry) {
	results := make([]entryResult, len(entries))
	budget := maxReadBytes
	for i := range entries {
		results[i] = s.runEntry(r, &entries[i], entries[i].resource, nil, &budget)
	}
	s.writeEntries(w, "batch-response", results)
}

// readBundle reads a batch or transaction Bundle. Anything that is not
// one, and any entry without a usable request, fails the whole Bundle.
//
// Security: the Bundle and its entries are decoded into maps, so keys
// match exactly ("Method" is not "method") and the last duplicate wins, as
// in ChartGuard's own reading of the Bundle; case-insensitive struct
// decoding would let an entry mean one thing to the proxy and another here.
func (s *Server) readBundle(w http.ResponseWriter, r *http.Request) (string, []bundleEntry, error) {
	var b map[string]json.RawMessage
	if err := readJSON(w, r, &b); err != nil {
		return "", nil, err
	}
	rt, ok1 := optString(b["resourceType"])
	kind, ok2 := optString(b["type"])
	if !ok1 || !ok2 || rt != "Bundle" || (kind != "batch" && kind != "transaction") {
		return "", nil, badRequest("POST to the base takes a Bundle of type batch or transaction")
	}
	var raws []json.RawMessage
	if !isNull(b["entry"]) && json.Unmarshal(b["entry"], &raws) != nil {
		return "", nil, &httpError{status: http.StatusBadRequest, code: "invalid",
			msg: "Bundle.entry must be an array", expr: "Bundle.entry"}
	}
	if len(raws) > maxEntries {
		return "", nil, &httpError{status: http.StatusRequestEntityTooLarge, code: "too-costly",
			msg: "too many Bundle entries (at most " + strconv.Itoa(maxEntries) + ")"}
	}
	entries := make([]bundleEntry, len(raws))
	for i, raw := range raws {
		if err := s.parseEntry(r, raw, &entries[i], "Bundle.entry["+strconv.Itoa(i)+"]"); err != nil {
			return "", nil, err
		}
	}
	return kind, entries, nil
}

// parseEntry reads one entry; at is its FHIRPath, for errors.
func (s *Server) parseEntry(r *http.Request, raw json.RawMessage, e *bundleEntry, at string) error {
	bad := func(elem, msg string) error {
		return &httpError{status: http.StatusBadRequest, code: "invalid", msg: msg, expr: at + elem}
	}
	var entry, req map[string]json.RawMessage
	if json.Unmarshal(raw, &entry) != nil || entry == nil {
		return bad("", "a Bundle entry must be an object")
	}
	if json.Unmarshal(entry["request"], &req) != nil || req == nil {
		return bad(".request", "a Bundle entry needs a request")
	}
	var ok bool
	if e.fullURL, ok = optString(entry["fullUrl"]); !ok {
		return bad(".fullUrl", "fullUrl must be a string")
	}
	e.method, ok = optString(req["method"])
	if !ok || !slices.Contains([]string{http.MethodGet, http.MethodHead, http.MethodPost,
		http.MethodPut, http.MethodDelete, http.MethodPatch}, e.method) {
		return bad(".request.method", "request.method must be GET, HEAD, POST, PUT, DELETE or PATCH")
	}
	if e.ifMatch, ok = optString(req["ifMatch"]); !ok {
		return bad(".request.ifMatch", "request.ifMatch must be a string")
	}
	for _, k := range []string{"ifNoneMatch", "ifModifiedSince", "ifNoneExist"} {
		if !isNull(req[k]) {
			return &httpError{status: http.StatusBadRequest, code: "not-supported",
				msg: "conditional requests other than ifMatch are not supported", expr: at + ".request." + k}
		}
	}
	rawURL, ok := optString(req["url"])
	if !ok || rawURL == "" {
		return bad(".request.url", "request.url is required")
	}
	if e.u, ok = s.entryURL(r, rawURL); !ok {
		return bad(".request.url", "request.url must be a URL relative to the base")
	}
	e.segs, _ = s.splitPath(e.u.EscapedPath()) // its handler answers a bad path
	if !isNull(entry["resource"]) {
		e.resource = entry["resource"]
	}
	return nil
}

// entryURL resolves a request.url against the base.
//
// Security: an entry may only address this server below its base: a URL
// relative to the base, or an absolute URL under the base URL the client
// used (scheme and Host, as in Location headers). Another server, a path
// outside the base and the base itself (a nested Bundle) are refused. A
// colon before the query means a scheme (types and ids have none); the
// query may hold URLs (code=http://loinc.org|8867-4).
func (s *Server) entryURL(r *http.Request, raw string) (*url.URL, bool) {
	rel := raw
	if path, _, _ := strings.Cut(raw, "?"); strings.Contains(path, ":") {
		var ok bool
		if rel, ok = strings.CutPrefix(raw, s.baseURL(r)+"/"); !ok {
			return nil, false
		}
	}
	if rel == "" || strings.HasPrefix(rel, "/") || strings.Contains(rel, "#") {
		return nil, false
	}
	u, err := url.Parse(s.base + "/" + rel)
	if err != nil || u.Scheme != "" || u.Host != "" {
		return nil, false
	}
	return u, true
}

// optString decodes an optional JSON string: absent or null is "".
func optString(raw json.RawMessage) (string, bool) {
	var v string
	if isNull(raw) {
		return "", true
	}
	return v, json.Unmarshal(raw, &v) == nil
}

func isNull(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || string(t) == "null"
}

// runEntry answers one entry through the router, exactly as a request of
// its own with the entry's method and URL, the resource as body, ifMatch as
// If-Match and the Bundle request's Prefer header. budget is what GET and
// HEAD entries may still return.
func (s *Server) runEntry(r *http.Request, e *bundleEntry, resource []byte, tx *txn, budget *int) entryResult {
	rec := &entryWriter{header: http.Header{}}
	s.dispatch(rec, s.entryRequest(r, e, resource), tx)
	res := entryResult{status: rec.status, etag: rec.header.Get("Etag"), body: rec.body}
	if res.status == 0 { // unreachable: every handler answers
		res.status = http.StatusInternalServerError
	}
	if loc := rec.header.Get("Location"); loc != "" {
		res.location = strings.TrimPrefix(loc, s.baseURL(r)+"/")
	}
	if e.method != http.MethodGet && e.method != http.MethodHead || !res.ok() {
		return res
	}
	if e.method == http.MethodHead {
		res.body = nil
	}
	if len(res.body) > *budget {
		return entryResult{status: http.StatusBadRequest, body: marshalOutcome(operationOutcome{
			ResourceType: "OperationOutcome", Issue: []outcomeIssue{{Severity: "error", Code: "too-costly",
				Diagnostics: "the Bundle's reads return too much; split it or page with _count"}}})}
	}
	*budget -= len(res.body)
	return res
}

// entryRequest is the request an entry stands for.
func (s *Server) entryRequest(r *http.Request, e *bundleEntry, resource []byte) *http.Request {
	h := http.Header{}
	if prefer := r.Header.Values("Prefer"); len(prefer) > 0 {
		h["Prefer"] = slices.Clone(prefer)
	}
	if e.ifMatch != "" {
		h.Set("If-Match", e.ifMatch)
	}
	body := io.ReadCloser(http.NoBody)
	if resource != nil {
		h.Set("Content-Type", "application/fhir+json")
		body = io.NopCloser(bytes.NewReader(resource))
	}
	er := &http.Request{
		Method: e.method, URL: e.u, RequestURI: e.u.RequestURI(),
		Proto: r.Proto, ProtoMajor: r.ProtoMajor, ProtoMinor: r.ProtoMinor,
		Header: h, Body: body, ContentLength: int64(len(resource)),
		Host: r.Host, RemoteAddr: r.RemoteAddr, TLS: r.TLS,
	}
	return er.WithContext(r.Context())
}

// entryWriter records what a handler answers to one entry.
type entryWriter struct {
	header http.Header
	status int
	body   []byte
}

func (e *entryWriter) Header() http.Header { return e.header }

func (e *entryWriter) WriteHeader(status int) {
	if e.status == 0 {
		e.status = status
	}
}

func (e *entryWriter) Write(p []byte) (int, error) {
	e.WriteHeader(http.StatusOK)
	e.body = append(e.body, p...)
	return len(p), nil
}

// writeEntries answers a batch-response or transaction-response Bundle:
// one entry per request entry, in the same order.
func (s *Server) writeEntries(w http.ResponseWriter, kind string, results []entryResult) {
	n := 64
	for i := range results {
		n += len(results[i].body) + 160
	}
	out := make([]byte, 0, n)
	out = append(out, `{"resourceType":"Bundle","type":"`...)
	out = append(out, kind...)
	out = append(out, '"')
	if len(results) > 0 { // FHIR JSON has no empty arrays
		out = append(out, `,"entry":[`...)
		for i := range results {
			if i > 0 {
				out = append(out, ',')
			}
			out = appendEntryResult(out, &results[i])
		}
		out = append(out, ']')
	}
	out = append(out, '}')
	s.writeRaw(w, http.StatusOK, out)
}

// appendEntryResult appends one response entry: the resource a success
// returned, then response with status, location, etag and, for an error,
// its OperationOutcome. The bodies are this server's own JSON.
func appendEntryResult(out []byte, res *entryResult) []byte {
	out = append(out, '{')
	if res.ok() && len(res.body) > 0 {
		out = append(out, `"resource":`...)
		out = append(out, res.body...)
		out = append(out, ',')
	}
	out = append(out, `"response":{"status":`...)
	out = appendJSONString(out, strconv.Itoa(res.status)+" "+http.StatusText(res.status))
	if res.location != "" {
		out = append(out, `,"location":`...)
		out = appendJSONString(out, res.location)
	}
	if res.etag != "" {
		out = append(out, `,"etag":`...)
		out = appendJSONString(out, res.etag)
	}
	if !res.ok() && len(res.body) > 0 {
		out = append(out, `,"outcome":`...)
		out = append(out, res.body...)
	}
	return append(out, "}}"...)
}
