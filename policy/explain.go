package policy

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

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

// maxExplainRule bounds the text of one fired rule, in characters: room
// for a whole decision object (its reasons print last, keys sorted).
const maxExplainRule = 1000

// explainTimeout bounds an evaluation under Explain: tracing makes it
// several times slower than Decide, whose own timeout is often 50ms.
const explainTimeout = 10 * time.Second

// Explain decides in as [Engine.Decide] does, with OPA's tracer on, and
// reports the rules that held. The evaluation may take up to
// explainTimeout (or the engine's timeout, if longer): ask Decide whether
// it fits the timeout requests get.
func (e *Engine) Explain(ctx context.Context, in *chartguard.Input) (chartguard.Decision, Explanation, error) {
	t := &explainTracer{seen: map[Fired]bool{}, quiet: e.quiet}
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
	x     Explanation
	seen  map[Fired]bool
	quiet quietRules
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
		if r.Location != nil && !t.quiet[r] {
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
	// Terms print on one line, with the newlines and tabs of strings
	// escaped; what is left comes from the source's layout.
	s = strings.NewReplacer("\n", " ", "\t", " ").Replace(s)
	if utf8.RuneCountInString(s) > maxExplainRule {
		s = string([]rune(s)[:maxExplainRule]) + "…"
	}
	return s
}

// quietRules are the rules Explain leaves out: constants (`x := 1`, body
// `true`), which hold whatever the input and so explain nothing. Else
// branches and the rules of the decision itself are never left out: that
// one of them held is the explanation.
type quietRules map[*ast.Rule]bool

func quietRulesOf(modules map[string]*ast.Module, query ast.Ref) quietRules {
	q := quietRules{}
	for _, m := range modules {
		for _, r := range m.Rules { // top-level rules: else branches are r.Else
			if r.Module != nil && isConstant(r) && !r.Ref().HasPrefix(query) && !query.HasPrefix(r.Ref()) {
				q[r] = true
			}
		}
	}
	return q
}

// isConstant reports whether r's body is `true`.
func isConstant(r *ast.Rule) bool {
	if r.Default || len(r.Body) != 1 || r.Body[0].Negated {
		return false
	}
	t, ok := r.Body[0].Terms.(*ast.Term)
	return ok && ast.BooleanTerm(true).Value.Compare(t.Value) == 0
}
