package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"

	"github.com/chartguard/chartguard/audit"
	"github.com/chartguard/chartguard/proxy"
)

// exitVerify is the exit code for a failed verification (DESIGN.md).
const exitVerify = 3

func verifyErr(err error) error { return &exitError{exitVerify, err} }

// newAudit is the `audit` command. verify, verify-proof, prove and keygen
// live here; search, report and tail are added by addAuditQueryCommands
// (audit_query.go).
func newAudit(stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Verify, prove and query the audit log"}
	cmd.AddCommand(newAuditVerify(stdout), newAuditProve(stdout), newAuditVerifyProof(stdout), newAuditKeygen(stdout))
	addAuditQueryCommands(cmd, stdout, stderr)
	return cmd
}

// keyFlags selects the checkpoint verifier: --key files or the signing
// key of the config given with -c.
type keyFlags struct {
	keys   []string
	config string
}

func (k *keyFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringArrayVar(&k.keys, "key", nil, "file with a note verifier key (repeat for several nodes)")
	cmd.Flags().StringVarP(&k.config, "config", "c", "", "config file whose audit.signing_key_file gives the key")
}

func (k *keyFlags) verifiers() ([]note.Verifier, error) {
	var vs []note.Verifier
	for _, f := range k.keys {
		v, err := audit.LoadVerifierFile(f)
		if err != nil {
			return nil, usageErr(err)
		}
		vs = append(vs, v)
	}
	if k.config != "" {
		cfg, err := proxy.LoadConfig(k.config)
		if err != nil {
			return nil, usageErr(err)
		}
		if cfg.Audit.SigningKeyFile == "" {
			return nil, usageErr(errors.New("audit.signing_key_file: not set in the config; use --key"))
		}
		raw, err := os.ReadFile(cfg.Audit.SigningKeyFile)
		if err != nil {
			return nil, usageErr(fmt.Errorf("audit.signing_key_file: %w", err))
		}
		vkey, err := audit.VerifierFromSignerKey(string(raw))
		if err != nil {
			return nil, usageErr(fmt.Errorf("audit.signing_key_file: %w", err))
		}
		v, err := note.NewVerifier(vkey)
		if err != nil {
			return nil, usageErr(err)
		}
		vs = append(vs, v)
	}
	if len(vs) == 0 {
		return nil, usageErr(errors.New("--key FILE or -c CONFIG: required (the public key printed by `chartguard audit keygen`)"))
	}
	return vs, nil
}

// multiVerifier tries each key: nodes may have their own.
type multiVerifier []note.Verifier

// pick returns the verifier whose name matches the checkpoint note's
// signature, or the first.
func (m multiVerifier) pick(msg []byte) note.Verifier {
	for _, v := range m {
		if _, err := note.Open(msg, note.VerifierList(v)); err == nil {
			return v
		}
	}
	return m[0]
}

func newAuditVerify(stdout io.Writer) *cobra.Command {
	var keys keyFlags
	var trusted []string
	cmd := &cobra.Command{
		Use:   "verify DIR...",
		Short: "Verify audit log directories (one per replica); exit 3 on any tampering",
		Long: "Checks every record, the Merkle tree, every checkpoint signature and that successive\n" +
			"checkpoints agree; prints the first bad index. --checkpoint adds an off-box checkpoint\n" +
			"(a signed note, or the JSON line from the stdout sink) the log must reach.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, dirs []string) error {
			vs, err := keys.verifiers()
			if err != nil {
				return err
			}
			extra, err := readTrusted(trusted)
			if err != nil {
				return err
			}
			failed := 0
			for _, dir := range dirs {
				if err := verifyOne(cmd, stdout, dir, multiVerifier(vs), extra); err != nil {
					var te *audit.TamperError
					if !errors.As(err, &te) && !errors.Is(err, audit.ErrTampered) {
						return runtimeErr(fmt.Errorf("%s: %w", dir, err))
					}
					fmt.Fprintf(stdout, "%s: FAILED: %v\n", dir, err)
					failed++
				}
			}
			if failed > 0 {
				return verifyErr(fmt.Errorf("%d of %d logs failed verification", failed, len(dirs)))
			}
			return nil
		},
	}
	keys.register(cmd)
	cmd.Flags().StringArrayVar(&trusted, "checkpoint", nil, "off-box checkpoint file the log must be consistent with (repeatable)")
	return cmd
}

