package fhirserver

import (
	"maps"
	"net/http"
	"net/url"
	"strconv"
)

// maxPooledBuffer caps the size of response buffers kept for reuse.
const maxPooledBuffer = 1 << 20

// writeBundle writes a searchset or history Bundle: page as matches (or
// history entries), then included as search mode "include". The stored
// resource bytes are copied in as they are; only the envelope is built here.
func (s *Server) writeBundle(w http.ResponseWriter, r *http.Request, kind, path string, q *query, total int, page, included []*version) {
	base := s.baseURL(r)
	bp := s.bufs.Get().(*[]byte)
	out := (*bp)[:0]

	out = append(out, `{"resourceType":"Bundle","type":"`...)
	out = append(out, kind...)
	out = append(out, '"')
	if !q.noTotal {
		out = append(out, `,"total":`...)
		out = strconv.AppendInt(out, int64(total), 10)
	}
	out = append(out, `,"link":[`...)
	out = appendLink(out, "self", base, path, q.params)
	if q.count > 0 && q.offset+q.count < total {
		out = append(out, ',')
		out = appendLink(out, "next", base, path, pageParams(q, q.offset+q.count))
	}
	if q.count > 0 && q.offset > 0 {
		out = append(out, ',')
		out = appendLink(out, "previous", base, path, pageParams(q, max(0, q.offset-q.count)))
	}
	out = append(out, ']')

	if len(page)+len(included) > 0 {
		// The escaped base without its closing quote: ids and types
		// are validated, so "base/Type/id" needs no further escaping.
		escBase := appendJSONString(nil, base)
		escBase = escBase[:len(escBase)-1]
		out = append(out, `,"entry":[`...)
		for i, v := range page {
			if i > 0 {
				out = append(out, ',')
			}
			out = appendEntryStart(out, escBase, v)
			if kind == "history" {
				out = appendHistoryDetails(out, v)
			} else {
				out = append(out, `,"search":{"mode":"match"}`...)
			}
			out = append(out, '}')
		}
		for i, v := range included {
			if i > 0 || len(page) > 0 {
				out = append(out, ',')
			}
			out = appendEntryStart(out, escBase, v)
			out = append(out, `,"search":{"mode":"include"}}`...)
		}
		out = append(out, ']')
	}
	out = append(out, '}')

	w.Header()["Content-Type"] = s.contentType
	s.writeBody(w, http.StatusOK, out, nil)
	if cap(out) <= maxPooledBuffer {
		*bp = out
		s.bufs.Put(bp)
	}
}

// appendEntryStart appends an entry's opening, fullUrl and resource (none
// for a deletion in history), leaving the object open.
func appendEntryStart(out, escBase []byte, v *version) []byte {
	out = append(out, `{"fullUrl":`...)
	out = append(out, escBase...)
	out = append(out, '/')
	out = append(out, v.ref...)
	out = append(out, '"')
	if !v.deleted {
		out = append(out, `,"resource":`...)
		out = append(out, v.body...)
	}
	return out
}

func appendLink(out []byte, rel, base, path string, params url.Values) []byte {
	u := base + "/" + path
	if enc := params.Encode(); enc != "" {
		u += "?" + enc
	}
	out = append(out, `{"relation":"`...)
	out = append(out, rel...)
	out = append(out, `","url":`...)
	out = appendJSONString(out, u)
	return append(out, '}')
}

// pageParams returns the request's parameters for the page at offset.
func pageParams(q *query, offset int) url.Values {
	p := maps.Clone(q.params)
	if p == nil {
		p = url.Values{}
	}
	p.Set("_offset", strconv.Itoa(offset))
	p.Set("_count", strconv.Itoa(q.count))
	return p
}

// appendHistoryDetails appends a history entry's request and response.
func appendHistoryDetails(out []byte, v *version) []byte {
	out = append(out, `,"request":{"method":"`...)
	out = append(out, v.method...)
	out = append(out, `","url":"`...)
	if v.method == http.MethodPost {
		out = append(out, v.typ...)
	} else {
		out = append(out, v.ref...)
	}
	out = append(out, `"},"response":{"status":"`...)
	out = append(out, v.status...)
	out = append(out, `","etag":`...)
	out = appendJSONString(out, v.etag[0])
	out = append(out, `,"lastModified":"`...)
	out = v.updated.AppendFormat(out, instantLayout)
	return append(out, `"}`...)
}

// history answers instance (spec and id), type (spec) or system (nil)
// history, newest first.
func (s *Server) history(w http.ResponseWriter, r *http.Request, tx *txn, spec *typeSpec, id, path string) {
	params, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		s.failErr(w, badRequest("malformed query string"))
		return
	}
	q, err := s.parseQuery(nil, params, isStrict(r))
	if err != nil {
		s.failErr(w, err)
		return
	}
	page := make([]*version, 0, min(q.count, 64))
	total := 0
	add := func(v *version) {
		if total >= q.offset && len(page) < q.count {
			page = append(page, v)
		}
		total++
	}
	s.rlock(tx)
	switch {
	case id != "":
		e := s.types[spec.name].byID[id]
		if e == nil {
			s.runlock(tx)
			s.fail(w, http.StatusNotFound, "not-found", "resource not found")
			return
		}
		for i := len(e.versions) - 1; i >= 0; i-- {
			add(e.versions[i])
		}
	default:
		for i := len(s.log) - 1; i >= 0; i-- {
			if spec == nil || s.log[i].typ == spec.name {
				add(s.log[i])
			}
		}
	}
	s.runlock(tx)
	s.writeBundle(w, r, "history", path, q, total, page, nil)
}
