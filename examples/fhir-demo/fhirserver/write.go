package fhirserver

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
)

// readJSON decodes a request body that must be one JSON object (at most
// maxBody bytes; application/fhir+json or application/json if typed) into
// dst. Numbers decoded into any stay json.Number, exactly as sent.
func readJSON[T any](w http.ResponseWriter, r *http.Request, dst *map[string]T) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/fhir+json" && mt != "application/json") {
			return &httpError{status: http.StatusUnsupportedMediaType, code: "not-supported",
				msg: "only application/fhir+json is supported"}
		}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.UseNumber() // keep decimals exactly as sent
	if err := dec.Decode(dst); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return bodyError(err)
		}
		return badRequest("body is not a JSON resource")
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		return badRequest("body is not a single JSON resource")
	}
	if *dst == nil {
		return badRequest("body is not a JSON resource")
	}
	return nil
}

// readResource decodes a request body into a resource of type spec.
func readResource(w http.ResponseWriter, r *http.Request, spec *typeSpec) (map[string]any, error) {
	var res map[string]any
	if err := readJSON(w, r, &res); err != nil {
		return nil, err
	}
	if rt, _ := res["resourceType"].(string); rt != spec.name {
		return nil, badRequest("resourceType does not match the URL")
	}
	return res, nil
}

// create answers POST /{type}: the server assigns the id (inside a
// transaction, the id the transaction assigned up front).
func (s *Server) create(w http.ResponseWriter, r *http.Request, tx *txn, spec *typeSpec) {
	res, err := readResource(w, r, spec)
	if err != nil {
		s.failErr(w, err)
		return
	}
	s.lock(tx)
	ts := s.types[spec.name]
	id := tx.assignedID()
	var v *version
	switch {
	case id == "":
		id = s.newID(ts)
	case ts.byID[id] != nil:
		// Unreachable: a transaction takes its ids from s.newID, which
		// never repeats one, and runs its creates before its updates.
		err = errIDTaken
	}
	if err == nil {
		v, err = newVersion(spec, id, 1, http.MethodPost, res, s.now())
		if err != nil {
			err = badRequest("invalid meta element")
		} else {
			s.commit(ts, v)
		}
	}
	s.unlock(tx)
	if err != nil {
		s.failErr(w, err)
		return
	}
	s.writeWritten(w, r, http.StatusCreated, v)
}

// newID returns an id unused in ts. The caller holds s.mu.
func (s *Server) newID(ts *typeStore) string {
	for {
		s.nextID++
		id := "c" + strconv.Itoa(s.nextID)
		if ts.byID[id] == nil {
			return id
		}
	}
}

// update answers PUT /{type}/{id}; it creates the resource if it does not
// exist or was deleted.
func (s *Server) update(w http.ResponseWriter, r *http.Request, tx *txn, spec *typeSpec, id string) {
	res, err := readResource(w, r, spec)
	if err != nil {
		s.failErr(w, err)
		return
	}
	if bodyID, _ := res["id"].(string); bodyID != id {
		s.failErr(w, badRequest("resource id does not match the URL"))
		return
	}
	s.lock(tx)
	ts := s.types[spec.name]
	var cur *version
	if e := ts.byID[id]; e != nil {
		cur = e.current()
	}
	err = checkIfMatch(r, cur)
	var v *version
	status := http.StatusCreated
	if err == nil {
		vid := 1
		if cur != nil {
			vid = cur.vid + 1
			if !cur.deleted {
				status = http.StatusOK
			}
		}
		v, err = newVersion(spec, id, vid, http.MethodPut, res, s.now())
		if err != nil {
			err = badRequest("invalid meta element")
		} else {
			s.commit(ts, v)
		}
	}
	s.unlock(tx)
	if err != nil {
		s.failErr(w, err)
		return
	}
	s.writeWritten(w, r, status, v)
}

// delete answers DELETE /{type}/{id}: 204, and later reads answer 410.
// Deleting a deleted resource is a no-op; an unknown one is 404.
func (s *Server) delete(w http.ResponseWriter, r *http.Request, tx *txn, spec *typeSpec, id string) {
	s.lock(tx)
	ts := s.types[spec.name]
	e := ts.byID[id]
	var err error
	var v *version
	switch {
	case e == nil:
		err = &httpError{status: http.StatusNotFound, code: "not-found", msg: "resource not found"}
	default:
		cur := e.current()
		err = checkIfMatch(r, cur)
		if err == nil && !cur.deleted {
			v = stub(spec.name, id, cur.vid+1, http.MethodDelete, s.now().UTC())
			s.commit(ts, v)
		}
	}
	s.unlock(tx)
	if err != nil {
		s.failErr(w, err)
		return
	}
	if v != nil {
		w.Header()["Etag"] = v.etag
	}
	w.WriteHeader(http.StatusNoContent)
}

// checkIfMatch enforces an If-Match precondition (W/"n", "n" or *) against
// the current version cur (nil if the resource never existed). A deleted
// resource matches nothing.
func checkIfMatch(r *http.Request, cur *version) error {
	vals := r.Header.Values("If-Match")
	if len(vals) == 0 {
		return nil
	}
	failed := &httpError{status: http.StatusPreconditionFailed, code: "conflict", msg: "version does not match If-Match"}
	if len(vals) > 1 {
		return badRequest("If-Match must be a single version")
	}
	tag := strings.TrimSpace(vals[0])
	live := cur != nil && !cur.deleted
	if tag == "*" {
		if !live {
			return failed
		}
		return nil
	}
	tag = strings.TrimPrefix(tag, "W/")
	if len(tag) < 2 || tag[0] != '"' || tag[len(tag)-1] != '"' {
		return badRequest("If-Match must be W/\"<versionId>\"")
	}
	vid, ok := parseVersionID(tag[1 : len(tag)-1])
	if !ok {
		return badRequest("If-Match must be W/\"<versionId>\"")
	}
	if !live || cur.vid != vid {
		return failed
	}
	return nil
}

// writeWritten answers a create or update with the stored version and its
// Location, honouring "Prefer: return=minimal".
func (s *Server) writeWritten(w http.ResponseWriter, r *http.Request, status int, v *version) {
	h := w.Header()
	h.Set("Location", s.baseURL(r)+"/"+v.ref+"/_history/"+strconv.Itoa(v.vid))
	if preferMinimal(r) {
		h["Etag"] = v.etag
		h["Last-Modified"] = v.lastModified
		w.WriteHeader(status)
		return
	}
	s.writeVersion(w, status, v)
}

func preferMinimal(r *http.Request) bool {
	for _, h := range r.Header.Values("Prefer") {
		for pref := range strings.SplitSeq(h, ",") {
			if strings.EqualFold(strings.TrimSpace(pref), "return=minimal") {
				return true
			}
		}
	}
	return false
}
