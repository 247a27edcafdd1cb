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
//
// Each object is read in one pass over its keys (this runs on every
// decision).
func parseDecision(v ast.Value) (chartguard.Decision, error) {
	var d chartguard.Decision
	obj, ok := v.(ast.Object)
	if !ok {
		return d, fmt.Errorf("%w: decision is %s, want object", ErrShape, ast.ValueName(v))
	}
	var hasAllow bool
	err := eachKey(obj, func(key string, t *ast.Term) (err error) {
		switch key {
		case "allow":
			hasAllow = true
			d.Allow, err = asBool("allow", t)
		case "reasons":
			d.Reasons, err = asStrings("reasons", t)
		case "require_mfa_within_s":
			d.RequireMFAWithinS, err = asCount("require_mfa_within_s", t)
		case "break_glass":
			d.BreakGlass, err = parseBreakGlass(t)
		case "obligations":
			d.Obligations, err = parseObligations(t)
		}
		return err
	})
	switch {
	case !hasAllow:
		return chartguard.Decision{}, fmt.Errorf("%w: decision has no allow", ErrShape)
	case err != nil:
		return chartguard.Decision{}, err
	}
	return d, nil
}

func parseBreakGlass(t *ast.Term) (chartguard.BreakGlass, error) {
	var bg chartguard.BreakGlass
	obj, ok := t.Value.(ast.Object)
	if !ok {
		return bg, fmt.Errorf("%w: break_glass is %s, want object", ErrShape, ast.ValueName(t.Value))
	}
	err := eachKey(obj, func(key string, t *ast.Term) (err error) {
		switch key {
		case "allowed":
			bg.Allowed, err = asBool("break_glass.allowed", t)
		case "reasons":
			bg.Reasons, err = asStrings("break_glass.reasons", t)
		}
		return err
	})
	if err != nil {
		return chartguard.BreakGlass{}, err
	}
	return bg, nil
}

func parseObligations(t *ast.Term) (chartguard.Obligations, error) {
	var o chartguard.Obligations
	obj, ok := t.Value.(ast.Object)
	if !ok {
		return o, fmt.Errorf("%w: obligations is %s, want object", ErrShape, ast.ValueName(t.Value))
	}
	err := eachKey(obj, func(key string, t *ast.Term) (err error) {
		switch key {
		case "redact":
			o.Redact, err = asStrings("obligations.redact", t)
		case "block_export":
			o.BlockExport, err = asBool("obligations.block_export", t)
		case "max_count":
			var n int64
			n, err = asCount("obligations.max_count", t)
			o.MaxCount = int(n)
		case "tags":
			o.Tags, err = asStrings("obligations.tags", t)
		}
		return err
	})
	if err != nil {
		return chartguard.Obligations{}, err
	}
	return o, nil
}

// eachKey calls f for each string key of obj, in key order, until f fails.
func eachKey(obj ast.Object, f func(key string, value *ast.Term) error) error {
	var err error
	obj.Until(func(k, v *ast.Term) bool {
		if key, ok := k.Value.(ast.String); ok {
			err = f(string(key), v)
		}
		return err != nil
	})
	return err
}

func asBool(name string, t *ast.Term) (bool, error) {
	b, ok := t.Value.(ast.Boolean)
	if !ok {
		return false, fmt.Errorf("%w: %s is %s, want boolean", ErrShape, name, ast.ValueName(t.Value))
	}
	return bool(b), nil
}

// asStrings reads t as a list of strings: an array, or a set (Rego sets
// encode as JSON arrays). Empty gives nil.
func asStrings(name string, t *ast.Term) ([]string, error) {
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
		if list.Len() == 0 {
			return nil, nil
		}
		out = make([]string, 0, list.Len())
		for i := range list.Len() {
			if err := add(i, list.Elem(i)); err != nil {
				return nil, err
			}
		}
	case ast.Set:
		if list.Len() == 0 {
			return nil, nil
		}
		out = make([]string, 0, list.Len())
		for i, e := range list.Slice() {
			if err := add(i, e); err != nil {
				return nil, err
			}
		}
	default:
		return nil, fmt.Errorf("%w: %s is %s, want array of strings", ErrShape, name, ast.ValueName(t.Value))
	}
	return out, nil
}

// asCount reads t as a non-negative integer below 2^31 (seconds or a
// count).
func asCount(name string, t *ast.Term) (int64, error) {
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
