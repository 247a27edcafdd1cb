package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/chartguard/chartguard/chartguard"
	"github.com/chartguard/chartguard/policy"
)

// maxInputFile bounds the --input file of `policy eval`.
const maxInputFile = 4 << 20

func newPolicy(stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{Use: "policy", Short: "Test, evaluate and check a Rego policy directory offline"}
	cmd.AddCommand(newPolicyTest(stdout), newPolicyEval(stdout), newPolicyCheck(stdout))
	return cmd
}

// newPolicyTest: exit 0 when every test passes, 1 when one fails or
// errors (or there is none), 2 when the directory does not load or compile.
func newPolicyTest(stdout io.Writer) *cobra.Command {
	var verbose bool
	var query string
	cmd := &cobra.Command{
		Use:   "test DIR",
		Short: "Run the policy's Rego unit tests (test_* rules) with coverage",
		Args:  oneDir("chartguard policy test configs/policy"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := dirArg(args[0]); err != nil {
				return err
			}
			results, cov, err := policy.RunTestsWithCoverage(cmd.Context(), args[0])
			if err != nil {
				return usageErr(err)
			}
			var pass, fail int
			for _, r := range results {
				switch r.Outcome {
				case policy.TestPass:
					pass++
				case policy.TestFail, policy.TestError:
					fail++
				}
				fmt.Fprintln(stdout, r)
				if r.Output != "" && (verbose || r.Outcome != policy.TestPass) {
					fmt.Fprint(stdout, indent(r.Output))
				}
			}
			fmt.Fprintf(stdout, "%d passed, %d failed, %d skipped; coverage %.1f%% (%d of %d lines)\n",
				pass, fail, len(results)-pass-fail, cov.Percent, cov.CoveredLines, cov.TotalLines)
			switch {
			case pass+fail == 0:
				return runtimeErr(errors.New("no tests ran (rules named test_* in *_test.rego; todo_test_* are skipped)"))
			case fail > 0:
				return runtimeErr(fmt.Errorf("%d of %d tests failed", fail, len(results)))
			}
			// The tests compile with the policy; the policy must also
			// compile alone, as serve loads it (a rule the tests define
			// is not there).
			if _, err := policy.New(cmd.Context(), policy.Config{Dir: args[0], Query: query}, nil); err != nil {
				return usageErr(fmt.Errorf("the tests pass, but the policy without its tests does not load: %w", err))
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "also print the output (print()) of passing tests")
	cmd.Flags().StringVar(&query, "query", policy.DefaultQuery, "the decision rule (policy.query)")
	return cmd
}

// newPolicyEval: exit 0 with the decision (allow or deny) printed, 1 when
// the evaluation itself failed (the decision printed is then the
// fail-closed denial), 2 for a directory or input that does not load.
func newPolicyEval(stdout io.Writer) *cobra.Command {
	var dir, inputFile, query string
	var explain bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "eval -d DIR --input FILE [--explain]",
		Short: "Decide one input (the policy contract's JSON) and print the decision; --explain says why",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("unexpected %q: give the directory with -d, e.g. chartguard policy eval -d configs/policy --input in.json", args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := dirArg(dir); err != nil {
				return err
			}
			in, err := readInput(inputFile, cmd.ErrOrStderr())
			if err != nil {
				return usageErr(fmt.Errorf("--input %s: %w", inputFile, err))
			}
			e, err := policy.New(cmd.Context(), policy.Config{Dir: dir, Query: query, EvalTimeout: timeout}, nil)
			if err != nil {
				return usageErr(err)
			}
			// The decision is Decide's, under the timeout requests get;
			// the explanation, traced, may take longer.
			d, evalErr := e.Decide(cmd.Context(), &in)
			if err := printDecision(stdout, d); err != nil {
				return runtimeErr(err)
			}
			if explain {
				xd, why, err := e.Explain(cmd.Context(), &in)
				if err == nil && xd.Allow != d.Allow {
					// The decision above ran out of its time or failed; the
					// traced run, allowed longer, got further.
					err = fmt.Errorf("the rules below are of a traced evaluation, allowed up to 10s, that decided allow=%t; the decision above is what requests get", xd.Allow)
				}
				printExplanation(stdout, d, why, err)
			}
			switch {
			case errors.Is(evalErr, policy.ErrInput):
				return usageErr(fmt.Errorf("--input %s: %w", inputFile, evalErr))
			case errors.Is(evalErr, policy.ErrTimeout):
				return runtimeErr(fmt.Errorf("decision denied: %w; serve denies the same with policy.eval_timeout %s (set it with --eval-timeout)", evalErr, timeout))
			case evalErr != nil:
				return runtimeErr(fmt.Errorf("evaluation failed, decision denied: %w", evalErr))
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&dir, "dir", "d", "", "policy directory")
	cmd.Flags().StringVar(&inputFile, "input", "", "input JSON file (see DESIGN.md, policy contract)")
	cmd.Flags().StringVar(&query, "query", policy.DefaultQuery, "the decision rule")
	cmd.Flags().BoolVar(&explain, "explain", false, "print the rules that held, with file:line")
	cmd.Flags().DurationVar(&timeout, "eval-timeout", policy.DefaultEvalTimeout, "policy.eval_timeout: the time a decision may take, as serve allows it")
	_ = cmd.MarkFlagRequired("dir")
	_ = cmd.MarkFlagRequired("input")
	return cmd
}

// newPolicyCheck: exit 0 when the directory compiles, its load_errors is
// empty and its tests pass, as a reload requires; else 2 (a config error)
// with file:line.
func newPolicyCheck(stdout io.Writer) *cobra.Command {
	var query string
	cmd := &cobra.Command{
		Use:   "check DIR",
		Short: "Check that a policy directory would be accepted (compiles, load_errors empty, tests pass)",
		Args:  oneDir("chartguard policy check configs/policy"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := dirArg(args[0]); err != nil {
				return err
			}
			e, err := policy.Load(cmd.Context(), policy.Config{Dir: args[0], Query: query}, nil)
			if err != nil {
				return usageErr(err)
			}
			fmt.Fprintf(stdout, "%s: ok, revision %s\n", args[0], e.Revision())
			return nil
		},
	}
	cmd.Flags().StringVar(&query, "query", policy.DefaultQuery, "the decision rule")
	return cmd
}

// readInput reads a policy input strictly: unknown keys are errors, so a
// misspelt field is not silently absent. An input without request.time
// gets the current time, as serve always gives one; notes says so.
func readInput(file string, notes io.Writer) (chartguard.Input, error) {
	var in chartguard.Input
	f, err := os.Open(file)
	if err != nil {
		return in, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxInputFile+1))
	if err != nil {
		return in, err
	}
	if len(b) > maxInputFile {
		return in, fmt.Errorf("larger than %d bytes", maxInputFile)
	}
	b = bytes.TrimPrefix(b, []byte("\uFEFF")) // a byte order mark, as some editors save
	if string(bytes.TrimSpace(b)) == "null" {
		return in, errors.New("not a policy input: null; want an object (see DESIGN.md, policy contract)")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return in, fmt.Errorf("not a policy input: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return in, errors.New("not a policy input: more after the JSON object")
	}
	if in.Request.Time.IsZero() {
		in.Request.Time = time.Now().UTC().Truncate(time.Second)
		fmt.Fprintf(notes, "note: the input has no request.time; deciding at %s\n", in.Request.Time.Format(time.RFC3339))
	}
	return in, nil
}

// oneDir accepts exactly one argument, the policy directory.
func oneDir(example string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != 1 {
			return fmt.Errorf("want one policy directory, got %d arguments; e.g. %s", len(args), example)
		}
		return nil
	}
}

// dirArg refuses an empty policy directory argument, which would
// otherwise mean the default directory.
func dirArg(dir string) error {
	if dir == "" {
		return usageErr(errors.New("the policy directory is empty; give one, e.g. configs/policy"))
	}
	return nil
}

// printDecision prints d with its id and revision; empty lists print as
// [], as the policy gives them, not null.
func printDecision(w io.Writer, d chartguard.Decision) error {
	for _, l := range []*[]string{&d.Reasons, &d.BreakGlass.Reasons, &d.Obligations.Redact, &d.Obligations.Tags} {
		if *l == nil {
			*l = []string{}
		}
	}
	out, err := json.MarshalIndent(struct {
		ID       string              `json:"id"`
		Revision string              `json:"revision"`
		Decision chartguard.Decision `json:"decision"`
	}{d.ID, d.Revision, d}, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", out)
	return err
}

func printExplanation(w io.Writer, d chartguard.Decision, why policy.Explanation, err error) {
	verdict := "denied"
	if d.Allow {
		verdict = "allowed"
	}
	fmt.Fprintf(w, "\nwhy %s (revision %s):\n", verdict, d.Revision)
	if err != nil {
		fmt.Fprintf(w, "  the traced evaluation failed: %v\n", err)
	}
	if len(why.Fired) == 0 {
		fmt.Fprintln(w, "  no rule held")
	}
	for _, f := range why.Fired {
		fmt.Fprintf(w, "  %s\n", f)
	}
	if len(why.Notes) > 0 {
		fmt.Fprintln(w, "notes (trace):")
		for _, n := range why.Notes {
			fmt.Fprintf(w, "  %s\n", n)
		}
	}
}

func indent(s string) string {
	var b bytes.Buffer
	for _, line := range bytes.SplitAfter([]byte(s), []byte("\n")) {
		if len(line) > 0 {
			b.WriteString("    ")
			b.Write(line)
		}
	}
	if b.Len() > 0 && b.Bytes()[b.Len()-1] != '\n' {
		b.WriteByte('\n')
	}
	return b.String()
}
