// Command fhir-demo runs the development upstream for ChartGuard: an
// in-memory FHIR R4 server with synthetic patients and a development token
// issuer. Both listen on loopback only. It is DEVELOPMENT ONLY and never
// part of the chartguard binary.
//
// Usage:
//
//	go run ./examples/fhir-demo [-fhir-addr 127.0.0.1:8081] [-issuer-addr 127.0.0.1:8082] [-audience chartguard]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/chartguard/chartguard/examples/fhir-demo/devissuer"
	"github.com/chartguard/chartguard/examples/fhir-demo/fhirserver"
)

// Server timeouts. Security: slow-header clients cannot pin connections
// for long; the demo serves loopback only, so generous values are fine.
const (
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 120 * time.Second
	shutdownTimeout   = 5 * time.Second
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stderr, nil)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "fhir-demo:", err)
		os.Exit(1)
	}
}

var errUsage = errors.New("usage error")

// run starts both servers and blocks until ctx ends or a server fails.
// ready, if set, is called with the FHIR base URL and the issuer URL once
// both listen.
func run(ctx context.Context, args []string, stderr io.Writer, ready func(fhirBase, issuer string)) error {
	fs := flag.NewFlagSet("fhir-demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fhirAddr := fs.String("fhir-addr", "127.0.0.1:8081", "FHIR server listen address (loopback only)")
	issuerAddr := fs.String("issuer-addr", "127.0.0.1:8082", "token issuer listen address (loopback only)")
	audience := fs.String("audience", "chartguard", "aud claim of minted tokens")
	seed := fs.Int64("seed", fhirserver.DefaultSeed, "synthetic data seed")
	patients := fs.Int("patients", fhirserver.DefaultPatients, "number of synthetic patients")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments", errUsage)
	}
	logger := slog.New(slog.NewJSONHandler(stderr, nil))

	fhirLn, err := devissuer.ListenLoopback(*fhirAddr)
	if err != nil {
		return fmt.Errorf("-fhir-addr: %w", err)
	}
	defer fhirLn.Close()
	issLn, err := devissuer.ListenLoopback(*issuerAddr)
	if err != nil {
		return fmt.Errorf("-issuer-addr: %w", err)
	}
	defer issLn.Close()

	issuerURL := "http://" + issLn.Addr().String()
	iss, err := devissuer.New(devissuer.Options{Issuer: issuerURL, Audience: *audience})
	if err != nil {
		return err
	}
	fhirBase := "http://" + fhirLn.Addr().String() + fhirserver.DefaultBase
	fhir := fhirserver.New(fhirserver.Options{Seed: *seed, Patients: *patients})

	printBanner(stderr, fhirBase, issuerURL, *audience)
	if ready != nil {
		ready(fhirBase, issuerURL)
	}
	return serve(ctx, logger, map[net.Listener]http.Handler{fhirLn: fhir, issLn: iss})
}

// serve runs one http.Server per listener until ctx ends or one fails, then
// shuts all of them down.
func serve(ctx context.Context, logger *slog.Logger, handlers map[net.Listener]http.Handler) error {
	errc := make(chan error, len(handlers))
	var servers []*http.Server
	for ln, h := range handlers {
		srv := &http.Server{
			Handler:           h,
			ReadHeaderTimeout: readHeaderTimeout,
			IdleTimeout:       idleTimeout,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		}
		servers = append(servers, srv)
		go func() { errc <- srv.Serve(ln) }()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	for _, srv := range servers {
		if serr := srv.Shutdown(sctx); serr != nil && err == nil {
			err = serr
		}
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

func printBanner(w io.Writer, fhirBase, issuerURL, audience string) {
	fmt.Fprintf(w, `fhir-demo: DEVELOPMENT ONLY. The issuer mints a token for anyone who asks.
  FHIR base: %[1]s   (synthetic patients p1..pN, practitioners pr1..pr10)
  issuer:    %[2]s   (audience %[3]q; discovery %[2]s/.well-known/openid-configuration)

Mint a token and call the FHIR API through ChartGuard:
  TOKEN=$(curl -s -X POST '%[2]s/dev/token?role=physician&fhir_user=Practitioner/pr1' | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
  curl -H "Authorization: Bearer $TOKEN" "$CHARTGUARD_URL/fhir/Patient/p1"
`, fhirBase, issuerURL, audience)
}
