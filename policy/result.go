package policy

import (
	"fmt"
	"math"
	"strconv"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/chartguard/chartguard/chartguard"
)

// decisionFromResult reads the decision from the result of the prepared
// query. The engine's GenerateJSON hook leaves each value as an *ast.Term,
// so no JSON round trip happens here.
func decisionFromResult(rs rego.ResultSet) (chartguard.Decision, error) {
	if len(rs) == 0 {
		return chartguard.Decision{}, ErrUndefined
	}
	if len(rs) != 1 || len(rs[0].Expressions) != 1 {
		return chartguard.Decision{}, fmt.Errorf("%w: query gave %d results", ErrShape, len(rs))
	}
	t, ok := rs[0].Expressions[0].Value.(*ast.Term)
	if !ok {
		return chartguard.Decision{}, fmt.Errorf("%w: result is %T", ErrShape, rs[0].Expressions[0].Value)
	}
	return parseDecision(t.Value)
}

// parseDecision checks v against the decision contract (DESIGN.md, "Policy
// contract") and converts it. "allow" is required and must be a boolean;
// every other key is optional (absent means its zero value) but must have
// the contract's type when present. Keys outside the contract are ignored.
// Error messages name keys and types, never values: values may echo input.
func parseDecision(v ast.Value) (chartguard.Decision, error) {
	var d chartguard.Decision
	obj, ok := v.(ast.Object)
	if !ok {
		return d, fmt.Errorf("%w: decision is %s, want object", ErrShape, ast.ValueName(v))
	}
	allow := obj.Get(ast.InternedTerm("allow"))
	if allow == nil {
		return d, fmt.Errorf("%w: decision has no allow", ErrShape)
	}
	var err error
	if d.Allow, err = asBool("allow", allow); err != nil {
		return chartguard.Decision{}, err
	}
	if d.Reasons, err = optStrings(obj, "reasons", "reasons"); err != nil {
		return chartguard.Decision{}, err
	}
	if d.RequireMFAWithinS, err = optCount(obj, "require_mfa_within_s", "require_mfa_within_s"); err != nil {
		return chartguard.Decision{}, err
	}
	if d.BreakGlass, err = parseBreakGlass(obj.Get(ast.InternedTerm("break_glass"))); err != nil {
		return chartguard.Decision{}, err
	}
	if d.Obligations, err = parseObligations(obj.Get(ast.InternedTerm("obligations"))); err != nil {
		return chartguard.Decision{}, err
	}
	return d, nil
}

func parseBreakGlass(t *ast.Term) (chartguard.BreakGlass, error) {
	var bg chartguard.BreakGlass
	if t == nil {
		return bg, nil
	}
	obj, ok := t.Value.(ast.Object)
	if !ok {
		return bg, fmt.Errorf("%w: break_glass is %s, want object", ErrShape, ast.ValueName(t.Value))
	}
	var err error
	if a := obj.Get(ast.InternedTerm("allowed")); a != nil {
		if bg.Allowed, err = asBool("break_glass.allowed", a); err != nil {
			return chartguard.BreakGlass{}, err
		}
	}
	if bg.Reasons, err = optStrings(obj, "reasons", "break_glass.reasons"); err != nil {
		return chartguard.BreakGlass{}, err
	}
	return bg, nil
}

func parseObligations(t *ast.Term) (chartguard.Obligations, error) {
	var o chartguard.Obligations
	if t == nil {
		return o, nil
	}
	obj, ok := t.Value.(ast.Object)
	if !ok {
		return o, fmt.Errorf("%w: obligations is %s, want object", ErrShape, ast.ValueName(t.Value))
	}
	var err error
	if o.Redact, err = optStrings(obj, "redact", "obligations.redact"); err != nil {
		return chartguard.Obligations{}, err
	}
	if b := obj.Get(ast.InternedTerm("block_export")); b != nil {
		if o.BlockExport, err = asBool("obligations.block_export", b); err != nil {
			return chartguard.Obligations{}, err
		}
	}
	maxCount, err := optCount(obj, "max_count", "obligations.max_count")
	if err != nil {
		return chartguard.Obligations{}, err
	}
	o.MaxCount = int(maxCount)
	if o.Tags, err = optStrings(obj, "tags", "obligations.tags"); err != nil {
		return chartguard.Obligations{}, err
	}
	return o, nil
}

func asBool(name string, t *ast.Term) (bool, error) {
	b, ok := t.Value.(ast.Boolean)
	if !ok {
		return false, fmt.Errorf("%w: %s is %s, want boolean", ErrShape, name, ast.ValueName(t.Value))
	}
	return bool(b), nil
}

// optStrings reads obj[key] as a list of strings: an array, or a set (Rego
// sets encode as JSON arrays). Absent or empty gives nil.
func optStrings(obj ast.Object, key, name string) ([]string, error) {
	t := obj.Get(ast.InternedTerm(key))
	if t == nil {
		return nil, nil
	}
	var out []string
	add := func(i int, e *ast.Term) error {
		s, ok := e.Value.(ast.String)
		if !ok {
			return fmt.Errorf("%w: %s[%d] is %s, want string", ErrShape, name, i, ast.ValueName(e.Value))
		}
		out = append(out, string(s))
		return nil
	}
	switch list := t.Value.(type) {
	case *ast.Array:
		out = make([]string, 0, list.Len())
		for i := range list.Len() {
			if err := add(i, list.Elem(i)); err != nil {
				return nil, err
			}
		}
	case ast.Set:
		out = make([]string, 0, list.Len())
		for i, e := range list.Slice() {
			if err := add(i, e); err != nil {
				return nil, err
			}
		}
	default:
		return nil, fmt.Errorf("%w: %s is %s, want array of strings", ErrShape, name, ast.ValueName(t.Value))
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// optCount reads obj[key] as a non-negative integer below 2^31 (seconds or
// a count). Absent gives 0.
func optCount(obj ast.Object, key, name string) (int64, error) {
	t := obj.Get(ast.InternedTerm(key))
	if t == nil {
		return 0, nil
	}
	n, ok := t.Value.(ast.Number)
	if !ok {
		return 0, fmt.Errorf("%w: %s is %s, want number", ErrShape, name, ast.ValueName(t.Value))
	}
	// ParseFloat reads every JSON number form (60, 60.0, 6e1) in bounded
	// time, and float64 holds every integer below 2^31 exactly.
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || f != math.Trunc(f) || f < 0 || f > 1<<31-1 {
		return 0, fmt.Errorf("%w: %s is not an integer in [0, 2^31)", ErrShape, name)
	}
	return int64(f), nil
}
