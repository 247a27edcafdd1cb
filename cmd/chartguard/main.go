// Command chartguard runs and manages the ChartGuard proxy. It only parses
// flags and calls the packages: every behaviour lives in proxy, policy,
// authn and audit.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/chartguard/chartguard/internal/heapfloor"
	"github.com/chartguard/chartguard/policy"
	"github.com/chartguard/chartguard/proxy"
)

// Exit codes (DESIGN.md).
const (
	exitOK      = 0
	exitRuntime = 1
	exitUsage   = 2
)

// exitError carries the exit code out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageErr(err error) error   { return &exitError{exitUsage, err} }
func runtimeErr(err error) error { return &exitError{exitRuntime, err} }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the CLI and returns the process exit code.
func run(args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "chartguard: %v\n", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return exitUsage // cobra's own errors: unknown command or flag
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "chartguard",
		Short:         "Identity-aware, auditing proxy in front of an EMR",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(newServe(stderr), newConfig(stdout), newVersion(stdout), newAudit(stdout, stderr), newPolicy(stdout))
	return root
}

func newServe(stderr io.Writer) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the proxy",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// SIGHUP reloads the policy. Caught from the start, so one
			// that arrives while starting does not kill the process.
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			cfg, err := proxy.LoadConfig(file)
			if err != nil {
				return usageErr(err)
			}
			logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
			setHeapFloor(logger, cfg.Runtime.MinHeap)
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			p, err := proxy.New(ctx, cfg, logger)
			if err != nil {
				// stderr is the log: a policy that does not load is
				// named by file:line, not quoted (policy.LogSafe).
				return usageErr(errors.New(policy.LogSafe(err)))
			}
			defer p.Close()
			hupDone := make(chan struct{})
			go func() {
				defer close(hupDone)
				for {
					select {
					case <-ctx.Done():
						return
					case <-hup:
						p.ReloadPolicy(context.WithoutCancel(ctx)) // logged, counted and audited by proxy
					}
				}
			}()
			err = p.ListenAndServe(ctx)
			stop()
			<-hupDone // a reload under way finishes before p.Close
			if err != nil {
				return runtimeErr(err)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", "", "config file (YAML)")
	_ = cmd.MarkFlagRequired("config")
	return cmd
}

// setHeapFloor applies runtime.min_heap for the life of the process
// (package heapfloor), unless the operator set GOGC.
func setHeapFloor(logger *slog.Logger, floor int64) {
	switch _, installed := heapfloor.Set(floor); {
	case installed:
		logger.Info("garbage collector heap floor set", "min_heap_bytes", floor)
	case floor > 0:
		logger.Info("GOGC is set in the environment; runtime.min_heap not applied", "gogc", os.Getenv("GOGC"))
	}
}

func newConfig(stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Work with the config file"}
	var file string
	check := &cobra.Command{
		Use:   "check",
		Short: "Validate a config file and compile its policy; exit 2 on any problem",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := proxy.LoadConfig(file)
			if err != nil {
				return usageErr(err)
			}
			if err := proxy.Check(cmd.Context(), cfg); err != nil {
				return usageErr(err)
			}
			fmt.Fprintf(stdout, "%s: ok\n", file)
			return nil
		},
	}
	check.Flags().StringVarP(&file, "config", "c", "", "config file (YAML)")
	_ = check.MarkFlagRequired("config")
	cmd.AddCommand(check)
	return cmd
}

func newVersion(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			v := "devel"
			if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
				v = bi.Main.Version
			}
			fmt.Fprintf(stdout, "chartguard %s\n", v)
			return nil
		},
	}
}
