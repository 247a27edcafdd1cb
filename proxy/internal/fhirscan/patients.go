package fhirscan

import (
	"slices"
	"strings"
)

// patientSet collects the patients of one resource.
type patientSet struct {
	ids     []string
	unknown bool // a compartment reference could not be resolved
}

// patientsOf returns the patients of resource r and their status; see
// [Resource.PatientStatus]. The slice is shared: callers copy it.
func (s *scan) patientsOf(r int32) ([]string, string) {
	res := &s.res[r]
	switch res.state {
	case 2:
		return res.patients, res.status
	case 1:
		// Contained resources that reference each other in a cycle prove
		// nothing about each other.
		return nil, PatientsUnknown
	}
	res.state = 1
	var set patientSet
	if res.typ == "Patient" {
		// Security: a contained Patient's id is local to its container
		// ("#p1" is not Patient/p1), so it names no patient we can check.
		if res.contained || !validID(res.id) {
			set.unknown = true
		} else {
			set.ids = append(set.ids, res.id)
		}
	} else {
		for _, path := range patientElements[res.typ] {
			s.refsAt(res.tok, path, s.scopeOf(r), &set)
		}
	}
	slices.Sort(set.ids)
	res = &s.res[r]
	res.patients = slices.Compact(set.ids)
	if res.patients == nil {
		res.patients = []string{}
	}
	switch {
	case set.unknown:
		res.status = PatientsUnknown
	case len(res.patients) > 0:
		res.status = PatientsKnown
	default:
		res.status = PatientsNone
	}
	res.state = 2
	return res.patients, res.status
}

// scopeOf returns the resource whose contained[] resolves "#id" references
// made in resource r: its container if r is contained, else r itself.
func (s *scan) scopeOf(r int32) int32 {
	if s.res[r].contained {
		return s.res[r].parent
	}
	return r
}

// refsAt adds the patients of the References at path below object o.
//
// Security: an element that should hold a Reference (or an object on the
// way to one) but holds another JSON type is unreadable to us yet may mean
// something to a lenient client, so it makes the status unknown.
func (s *scan) refsAt(o int32, path []string, scope int32, set *patientSet) {
	t := s.t
	v := t.member(o, path[0])
	if v < 0 {
		return
	}
	each := func(e int32) {
		switch t.toks[e].kind {
		case kindNull:
		case kindObject:
			if len(path) > 1 {
				s.refsAt(e, path[1:], scope, set)
			} else {
				s.reference(e, scope, set)
			}
		default:
			set.unknown = true
		}
	}
	if t.toks[v].kind == kindArray {
		t.elements(v, each)
	} else {
		each(v)
	}
}

// reference adds the patients of Reference object e.
//
// Security: a Reference without a reference string (only identifier,
// display or extensions) still points at someone we cannot identify. Unless
// its type says it is not a Patient, the status becomes unknown; the
// accepted cost is that such logical references are decided as unknown.
func (s *scan) reference(e, scope int32, set *patientSet) {
	t := s.t
	v := t.member(e, "reference")
	switch {
	case v >= 0 && t.toks[v].kind == kindString:
		s.resolve(t.str(v), scope, set)
	case v >= 0 && t.toks[v].kind != kindNull:
		set.unknown = true
	default:
		if typ, ok := t.stringMember(e, "type"); ok && typ != "Patient" && validType(typ) {
			return
		}
		set.unknown = true
	}
}

// resolve adds the patients named by reference string ref.
func (s *scan) resolve(ref string, scope int32, set *patientSet) {
	if alias, ok := s.opts.Aliases[ref]; ok {
		ref = alias
	}
	if id, ok := strings.CutPrefix(ref, "#"); ok {
		target := s.lookupContained(scope, id)
		if target < 0 {
			set.unknown = true
			return
		}
		ids, status := s.patientsOf(target)
		set.ids = append(set.ids, ids...)
		set.unknown = set.unknown || status == PatientsUnknown
		return
	}
	if isAbsolute(ref) {
		for _, base := range s.opts.Bases {
			if rest, ok := strings.CutPrefix(ref, base); ok && base != "" && strings.HasPrefix(rest, "/") {
				relative(rest[1:], set)
				return
			}
		}
		foreign(ref, set)
		return
	}
	relative(ref, set)
}

