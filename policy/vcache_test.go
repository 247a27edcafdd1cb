package policy

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestFlatCacheMatchesOPA drives flatCache and OPA's own virtual cache with
// the same random Push, Pop, Put and Get calls, over refs that share
// prefixes, differ in one term or in length, and carry non-string terms
// (function arguments), and checks every answer agrees, while the cache
// is searched linearly and after it has outgrown that. The property
// rests on the caches, not on a policy: whatever OPA asks, ours answers as
// OPA's would.
func TestFlatCacheMatchesOPA(t *testing.T) {
	terms := []*ast.Term{
		ast.StringTerm("a"), ast.StringTerm("b"), ast.StringTerm("c"),
		ast.IntNumberTerm(1), ast.BooleanTerm(true), ast.NullTerm(),
		ast.ArrayTerm(ast.StringTerm("a")), ast.ObjectTerm([2]*ast.Term{ast.StringTerm("k"), ast.StringTerm("v")}),
	}
	values := []*ast.Term{nil, ast.BooleanTerm(true), ast.StringTerm("x"), ast.IntNumberTerm(7)}
	randomRef := func(r *rand.Rand) ast.Ref {
		ref := ast.Ref{ast.DefaultRootDocument, ast.StringTerm("chartguard")}
		for range r.IntN(3) + 1 {
			ref = append(ref, terms[r.IntN(len(terms))])
		}
		return ref
	}
	indexed := 0
	for seed := range uint64(200) {
		r := rand.New(rand.NewPCG(seed, 0))
		want, got := topdown.NewVirtualCache(), getFlatCache()
		depth := 1
		for op := range 300 {
			switch n := r.IntN(20); {
			case n == 0 && depth < 4:
				want.Push()
				got.Push()
				depth++
			case n == 1 && depth > 1:
				want.Pop()
				got.Pop()
				depth--
			case n < 10:
				ref, v := randomRef(r), values[r.IntN(len(values))]
				// The caller may reuse its ref slice: ours must copy it.
				buf := slices.Clone(ref)
				want.Put(ref, v)
				got.Put(buf, v)
				clear(buf)
			default:
				ref := randomRef(r)
				wv, wu := want.Get(ref)
				gv, gu := got.Get(ref)
				require.Equal(t, wu, gu, "seed %d op %d: undefined for %v", seed, op, ref)
				require.Same(t, wv, gv, "seed %d op %d: value for %v", seed, op, ref)
			}
		}
		assert.ElementsMatch(t, refStrings(want.Keys()), refStrings(got.Keys()), "seed %d", seed)
		if got.index != nil {
			indexed++
		}
		putFlatCache(got)
	}
	// Both ways of searching were compared.
	assert.Positive(t, indexed, "no run outgrew the linear search")
	assert.Less(t, indexed, 200, "every run outgrew the linear search")
}

func refStrings(refs []ast.Ref) []string {
	s := make([]string, len(refs))
	for i, r := range refs {
		s[i] = r.String()
	}
	return s
}

// TestFlatCacheReusedEmpty checks that a cache given back and taken again
// remembers nothing of the evaluation before, and lets go of its terms.
func TestFlatCacheReusedEmpty(t *testing.T) {
	ref := ast.MustParseRef("data.chartguard.allow")
	c := getFlatCache()
	c.Put(ref, ast.BooleanTerm(true))
	c.Push()
	c.Put(ref, nil)
	putFlatCache(c)
	for i := range c.entries[:cap(c.entries)] {
		assert.Nil(t, c.entries[:cap(c.entries)][i].value, "entry %d still holds its value", i)
	}
	for i, term := range c.terms[:cap(c.terms)] {
		assert.Nil(t, term, "term %d still held", i)
	}

	for range 10 { // sync.Pool may hand back this cache or a new one
		c := getFlatCache()
		v, undefined := c.Get(ref)
		assert.Nil(t, v)
		assert.False(t, undefined)
		assert.Empty(t, c.Keys())
		putFlatCache(c)
	}
}

// BenchmarkVirtualCache compares one evaluation's worth of cache use (n
// refs put and got twice) in OPA's cache and ours: 10 is the default
// policy's, 1000 a policy calling a function for each of many arguments.
func BenchmarkVirtualCache(b *testing.B) {
	for _, n := range []int{10, 1000} {
		refs := make([]ast.Ref, n)
		for i := range refs {
			refs[i] = ast.MustParseRef(fmt.Sprintf("data.chartguard.f[%d]", i))
		}
		run := func(b *testing.B, get func() topdown.VirtualCache, put func(topdown.VirtualCache)) {
			b.ReportAllocs()
			for b.Loop() {
				c := get()
				for _, ref := range refs {
					c.Put(ref, ast.InternedTerm(true))
				}
				for _, ref := range refs {
					c.Get(ref)
					c.Get(ref)
				}
				put(c)
			}
		}
		b.Run(fmt.Sprintf("opa/%d", n), func(b *testing.B) {
			run(b, topdown.NewVirtualCache, func(topdown.VirtualCache) {})
		})
		b.Run(fmt.Sprintf("flat/%d", n), func(b *testing.B) {
			run(b, func() topdown.VirtualCache { return getFlatCache() },
				func(c topdown.VirtualCache) { putFlatCache(c.(*flatCache)) })
		})
	}
}