// verifyOne verifies dir against its own checkpoints and the trusted ones
// of the same origin.
func verifyOne(cmd *cobra.Command, stdout io.Writer, dir string, vs multiVerifier, trusted [][]byte) error {
	v := vs[0]
	if cp := latestNote(dir); cp != nil {
		v = vs.pick(cp)
	}
	var mine [][]byte
	for _, t := range trusted {
		c, err := audit.OpenCheckpoint(t, vs.pick(t))
		if err != nil {
			return fmt.Errorf("%w: --checkpoint: %w", audit.ErrTampered, err)
		}
		if cp := latestNote(dir); cp == nil || checkpointOrigin(cp) == c.Origin {
			mine = append(mine, t)
		}
	}
	opts := audit.VerifyOptions{Verifier: v}
	var res audit.Verified
	var err error
	if len(mine) == 0 {
		res, err = audit.Verify(cmd.Context(), dir, opts)
	}
	for _, t := range mine {
		opts.Trusted = t
		if res, err = audit.Verify(cmd.Context(), dir, opts); err != nil {
			break
		}
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: ok: %s: %d records (from %d), checkpoint size %d, root %s\n",
		dir, res.Origin, res.Size, res.First, res.Checkpointed, res.Root)
	if res.Size > res.Checkpointed {
		fmt.Fprintf(stdout, "%s: note: records %d to %d are not covered by a checkpoint yet (matched against stored hashes only)\n",
			dir, res.Checkpointed, res.Size-1)
	}
	// A copy read offline with --dir carries who read it and why.
	recs, err := audit.ReadOfflineAccess(dir)
	if err != nil {
		return fmt.Errorf("offline-access records: %w", err)
	}
	if len(recs) > 0 {
		fmt.Fprintf(stdout, "%s: this is a copy read offline %d times:\n", dir, len(recs))
		printOfflineAccess(stdout, "  ", recs)
	}
	return nil
}

// latestNote returns the newest checkpoint note in dir, or nil.
func latestNote(dir string) []byte {
	raw, err := os.ReadFile(dir + string(os.PathSeparator) + "checkpoints")
	if err != nil {
		return nil
	}
	var last []byte
	for line := range bytes.Lines(raw) {
		if n, ok := checkpointFromJSON(line); ok {
			last = n
		}
	}
	return last
}

func checkpointOrigin(msg []byte) string {
	origin, _, _ := strings.Cut(string(msg), "\n")
	return origin
}

// checkpointFromJSON extracts the note from a {"kind":"checkpoint"} line.
func checkpointFromJSON(line []byte) ([]byte, bool) {
	var ll struct {
		Kind       string `json:"kind"`
		Checkpoint string `json:"checkpoint"`
	}
	if json.Unmarshal(line, &ll) != nil || ll.Kind != "checkpoint" || ll.Checkpoint == "" {
		return nil, false
	}
	return []byte(ll.Checkpoint), true
}

// readTrusted reads --checkpoint files: a signed note, or JSON lines from
// the stdout sink (the last checkpoint line counts).
func readTrusted(files []string) ([][]byte, error) {
	var out [][]byte
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return nil, usageErr(fmt.Errorf("--checkpoint: %w", err))
		}
		if bytes.HasPrefix(bytes.TrimSpace(raw), []byte("{")) {
			var last []byte
			for line := range bytes.Lines(raw) {
				if n, ok := checkpointFromJSON(line); ok {
					last = n
				}
			}
			if last == nil {
				return nil, usageErr(fmt.Errorf("--checkpoint: %s holds no checkpoint line", f))
			}
			raw = last
		}
		out = append(out, raw)
	}
	return out, nil
}

