package policy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/loader"
)

// What started a reload ([Reload.Trigger]).
const (
	TriggerStart  = "start"  // the first load
	TriggerWatch  = "watch"  // a change in the policy directory
	TriggerAdmin  = "admin"  // POST /admin/policy/reload
	TriggerSignal = "signal" // SIGHUP
	TriggerPoll   = "poll"   // the bundle poll
)

// Outcomes of a reload ([Reload.Outcome]).
const (
	OutcomeLoaded    = "loaded"    // a new revision serves
	OutcomeUnchanged = "unchanged" // same revision, or the bundle server answered 304
	OutcomeRefused   = "refused"   // the candidate failed; the old revision keeps serving
)

// Reload reports one reload attempt.
type Reload struct {
	Trigger  string
	Source   string // "dir" or "bundle"
	Outcome  string
	Revision string // serving after the attempt
	Previous string // serving before it
	Err      error  // why the candidate was refused
}

// loadTimeout bounds one reload: download, compile, load_errors, tests.
const loadTimeout = 2 * time.Minute

// watchDebounce is how long the directory must be quiet after a change
// before it is reloaded: an editor or `cp -r` writes several files.
const watchDebounce = 300 * time.Millisecond

// Manager holds the serving [Engine] and replaces it on reload. A
// candidate policy serves only if it compiles, its load_errors is empty
// and its own Rego tests (*_test.rego) pass; otherwise it is refused and
// the engine serving keeps serving. Callers take [Manager.Current] once per
// request, so a request in flight finishes on the revision it started
// with.
type Manager struct {
	cfg     Config
	log     *slog.Logger
	notify  func(context.Context, Reload)
	cur     atomic.Pointer[Engine]
	mu      sync.Mutex     // one reload at a time
	fetcher *bundleFetcher // replaced under mu
}

// NewManager loads the policy from cfg.Bundle.URL if set, else cfg.Dir,
// refusing it as a reload would, and returns a Manager serving it. notify
// (may be nil) is called after every reload attempt, including this
// first one, with the context of the reload; it must not block for long.
func NewManager(ctx context.Context, cfg Config, logger *slog.Logger, notify func(context.Context, Reload)) (*Manager, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg.SetDefaults()
	if err := cfg.Bundle.Validate(); err != nil {
		return nil, err
	}
	if notify == nil {
		notify = func(context.Context, Reload) {}
	}
	m := &Manager{cfg: cfg, log: logger, notify: notify}
	if cfg.Bundle.URL != "" {
		f, err := newBundleFetcher(cfg.Bundle)
		if err != nil {
			return nil, err
		}
		m.fetcher = f
	}
	if r := m.Reload(ctx, TriggerStart); r.Err != nil {
		return nil, r.Err
	}
	return m, nil
}

// bundled reports whether the policy comes from a bundle server. (It reads
// the configuration: m.fetcher changes under m.mu.)
func (m *Manager) bundled() bool { return m.cfg.Bundle.URL != "" }

// Wait returns once no reload is under way: at shutdown, a reload the
// admin asked for finishes (and is audited) before the audit log closes.
func (m *Manager) Wait() {
	m.mu.Lock()
	defer m.mu.Unlock()
}

// Current returns the engine serving now. It is never nil.
func (m *Manager) Current() *Engine { return m.cur.Load() }

// Revision is the serving engine's revision.
func (m *Manager) Revision() string { return m.Current().Revision() }

func (m *Manager) source() string {
	if m.bundled() {
		return "bundle"
	}
	return "dir"
}

// Reload loads the policy again (for a bundle: downloads it now) and
// swaps it in if it passes. The result is also passed to notify and
// logged.
func (m *Manager) Reload(ctx context.Context, trigger string) Reload {
	m.mu.Lock()
	defer m.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, loadTimeout)
	defer cancel()

	r := Reload{Trigger: trigger, Source: m.source()}
	old := m.cur.Load()
	if old != nil {
		r.Previous = old.Revision()
	}
	var e *Engine
	var err error
	switch {
	case m.fetcher != nil:
		e, err = m.loadBundle(ctx)
	default:
		e, err = m.reloadDir(ctx, old)
	}
	switch {
	case err == nil && e == nil && old == nil:
		// Security: a 304 carries no signature. Without this, whoever can
		// answer at the URL could start ChartGuard with no policy at all.
		err = errNoBundle
	case err == nil && e != nil && old != nil && e.Revision() == old.Revision() && e.digest != old.digest:
		// An auditor finds the policy behind a decision by its revision,
		// so one revision must never name two policies.
		err = fmt.Errorf("%w: the bundle's manifest revision %q serves already, with other content; publish it with a new revision", errRevisionReused, e.Revision())
	}
	switch {
	case err != nil:
		r.Outcome, r.Err, r.Revision = OutcomeRefused, err, r.Previous
		m.forgetBundle()
		m.log.Error("policy reload refused; previous revision keeps serving", "trigger", trigger,
			"source", r.Source, "revision", r.Previous, "error", LogSafe(err))
	case e == nil || e.Revision() == r.Previous:
		r.Outcome, r.Revision = OutcomeUnchanged, r.Previous
	default:
		m.cur.Store(e)
		r.Outcome, r.Revision = OutcomeLoaded, e.Revision()
		m.log.Info("policy revision serving", "trigger", trigger, "source", r.Source,
			"revision", r.Revision, "previous", r.Previous)
	}
	m.notify(ctx, r)
	return r
}

