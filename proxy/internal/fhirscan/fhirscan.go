package fhirscan

import (
	"errors"
	"fmt"
)

// Patient status values of [Resource.PatientStatus].
const (
	PatientsKnown   = "known"
	PatientsNone    = "none"
	PatientsUnknown = "unknown"
)

// Resource describes one resource a response exposes, as the policy sees it.
type Resource struct {
	Type string // resourceType
	ID   string // id, or "" when absent or not a string
	// Patients are the patient ids it belongs to, sorted, deduplicated;
	// never nil.
	Patients []string
	// PatientStatus is "known" (Patients non-empty and all proven), "none"
	// (outside the Patient compartment, or no compartment reference) or
	// "unknown" (a compartment reference that cannot be resolved to a local
	// Patient id; Patients still lists the proven ones).
	PatientStatus string
	// Labels are the meta.security[].code values, sorted, deduplicated;
	// never nil.
	Labels []string
	// Top marks what the document is about: the top-level resource, or
	// the resource of an entry of a top-level Bundle. Contained resources
	// and resources nested deeper are not.
	Top bool
	// InHistory marks the resource of an entry of a Bundle of type
	// "history", at any depth: a version, not necessarily the current one.
	InHistory bool
}

// Decide returns whether r may be delivered. An error aborts the whole
// [Filter] (fail closed).
type Decide func(r Resource) (bool, error)

// Options configure [Filter]. The zero value treats every absolute reference
// as foreign and leaves URLs alone.
type Options struct {
	// Bases are the absolute base URLs (scheme://host[:port]/fhirbase, no
	// trailing slash) under which a reference names a resource of THIS
	// server: "https://up/fhir/Patient/p1" -> p1 when "https://up/fhir" is a
	// base. Matching is exact and case-sensitive; any other absolute
	// reference is foreign.
	Bases []string
	// Rewrite maps a URL the upstream emitted (Bundle entry fullUrl, Bundle
	// link[].url, entry link[].url) to the URL the client must see; nil
	// leaves URLs alone. It is applied in every Bundle of the output,
	// nested ones included.
	Rewrite func(string) string
	// Aliases resolve references within one document before anything else:
	// a batch or transaction names resources it creates by their fullUrl
	// ("urn:uuid:…"), and the caller maps those it can to a reference of
	// this server ("Patient/p2"). An unmapped urn:uuid stays unknown.
	Aliases map[string]string
	// KeepPositions replaces a dropped Bundle entry with a 403 entry in its
	// place instead of removing it, and adds no outcome entry: the entries
	// of a batch-response answer the request's, in order.
	KeepPositions bool
}

// Result is what [Filter] produced.
type Result struct {
	// Body is what to send: the input slice itself when nothing was
	// withheld and no URL was rewritten, else a new re-assembled document.
	// It is nil when Filter returns an error.
	Body []byte
	// Bundle reports that the top-level resource was a Bundle.
	Bundle bool
	// Denied counts what was withheld: Bundle entries for a Bundle, denied
	// resources otherwise.
	Denied int
	// Delivered lists every resource delivered (contained and nested ones
	// included, the top-level Bundle and the added OperationOutcome not),
	// in document order, for the audit event.
	Delivered []Resource
}

var (
	// ErrDenied reports that the top-level resource (not a Bundle), one of
	// its contained or nested resources, or a resource of a Bundle outside
	// its entries was denied: nothing may be sent.
	ErrDenied = errors.New("fhirscan: resource denied")
	// ErrMalformed reports a body that is not one JSON object with a string
	// resourceType, is not valid JSON, repeats a member name, nests deeper
	// than 64, or has a Bundle whose entry is not an array of objects.
	ErrMalformed = errors.New("fhirscan: malformed FHIR JSON")
)

// forbiddenEntry takes the place of a withheld entry of a batch-response
// (Options.KeepPositions).
const forbiddenEntry = `{"response":{"status":"403 Forbidden","outcome":{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"forbidden","diagnostics":"Withheld: you are not permitted to see this result."}]}}}`

// outcomeEntry is appended to a Bundle that lost entries.
const outcomeEntry = `{"resource":{"resourceType":"OperationOutcome","issue":[{"severity":"information","code":"suppressed","diagnostics":"Some results were removed because you are not permitted to see them."}]},"search":{"mode":"outcome"}}`

