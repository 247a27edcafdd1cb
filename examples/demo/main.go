// Command demo runs the ChartGuard demo in one process, on loopback only:
// the synthetic FHIR upstream (examples/fhir-demo/fhirserver), Dex as the
// OIDC provider, and ChartGuard in front of the upstream with browser
// sign-in through Dex. It prints the URL to open, the demo users and their
// passwords. It is DEVELOPMENT ONLY: plain http, printed passwords.
//
// Usage (from the repository root):
//
//	go -C examples/demo run . [-listen 127.0.0.1:8443] [-fhir-addr 127.0.0.1:8081] [-dex-addr 127.0.0.1:5556] [-policy ../../configs/policy]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/chartguard/chartguard/examples/fhir-demo/fhirserver"
)

const (
	// Server timeouts. Security: slow-header clients cannot pin connections
	// for long; the demo serves loopback only, so generous values are fine.
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 120 * time.Second
	shutdownTimeout   = 5 * time.Second
)

var errUsage = errors.New("usage error")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, nil)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

// run starts the demo and blocks until ctx ends or a server fails, then
// stops everything. The banner goes to stdout, logs to stderr. ready, if
// set, is called with the running demo once everything listens.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, ready func(*demo)) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.Listen, "listen", "127.0.0.1:8443", "ChartGuard listen address (loopback only; port 0 = ephemeral)")
	fs.StringVar(&o.FHIRAddr, "fhir-addr", "127.0.0.1:8081", "FHIR upstream listen address (loopback only; port 0 = ephemeral)")
	fs.StringVar(&o.DexAddr, "dex-addr", "127.0.0.1:5556", "Dex listen address (loopback only; port 0 = ephemeral)")
	fs.StringVar(&o.PolicyDir, "policy", filepath.Join("..", "..", "configs", "policy"), "the default policy, copied with the demo users' care teams")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments", errUsage)
	}
	o.Logger = slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	d, err := startDemo(ctx, o)
	if err != nil {
		return err
	}
	printBanner(stdout, d)
	if ready != nil {
		ready(d)
	}
	select {
	case <-ctx.Done():
	case <-d.stopped():
		err = errors.New("a server stopped unexpectedly")
	}
	return errors.Join(err, d.Close())
}

func printBanner(w io.Writer, d *demo) {
	fmt.Fprintf(w, `ChartGuard demo: DEVELOPMENT ONLY (synthetic patients, printed passwords, plain http, loopback only).

  Open in a browser:  %[1]s/fhir/Patient/p1
  ChartGuard:         %[1]s   (sign-in %[1]s/.chartguard/login, sign-out %[1]s/.chartguard/logout)
  Dex issuer:         %[2]s
  FHIR upstream:      %[3]s   (direct, bypassing ChartGuard; patients p1..p%[4]d)

Demo users (passwords are new on every start):
`, d.URL, d.IdP.Issuer, d.FHIRBase, fhirserver.DefaultPatients)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  ROLE\tEMAIL\tPASSWORD\tCARE TEAMS OF")
	for _, u := range d.IdP.Users {
		fhirUser := u.FHIRUser
		if fhirUser == "" {
			fhirUser = "-"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", u.Role, u.Email, u.Password, fhirUser)
	}
	_ = tw.Flush()
	fmt.Fprintf(w, `
What to expect (default policy):
  physician  sees Patient/p1 (on Practitioner/pr1's care team), not p2: 403.
  nurse      sees Patient/p2 (on Practitioner/pr9's care team), not p1: 403.
  Other roles see what configs/policy grants them (e.g. registration:
  demographics only; it-admin: no patient data).
Sign out with the button on %[1]s/.chartguard/logout. Press Ctrl-C to stop.
`, d.URL)
}