// lookupContained returns the resource contained in owner with the given
// id, or -1 if there is none or more than one (ambiguous).
func (s *scan) lookupContained(owner int32, id string) int32 {
	if id == "" {
		return -1
	}
	found := int32(-1)
	end := s.t.toks[s.res[owner].tok].next
	for r := owner + 1; r < int32(len(s.res)) && s.res[r].tok < end; r++ {
		if s.res[r].parent == owner && s.res[r].contained && s.res[r].id == id {
			if found >= 0 {
				return -1
			}
			found = r
		}
	}
	return found
}

// relative adds the patient of a reference relative to this server's base:
// "Type/id" or "Type/id/_history/vid". Anything else cannot be resolved.
func relative(ref string, set *patientSet) {
	typ, id, ok := parseRelative(ref)
	switch {
	case !ok:
		set.unknown = true
	case typ == "Patient":
		set.ids = append(set.ids, id)
	}
}

func parseRelative(ref string) (typ, id string, ok bool) {
	typ, rest, ok := strings.Cut(ref, "/")
	if !ok || !validType(typ) {
		return "", "", false
	}
	id, hist, versioned := strings.Cut(rest, "/")
	if versioned {
		h, vid, ok := strings.Cut(hist, "/")
		if !ok || h != "_history" || !validID(vid) {
			return "", "", false
		}
	}
	if !validID(id) {
		return "", "", false
	}
	return typ, id, true
}

// foreign handles an absolute reference outside every base. It is ignored
// only when its path plainly ends in a non-Patient "Type/id" (optionally
// versioned) and no segment says Patient; everything else (urn:uuid,
// urn:oid, a Patient on another server, a query) is unknown.
//
// Security: we cannot resolve another server's ids to ours, so a foreign
// reference never proves a patient. Accepted risk: a foreign server whose
// Patient URLs do not contain a "Patient" segment is treated as naming a
// non-patient; FHIR REST URLs always do.
func foreign(ref string, set *patientSet) {
	_, rest, ok := strings.Cut(ref, "://")
	if !ok || strings.ContainsAny(rest, "?#") {
		set.unknown = true
		return
	}
	segs := strings.Split(rest, "/")
	for _, seg := range segs {
		if strings.EqualFold(seg, "Patient") {
			set.unknown = true
			return
		}
	}
	n := len(segs)
	if n >= 5 && segs[n-2] == "_history" {
		n -= 2
	}
	if n < 3 {
		set.unknown = true
		return
	}
	if _, _, ok := parseRelative(strings.Join(segs[n-2:], "/")); !ok {
		set.unknown = true
	}
}

// isAbsolute reports whether ref starts with a URI scheme.
func isAbsolute(ref string) bool {
	i := strings.IndexByte(ref, ':')
	if i <= 0 {
		return false
	}
	for j, c := range []byte(ref[:i]) {
		alpha := c|0x20 >= 'a' && c|0x20 <= 'z'
		if !alpha && (j == 0 || !(c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return false
		}
	}
	return true
}

// validID reports whether id is a FHIR id: [A-Za-z0-9\-\.]{1,64}.
func validID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for _, c := range []byte(id) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// validType reports whether typ looks like a resource type name:
// [A-Z][A-Za-z]{0,63}.
func validType(typ string) bool {
	if len(typ) == 0 || len(typ) > 64 || typ[0] < 'A' || typ[0] > 'Z' {
		return false
	}
	for _, c := range []byte(typ) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// labelsOf returns the meta.security[].code strings of resource r, sorted
// and deduplicated; never nil. A single Coding object in place of the array
// counts too, so a lenient client cannot see a label the policy missed.
func (s *scan) labelsOf(r int32) []string {
	t := s.t
	labels := []string{}
	meta := t.member(s.res[r].tok, "meta")
	if meta < 0 || t.toks[meta].kind != kindObject {
		return labels
	}
	sec := t.member(meta, "security")
	if sec < 0 {
		return labels
	}
	add := func(e int32) {
		if t.toks[e].kind != kindObject {
			return
		}
		if code, ok := t.stringMember(e, "code"); ok {
			labels = append(labels, code)
		}
	}
	if t.toks[sec].kind == kindArray {
		t.elements(sec, add)
	} else {
		add(sec)
	}
	slices.Sort(labels)
	return slices.Compact(labels)
}
