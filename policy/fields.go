package policy

import "github.com/open-policy-agent/opa/v1/ast"

// fields is the part of a document a policy can read: all of it, or only
// the keys in sub, each with its own fields. A nil *fields is nothing.
type fields struct {
	all bool
	sub map[string]*fields
}

// allFields is the whole document.
var allFields = &fields{all: true}

// get returns the fields of key, or nil if the policy cannot read key.
func (f *fields) get(key string) *fields {
	switch {
	case f == nil:
		return nil
	case f.all:
		return f
	}
	return f.sub[key]
}

// wantsKey reports whether the policy can read the map key k (as the JSON
// encoding transmits it).
func (f *fields) wantsKey(k string) bool {
	return f != nil && (f.all || f.sub[jsonString(k)] != nil)
}

// inputDepth is how many levels of the input inputFields tells apart:
// the parts (user, resource, ...) and their fields. Anything deeper is
// taken whole.
const inputDepth = 2

// inputFields returns the parts of the input that the rules of modules
// (compiled, so imports are resolved) can read.
//
// Security: leaving out a part the policy reads would make it undefined,
// which can switch off a deny rule. The analysis is conservative: a
// reference input.a.b with string constants keeps input.a.b; any other use
// of input (the bare document, a variable or computed key, input passed
// to a function or a with target) keeps the whole input. Only references
// in rules are counted; a policy can reach the input no other way
// (queries are data references, New checks that).
func inputFields(modules map[string]*ast.Module) *fields {
	root := &fields{sub: map[string]*fields{}}
	refs, vars := 0, 0
	for _, m := range modules {
		for _, r := range m.Rules {
			ast.WalkTerms(r, func(t *ast.Term) bool {
				switch v := t.Value.(type) {
				case ast.Var:
					if v.Equal(ast.InputRootDocument.Value) {
						vars++
					}
				case ast.Ref:
					if v.HasPrefix(ast.InputRootRef) {
						refs++
						root.add(v[1:], inputDepth)
					}
				}
				return false
			})
		}
	}
	// Each reference's head is one input variable; any other is the
	// input used as a value.
	if vars != refs {
		return allFields
	}
	return root
}

// add marks path (the elements after input) as read, distinguishing
// depth levels.
func (f *fields) add(path ast.Ref, depth int) {
	if f.all {
		return
	}
	if len(path) == 0 || depth == 0 {
		*f = fields{all: true}
		return
	}
	key, ok := path[0].Value.(ast.String)
	if !ok {
		*f = fields{all: true}
		return
	}
	sub := f.sub[string(key)]
	if sub == nil {
		sub = &fields{sub: map[string]*fields{}}
		f.sub[string(key)] = sub
	}
	sub.add(path[1:], depth-1)
}
