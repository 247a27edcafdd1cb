package policy

import (
	"errors"
	"fmt"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
)

// ErrRedactPath: a redaction path (obligations.redact) does not follow the
// syntax of DESIGN.md, "Policy contract".
var ErrRedactPath = errors.New("invalid redaction path")

// ReasonRedactPath is the reason [Engine.Decide] gives when a decision
// carries a redaction path that does not parse.
const ReasonRedactPath = "policy redaction path invalid"

// maxRedactPath bounds the length of one redaction path.
const maxRedactPath = 512

// RedactPath is a parsed redaction path:
// Type.element(.element)*, where one element that is a repeating
// Identifier, ContactPoint or Coding may carry a filter [system=URI] or
// [code=X] (e.g. Patient.identifier[system=http://hl7.org/fhir/sid/us-ssn]).
type RedactPath struct {
	Type     string
	Elements []RedactElement
}

// RedactElement is one element of a [RedactPath]. FilterKey is "system",
// "code" or empty (no filter).
type RedactElement struct {
	Name        string
	FilterKey   string
	FilterValue string
}

// filterable lists the FHIR R4 element names whose type is a repeating
// Identifier, ContactPoint or Coding, with the filter keys each allows:
// Identifier.system, ContactPoint.system (phone, email, ...), and
// Coding.system or Coding.code.
var filterable = map[string][]string{
	"identifier": {"system"},         // Identifier[]
	"telecom":    {"system"},         // ContactPoint[]
	"coding":     {"system", "code"}, // CodeableConcept.coding: Coding[]
	"security":   {"system", "code"}, // Meta.security: Coding[]
	"tag":        {"system", "code"}, // Meta.tag: Coding[]
}

// ParseRedactPath parses s. Errors say what is wrong but quote at most the
// element name, never a filter value.
func ParseRedactPath(s string) (RedactPath, error) {
	var p RedactPath
	if len(s) > maxRedactPath {
		return p, fmt.Errorf("%w: longer than %d bytes", ErrRedactPath, maxRedactPath)
	}
	typ, rest, ok := strings.Cut(s, ".")
	if !ok || rest == "" {
		return p, fmt.Errorf("%w: want Type.element(.element)*", ErrRedactPath)
	}
	if !isName(typ, true) {
		return p, fmt.Errorf("%w: resource type must be a FHIR type name (e.g. Patient)", ErrRedactPath)
	}
	p.Type = typ
	for rest != "" {
		var el RedactElement
		var err error
		el, rest, err = parseElement(rest)
		if err != nil {
			return RedactPath{}, err
		}
		p.Elements = append(p.Elements, el)
	}
	return p, nil
}

// parseElement reads one element (and its filter) from the front of s and
// returns the rest after the following dot.
func parseElement(s string) (RedactElement, string, error) {
	var el RedactElement
	end := strings.IndexAny(s, ".[")
	if end < 0 {
		end = len(s)
	}
	el.Name = s[:end]
	if !isName(el.Name, false) {
		return el, "", fmt.Errorf("%w: element names are FHIR names such as telecom", ErrRedactPath)
	}
	s = s[end:]
	if strings.HasPrefix(s, "[") {
		closing := strings.IndexByte(s, ']')
		if closing < 0 {
			return el, "", fmt.Errorf("%w: %s: unclosed [", ErrRedactPath, el.Name)
		}
		key, value, ok := strings.Cut(s[1:closing], "=")
		allowed, known := filterable[el.Name]
		switch {
		case !known:
			return el, "", fmt.Errorf("%w: %s: a filter needs a repeating Identifier, ContactPoint or Coding", ErrRedactPath, el.Name)
		case !ok || value == "" || !containsString(allowed, key):
			return el, "", fmt.Errorf("%w: %s: filter must be [%s=...]", ErrRedactPath, el.Name, strings.Join(allowed, "=...] or ["))
		case strings.ContainsAny(value, "[]\x00") || strings.TrimSpace(value) != value:
			return el, "", fmt.Errorf("%w: %s: filter value has brackets or surrounding space", ErrRedactPath, el.Name)
		}
		el.FilterKey, el.FilterValue = key, value
		s = s[closing+1:]
	}
	switch {
	case s == "":
		return el, "", nil
	case s[0] != '.' || len(s) == 1:
		return el, "", fmt.Errorf("%w: %s: want .element after it", ErrRedactPath, el.Name)
	}
	return el, s[1:], nil
}

