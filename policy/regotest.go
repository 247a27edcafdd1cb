package policy

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/tester"
)

// Test outcomes.
const (
	TestPass  = "pass"
	TestFail  = "fail"
	TestError = "error"
	TestSkip  = "skip"
)

// TestResult is the outcome of one Rego test rule (test_*).
type TestResult struct {
	Package  string // e.g. "data.chartguard_test"
	Name     string // e.g. "test_nurse_may_read"
	File     string // relative to the policy directory
	Line     int
	Outcome  string // TestPass, TestFail, TestError or TestSkip
	Err      error  // the evaluation error when Outcome is TestError
	Duration time.Duration
	Output   string // what the test printed with print()
}

// String formats r like `opa test`: "file:line: package.name: OUTCOME".
func (r TestResult) String() string {
	s := fmt.Sprintf("%s:%d: %s.%s: %s", r.File, r.Line, r.Package, r.Name, r.Outcome)
	if r.Err != nil {
		s += ": " + r.Err.Error()
	}
	return s
}

// RunTests runs the Rego unit tests of the policy directory dir: every rule
// named test_* (todo_test_* are skipped) in any module, with the same
// loading, Rego v1 parsing, forbidden built-ins and strict built-in errors
// as [New]. It returns one result per test, ordered by file and line. The
// error is non-nil only if the directory cannot be loaded or compiled; test
// failures are results.
func RunTests(ctx context.Context, dir string) ([]TestResult, error) {
	src, err := loadDir(dir, true)
	if err != nil {
		return nil, fmt.Errorf("policy: load %s: %w", dir, err)
	}
	if len(src.modules) == 0 {
		return nil, fmt.Errorf("policy: load %s: %w", dir, ErrNoModules)
	}
	compiler := ast.NewCompiler().
		WithDefaultRegoVersion(ast.RegoV1).
		WithCapabilities(capabilities()).
		WithEnablePrintStatements(true)
	ch, err := tester.NewRunner().
		SetDefaultRegoVersion(ast.RegoV1).
		SetCompiler(compiler).
		SetStore(src.store()).
		SetModules(src.modules).
		RaiseBuiltinErrors(true).
		CapturePrintOutput(true).
		RunTests(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("policy: compile %s: %w", dir, err)
	}

	var results []TestResult
	for r := range ch {
		results = append(results, testResult(r))
	}
	if err := ctx.Err(); err != nil {
		return results, fmt.Errorf("policy: test %s: %w", dir, err)
	}
	slices.SortFunc(results, func(a, b TestResult) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Name, b.Name))
	})
	return results, nil
}

func testResult(r *tester.Result) TestResult {
	tr := TestResult{
		Package:  r.Package,
		Name:     r.Name,
		Err:      r.Error,
		Duration: r.Duration,
		Output:   string(r.Output),
	}
	if r.Location != nil {
		tr.File, tr.Line = r.Location.File, r.Location.Row
	}
	switch {
	case r.Skip:
		tr.Outcome = TestSkip
	case r.Error != nil:
		tr.Outcome = TestError
	case r.Fail:
		tr.Outcome = TestFail
	default:
		tr.Outcome = TestPass
	}
	return tr
}