// Filter finds every resource in body, asks decide about each, and returns
// the body to send. A top-level Bundle loses the entries holding a denied
// resource; any other top-level resource is sent unchanged or, if it or
// anything inside it is denied, not at all ([ErrDenied]). decide is asked
// about every resource, in document order (what it may reuse between
// alike resources is for it to know: policy.Memo). Filter does no I/O and
// keeps no state between calls; it is safe for concurrent use if decide
// and Rewrite are.
func Filter(body []byte, opts Options, decide Decide) (Result, error) {
	if decide == nil {
		return Result{}, errors.New("fhirscan: nil Decide")
	}
	t, err := parse(body)
	if err != nil {
		return Result{}, err
	}
	if t.toks[0].kind != kindObject {
		return Result{}, malformed("top level is not an object")
	}
	s := &scan{t: t, opts: opts, decide: decide, res: make([]resource, 0, t.resources)}
	s.walk(0, -1, false)
	if len(s.res) == 0 || s.res[0].tok != 0 {
		return Result{}, malformed("top level has no string resourceType")
	}
	if err := s.checkBundles(); err != nil {
		return Result{}, err
	}
	if s.res[0].typ == "Bundle" {
		return s.filterBundle()
	}
	return s.filterResource()
}

// scan is the state of one Filter call.
type scan struct {
	t       *tape
	opts    Options
	decide  Decide
	res     []resource               // every resource, in document order
	patches []patch                  // URL rewrites, sorted by offset
	entries map[int32]map[int32]bool // by Bundle (index in res): its entries' resource tokens
}

// resource is one object with a string resourceType.
type resource struct {
	tok       int32 // its object token
	parent    int32 // nearest enclosing resource, or -1
	contained bool  // an element of its parent's contained[]
	typ, id   string
	state     uint8 // patients: 0 not computed, 1 computing, 2 done
	patients  []string
	status    string
}

// walk records the resources in the subtree of token i, whose nearest
// enclosing resource is parent. contained marks an element of parent's
// contained array.
func (s *scan) walk(i, parent int32, contained bool) {
	t := s.t
	switch t.toks[i].kind {
	case kindArray:
		t.elements(i, func(e int32) { s.walk(e, parent, false) })
	case kindObject:
		isRes := false
		if t.toks[i].resource {
			typ, _ := t.stringMember(i, "resourceType")
			id, _ := t.stringMember(i, "id")
			s.res = append(s.res, resource{tok: i, parent: parent, contained: contained, typ: typ, id: id})
			parent, isRes = int32(len(s.res)-1), true
		}
		for k := i + 1; k < t.toks[i].next; k = t.toks[k+1].next {
			v := k + 1
			if isRes && t.toks[v].kind == kindArray && t.nameIs(k, "contained") {
				t.elements(v, func(e int32) { s.walk(e, parent, true) })
				continue
			}
			s.walk(v, parent, false)
		}
	}
}

// checkBundles rejects a Bundle whose entry is not an array of objects.
func (s *scan) checkBundles() error {
	for _, r := range s.res {
		if r.typ != "Bundle" {
			continue
		}
		e := s.t.member(r.tok, "entry")
		if e < 0 {
			continue
		}
		if s.t.toks[e].kind != kindArray {
			return malformed("Bundle entry is not an array")
		}
		for x := e + 1; x < s.t.toks[e].next; x = s.t.toks[x].next {
			if s.t.toks[x].kind != kindObject {
				return malformed("Bundle entry element is not an object")
			}
		}
	}
	return nil
}

// filterResource decides a top-level resource other than a Bundle and
// everything inside it.
func (s *scan) filterResource() (Result, error) {
	out := Result{Delivered: make([]Resource, 0, len(s.res))}
	for r := range s.res {
		d, ok, err := s.decideOne(int32(r))
		if err != nil {
			return Result{}, err
		}
		if !ok {
			out.Denied++
		}
		out.Delivered = append(out.Delivered, d)
	}
	if out.Denied > 0 {
		return Result{Denied: out.Denied}, ErrDenied
	}
	s.collectPatches()
	out.Body = s.emitWhole()
	return out, nil
}

