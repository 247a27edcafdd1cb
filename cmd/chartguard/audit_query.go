package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"

	"github.com/chartguard/chartguard/audit"
	"github.com/chartguard/chartguard/proxy"
)

// addAuditQueryCommands adds search, report, tail and offline-access to
// the audit command. search, report and tail read the live log through
// the admin API (so the read is itself audited) or, with --dir, a copy of
// a log offline, which first records a signed offline-access note in it.
func addAuditQueryCommands(parent *cobra.Command, stdout, stderr io.Writer) {
	parent.AddCommand(newAuditSearch(stdout), newAuditReport(stdout), newAuditTail(stdout), newAuditOfflineAccess(stdout))
}

// sourceFlags choose where a query runs: the admin API or --dir copies.
type sourceFlags struct {
	adminURL, tokenFile, config, auditor string
	dirs, keys                           []string
	indexDir, offlineReason, offlineKey  string
	unverified, reindex                  bool
}

func (f *sourceFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.adminURL, "admin-url", "", "admin API base URL (e.g. http://127.0.0.1:9090)")
	fl.StringVar(&f.tokenFile, "token-file", "", "file holding the admin token")
	fl.StringVarP(&f.config, "config", "c", "", "config file: admin.listen and admin.token_file give --admin-url and --token-file")
	fl.StringVar(&f.auditor, "auditor", "", "your name, recorded with the query (default: your OS user name)")
	fl.StringArrayVar(&f.dirs, "dir", nil, "offline: a COPY of a log directory (repeat for each replica)")
	fl.StringArrayVar(&f.keys, "key", nil, "offline: checkpoint verifier key file (repeat for several nodes)")
	fl.StringVar(&f.indexDir, "index-dir", "", "offline: index cache directory (default: the user cache dir)")
	fl.StringVar(&f.offlineReason, "offline-reason", "", "offline: why you read the log outside the node (required with --dir)")
	fl.StringVar(&f.offlineKey, "offline-key", "", "offline: your note signer key file; signs the offline-access record (required with --dir)")
	fl.BoolVar(&f.unverified, "insecure-unverified", false, "offline: read without --key (nothing is verified; the output says so)")
	fl.BoolVar(&f.reindex, "reindex", false, "offline: drop the index first, so every record is verified again")
}

func (f *sourceFlags) offline() bool { return len(f.dirs) > 0 }

// validate checks the flag combination before anything is read (exit 2).
func (f *sourceFlags) validate() error {
	if !f.offline() {
		if f.adminURL == "" && f.config == "" {
			return usageErr(errors.New("--admin-url with --token-file, -c CONFIG, or --dir DIR (offline): one is required"))
		}
		if f.offlineReason != "" || f.offlineKey != "" || len(f.keys) > 0 || f.reindex || f.indexDir != "" {
			return usageErr(errors.New("--offline-reason, --offline-key, --key, --index-dir and --reindex go with --dir"))
		}
		return nil
	}
	if f.adminURL != "" || f.config != "" {
		return usageErr(errors.New("--dir reads a copy offline; it does not go with --admin-url or -c"))
	}
	if strings.TrimSpace(f.offlineReason) == "" {
		return usageErr(errors.New("--offline-reason: required with --dir (it is recorded, signed, in the copied directory)"))
	}
	if f.offlineKey == "" {
		return usageErr(errors.New("--offline-key: required with --dir (your note signer key; `chartguard audit keygen` makes one)"))
	}
	if len(f.keys) == 0 && !f.unverified {
		return usageErr(errors.New("--key: required with --dir (the nodes' checkpoint verifier keys), or --insecure-unverified"))
	}
	return nil
}

func (f *sourceFlags) who() string {
	if f.auditor != "" {
		return f.auditor
	}
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return "unknown"
}

