package policy
import ("testing"; "os"; "github.com/open-policy-agent/opa/v1/rego")
func BenchmarkZZEvalOnly(b *testing.B) {
	dir := os.Getenv("ZZDIR")
	if dir == "" { dir = defaultDir }
	e, err := New(b.Context(), Config{Dir: dir}, nil)
	if err != nil { b.Fatal(err) }
	in := physicianRead()
	v, _ := newEncoder().input(&in)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.query.Eval(b.Context(), rego.EvalParsedInput(v)); err != nil { b.Fatal(err) }
	}
}
