// Command loadtest measures ChartGuard against the upstream it fronts and a
// bare reverse proxy, all in this one process on loopback, and prints a
// Markdown table (target, req/s, p50, p99, CPU per request, ratio).
//
// Usage:
//
//	go -C bench run ./cmd/loadtest [-duration 10s] [-concurrency 32] [-warmup 2s]
//	    [-rounds 1] [-tokens 1000] [-cpuprofile FILE] [-stages] [-blockprofile FILE]
//
// -cpuprofile writes a CPU profile of the ChartGuard phase only (measured
// part, all rounds merged). -stages attributes that profile to pipeline
// stages and prints the breakdown. -blockprofile writes block and mutex
// profiles of the ChartGuard phase, for time spent waiting rather than
// computing. The exit status is 1 if any response
// was not 200 or ChartGuard's audit log does not hold exactly one event per
// request it answered, 2 for bad flags.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/google/pprof/profile"

	"github.com/chartguard/chartguard/bench"
)

var errUsage = errors.New("usage error")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
}

type options struct {
	duration, warmup    time.Duration
	evalTimeout         time.Duration
	concurrency, rounds int
	requests, tokens    int
	cpuprofile, policy  string
	blockprofile        string
	stages, verbose     bool
	nonDurable          bool
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured time per target and round")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "warm-up time per target and round (not measured)")
	fs.DurationVar(&o.evalTimeout, "eval-timeout", 0, "ChartGuard's policy.eval_timeout (default: the product default, 50ms)")
	fs.IntVar(&o.concurrency, "concurrency", bench.DefaultConcurrency, "closed-loop workers (keep-alive connections)")
	fs.IntVar(&o.rounds, "rounds", 1, "rounds of direct, bare, ChartGuard, back to back; results are merged")
	fs.IntVar(&o.requests, "requests", bench.DefaultMaxRequests, "at most this many measured requests per target and round")
	fs.IntVar(&o.tokens, "tokens", bench.DefaultTokens, "distinct physician tokens in the mix")
	fs.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the ChartGuard phase to `file`")
	fs.StringVar(&o.blockprofile, "blockprofile", "", "write block and mutex profiles of the ChartGuard phase to `file` and file.mutex")
	fs.BoolVar(&o.stages, "stages", false, "profile the ChartGuard phase and print the CPU breakdown by pipeline stage")
	fs.StringVar(&o.policy, "policy", "", "policy directory (default: configs/policy above the working directory)")
	fs.BoolVar(&o.nonDurable, "non-durable-audit", false, "diagnostic: audit.durable false (no fsync); never for reported numbers")
	fs.BoolVar(&o.verbose, "v", false, "log ChartGuard warnings (e.g. policy timeouts) to stderr")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, err
		}
		return o, fmt.Errorf("%w: %w", errUsage, err)
	}
	if fs.NArg() > 0 || o.duration <= 0 || o.warmup < 0 || o.concurrency <= 0 || o.rounds <= 0 ||
		o.requests <= 0 || o.tokens <= 0 || o.evalTimeout < 0 {
		fmt.Fprintln(stderr, "loadtest: durations, counts and -concurrency must be positive; no arguments")
		return o, errUsage
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "loadtest-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	logger := slog.New(slog.DiscardHandler)
	if o.verbose {
		logger = slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	fmt.Fprintf(stderr, "loadtest: starting (minting %d tokens, compiling policy)...\n", o.tokens)
	h, err := bench.Start(ctx, bench.Options{Tokens: o.tokens, AuditDir: filepath.Join(tmp, "audit"),
		PolicyDir: o.policy, EvalTimeout: o.evalTimeout, NonDurableAudit: o.nonDurable, Logger: logger})
	if err != nil {
		return err
	}
	m, err := measure(ctx, h, o, stderr)
	if cerr := h.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d cores, GOMAXPROCS %d, concurrency %d, %s per target x %d round(s), warm-up %s, %d tokens, %d-entry mix\n",
		runtime.NumCPU(), runtime.GOMAXPROCS(0), o.concurrency, o.duration, o.rounds, o.warmup, o.tokens, len(h.Mix))
	if o.nonDurable || o.policy != "" || o.evalTimeout != 0 {
		fmt.Fprintf(stdout, "DIAGNOSTIC settings: non-durable audit %t, policy dir %q, eval timeout %s\n",
			o.nonDurable, o.policy, o.evalTimeout)
	}
	fmt.Fprintln(stdout)
	if err := bench.WriteResults(stdout, m.results[0], m.results[1], m.results[2]); err != nil {
		return err
	}
	auditErr := checkAudit(stdout, h.AuditDir(), m.cgSent)
	fmt.Fprintln(stdout)
	if err := bench.WriteInternals(stdout, bench.Metrics{}, m.metrics); err != nil {
		return err
	}
	if m.profile != nil {
		if err := report(stdout, m.profile, o, m.results[2].Requests); err != nil {
			return err
		}
	}
	return errors.Join(m.results[0].Err(), m.results[1].Err(), m.results[2].Err(), auditErr)
}