// openOffline records the offline access in every --dir, then opens a
// Searcher over them. Nothing is read before every record is written.
func (f *sourceFlags) openOffline(ctx context.Context, query string) (*audit.Searcher, error) {
	srcs, err := f.recordOffline(query)
	if err != nil {
		return nil, err
	}
	idx := f.indexDir
	if idx == "" {
		idx = audit.DefaultIndexDir()
	}
	for _, d := range f.dirs {
		if f.reindex {
			if err := audit.ResetIndex(idx, d); err != nil {
				return nil, runtimeErr(err)
			}
		}
	}
	s, err := audit.OpenSearcher(ctx, idx, srcs)
	if err != nil {
		return nil, queryErr(err)
	}
	return s, nil
}

// recordOffline writes the signed offline-access record into every --dir
// and returns the sources, each with the verifier of its checkpoints.
func (f *sourceFlags) recordOffline(query string) ([]audit.Source, error) {
	signer, err := audit.LoadSignerFile(f.offlineKey)
	if err != nil {
		return nil, usageErr(fmt.Errorf("--offline-key: %w", err))
	}
	var vs []note.Verifier
	for _, k := range f.keys {
		v, err := audit.LoadVerifierFile(k)
		if err != nil {
			return nil, usageErr(err)
		}
		vs = append(vs, v)
	}
	rec := audit.OfflineAccess{Who: f.who(), When: time.Now(), Reason: f.offlineReason, Query: query}
	var srcs []audit.Source
	for _, d := range f.dirs {
		if _, err := audit.WriteOfflineAccess(d, rec, signer); err != nil {
			if errors.Is(err, audit.ErrBadQuery) {
				return nil, usageErr(err)
			}
			return nil, runtimeErr(fmt.Errorf("%s: %w (no access without the record)", d, err))
		}
		src := audit.Source{Dir: d}
		if len(vs) > 0 {
			if src.Verifier, err = audit.PickVerifier(d, vs); err != nil {
				return nil, queryErr(err)
			}
		}
		srcs = append(srcs, src)
	}
	return srcs, nil
}

// queryErr maps an audit error to an exit code: 3 tampered, 2 bad query.
func queryErr(err error) error {
	switch {
	case errors.Is(err, audit.ErrTampered):
		return verifyErr(err)
	case errors.Is(err, audit.ErrBadQuery):
		return usageErr(err)
	}
	return runtimeErr(err)
}

// admin calls GET path?params on the admin API and streams the answer to
// w. The server writes its audit_access event before answering.
func (f *sourceFlags) admin(ctx context.Context, w io.Writer, path string, params url.Values) error {
	base, token, err := f.adminTarget()
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+path+"?"+params.Encode(), nil)
	if err != nil {
		return usageErr(fmt.Errorf("--admin-url: %w", err))
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set(proxy.AuditorHeader, f.who())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return runtimeErr(fmt.Errorf("admin API: %w", err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		err := fmt.Errorf("admin API: %s: %s", resp.Status, strings.TrimSpace(string(msg)))
		switch resp.StatusCode {
		case http.StatusBadRequest, http.StatusUnauthorized:
			return usageErr(err)
		case proxy.StatusVerificationFailed:
			return verifyErr(err)
		}
		return runtimeErr(err)
	}
	if _, err := io.Copy(w, resp.Body); err != nil && ctx.Err() == nil {
		return runtimeErr(fmt.Errorf("admin API: answer cut short: %w", err))
	}
	return nil
}

// adminTarget resolves the admin URL and token from the flags or -c.
func (f *sourceFlags) adminTarget() (string, string, error) {
	base, tokenFile := f.adminURL, f.tokenFile
	if f.config != "" {
		cfg, err := proxy.LoadConfig(f.config)
		if err != nil {
			return "", "", usageErr(err)
		}
		if base == "" {
			host, port, err := net.SplitHostPort(cfg.Admin.Listen)
			if err != nil {
				return "", "", usageErr(fmt.Errorf("admin.listen: %w", err))
			}
			if host == "" || host == "0.0.0.0" || host == "::" {
				host = "127.0.0.1"
			}
			base = "http://" + net.JoinHostPort(host, port)
		}
		if tokenFile == "" {
			tokenFile = cfg.Admin.TokenFile
		}
	}
	if tokenFile == "" {
		return "", "", usageErr(errors.New("--token-file: required with --admin-url"))
	}
	tok, err := proxy.ReadSecretFile("--token-file", tokenFile)
	if err != nil {
		return "", "", usageErr(err)
	}
	return base, tok, nil
}

// rangeFlags are the shared time range flags.
type rangeFlags struct{ from, to, tz string }

func (r *rangeFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&r.from, "from", "", "start: 2006-01-02 (midnight in --tz), 2006-01-02T15:04 or RFC 3339")
	cmd.Flags().StringVar(&r.to, "to", "", "end, inclusive: a date includes that whole day in --tz")
	cmd.Flags().StringVar(&r.tz, "tz", "UTC", "IANA time zone for dates without a zone and for display")
}

