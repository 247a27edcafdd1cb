package policy

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/chartguard/chartguard/chartguard"
)

// decisionFromResult reads the decision from the result of the prepared
// query. The engine's GenerateJSON hook leaves each value as an *ast.Term,
// so no JSON round trip happens here; a term that is one of c is not
// parsed at all, its decision is copied.
func (c constants) decisionFromResult(rs rego.ResultSet) (chartguard.Decision, error) {
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
	if d, ok := c[t]; ok {
		return cloneDecision(d), nil
	}
	return parseDecision(t.Value)
}

// parseDecision checks v against the decision contract (DESIGN.md, "Policy
// contract") and converts it. "allow" is required and must be a boolean;
// every other key is optional (absent means its zero value) but must have
// the contract's type when present. Keys outside the contract are ignored.
// Error messages name keys and types, never values: values may echo input.
//
// Keys are looked up with prebuilt terms (this runs on every decision that
// is not a constant, and closures over the result would put it on the
// heap).
func parseDecision(v ast.Value) (chartguard.Decision, error) {
	var d chartguard.Decision
	obj, ok := v.(ast.Object)
	if !ok {
		return d, fmt.Errorf("%w: decision is %s, want object", ErrShape, ast.ValueName(v))
	}
	if obj.Get(keyAllow) == nil {
		return d, fmt.Errorf("%w: decision has no allow", ErrShape)
	}
	if err := cmp.Or(
		field(obj, keyAllow, "allow", asBool, &d.Allow),
		field(obj, keyReasons, "reasons", asStrings, &d.Reasons),
		field(obj, keyMFA, "require_mfa_within_s", asCount, &d.RequireMFAWithinS),
		field(obj, keyBreakGlass, "break_glass", parseBreakGlass, &d.BreakGlass),
		field(obj, keyObligations, "obligations", parseObligations, &d.Obligations),
	); err != nil {
		return chartguard.Decision{}, err
	}
	return d, nil
}

// field sets *dst to what parse reads from obj's value at key, if obj has
// the key; name is the key's path for errors. (The parse functions are
// top-level functions, not closures, so this allocates nothing.)
func field[T any](obj ast.Object, key *ast.Term, name string, parse func(string, *ast.Term) (T, error), dst *T) error {
	t := obj.Get(key)
	if t == nil {
		return nil
	}
	v, err := parse(name, t)
	if err != nil {
		return err
	}
	*dst = v
	return nil
}

// The keys of the decision contract, as terms for ast.Object.Get.
var (
	keyAllow       = ast.StringTerm("allow")
	keyReasons     = ast.StringTerm("reasons")
	keyMFA         = ast.StringTerm("require_mfa_within_s")
	keyBreakGlass  = ast.StringTerm("break_glass")
	keyObligations = ast.StringTerm("obligations")
	keyAllowed     = ast.StringTerm("allowed")
	keyRedact      = ast.StringTerm("redact")
	keyBlockExport = ast.StringTerm("block_export")
	keyMaxCount    = ast.StringTerm("max_count")
	keyTags        = ast.StringTerm("tags")
)

func parseBreakGlass(name string, t *ast.Term) (chartguard.BreakGlass, error) {
	var bg chartguard.BreakGlass
	obj, ok := t.Value.(ast.Object)
	if !ok {
		return bg, fmt.Errorf("%w: %s is %s, want object", ErrShape, name, ast.ValueName(t.Value))
	}
	if err := cmp.Or(
		field(obj, keyAllowed, "break_glass.allowed", asBool, &bg.Allowed),
		field(obj, keyReasons, "break_glass.reasons", asStrings, &bg.Reasons),
	); err != nil {
		return chartguard.BreakGlass{}, err
	}
	return bg, nil
}

func parseObligations(name string, t *ast.Term) (chartguard.Obligations, error) {
	var o chartguard.Obligations
	obj, ok := t.Value.(ast.Object)
	if !ok {
		return o, fmt.Errorf("%w: %s is %s, want object", ErrShape, name, ast.ValueName(t.Value))
	}
	var maxCount int64
	if err := cmp.Or(
		field(obj, keyRedact, "obligations.redact", asStrings, &o.Redact),
		field(obj, keyBlockExport, "obligations.block_export", asBool, &o.BlockExport),
		field(obj, keyMaxCount, "obligations.max_count", asCount, &maxCount),
		field(obj, keyTags, "obligations.tags", asStrings, &o.Tags),
	); err != nil {
		return chartguard.Obligations{}, err
	}
	o.MaxCount = int(maxCount)
	return o, nil
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

// constants holds the decisions a policy spells out as constants, parsed
// once at load. OPA returns a rule's ground head as the very term the
// compiled policy holds, so a result that is one of these terms needs no
// parsing: the commonest allow is such a constant in the default policy.
// The compiled policy keeps the terms alive, so their addresses cannot be
// reused for other values while the Engine exists.
type constants map[*ast.Term]chartguard.Decision

// constantDecisions parses the ground heads of rules, else branches
// included. A head that does not parse could never be a valid decision:
// the policy is refused at load, with its file:line, rather than denying
// every request it decides.
func constantDecisions(rules []*ast.Rule) (constants, error) {
	c := constants{}
	var errs []error
	for _, r := range rules {
		for ; r != nil; r = r.Else {
			v := r.Head.Value
			if v == nil || !v.IsGround() {
				continue
			}
			d, err := parseDecision(v.Value)
			if err != nil {
				errs = append(errs, &locError{where: locString(r.Location), err: err})
				continue
			}
			c[v] = d
		}
	}
	return c, errors.Join(errs...)
}