// filterBundle decides the resources of a top-level Bundle entry by entry.
// An entry is kept iff every resource in it is allowed. A Bundle nested in
// an entry (a batch-response to searches) is one resource among the others:
// it is decided itself, and a denial anywhere inside it drops the outer
// entry whole. Accepted cost: such an inner search is withheld entirely
// rather than filtered; the client sees the outcome entry and can repeat
// it as a plain search.
func (s *scan) filterBundle() (Result, error) {
	t := s.t
	out := Result{Bundle: true, Delivered: make([]Resource, 0, len(s.res))}
	entry := t.member(0, "entry")
	var kept []bool
	if entry >= 0 {
		kept = make([]bool, 0, 16)
	}
	r := int32(1) // s.res[0] is the Bundle itself: a container, not decided
	// next decides the resources before token end that are not decided yet.
	next := func(end int32) (delivered []Resource, denied int, err error) {
		for ; r < int32(len(s.res)) && s.res[r].tok < end; r++ {
			d, ok, err := s.decideOne(r)
			if err != nil {
				return nil, 0, err
			}
			if !ok {
				denied++
			}
			delivered = append(delivered, d)
		}
		return delivered, denied, nil
	}
	// outside decides resources outside the entries (none in real FHIR):
	// they cannot be dropped alone, so a denial withholds everything.
	outside := func(end int32) error {
		d, denied, err := next(end)
		if err != nil {
			return err
		}
		if denied > 0 {
			out.Denied += denied
			return ErrDenied
		}
		out.Delivered = append(out.Delivered, d...)
		return nil
	}
	if entry >= 0 {
		if err := outside(entry); err != nil {
			if errors.Is(err, ErrDenied) {
				return Result{Bundle: true, Denied: out.Denied}, err
			}
			return Result{}, err
		}
		for e := entry + 1; e < t.toks[entry].next; e = t.toks[e].next {
			d, denied, err := next(t.toks[e].next)
			if err != nil {
				return Result{}, err
			}
			kept = append(kept, denied == 0)
			if denied == 0 {
				out.Delivered = append(out.Delivered, d...)
			} else {
				out.Denied++
			}
		}
	}
	if err := outside(int32(len(t.toks))); err != nil {
		if errors.Is(err, ErrDenied) {
			return Result{Bundle: true, Denied: out.Denied}, err
		}
		return Result{}, err
	}
	s.collectPatches()
	if out.Denied == 0 {
		out.Body = s.emitWhole()
	} else {
		out.Body = s.emitBundle(entry, kept)
	}
	return out, nil
}

// decideOne describes resource r and decides it.
func (s *scan) decideOne(r int32) (Resource, bool, error) {
	patients, status := s.patientsOf(r)
	d := Resource{
		Type:          s.res[r].typ,
		ID:            s.res[r].id,
		Patients:      append(make([]string, 0, len(patients)), patients...),
		PatientStatus: status,
		Labels:        s.labelsOf(r),
	}
	if p := s.res[r].parent; p < 0 {
		d.Top = true
	} else if s.isEntry(p, r) {
		d.Top = p == 0
		typ, _ := s.t.stringMember(s.res[p].tok, "type")
		d.InHistory = typ == "history"
	}
	ok, err := s.decide(d)
	if err != nil {
		return Resource{}, false, fmt.Errorf("fhirscan: decide: %w", err)
	}
	return d, ok, nil
}

// isEntry reports whether resource r is the resource of an entry of
// resource b, a Bundle: entry[].resource itself, not contained in it nor
// elsewhere in the entry (an entry's response.outcome).
func (s *scan) isEntry(b, r int32) bool {
	if s.res[b].typ != "Bundle" || s.res[r].contained {
		return false
	}
	set, ok := s.entries[b]
	if !ok {
		if s.entries == nil {
			s.entries = map[int32]map[int32]bool{}
		}
		set = map[int32]bool{}
		if e := s.t.member(s.res[b].tok, "entry"); e >= 0 && s.t.toks[e].kind == kindArray {
			s.t.elements(e, func(x int32) {
				if s.t.toks[x].kind == kindObject {
					if v := s.t.member(x, "resource"); v >= 0 {
						set[v] = true
					}
				}
			})
		}
		s.entries[b] = set
	}
	return set[s.res[r].tok]
}