func (r *rangeFlags) parse() (time.Time, time.Time, *time.Location, error) {
	loc, err := time.LoadLocation(r.tz)
	if err != nil {
		return time.Time{}, time.Time{}, nil, usageErr(fmt.Errorf("--tz: unknown time zone %q", r.tz))
	}
	from, to, err := audit.ParseRange(r.from, r.to, loc)
	if err != nil {
		return time.Time{}, time.Time{}, nil, usageErr(err)
	}
	return from, to, loc, nil
}

func (r *rangeFlags) params(v url.Values) {
	for k, s := range map[string]string{"from": r.from, "to": r.to, "tz": r.tz} {
		if s != "" {
			v.Set(k, s)
		}
	}
}

func newAuditSearch(stdout io.Writer) *cobra.Command {
	var src sourceFlags
	var rng rangeFlags
	var q audit.Query
	cmd := &cobra.Command{
		Use:   "search",
		Short: "Search the audit log (JSON lines: the checkpoints verified against, then the events)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := src.validate(); err != nil {
				return err
			}
			var err error
			if q.From, q.To, _, err = rng.parse(); err != nil {
				return err
			}
			if err := q.Validate(); err != nil {
				return usageErr(err)
			}
			v := url.Values{}
			for k, s := range map[string]string{"user": q.Subject, "issuer": q.Issuer, "patient": q.Patient,
				"action": q.Action, "outcome": q.Outcome} {
				if s != "" {
					v.Set(k, s)
				}
			}
			rng.params(v)
			if q.IncludeStatic {
				v.Set("include_static", "true")
			}
			if q.Limit > 0 {
				v.Set("limit", strconv.Itoa(q.Limit))
			}
			if !src.offline() {
				return src.admin(cmd.Context(), stdout, "/admin/audit/search", v)
			}
			s, err := src.openOffline(cmd.Context(), "search "+v.Encode())
			if err != nil {
				return err
			}
			defer s.Close()
			if err := audit.WriteSearch(cmd.Context(), stdout, s, q); err != nil {
				return queryErr(err)
			}
			return nil
		},
	}
	src.register(cmd)
	rng.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&q.Subject, "user", "", "user subject (sub)")
	fl.StringVar(&q.Issuer, "issuer", "", "user issuer (iss), with --user")
	fl.StringVar(&q.Patient, "patient", "", "patient id (results are reduced to this patient)")
	fl.StringVar(&q.Action, "action", "", "action (read, search, login, break_glass, audit_access, …)")
	fl.StringVar(&q.Outcome, "outcome", "", "outcome (allowed, denied, blocked, error)")
	fl.BoolVar(&q.IncludeStatic, "include-static", false, "include static-asset requests")
	fl.IntVar(&q.Limit, "limit", 0, "stop after N events (0: no limit)")
	return cmd
}

