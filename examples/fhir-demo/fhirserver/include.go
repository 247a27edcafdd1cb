package fhirserver

import (
	"slices"
	"strings"
)

// include is one _include or _revinclude value, "source:param[:target]":
// the resources that source's reference parameter param points at
// (_include), or the source resources that point at a match through it
// (_revinclude); with target, only references to that type.
type include struct {
	source, param, target string
}

// parseInclude parses the syntax of an _include or _revinclude value. The
// wildcard is refused, so is anything but two or three parts.
func parseInclude(v string) (include, error) {
	parts := strings.Split(v, ":")
	if slices.Contains(parts, "*") {
		return include{}, badRequest("_include and _revinclude wildcards are not supported")
	}
	if len(parts) < 2 || len(parts) > 3 || !validType(parts[0]) || parts[1] == "" ||
		(len(parts) == 3 && !validType(parts[2])) {
		return include{}, badRequest("_include and _revinclude take Type:param or Type:param:TargetType")
	}
	inc := include{source: parts[0], param: parts[1]}
	if len(parts) == 3 {
		inc.target = parts[2]
	}
	return inc, nil
}

// addIncludes parses the values of _include (rev false) or _revinclude on a
// search of spec. A well-formed value the server cannot honour is ignored,
// or refused under strict handling, like an unknown search parameter.
func (q *query) addIncludes(specs map[string]*typeSpec, spec *typeSpec, rev bool, vals []string, strict bool) error {
	for _, v := range vals {
		if v == "" {
			continue // empty values are ignored
		}
		inc, err := parseInclude(v)
		if err != nil {
			return err
		}
		if !includeSupported(specs, spec, rev, inc) {
			if strict {
				return badRequest("unsupported _include or _revinclude")
			}
			continue
		}
		if rev {
			q.revincludes = append(q.revincludes, inc)
		} else {
			q.includes = append(q.includes, inc)
		}
	}
	return nil
}

// includeSupported reports whether inc names a served source type (for
// _include, the searched type itself), a reference parameter that type
// defines and, if set, a served target type.
func includeSupported(specs map[string]*typeSpec, spec *typeSpec, rev bool, inc include) bool {
	src := specs[inc.source]
	if src == nil || (!rev && src != spec) {
		return false
	}
	if _, ok := src.refs[inc.param]; !ok {
		return false
	}
	return inc.target == "" || specs[inc.target] != nil
}

// included returns what q's _include and _revinclude add to page: current,
// live versions, each once and none that is already a match, in a fixed
// order (_include by match, then _revinclude in creation order). Only the
// page's matches are followed, and dangling references are skipped. The
// caller holds s.mu for reading.
func (s *Server) included(q *query, page []*version) []*version {
	if len(page) == 0 || len(q.includes)+len(q.revincludes) == 0 {
		return nil
	}
	isMatch := make(map[string]bool, len(page))
	for _, m := range page {
		isMatch[m.ref] = true
	}
	seen := make(map[string]bool)
	var out []*version
	add := func(v *version) {
		if v != nil && !v.deleted && !isMatch[v.ref] && !seen[v.ref] {
			seen[v.ref] = true
			out = append(out, v)
		}
	}
	for _, m := range page {
		for _, inc := range q.includes {
			for _, ref := range m.refs[inc.param] {
				add(s.lookup(ref, inc.target))
			}
		}
	}
	for _, inc := range q.revincludes {
		for _, e := range s.types[inc.source].order {
			v := e.current()
			if !v.deleted && pointsAt(v.refs[inc.param], inc.target, isMatch) {
				add(v)
			}
		}
	}
	return out
}

// lookup returns the current version of ref ("Type/id"), or nil if ref is
// not of type target (when set) or not stored. The caller holds s.mu.
func (s *Server) lookup(ref, target string) *version {
	typ, id, _ := strings.Cut(ref, "/")
	if target != "" && typ != target {
		return nil
	}
	ts := s.types[typ]
	if ts == nil {
		return nil
	}
	e := ts.byID[id]
	if e == nil {
		return nil
	}
	return e.current()
}

// pointsAt reports whether one of refs is in set (and of type target, when
// set).
func pointsAt(refs []string, target string, set map[string]bool) bool {
	for _, ref := range refs {
		if set[ref] && (target == "" || strings.HasPrefix(ref, target+"/")) {
			return true
		}
	}
	return false
}
