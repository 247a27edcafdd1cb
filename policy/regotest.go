package policy

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/cover"
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
	return runTests(ctx, src, dir, nil)
}

// Coverage is the share of the policy's lines (test modules excluded)
// that its tests evaluated.
type Coverage struct {
	Percent      float64
	CoveredLines int
	TotalLines   int
	Files        map[string]float64 // percent by file
}

// RunTestsWithCoverage is [RunTests] that also measures coverage (OPA's
// cover tracer), for `chartguard policy test`.
func RunTestsWithCoverage(ctx context.Context, dir string) ([]TestResult, Coverage, error) {
	src, err := loadDir(dir, true)
	if err != nil {
		return nil, Coverage{}, fmt.Errorf("policy: load %s: %w", dir, err)
	}
	cov := cover.New()
	results, err := runTests(ctx, src, dir, cov)
	if err != nil {
		return results, Coverage{}, err
	}
	// OPA reports the lines of test modules the tests ran too; only the
	// policy's own lines count.
	policyModules := src.withoutTests().modules
	rep := cov.Report(policyModules)
	c := Coverage{Files: map[string]float64{}}
	for name, f := range rep.Files {
		if _, ok := policyModules[name]; !ok {
			continue
		}
		c.Files[name] = f.Coverage
		c.CoveredLines += f.CoveredLines
		c.TotalLines += f.CoveredLines + f.NotCoveredLines
	}
	if c.TotalLines > 0 {
		c.Percent = 100 * float64(c.CoveredLines) / float64(c.TotalLines)
	}
	return results, c, nil
}

// runTests runs the test_* rules of src (which holds the test modules);
// where names the source in errors.
func runTests(ctx context.Context, src *source, where string, cov *cover.Cover) ([]TestResult, error) {
	if len(src.modules) == 0 {
		return nil, fmt.Errorf("policy: load %s: %w", where, ErrNoModules)
	}
	compiler := ast.NewCompiler().
		WithDefaultRegoVersion(ast.RegoV1).
		WithCapabilities(capabilities()).
		WithEnablePrintStatements(true)
	runner := tester.NewRunner()
	if cov != nil {
		runner = runner.SetCoverageQueryTracer(cov)
	}
	ch, err := runner.
		SetTimeout(testCaseTimeout).
		SetDefaultRegoVersion(ast.RegoV1).
		SetCompiler(compiler).
		SetStore(src.store()).
		SetModules(src.modules).
		RaiseBuiltinErrors(true).
		CapturePrintOutput(true).
		RunTests(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("policy: compile %s: %w", where, err)
	}

	var results []TestResult
	for r := range ch {
		results = append(results, testResult(r))
	}
	if err := ctx.Err(); err != nil {
		return results, fmt.Errorf("policy: test %s: %w", where, err)
	}
	slices.SortFunc(results, func(a, b TestResult) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Name, b.Name))
	})
	return results, nil
}

// testCaseTimeout bounds one Rego test. OPA's default (5s) is short for
// exhaustive table tests on a loaded machine, and a test that times out
// refuses a reload. The whole run is bounded by the caller's context
// (loadTimeout for a reload).
const testCaseTimeout = 30 * time.Second

// ErrTestsFailed: a policy's own Rego tests failed, so [Load] refuses it.
var ErrTestsFailed = errors.New("policy tests failed")

// failedTests returns an error wrapping ErrTestsFailed that lists the
// tests that failed or errored (at most maxLoadErrors), or nil.
func failedTests(results []TestResult) error {
	var failed []error
	for _, r := range results {
		if r.Outcome == TestFail || r.Outcome == TestError {
			failed = append(failed, &locError{where: fmt.Sprintf("%s:%d", r.File, r.Line), err: fmt.Errorf("%s: %s", r.Name, r.Outcome)})
		}
	}
	if len(failed) == 0 {
		return nil
	}
	n := len(failed)
	more := ""
	if n > maxLoadErrors {
		failed, more = failed[:maxLoadErrors], fmt.Sprintf("; and %d more", n-maxLoadErrors)
	}
	return fmt.Errorf("%w (%d of %d): %w%s", ErrTestsFailed, n, len(results), joinErrs(failed), more)
}

// joinedErrs prints its errors joined by "; " (errors.Join uses lines).
type joinedErrs []error

func joinErrs(errs []error) error { return joinedErrs(errs) }

func (j joinedErrs) Error() string {
	msgs := make([]string, len(j))
	for i, e := range j {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "; ")
}

func (j joinedErrs) Unwrap() []error { return j }

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
