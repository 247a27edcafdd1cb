// Command demo runs the ChartGuard demo: the synthetic FHIR upstream
// (examples/fhir-demo/fhirserver) and Dex as the OIDC provider, both
// in-process and on loopback only. It prints the demo users, their
// passwords and the Dex issuer URL. It is DEVELOPMENT ONLY.
//
// This step starts the upstream and the identity provider only: browser
// login through ChartGuard comes with the rest of issue 4.
//
// Usage:
//
//	go -C examples/demo run . [-fhir-addr 127.0.0.1:8081] [-dex-addr 127.0.0.1:5556]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/chartguard/chartguard/examples/demo/dex"
	"github.com/chartguard/chartguard/examples/fhir-demo/fhirserver"
)

const (
	// chartguardURL is where the demo will serve ChartGuard, and callback
	// its OIDC redirect URI (DESIGN.md: /.chartguard/callback), registered
	// in Dex now so the client does not change when the proxy arrives.
	chartguardURL = "http://127.0.0.1:8443"
	callback      = chartguardURL + "/.chartguard/callback"

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

// run starts the FHIR upstream and Dex and blocks until ctx ends or the
// upstream fails, then stops both. The banner goes to stdout, logs to
// stderr. ready, if set, is called with the FHIR base URL and the running
// Dex once both listen.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, ready func(fhirBase string, idp *dex.IdP)) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fhirAddr := fs.String("fhir-addr", "127.0.0.1:8081", "FHIR upstream listen address (loopback only; port 0 = ephemeral)")
	dexAddr := fs.String("dex-addr", "127.0.0.1:5556", "Dex listen address (loopback only; port 0 = ephemeral)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments", errUsage)
	}
	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	fhirLn, err := dex.ListenLoopback(*fhirAddr)
	if err != nil {
		return fmt.Errorf("-fhir-addr: %w", err)
	}
	defer fhirLn.Close()
	idp, err := dex.Start(ctx, dex.Options{RedirectURL: callback, Addr: *dexAddr, Logger: logger})
	if err != nil {
		return fmt.Errorf("-dex-addr: %w", err)
	}
	defer idp.Close()

	fhirBase := "http://" + fhirLn.Addr().String() + fhirserver.DefaultBase
	srv := &http.Server{
		Handler:           fhirserver.New(fhirserver.Options{}),
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(fhirLn) }()

	printBanner(stdout, fhirBase, idp)
	if ready != nil {
		ready(fhirBase, idp)
	}
	select {
	case <-ctx.Done():
		err = nil
	case err = <-served:
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	return errors.Join(err, srv.Shutdown(sctx), idp.Close())
}

func printBanner(w io.Writer, fhirBase string, idp *dex.IdP) {
	fmt.Fprintf(w, `ChartGuard demo: DEVELOPMENT ONLY (synthetic patients, printed passwords, loopback only).
  FHIR upstream: %[1]s   (patients p1..p%[5]d, practitioners pr1..pr10)
  Dex issuer:    %[2]s   (discovery %[2]s/.well-known/openid-configuration)
  OIDC client:   %[3]s, redirect URI %[4]s (ChartGuard's, not served yet)

Demo users (passwords are new on every start):
`, fhirBase, idp.Issuer, idp.ClientID, idp.RedirectURL, fhirserver.DefaultPatients)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  ROLE\tEMAIL\tPASSWORD\tFHIR USER")
	for _, u := range idp.Users {
		fhirUser := u.FHIRUser
		if fhirUser == "" {
			fhirUser = "-"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", u.Role, u.Email, u.Password, fhirUser)
	}
	_ = tw.Flush()
	fmt.Fprintf(w, `
Not there yet: ChartGuard itself does not run in this demo yet, so browser
login through ChartGuard does not work. It comes with the rest of issue 4.
For now only the FHIR upstream and Dex run. Press Ctrl-C to stop.
`)
}
