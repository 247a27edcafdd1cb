package policy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"

	"github.com/chartguard/chartguard/chartguard"
)

// Errors wrapped by [Engine.Decide]. Each comes with a denying Decision.
var (
	// ErrUndefined: the query had no value for this input.
	ErrUndefined = errors.New("policy decision undefined")
	// ErrShape: the value does not match the decision contract.
	ErrShape = errors.New("policy decision malformed")
	// ErrEval: evaluation failed (conflicting rule outputs, a built-in
	// error, a type error, ...).
	ErrEval = errors.New("policy evaluation failed")
	// ErrTimeout: evaluation ran past Config.EvalTimeout or the caller's
	// deadline.
	ErrTimeout = errors.New("policy evaluation timed out")
	// ErrInput: the input cannot be given to the policy.
	ErrInput = errors.New("policy input invalid")
)

// Errors returned by [New].
var (
	// ErrNoModules: the policy directory holds no Rego module.
	ErrNoModules = errors.New("no policy modules")
	// ErrNoRule: the query is not a data reference or names no rule.
	ErrNoRule = errors.New("query names no rule")
	// ErrLoadErrors: the policy's load_errors rule reports problems (see
	// [New]).
	ErrLoadErrors = errors.New("policy reports load errors")
)

// Reasons [Engine.Decide] gives when the policy itself gave no decision.
// They go to the audit log word for word.
const (
	ReasonError     = "policy error"
	ReasonUndefined = "policy decision undefined"
	ReasonMalformed = "policy decision malformed"
	ReasonTimeout   = "policy evaluation timed out"
	ReasonCanceled  = "policy evaluation canceled"
	ReasonInput     = "policy input invalid"
)

// Engine evaluates one loaded, compiled and prepared policy. It is
// immutable after [New] and safe for concurrent use.
type Engine struct {
	query    rego.PreparedEvalQuery
	enc      *encoder
	revision string
	digest   string // hash of the modules and data (the revision of a directory)
	timeout  time.Duration
	// memoOK: the policy calls no non-deterministic built-in; and
	// readsResourceID: a rule refers to input.resource.id (see Memo).
	memoOK, readsResourceID bool
	constants               constants  // the decisions the policy writes as constants
	quiet                   quietRules // rules Explain leaves out
}

// New loads the policy in cfg.Dir, compiles it as Rego v1 and prepares
// cfg.Query once. Errors name the file and line at fault. A nil logger
// discards logs.
//
// A policy can check itself, typically its data, once at load: if the
// package of the query defines a rule load_errors (a set of strings), New
// evaluates it without input and fails with [ErrLoadErrors] and the
// messages unless it is empty.
func New(ctx context.Context, cfg Config, logger *slog.Logger) (*Engine, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg.SetDefaults()
	if cfg.EvalTimeout < 0 {
		return nil, fmt.Errorf("policy: eval_timeout %s is negative", cfg.EvalTimeout)
	}
	src, err := loadDir(cfg.Dir, false)
	if err != nil {
		return nil, content(fmt.Errorf("policy: load %s: %w", cfg.Dir, err))
	}
	e, err := build(ctx, cfg, src, "", cfg.Dir, logger)
	return e, content(err)
}

