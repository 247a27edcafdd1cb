package fhirscan

import (
	"slices"
)

// patch replaces the raw bytes [start, end) of the body with repl.
type patch struct {
	start, end int32
	repl       []byte
}

// collectPatches records a patch for every URL that Options.Rewrite
// changes: Bundle.link[].url, Bundle.entry[].fullUrl and
// Bundle.entry[].link[].url, in every Bundle of the body. Patches inside
// entries that are dropped are never applied.
func (s *scan) collectPatches() {
	if s.opts.Rewrite == nil {
		return
	}
	t := s.t
	for _, r := range s.res {
		if r.typ != "Bundle" {
			continue
		}
		s.patchLinks(r.tok)
		if e := t.member(r.tok, "entry"); e >= 0 {
			t.elements(e, func(x int32) { // checkBundles: an array of objects
				s.patchURL(x, "fullUrl")
				s.patchLinks(x)
			})
		}
	}
	slices.SortFunc(s.patches, func(a, b patch) int { return int(a.start - b.start) })
}

// patchLinks patches link[].url of object o.
func (s *scan) patchLinks(o int32) {
	t := s.t
	l := t.member(o, "link")
	if l < 0 || t.toks[l].kind != kindArray {
		return
	}
	t.elements(l, func(x int32) {
		if t.toks[x].kind == kindObject {
			s.patchURL(x, "url")
		}
	})
}

// patchURL patches string member name of object o if Rewrite changes it.
func (s *scan) patchURL(o int32, name string) {
	v := s.t.member(o, name)
	if v < 0 || s.t.toks[v].kind != kindString {
		return
	}
	u := s.t.str(v)
	if w := s.opts.Rewrite(u); w != u {
		tk := s.t.toks[v]
		s.patches = append(s.patches, patch{start: tk.start, end: tk.end, repl: appendString(nil, w)})
	}
}

// copyRange appends body[start:end] to dst with the patches inside it
// applied.
func (s *scan) copyRange(dst []byte, start, end int32) []byte {
	i, _ := slices.BinarySearchFunc(s.patches, start, func(p patch, off int32) int { return int(p.start - off) })
	for ; i < len(s.patches) && s.patches[i].start < end; i++ {
		p := s.patches[i]
		dst = append(dst, s.t.body[start:p.start]...)
		dst = append(dst, p.repl...)
		start = p.end
	}
	return append(dst, s.t.body[start:end]...)
}

// emitWhole returns the body with the patches applied: the body itself
// when there are none.
func (s *scan) emitWhole() []byte {
	if len(s.patches) == 0 {
		return s.t.body
	}
	return s.copyRange(make([]byte, 0, len(s.t.body)+64*len(s.patches)), 0, int32(len(s.t.body)))
}

// emitBundle re-assembles the top-level Bundle: every member in order,
// except total (no longer true), with entry holding the kept entries and
// then the outcome entry. entry is the token of the entry array; kept has
// one flag per element.
func (s *scan) emitBundle(entry int32, kept []bool) []byte {
	t := s.t
	dst := make([]byte, 0, len(t.body)+len(outcomeEntry)+64*len(s.patches))
	dst = append(dst, '{')
	first := true
	for k := int32(1); k < t.toks[0].next; k = t.toks[k+1].next {
		v := k + 1
		if t.nameIs(k, "total") && !s.opts.KeepPositions {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = s.copyRange(dst, t.toks[k].start, t.toks[v].start) // name and colon
		if v != entry {
			dst = s.copyRange(dst, t.toks[v].start, t.toks[v].end)
			continue
		}
		dst = append(dst, '[')
		n := 0
		for i, x := 0, entry+1; x < t.toks[entry].next; i, x = i+1, t.toks[x].next {
			if !kept[i] && !s.opts.KeepPositions {
				continue
			}
			if n > 0 {
				dst = append(dst, ',')
			}
			if kept[i] {
				dst = s.copyRange(dst, t.toks[x].start, t.toks[x].end)
			} else {
				dst = append(dst, forbiddenEntry...)
			}
			n++
		}
		if !s.opts.KeepPositions {
			if n > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, outcomeEntry...)
		}
		dst = append(dst, ']')
	}
	return append(dst, '}')
}