type measurement struct {
	results [3]bench.Result // direct, bare, ChartGuard
	cgSent  int             // every request ChartGuard answered, warm-up included
	profile *profile.Profile
	metrics bench.Metrics // ChartGuard's own metrics, measured phases only
}

// measure runs the rounds: each target warms up, then is measured, back
// to back in the order direct, bare, ChartGuard.
func measure(ctx context.Context, h *bench.Harness, o options, stderr io.Writer) (measurement, error) {
	m := measurement{metrics: bench.Metrics{}}
	targets := h.Targets()
	var loaders []*bench.Loader
	defer func() {
		for _, l := range loaders {
			l.Close()
		}
	}()
	for _, t := range targets {
		l, err := bench.NewLoader(t, h.Mix, o.concurrency)
		if err != nil {
			return m, err
		}
		loaders = append(loaders, l)
	}
	profiling := o.stages || o.cpuprofile != ""
	var profiles []*profile.Profile
	for round := range o.rounds {
		for i, l := range loaders {
			fmt.Fprintf(stderr, "loadtest: round %d: %s\n", round+1, targets[i].Name)
			warm, err := l.Run(ctx, o.warmup, o.requests)
			if err != nil {
				return m, err
			}
			if err := warm.Err(); err != nil {
				return m, fmt.Errorf("warm-up: %w", err)
			}
			var buf bytes.Buffer
			var before bench.Metrics
			cg := targets[i].Name == bench.NameChartGuard
			if cg {
				if before, err = h.Metrics(ctx); err != nil {
					return m, err
				}
			}
			if cg && profiling {
				if err := pprof.StartCPUProfile(&buf); err != nil {
					return m, fmt.Errorf("cpu profile: %w", err)
				}
			}
			if cg && o.blockprofile != "" {
				runtime.SetBlockProfileRate(int(10 * time.Microsecond))
				runtime.SetMutexProfileFraction(10)
			}
			res, err := l.Run(ctx, o.duration, o.requests)
			if cg && o.blockprofile != "" {
				runtime.SetBlockProfileRate(0)
				runtime.SetMutexProfileFraction(0)
				if err := writeProfiles(o.blockprofile); err != nil {
					return m, err
				}
			}
			if cg && profiling {
				pprof.StopCPUProfile()
				p, perr := profile.Parse(&buf)
				if perr != nil {
					return m, fmt.Errorf("cpu profile: %w", perr)
				}
				profiles = append(profiles, p)
			}
			if err != nil {
				return m, err
			}
			if cg {
				m.cgSent += warm.Requests + warm.Errors + res.Requests + res.Errors
				after, err := h.Metrics(ctx)
				if err != nil {
					return m, err
				}
				for k, v := range after {
					m.metrics[k] += v - before[k]
				}
			}
			if round == 0 {
				m.results[i] = res
			} else {
				m.results[i].Merge(res)
			}
		}
	}
	if len(profiles) > 0 {
		p, err := profile.Merge(profiles)
		if err != nil {
			return m, fmt.Errorf("cpu profile: %w", err)
		}
		m.profile = p
	}
	return m, nil
}

// writeProfiles writes the block profile to path and the mutex profile to
// path+".mutex".
func writeProfiles(path string) error {
	for name, file := range map[string]string{"block": path, "mutex": path + ".mutex"} {
		f, err := os.Create(file)
		if err != nil {
			return fmt.Errorf("%s profile: %w", name, err)
		}
		werr := pprof.Lookup(name).WriteTo(f, 0)
		if err := errors.Join(werr, f.Close()); err != nil {
			return fmt.Errorf("%s profile: %w", name, err)
		}
	}
	return nil
}

// checkAudit verifies one audit event per ChartGuard request.
func checkAudit(w io.Writer, dir string, sent int) error {
	counts, err := bench.AuditStatuses(dir)
	if err != nil {
		return err
	}
	got := bench.Total(counts)
	fmt.Fprintf(w, "\nChartGuard audit log: %d events for %d requests (warm-up included), by status %v.\n", got, sent, counts)
	if got != sent {
		return fmt.Errorf("audit log holds %d events for %d requests", got, sent)
	}
	return nil
}

// report writes the profile (if asked) and prints the stage breakdown (if
// asked).
func report(w io.Writer, p *profile.Profile, o options, requests int) error {
	if o.cpuprofile != "" {
		f, err := os.Create(o.cpuprofile)
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		werr := p.Write(f)
		if err := errors.Join(werr, f.Close()); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		fmt.Fprintf(w, "\nCPU profile of the ChartGuard phase: %s (go tool pprof -top -tagfocus %s=%s %s)\n",
			o.cpuprofile, bench.LabelKey, bench.CompChartGuard, o.cpuprofile)
	}
	if !o.stages {
		return nil
	}
	b, err := bench.Analyze(p)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\n## CPU by stage, ChartGuard phase (%d requests)\n\n", requests)
	return bench.WriteStages(w, b, requests)
}