// reloadDir loads cfg.Dir as [Load] does, unless it holds, tests aside,
// what old was built from: then nil, nil (unchanged) after a parse alone,
// with nothing compiled or tested again (the watch reloads at its start,
// and after edits that leave the policy as it was).
func (m *Manager) reloadDir(ctx context.Context, old *Engine) (*Engine, error) {
	if old == nil {
		return Load(ctx, m.cfg, m.log)
	}
	src, err := readDir(m.cfg.Dir)
	if err != nil {
		return nil, err
	}
	if digest, err := src.withoutTests().revision(); err == nil && digest == old.digest {
		return nil, nil
	}
	return loadSource(ctx, m.cfg, src, "", m.cfg.Dir, m.log)
}

// Reasons a reload refuses a bundle that loaded.
var (
	errNoBundle       = errors.New("policy: bundle: the server answered 304 Not Modified to the first download; no policy to serve")
	errRevisionReused = errors.New("policy: bundle revision reused")
	errBundleDownload = errors.New("policy: bundle download")
)

// forgetBundle makes the next poll download the bundle in full. OPA's
// downloader keeps the ETag of every bundle it handed over, refused or
// not, so without this a bundle refused for a passing reason (a load
// timeout on a busy machine) would be answered 304 and reported
// "unchanged" until the server published another.
func (m *Manager) forgetBundle() {
	if m.fetcher == nil {
		return
	}
	if f, err := newBundleFetcher(m.cfg.Bundle); err == nil {
		m.fetcher = f
	}
}

// loadBundle downloads the bundle and builds an engine from it; nil, nil
// when the server says it has not changed.
func (m *Manager) loadBundle(ctx context.Context) (*Engine, error) {
	u, err := m.fetcher.fetch(ctx)
	var ae ast.Errors
	var le loader.Errors
	switch {
	case errors.As(err, &ae) || errors.As(err, &le):
		// The bundle arrived but does not parse: its text may quote the
		// policy and its data (LogSafe gives file:line and codes).
		return nil, content(fmt.Errorf("%w: %w", errBundleDownload, err))
	case err != nil:
		// The error names the URL; its query may carry a token, and the
		// text reaches the admin's answer and the audit log.
		return nil, fmt.Errorf("%w: %s", errBundleDownload, redactURLQuery(err.Error(), m.cfg.Bundle.URL))
	}
	if u.Bundle == nil {
		return nil, nil
	}
	src, err := bundleSource(u.Bundle)
	if err != nil {
		return nil, content(fmt.Errorf("policy: %w", err))
	}
	revision := u.Bundle.Manifest.Revision
	if revision == "" {
		if revision, err = src.withoutTests().revision(); err != nil {
			return nil, fmt.Errorf("policy: bundle: %w", err)
		}
	}
	return loadSource(ctx, m.cfg, src, revision, "bundle", m.log)
}

// Load is [New] plus the policy's own tests: it loads cfg.Dir with its
// *_test.rego files, builds the engine from the modules that are not
// tests, then runs the tests and fails with [ErrTestsFailed] if any fails
// or errors. `chartguard policy check` and every reload use it.
func Load(ctx context.Context, cfg Config, logger *slog.Logger) (*Engine, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg.SetDefaults()
	if cfg.EvalTimeout < 0 {
		return nil, fmt.Errorf("policy: eval_timeout %s is negative", cfg.EvalTimeout)
	}
	src, err := readDir(cfg.Dir)
	if err != nil {
		return nil, err
	}
	return loadSource(ctx, cfg, src, "", cfg.Dir, logger)
}

// readDir reads the policy directory, tests included.
func readDir(dir string) (*source, error) {
	src, err := loadDir(dir, true)
	if err != nil {
		return nil, content(fmt.Errorf("policy: load %s: %w", dir, err))
	}
	return src, nil
}

// loadSource builds an engine from src less its tests, then runs the tests.
func loadSource(ctx context.Context, cfg Config, src *source, revision, where string, logger *slog.Logger) (*Engine, error) {
	e, err := build(ctx, cfg, src.withoutTests(), revision, where, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, content(err)
	}
	results, err := runTests(ctx, src, where, nil)
	if err != nil {
		return nil, content(err)
	}
	if err := failedTests(results); err != nil {
		return nil, content(fmt.Errorf("policy: %s: %w", where, err))
	}
	logger.Info("policy loaded", "revision", e.Revision(), "modules", len(src.modules), "tests", len(results))
	return e, nil
}

// Run keeps the policy current until ctx ends: it watches the policy
// directory (reloading once changes settle), or polls the bundle server
// at a random interval between policy.bundle.poll.min and max.
func (m *Manager) Run(ctx context.Context) error {
	if m.bundled() {
		m.poll(ctx)
		return nil
	}
	return m.watch(ctx)
}

func (m *Manager) poll(ctx context.Context) {
	lo, hi := m.cfg.Bundle.Poll.Min, m.cfg.Bundle.Poll.Max
	for {
		wait := lo
		if hi > lo {
			wait += rand.N(hi - lo)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
			m.Reload(context.WithoutCancel(ctx), TriggerPoll) // not cut short by shutdown (see watch)
		}
	}
}

// errWatch wraps failures to watch the policy directory.
var errWatch = errors.New("policy: watch")

// redactURLQuery replaces rawURL's query, wherever msg quotes the URL,
// with "?…".
func redactURLQuery(msg, rawURL string) string {
	base, query, ok := strings.Cut(rawURL, "?")
	if !ok || query == "" {
		return msg
	}
	return strings.ReplaceAll(msg, rawURL, base+"?…")
}
