package policy
import (
	"testing"
	"time"
	"slices"
	"fmt"
)
func TestZZLatency(t *testing.T) {
	e, err := New(t.Context(), Config{Dir: defaultDir, EvalTimeout: time.Second}, nil)
	if err != nil { t.Fatal(err) }
	in := physicianRead()
	var ds []time.Duration
	for range 50000 {
		s := time.Now()
		e.Decide(t.Context(), &in)
		ds = append(ds, time.Since(s))
	}
	slices.Sort(ds)
	n := len(ds)
	fmt.Println("p50", ds[n/2], "p99", ds[n*99/100], "p999", ds[n*999/1000], "max", ds[n-1])
	var big []time.Duration
	for _, d := range ds { if d > 10*time.Millisecond { big = append(big, d) } }
	fmt.Println("over10ms", big)
}