// build compiles src and prepares cfg.Query (cfg has its defaults). The
// revision is given for a bundle and computed from src when empty; where
// names the source in errors.
func build(ctx context.Context, cfg Config, src *source, revision, where string, logger *slog.Logger) (*Engine, error) {
	ref, err := ast.ParseRef(cfg.Query)
	if err != nil || !ref.HasPrefix(ast.DefaultRootRef) {
		return nil, fmt.Errorf("policy: query %q: %w: want a data reference such as %s", cfg.Query, ErrNoRule, DefaultQuery)
	}
	if len(src.modules) == 0 {
		return nil, fmt.Errorf("policy: load %s: %w", where, ErrNoModules)
	}
	compiler, err := src.compiler()
	if err != nil {
		return nil, fmt.Errorf("policy: compile %s: %w", where, err)
	}
	if len(compiler.GetRules(ref)) == 0 {
		return nil, fmt.Errorf("policy: %s: query %s: %w", where, cfg.Query, ErrNoRule)
	}
	if err := checkStaticRedactPaths(src.modules, src.data); err != nil {
		return nil, fmt.Errorf("policy: %s: %w", where, err)
	}
	digest, err := src.revision()
	if err != nil {
		return nil, fmt.Errorf("policy: %s: %w", where, err)
	}
	if revision == "" {
		revision = digest
	}

	query, err := rego.New(
		rego.Query(cfg.Query),
		rego.Compiler(compiler),
		rego.Store(src.store()),
		rego.SetRegoVersion(ast.RegoV1),
		// Security: a built-in error (e.g. to_number("x")) would otherwise
		// make its expression undefined, which silently switches off a
		// deny rule that uses it. Raising it denies the request instead.
		rego.StrictBuiltinErrors(true),
		// Keep results as AST terms; decisionFromResult reads them directly.
		rego.GenerateJSON(func(t *ast.Term, _ *rego.EvalContext) (any, error) { return t, nil }),
	).PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("policy: prepare %s: %w", cfg.Query, err)
	}
	if err := checkLoadErrors(ctx, compiler, src.store(), ref); err != nil {
		return nil, fmt.Errorf("policy: %s: %w", where, err)
	}

	constants, err := constantDecisions(compiler.GetRules(ref))
	if err != nil {
		return nil, fmt.Errorf("policy: %s: %s can never be a valid decision: %w", where, cfg.Query, err)
	}

	logger.Info("policy loaded", "revision", revision, "modules", len(src.modules))
	use := inputFields(compiler.Modules)
	return &Engine{query: query, enc: newEncoder(use, src.dataKeys()...), revision: revision, digest: digest,
		timeout: cfg.EvalTimeout, memoOK: deterministic(compiler.Modules), readsResourceID: use.get("resource").get("id") != nil,
		constants: constants, quiet: quietRulesOf(compiler.Modules, ref)}, nil
}

// Revision identifies the loaded policy: the first 16 hex digits of a
// SHA-256 over the module names and sources and the data. It is the same on
// every replica that loaded the same files.
func (e *Engine) Revision() string { return e.revision }

// Decide evaluates the policy for in. The Decision always carries a fresh
// random ID and the policy Revision. If the policy gives no usable decision
// (undefined, malformed, evaluation error, timeout, cancellation) Decide
// denies with one fixed reason (Reason* constants) and returns an error
// wrapping ErrUndefined, ErrShape, ErrEval, ErrTimeout, ErrInput or the
// context's error.
//
// The policy's clock (time.now_ns) is in.Request.Time when set, so the
// request and response phases of one request see the same time.
func (e *Engine) Decide(ctx context.Context, in *chartguard.Input) (chartguard.Decision, error) {
	return e.decide(ctx, in, nil, nil)
}

// DecideWith is Decide for one of the decisions of a request: when memo
// holds the decision of an input the policy cannot tell from in (see
// [Memo]), it gives that decision, with a fresh ID, without evaluating
// again. in must carry the request time. A nil memo remembers nothing.
func (e *Engine) DecideWith(ctx context.Context, in *chartguard.Input, memo *Memo) (chartguard.Decision, error) {
	return e.decide(ctx, in, memo, nil)
}

// decide is Decide, with a memo for the request and a tracer when
// explaining.
func (e *Engine) decide(ctx context.Context, in *chartguard.Input, memo *Memo, tracer topdown.QueryTracer) (chartguard.Decision, error) {
	id := newID()
	if in == nil {
		return e.deny(id, ReasonInput, fmt.Errorf("%w: nil input", ErrInput))
	}
	if err := checkInputSize(in); err != nil {
		return e.deny(id, ReasonInput, fmt.Errorf("%w: %w", ErrInput, err))
	}
	if !e.memoOK || in.Request.Time.IsZero() || tracer != nil || ctx.Err() != nil {
		memo = nil // (a canceled request is denied by the evaluation below)
	}
	if memo != nil {
		if d, ok := memo.lookup(e, in); ok {
			d.ID = id
			return d, nil
		}
	}
	input, err := e.enc.input(in)
	if err != nil {
		return e.deny(id, ReasonInput, fmt.Errorf("%w: %w", ErrInput, err))
	}

	// Stop the evaluation at the timeout or when ctx ends. One timer and
	// one ctx callback, rather than a derived context with a deadline:
	// this runs for every request. (Without an external Cancel, OPA starts
	// a goroutine per evaluation to watch ctx.)
	timeout := e.timeout
	if tracer != nil {
		timeout = max(timeout, explainTimeout)
	}
	stopper := &deadline{Cancel: topdown.NewCancel()}
	timer := time.AfterFunc(timeout, stopper.expire)
	defer timer.Stop()
	if ctx.Done() != nil {
		defer context.AfterFunc(ctx, stopper.Cancel.Cancel)()
	}
	cache := getFlatCache()
	opts := make([]rego.EvalOption, 5, 7)
	opts[0] = rego.EvalParsedInput(input)
	opts[1] = rego.EvalExternalCancel(stopper.Cancel)
	opts[2] = evalNoBaseCache
	opts[3] = evalNoMetrics
	opts[4] = rego.EvalVirtualCache(cache)
	if !in.Request.Time.IsZero() {
		opts = append(opts, rego.EvalTime(in.Request.Time))
	}
	if tracer != nil {
		opts = append(opts, rego.EvalQueryTracer(tracer))
	}
	start := time.Now()
	rs, err := e.query.Eval(ctx, opts...)
	putFlatCache(cache) // OPA is done with it: Eval runs no goroutine
	if time.Since(start) >= timeout {
		stopper.expired.Store(true) // the timer may not have run yet
	}
	if err == nil && (stopper.expired.Load() || ctx.Err() != nil) {
		// The cancel lands asynchronously, so an evaluation can finish past
		// its deadline. A late decision is a timed-out one: deny, so the
		// outcome never depends on that race.
		err = errLate
	}
	if err != nil {
		return e.evalFailed(ctx, stopper.expired.Load(), timeout, id, err)
	}

	d, err := e.constants.decisionFromResult(rs)
	switch {
	case errors.Is(err, ErrUndefined):
		return e.deny(id, ReasonUndefined, err)
	case err != nil:
		return e.deny(id, ReasonMalformed, content(err))
	}
	if err := checkRedactPaths(d.Obligations.Redact); err != nil {
		return e.deny(id, ReasonRedactPath, content(fmt.Errorf("%w: %w", ErrShape, err)))
	}
	d.ID, d.Revision = id, e.revision
	if memo != nil {
		memo.remember(d)
	}
	return d, nil
}