// isName reports whether s is a FHIR type name (upper) or element name:
// ASCII letters and digits starting with a letter of that case.
func isName(s string, upper bool) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	if c := s[0]; upper && (c < 'A' || c > 'Z') || !upper && (c < 'a' || c > 'z') {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func containsString(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// checkRedactPaths checks the redaction paths a decision carries.
func checkRedactPaths(paths []string) error {
	for i, s := range paths {
		if _, err := ParseRedactPath(s); err != nil {
			return fmt.Errorf("obligations.redact[%d]: %w", i, err)
		}
	}
	return nil
}

// staticRedactPaths finds the redaction paths a policy writes down as
// constants, so that a malformed one fails the load instead of denying
// requests later:
//   - in the modules, the string elements of an array or set literal that
//     is the value of a "redact" key in an object literal, and the string
//     values of rules named redact (`redact contains "Patient.telecom"`);
//   - in the data, the string elements of any array under a "redact" key.
//
// A path computed at evaluation time (from input, or by string functions)
// cannot be known here; [Engine.Decide] checks every path of every
// decision and denies with [ReasonRedactPath] if one does not parse.
func staticRedactPaths(modules map[string]*ast.Module, data map[string]any) []redactSite {
	var sites []redactSite
	addList := func(t *ast.Term) {
		var elems []*ast.Term
		switch v := t.Value.(type) {
		case *ast.Array:
			v.Foreach(func(e *ast.Term) { elems = append(elems, e) })
		case ast.Set:
			elems = v.Slice()
		}
		for _, e := range elems {
			if s, ok := e.Value.(ast.String); ok {
				sites = append(sites, redactSite{path: string(s), where: locString(e.Location)})
			}
		}
	}
	named := map[string]bool{} // rules (full paths) whose values are redaction paths
	for _, m := range modules {
		ast.WalkTerms(m, func(t *ast.Term) bool {
			if obj, ok := t.Value.(ast.Object); ok {
				if v := obj.Get(ast.StringTerm("redact")); v != nil {
					addList(v)
					if path := rulePath(m, v); path != "" {
						named[path] = true
					}
				}
			}
			return false
		})
	}
	for _, m := range modules {
		for _, r := range m.Rules {
			if r.Head == nil {
				continue
			}
			head := r.Head.Ref()
			if !named[m.Package.Path.Extend(head.GroundPrefix()).String()] && !isRedactRule(head) {
				continue
			}
			for _, t := range []*ast.Term{r.Head.Key, r.Head.Value} {
				if t == nil {
					continue
				}
				if s, ok := t.Value.(ast.String); ok {
					sites = append(sites, redactSite{path: string(s), where: locString(t.Location)})
				} else {
					addList(t)
				}
			}
		}
	}
	var walk func(v any, where string)
	walk = func(v any, where string) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				if list, ok := e.([]any); ok && k == "redact" {
					for i, s := range list {
						if s, ok := s.(string); ok {
							sites = append(sites, redactSite{path: s, where: fmt.Sprintf("data %s.redact[%d]", where, i)})
						}
					}
					continue
				}
				walk(e, where+"."+k)
			}
		case []any:
			for i, e := range v {
				walk(e, fmt.Sprintf("%s[%d]", where, i))
			}
		}
	}
	walk(data, "data")
	return sites
}

// redactSite is a redaction path found in a policy, and where.
type redactSite struct{ path, where string }

// rulePath is the full path of the rule t names in module m
// (redact_paths there is data.<package>.redact_paths), or "" when t is not
// a reference to a rule.
func rulePath(m *ast.Module, t *ast.Term) string {
	switch v := t.Value.(type) {
	case ast.Var:
		return m.Package.Path.Append(ast.StringTerm(string(v))).String()
	case ast.Ref:
		if v.HasPrefix(ast.DefaultRootRef) {
			return v.GroundPrefix().String()
		}
		if head, ok := v[0].Value.(ast.Var); ok && head != ast.InputRootDocument.Value {
			rest := v[1:].GroundPrefix()
			return m.Package.Path.Append(ast.StringTerm(string(head))).Extend(rest).String()
		}
	}
	return ""
}

// isRedactRule reports whether a rule's head ref ends in "redact" (redact,
// obligations.redact): such rules hold redaction paths by name.
func isRedactRule(head ast.Ref) bool {
	switch last := head[len(head)-1].Value.(type) {
	case ast.Var:
		return len(head) == 1 && last == "redact"
	case ast.String:
		return last == "redact"
	}
	return false
}

func locString(l *ast.Location) string {
	if l == nil {
		return "policy"
	}
	return fmt.Sprintf("%s:%d", l.File, l.Row)
}

// checkStaticRedactPaths fails with every malformed constant redaction
// path, each with its file:line.
func checkStaticRedactPaths(modules map[string]*ast.Module, data map[string]any) error {
	var errs []error
	for _, s := range staticRedactPaths(modules, data) {
		if _, err := ParseRedactPath(s.path); err != nil {
			errs = append(errs, &locError{where: s.where, err: fmt.Errorf("%q: %w", s.path, err)})
			if len(errs) == maxLoadErrors {
				break
			}
		}
	}
	return errors.Join(errs...)
}
