package policy

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown"

	"github.com/chartguard/chartguard/chartguard"
)

// Explanation says why a decision came out as it did: the rules whose
// body held (with the value each contributed) and the policy's trace()
// notes, in policy order. For `chartguard policy eval --explain`.
type Explanation struct {
	Fired []Fired
	Notes []Fired // Rule holds the note's text
}

// Fired is one rule that held, at File:Line. Rule is its head with the
// values it produced, e.g. `reasons contains "not on the patient's care team"`.
type Fired struct {
	File string
	Line int
	Rule string
}

func (f Fired) String() string { return fmt.Sprintf("%s:%d: %s", f.File, f.Line, f.Rule) }

// maxExplainRule bounds the text of one fired rule.
const maxExplainRule = 160

// Explain decides in as [Engine.Decide] does, with OPA's tracer on, and
// reports the rules that held. Tracing makes evaluation slower; the
// engine's timeout still applies.
func (e *Engine) Explain(ctx context.Context, in *chartguard.Input) (chartguard.Decision, Explanation, error) {
	t := &explainTracer{seen: map[Fired]bool{}}
	d, err := e.decide(ctx, in, nil, t)
	order := func(a, b Fired) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Rule, b.Rule))
	}
	slices.SortFunc(t.x.Fired, order)
	return d, t.x, err
}

// explainTracer collects the rules that held as evaluation emits them:
// the values bound then are gone by the end of it.
type explainTracer struct {
	x    Explanation
	seen map[Fired]bool
}

func (*explainTracer) Enabled() bool               { return true }
func (*explainTracer) Config() topdown.TraceConfig { return topdown.TraceConfig{} }

func (t *explainTracer) TraceEvent(ev topdown.Event) {
	add := func(list *[]Fired, f Fired) {
		if !t.seen[f] {
			t.seen[f] = true
			*list = append(*list, f)
		}
	}
	switch {
	case ev.Op == topdown.ExitOp && ev.HasRule():
		r := ev.Node.(*ast.Rule)
		if r.Location != nil && !isConstant(r) {
			add(&t.x.Fired, Fired{File: r.Location.File, Line: r.Location.Row, Rule: firedHead(&ev, r)})
		}
	case ev.Op == topdown.NoteOp && ev.Location != nil:
		add(&t.x.Notes, Fired{File: ev.Location.File, Line: ev.Location.Row, Rule: ev.Message})
	}
}

// firedHead prints the rule's head with the values bound when it held.
func firedHead(ev *topdown.Event, r *ast.Rule) string {
	h := r.Head
	name := h.Ref().String()
	var s string
	switch {
	case r.Default:
		s = "default " + name + " := " + h.Value.String()
	case h.Key != nil && h.Value == nil:
		s = name + " contains " + ev.Plug(h.Key).String()
	case h.Key != nil:
		s = name + "[" + ev.Plug(h.Key).String() + "] := " + ev.Plug(h.Value).String()
	case len(h.Args) > 0:
		args := make([]string, len(h.Args))
		for i, a := range h.Args {
			args[i] = ev.Plug(a).String()
		}
		s = name + "(" + strings.Join(args, ", ") + ")"
	case h.Value != nil:
		s = name + " := " + ev.Plug(h.Value).String()
	default:
		s = name
	}
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > maxExplainRule {
		s = s[:maxExplainRule] + "…"
	}
	return s
}

// isConstant reports whether r is a constant (`x := 1`, body `true`): it
// holds whatever the input, so it explains nothing.
func isConstant(r *ast.Rule) bool {
	if r.Default || len(r.Body) != 1 || r.Body[0].Negated {
		return false
	}
	t, ok := r.Body[0].Terms.(*ast.Term)
	return ok && ast.BooleanTerm(true).Value.Compare(t.Value) == 0
}
