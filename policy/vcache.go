package policy

import (
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// flatCache is OPA's virtual-document cache (topdown.VirtualCache) for one
// evaluation, kept in flat slices and reused across evaluations.
//
// OPA remembers the value of every rule and function call it evaluates in
// this cache. Its own builds a trie of hash maps, one map per level and a
// node per term, anew for each evaluation: about a tenth of the memory an
// evaluation of the default policy allocates, and so of the garbage
// collections that set its tail latency. An evaluation caches a few dozen
// refs at most, so a list searched by hash is as quick, and once its
// slices have grown it allocates nothing.
//
// It behaves exactly as topdown.NewVirtualCache (TestFlatCacheMatchesOPA
// drives both with the same random operations): Get sees only the top
// frame, a ref is found only by an equal ref (a prefix is not), and an
// undefined mark stays once set.
//
// Security: a reused cache holds nothing from the evaluation before (put
// clears it), so one request's rule values cannot answer another's.
type flatCache struct {
	terms   []*ast.Term   // the refs of entries, back to back
	entries []cacheEntry  // in order of first Put
	frames  []int         // index in entries where each pushed frame starts
	index   map[int][]int // hash -> entries in order, once there are more than linearMax
}

const linearMax = 64

type cacheEntry struct {
	hash      int
	off, n    int // ref is terms[off : off+n]
	value     *ast.Term
	undefined bool
}

var flatCaches = sync.Pool{New: func() any { return new(flatCache) }}

// getFlatCache returns an empty cache with its root frame.
func getFlatCache() *flatCache {
	c := flatCaches.Get().(*flatCache)
	c.Push()
	return c
}

// putFlatCache empties c, dropping its references to the evaluation's
// terms, and keeps it for another evaluation. c must not be used after.
func putFlatCache(c *flatCache) {
	const keep = 1024 // entries; a cache that grew larger is let go, not kept
	if cap(c.entries) > keep {
		return
	}
	clear(c.terms)
	clear(c.entries)
	c.terms, c.entries, c.frames, c.index = c.terms[:0], c.entries[:0], c.frames[:0], nil
	flatCaches.Put(c)
}

var _ topdown.VirtualCache = (*flatCache)(nil)

func (c *flatCache) Push() { c.frames = append(c.frames, len(c.entries)) }

func (c *flatCache) Pop() {
	top := c.frames[len(c.frames)-1]
	c.frames = c.frames[:len(c.frames)-1]
	if c.index != nil {
		// The popped entries are the newest, so the last of their hash's.
		for i := len(c.entries) - 1; i >= top; i-- {
			h := c.entries[i].hash
			c.index[h] = c.index[h][:len(c.index[h])-1]
		}
	}
	if top < len(c.entries) {
		off := c.entries[top].off
		clear(c.terms[off:])
		c.terms = c.terms[:off]
	}
	clear(c.entries[top:])
	c.entries = c.entries[:top]
}

// find returns the index of ref's entry in the top frame, or -1.
func (c *flatCache) find(ref ast.Ref, hash int) int {
	top := c.frames[len(c.frames)-1]
	if c.index != nil {
		ids := c.index[hash]
		for j := len(ids) - 1; j >= 0 && ids[j] >= top; j-- {
			if c.matches(ids[j], ref) {
				return ids[j]
			}
		}
		return -1
	}
	for i := len(c.entries) - 1; i >= top; i-- {
		if c.entries[i].hash == hash && c.matches(i, ref) {
			return i
		}
	}
	return -1
}

func (c *flatCache) matches(i int, ref ast.Ref) bool {
	e := &c.entries[i]
	return e.n == len(ref) && refEqual(c.terms[e.off:e.off+e.n], ref)
}

func refEqual(a, b ast.Ref) bool {
	for i := len(a) - 1; i >= 0; i-- { // the last terms differ most often
		if !a[i].Equal(b[i]) {
			return false
		}
	}
	return true
}

func (c *flatCache) Get(ref ast.Ref) (*ast.Term, bool) {
	i := c.find(ref, ref.Hash())
	if i < 0 {
		return nil, false
	}
	if e := &c.entries[i]; e.undefined {
		return nil, true
	} else {
		return e.value, false
	}
}

// Put copies ref's terms (the caller may reuse its slice; the terms
// themselves are kept, as OPA's own cache keeps them).
func (c *flatCache) Put(ref ast.Ref, value *ast.Term) {
	hash := ref.Hash()
	i := c.find(ref, hash)
	if i < 0 {
		i = len(c.entries)
		c.entries = append(c.entries, cacheEntry{hash: hash, off: len(c.terms), n: len(ref)})
		c.terms = append(c.terms, ref...)
		switch {
		case c.index != nil:
			c.index[hash] = append(c.index[hash], i)
		case len(c.entries) > linearMax:
			c.index = make(map[int][]int, 2*len(c.entries))
			for j, e := range c.entries {
				c.index[e.hash] = append(c.index[e.hash], j)
			}
		}
	}
	if value != nil {
		c.entries[i].value = value
	} else {
		c.entries[i].undefined = true
	}
}

func (c *flatCache) Keys() []ast.Ref {
	var keys []ast.Ref
	for _, e := range c.entries[c.frames[len(c.frames)-1]:] {
		if e.value != nil {
			keys = append(keys, ast.Ref(c.terms[e.off:e.off+e.n]).Copy())
		}
	}
	return keys
}