func newAuditReport(stdout io.Writer) *cobra.Command {
	var src sourceFlags
	var rng rangeFlags
	var req audit.ReportRequest
	cmd := &cobra.Command{
		Use:   "report --patient ID",
		Short: "Patient access report: who accessed this patient's record, when, what and why",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := src.validate(); err != nil {
				return err
			}
			var err error
			if req.From, req.To, req.Location, err = rng.parse(); err != nil {
				return err
			}
			if err := req.Validate(); err != nil {
				return usageErr(err)
			}
			v := url.Values{"patient": {req.Patient}, "format": {req.Format}}
			rng.params(v)
			if req.IncludeStatic {
				v.Set("include_static", "true")
			}
			if !src.offline() {
				return src.admin(cmd.Context(), stdout, "/admin/audit/report", v)
			}
			s, err := src.openOffline(cmd.Context(), "report "+v.Encode())
			if err != nil {
				return err
			}
			defer s.Close()
			if err := audit.WriteReport(cmd.Context(), stdout, s, req); err != nil {
				return queryErr(err)
			}
			return nil
		},
	}
	src.register(cmd)
	rng.register(cmd)
	cmd.Flags().StringVar(&req.Patient, "patient", "", "patient id (required)")
	cmd.Flags().StringVar(&req.Format, "format", "text", "text, json, csv or fhir (a Bundle of AuditEvent)")
	cmd.Flags().BoolVar(&req.IncludeStatic, "include-static", false, "include static-asset requests")
	_ = cmd.MarkFlagRequired("patient")
	return cmd
}

func newAuditTail(stdout io.Writer) *cobra.Command {
	var src sourceFlags
	var last uint64
	cmd := &cobra.Command{
		Use:   "tail",
		Short: "Follow the audit log, printing each record once a signed checkpoint covers it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := src.validate(); err != nil {
				return err
			}
			if len(src.dirs) > 1 {
				return usageErr(errors.New("--dir: tail follows one log"))
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			v := url.Values{"last": {strconv.FormatUint(last, 10)}}
			if !src.offline() {
				return src.admin(ctx, stdout, "/admin/audit/tail", v)
			}
			s, err := src.openOffline(ctx, "tail "+v.Encode())
			if err != nil {
				return err
			}
			pos, err := s.TailStart(last)
			_ = s.Close()
			if err != nil {
				return queryErr(err)
			}
			err = audit.Tail(ctx, pos, audit.TailOptions{}, func(line []byte) error {
				_, err := stdout.Write(line)
				return err
			})
			if err != nil {
				return queryErr(err)
			}
			return nil
		},
	}
	src.register(cmd)
	cmd.Flags().Uint64Var(&last, "last", 10, "start with the last N verified records")
	return cmd
}

func newAuditOfflineAccess(stdout io.Writer) *cobra.Command {
	var keys []string
	cmd := &cobra.Command{
		Use:   "offline-access DIR",
		Short: "List the signed offline-access records in a log copy (who read it with --dir, when, why)",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			var vs []note.Verifier
			for _, k := range keys {
				v, err := audit.LoadVerifierFile(k)
				if err != nil {
					return usageErr(err)
				}
				vs = append(vs, v)
			}
			recs, err := audit.ReadOfflineAccess(args[0], vs...)
			if err != nil {
				return queryErr(err)
			}
			printOfflineAccess(stdout, "", recs)
			fmt.Fprintf(stdout, "%d offline access records\n", len(recs))
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&keys, "key", nil, "auditors' note verifier key files; every record must verify with one")
	return cmd
}

// printOfflineAccess prints offline-access records, each line prefixed
// with prefix.
func printOfflineAccess(w io.Writer, prefix string, recs []audit.OfflineAccess) {
	for _, r := range recs {
		status := "signature NOT checked (give audit offline-access --key)"
		if r.Verified {
			status = "signature verified"
		}
		fmt.Fprintf(w, "%s%s  %s  key %s (%s)\n%s  reason: %s\n%s  query:  %s\n", prefix,
			r.When.UTC().Format(time.RFC3339), r.Who, r.KeyName, status, prefix, r.Reason, prefix, r.Query)
	}
}