// evalFailed classifies an evaluation error.
//
// Security: error messages can quote values from the input and the data
// (patient ids): a built-in's quotes its operands, a conflict the values
// in conflict. Built-in messages are dropped; the rest stay for the
// admin and the audit event, and [LogSafe] keeps them out of the log.
func (e *Engine) evalFailed(ctx context.Context, expired bool, timeout time.Duration, id string, err error) (chartguard.Decision, error) {
	switch ctxErr := ctx.Err(); {
	case expired || errors.Is(ctxErr, context.DeadlineExceeded):
		return e.deny(id, ReasonTimeout, fmt.Errorf("%w after %s", ErrTimeout, timeout))
	case ctxErr != nil:
		return e.deny(id, ReasonCanceled, fmt.Errorf("policy evaluation: %w", ctxErr))
	}
	var te *topdown.Error
	if !errors.As(err, &te) {
		return e.deny(id, ReasonError, content(fmt.Errorf("%w: %w", ErrEval, err)))
	}
	if te.Code == topdown.BuiltinErr {
		// Security: a built-in's message quotes its operands, which come
		// from the input; nobody needs them to find the failing line.
		te = &topdown.Error{Code: te.Code, Location: te.Location}
	}
	return e.deny(id, ReasonError, content(fmt.Errorf("%w: %w", ErrEval, newEvalError(te))))
}

// errLate marks a result that arrived after its evaluation was stopped.
var errLate = errors.New("policy decision arrived after the evaluation was stopped")

// deadline cancels an evaluation and remembers whether it was because its
// time ran out.
type deadline struct {
	topdown.Cancel
	expired atomic.Bool
}

func (d *deadline) expire() {
	d.expired.Store(true)
	d.Cancel.Cancel()
}

// The evaluation options every decision shares, built once.
var (
	evalNoBaseCache = rego.EvalBaseCache(noBaseCache{})
	evalNoMetrics   = rego.EvalMetrics(metrics.NoOp())
)

// noBaseCache is an OPA base-document cache that caches nothing.
//
// OPA memoises every data document it reads during one evaluation, in a
// trie of maps built anew for each evaluation. Reading the in-memory store
// holding AST values is a few map lookups, cheaper than filling that trie,
// which made up much of the cost of the policy's data lookups. The cache
// holds no state and only ever saves work, so caching nothing changes no
// result.
type noBaseCache struct{}

func (noBaseCache) Get(ast.Ref) ast.Value  { return nil }
func (noBaseCache) Put(ast.Ref, ast.Value) {}

// deny is the fail-closed decision.
func (e *Engine) deny(id, reason string, err error) (chartguard.Decision, error) {
	return chartguard.Decision{Reasons: []string{reason}, ID: id, Revision: e.revision}, err
}

// newID returns 128 random bits in hex.
func newID() string {
	var b [16]byte
	// crypto/rand.Read never returns an error (Go 1.24+); it aborts the
	// program if the system's randomness fails.
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
