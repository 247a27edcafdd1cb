package policy

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
)

// loadErrorsRule names the rule, in the package of the query, in which a
// policy reports problems with itself or its data.
const loadErrorsRule = "load_errors"

const (
	// maxLoadErrors bounds the messages quoted in the error of [New].
	maxLoadErrors = 10
	// loadErrorsTimeout bounds the evaluation of load_errors. It runs once
	// per load and may walk all the data, so the per-decision
	// Config.EvalTimeout does not apply.
	loadErrorsTimeout = 10 * time.Second
)

// checkLoadErrors evaluates the load_errors rule next to query, if the
// policy defines one, and fails with its messages unless it is empty.
//
// Security: checks of the data belong here rather than in every decision:
// they cost nothing per request, and a policy whose data is in the wrong
// shape never serves a request (fail closed) instead of each decision
// having to guard against it.
func checkLoadErrors(ctx context.Context, compiler *ast.Compiler, store storage.Store, query ast.Ref) error {
	ref := query[:len(query)-1].Append(ast.StringTerm(loadErrorsRule))
	if len(compiler.GetRules(ref)) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, loadErrorsTimeout)
	defer cancel()
	rs, err := rego.New(
		rego.ParsedQuery(ast.NewBody(ast.NewExpr(ast.NewTerm(ref)))),
		rego.Compiler(compiler),
		rego.Store(store),
		rego.SetRegoVersion(ast.RegoV1),
		rego.StrictBuiltinErrors(true),
		rego.GenerateJSON(func(t *ast.Term, _ *rego.EvalContext) (any, error) { return t, nil }),
	).Eval(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", ref, err)
	}
	if len(rs) == 0 {
		return nil
	}
	t, ok := rs[0].Expressions[0].Value.(*ast.Term)
	if !ok {
		return fmt.Errorf("%s: %w: result is %T", ref, ErrShape, rs[0].Expressions[0].Value)
	}
	msgs, err := asStrings(ref.String(), t)
	if err != nil {
		return err
	}
	if len(msgs) == 0 {
		return nil
	}
	slices.Sort(msgs)
	return &loadErrors{msgs: msgs}
}

// loadErrors is the error of a non-empty load_errors: it wraps
// ErrLoadErrors and quotes up to maxLoadErrors of the messages.
type loadErrors struct{ msgs []string }

func (e *loadErrors) Unwrap() error { return ErrLoadErrors }

func (e *loadErrors) Error() string {
	msgs, n := e.msgs, len(e.msgs)
	if n > maxLoadErrors {
		msgs = append(msgs[:maxLoadErrors:maxLoadErrors], fmt.Sprintf("and %d more", n-maxLoadErrors))
	}
	return fmt.Sprintf("%s (%d): %s", ErrLoadErrors, n, strings.Join(msgs, "; "))
}
