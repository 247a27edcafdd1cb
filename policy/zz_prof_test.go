package policy
import (
	"testing"
	"fmt"
	"github.com/open-policy-agent/opa/v1/profiler"
	"github.com/open-policy-agent/opa/v1/rego"
)
func TestZZProf(t *testing.T) {
	e := newDefaultEngine(t)
	in := physicianRead()
	v, _ := inputValue(&in)
	p := profiler.New()
	total := 0
	for range 200 {
		rs, err := e.query.Eval(t.Context(), rego.EvalParsedInput(v), rego.EvalQueryTracer(p))
		if err != nil { t.Fatal(err) }
		_ = rs
	}
	for _, s := range p.ReportTopNResults(40, []string{"total_time_ns"}) {
		total += s.NumEval
		fmt.Printf("%8d %6d %s:%d %s\n", s.ExprTimeNs/200, s.NumEval/200, s.Location.File, s.Location.Row, string(s.Location.Text))
	}
	fmt.Println("total", total)
}