func newAuditProve(stdout io.Writer) *cobra.Command {
	var index uint64
	var src sourceFlags // as the query commands: live through the admin API, or --dir offline
	cmd := &cobra.Command{
		Use:   "prove --index N (-c CONFIG | --admin-url URL --token-file F | --dir DIR --offline-reason R --offline-key K --key NODE.pub)",
		Short: "Print an inclusion proof of record N against the latest checkpoint",
		Long: "Asks the live node through the admin API (the read is audited), or works offline\n" +
			"on a copy of one log directory (--dir), recording who read it and why in the copy first.\n" +
			"The proof is self-contained JSON; `chartguard audit verify-proof FILE --key K` checks it\n" +
			"without the log.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := src.validate(); err != nil {
				return err
			}
			if !src.offline() {
				return src.admin(cmd.Context(), stdout, "/admin/audit/prove", url.Values{"index": {strconv.FormatUint(index, 10)}})
			}
			if len(src.dirs) != 1 {
				return usageErr(errors.New("--dir: prove reads one log directory"))
			}
			if _, err := src.recordOffline(fmt.Sprintf("prove index=%d", index)); err != nil {
				return err
			}
			p, err := audit.Prove(src.dirs[0], index)
			if errors.Is(err, audit.ErrTampered) {
				return verifyErr(err)
			}
			if err != nil {
				return runtimeErr(err)
			}
			_, err = stdout.Write(p)
			return err
		},
	}
	cmd.Flags().Uint64Var(&index, "index", 0, "record index (its seq)")
	src.register(cmd)
	_ = cmd.MarkFlagRequired("index")
	return cmd
}

func newAuditVerifyProof(stdout io.Writer) *cobra.Command {
	var keys keyFlags
	cmd := &cobra.Command{
		Use:   "verify-proof FILE",
		Short: "Check an inclusion proof without the log (FILE - reads stdin); exit 3 if it fails",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			vs, err := keys.verifiers()
			if err != nil {
				return err
			}
			var raw []byte
			if args[0] == "-" {
				raw, err = io.ReadAll(cmd.InOrStdin())
			} else {
				raw, err = os.ReadFile(args[0])
			}
			if err != nil {
				return usageErr(err)
			}
			var cp struct {
				Checkpoint string `json:"checkpoint"`
			}
			_ = json.Unmarshal(raw, &cp)
			rec, err := audit.VerifyProof(raw, multiVerifier(vs).pick([]byte(cp.Checkpoint)))
			if err != nil {
				return verifyErr(err)
			}
			fmt.Fprintf(stdout, "ok: record %d is in %s at tree size %d\n%s\n", rec.Index, rec.Origin, rec.Size, rec.Line)
			return nil
		},
	}
	keys.register(cmd)
	return cmd
}

func newAuditKeygen(stdout io.Writer) *cobra.Command {
	var name, out string
	cmd := &cobra.Command{
		Use:   "keygen --name NAME --out FILE",
		Short: "Create a checkpoint signing key (FILE, mode 0600) and its public key (FILE.pub)",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if strings.ContainsAny(name, " +\t\n") || name == "" {
				return usageErr(errors.New("--name: a key name without spaces or '+', e.g. emr.example.org/audit/proxy-1"))
			}
			skey, vkey, err := audit.GenerateKey(name)
			if err != nil {
				return runtimeErr(err)
			}
			f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return usageErr(fmt.Errorf("--out: %w (an existing key is never overwritten)", err))
			}
			_, err = fmt.Fprintln(f, skey)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return runtimeErr(err)
			}
			if err := os.WriteFile(out+".pub", []byte(vkey+"\n"), 0o644); err != nil { //nolint:gosec // a public key
				return runtimeErr(err)
			}
			fmt.Fprintf(stdout, "signing key: %s\npublic key (for audit verify --key): %s.pub\n%s\n", out, out, vkey)
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "key name, e.g. the log origin <public_url host>/audit/<node_id>")
	cmd.Flags().StringVar(&out, "out", "", "signing key file to create")
	_ = cmd.MarkFlagRequired("name")
	_ = cmd.MarkFlagRequired("out")
	return cmd
}
