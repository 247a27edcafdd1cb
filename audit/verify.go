package audit

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// ErrTampered means a log, checkpoint or proof failed verification.
var ErrTampered = errors.New("audit: verification failed")

// TamperError says where verification failed. For a record (edited,
// deleted, inserted, reordered, missing) Index is that record's index.
// For a checkpoint the records contradict (a forged log re-hashed
// without the key, a split view, a bad signature), Index is the first
// record no earlier checkpoint vouches for: the damage lies at or after it.
// For a truncation, Index is the first missing record.
type TamperError struct {
	Index  int64
	Reason string
}

func (e *TamperError) Error() string {
	return fmt.Sprintf("%v at index %d: %s", ErrTampered, e.Index, e.Reason)
}

func (e *TamperError) Unwrap() error { return ErrTampered }

func tampered(index int64, format string, args ...any) error {
	return &TamperError{Index: index, Reason: fmt.Sprintf(format, args...)}
}

// VerifyOptions configures [Verify].
type VerifyOptions struct {
	// Verifier is the note verifier for the node's checkpoint key (from a
	// public key file, golang.org/x/mod/sumdb/note). Required.
	Verifier note.Verifier
	// Trusted, if set, is an off-box checkpoint (signed note) the log must
	// be consistent with: it catches a log rewritten together with its
	// checkpoints file, or cut back behind its last local checkpoint.
	Trusted []byte
}

// Verified describes a log that passed [Verify].
type Verified struct {
	Origin string
	// Size is the number of records verified, including those after the
	// last checkpoint (matched against their stored hashes only).
	Size uint64
	// First is the first record present (earlier ones were removed by
	// retention, which a signed retention note records).
	First uint64
	// Checkpointed is the size of the latest checkpoint verified.
	Checkpointed uint64
	// Checkpoint is that checkpoint's signed note.
	Checkpoint []byte
	Root       tlog.Hash
}

// signedCheckpoint is a checkpoint and its note.
type signedCheckpoint struct {
	Checkpoint
	note string
}

// Verify checks one log directory: every checkpoint's signature, that the
// checkpoints only grow and agree with each other, every record's seq,
// every record against the stored tree hashes, every checkpoint's root
// against the tree, that missing segments were removed by a signed
// retention note, and that the records reach every checkpoint (and
// opts.Trusted). Successive checkpoints are roots of one tree, so they are
// consistent. It returns a [*TamperError] (wrapping [ErrTampered]) at the
// first failure, other errors when the directory cannot be read.
func Verify(ctx context.Context, dir string, opts VerifyOptions) (Verified, error) {
	if opts.Verifier == nil {
		return Verified{}, errors.New("audit: verify: no verifier key")
	}
	cps, retained, err := loadCheckpoints(dir, opts)
	if err != nil {
		return Verified{}, err
	}
	segs, err := listSegments(dir)
	if err != nil {
		return Verified{}, err
	}
	first := int64(0)
	if len(segs) > 0 {
		first = int64(segs[0].first)
	} else if len(cps) > 0 {
		first = cps[len(cps)-1].Size
	}
	if first > retained {
		return Verified{}, tampered(retained, "records %d to %d are missing and no signed retention note removed them", retained, first-1)
	}
	v := &verifier{cps: cps}
	if err := v.openHashes(dir, first); err != nil {
		return Verified{}, err
	}
	defer v.hs.f.Close()
	if err := v.records(ctx, segs, first); err != nil {
		return Verified{}, err
	}
	out := Verified{Size: uint64(v.n), First: uint64(first)}
	if len(cps) > 0 {
		last := cps[len(cps)-1]
		out.Origin, out.Checkpointed, out.Checkpoint, out.Root = last.Origin, uint64(last.Size), []byte(last.note), last.Root
	}
	return out, nil
}

// loadCheckpoints reads and checks the signed notes of dir (plus the
// trusted one) and returns the checkpoints in size order and the first
// record retention kept.
func loadCheckpoints(dir string, opts VerifyOptions) ([]signedCheckpoint, int64, error) {
	lines, _, err := readLogLines(dir)
	if errors.Is(err, ErrCorrupt) {
		return nil, 0, tampered(0, "%v", err)
	}
	if err != nil {
		return nil, 0, err
	}
	var cps []signedCheckpoint
	var retained int64
	var rns []retentionNote
	for i, ll := range lines {
		switch ll.Kind {
		case kindCheckpoint:
			cp, err := OpenCheckpoint([]byte(ll.Checkpoint), opts.Verifier)
			if err != nil {
				return nil, 0, tampered(lastSize(cps), "checkpoints line %d: %v", i+1, err)
			}
			if len(cps) > 0 {
				prev := cps[len(cps)-1]
				switch {
				case cp.Origin != prev.Origin:
					return nil, 0, tampered(prev.Size, "checkpoints line %d: origin %q, earlier ones %q", i+1, cp.Origin, prev.Origin)
				case cp.Size < prev.Size:
					return nil, 0, tampered(cp.Size, "checkpoints line %d: size %d after a checkpoint of size %d", i+1, cp.Size, prev.Size)
				case cp.Size == prev.Size && cp.Root != prev.Root:
					return nil, 0, tampered(prev.Size, "checkpoints line %d: two checkpoints of size %d with different roots (split view)", i+1, cp.Size)
				}
			}
			cps = append(cps, signedCheckpoint{cp, ll.Checkpoint})
		case kindRetention:
			n, err := note.Open([]byte(ll.Note), note.VerifierList(opts.Verifier))
			if err != nil {
				return nil, 0, tampered(retained, "checkpoints line %d: retention note: %v", i+1, err)
			}
			rn, err := parseRetentionNote(n.Text)
			if err != nil {
				return nil, 0, tampered(retained, "checkpoints line %d: %v", i+1, err)
			}
			rns = append(rns, rn)
		default:
			return nil, 0, tampered(lastSize(cps), "checkpoints line %d: unknown kind %q", i+1, ll.Kind)
		}
	}
	// A retention note names its log: one of another origin signed with
	// the same key (replicas sharing signing_key_file) justifies nothing.
	for _, rn := range rns {
		if len(cps) == 0 || rn.Origin != cps[0].Origin {
			return nil, 0, tampered(0, "retention note of origin %q does not belong to this log", rn.Origin)
		}
		retained = max(retained, rn.First)
	}
	if opts.Trusted != nil {
		tc, err := OpenCheckpoint(opts.Trusted, opts.Verifier)
		if err != nil {
			return nil, 0, tampered(0, "trusted checkpoint: %v", err)
		}
		if len(cps) > 0 && tc.Origin != cps[0].Origin {
			return nil, 0, fmt.Errorf("audit: the trusted checkpoint is for %q, this log is %q", tc.Origin, cps[0].Origin)
		}
		cps = insertTrusted(cps, signedCheckpoint{tc, string(opts.Trusted)})
	}
	return cps, retained, nil
}

// insertTrusted places t among cps by size, keeping the local latest
// checkpoint last when sizes tie.
func insertTrusted(cps []signedCheckpoint, t signedCheckpoint) []signedCheckpoint {
	i := len(cps)
	for i > 0 && cps[i-1].Size > t.Size {
		i--
	}
	out := append(cps[:i:i], t)
	return append(out, cps[i:]...)
}

func lastSize(cps []signedCheckpoint) int64 {
	if len(cps) == 0 {
		return 0
	}
	return cps[len(cps)-1].Size
}

// verifier walks the records once, recomputing the tree.
type verifier struct {
	cps      []signedCheckpoint
	next     int // next checkpoint to check
	lastGood int64
	hs       *hashStore
	stored   *bufio.Reader // the hashes file from the first present leaf
	short    bool          // the hashes file ended early (a crash before restart)
	n        int64         // records verified
}

// openHashes opens the hashes file: the hashes of records removed by
// retention are read from it (the checkpoints vouch for them), the rest
// is compared with what the records give.
func (v *verifier) openHashes(dir string, first int64) error {
	f, err := os.Open(filepath.Join(dir, hashesName))
	if errors.Is(err, os.ErrNotExist) && first == 0 {
		f, err = os.Open(os.DevNull)
	}
	if err != nil {
		return fmt.Errorf("audit: open hashes: %w", err)
	}
	info, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return fmt.Errorf("audit: stat hashes: %w", err)
	}
	have, base := info.Size()/tlog.HashSize, tlog.StoredHashCount(first)
	if have < base {
		_ = f.Close()
		return tampered(first, "the hashes of the %d records removed by retention are missing", first)
	}
	v.hs = &hashStore{f: f, durable: have, memBase: base}
	v.stored = bufio.NewReaderSize(io.NewSectionReader(f, base*tlog.HashSize, (have-base)*tlog.HashSize), 256<<10)
	v.n = first
	return v.checkDue()
}

// checkDue checks every checkpoint whose size the records have reached.
func (v *verifier) checkDue() error {
	for ; v.next < len(v.cps) && v.cps[v.next].Size <= v.n; v.next++ {
		cp := v.cps[v.next]
		root, err := tlog.TreeHash(cp.Size, v.hs)
		if err != nil {
			return tampered(v.lastGood, "checkpoint of size %d: %v", cp.Size, err)
		}
		if root != cp.Root {
			return tampered(v.lastGood, "the records do not match the signed checkpoint of size %d", cp.Size)
		}
		v.lastGood = cp.Size
	}
	return nil
}

func (v *verifier) records(ctx context.Context, segs []segmentInfo, first int64) error {
	var want [2 * 64]tlog.Hash
	for rl, err := range readLines(segs, uint64(first)) {
		if err != nil {
			return err
		}
		if int64(rl.Index) != v.n {
			return tampered(v.n, "record %d is missing (segment deleted or cut short)", v.n)
		}
		if v.n%4096 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		if seq, ok := recordSeq(rl.Line); !ok || seq != rl.Index {
			return tampered(v.n, "record in position %d has seq %s", v.n, seqText(rl.Line))
		}
		hs, err := tlog.StoredHashesForRecordHash(v.n, tlog.RecordHash(rl.Line), v.hs)
		if err != nil {
			return fmt.Errorf("audit: hashes: %w", err)
		}
		if err := v.compare(hs, want[:len(hs)]); err != nil {
			return err
		}
		v.hs.add(hs)
		v.n++
		if err := v.checkDue(); err != nil {
			return err
		}
	}
	if v.next < len(v.cps) {
		return tampered(v.n, "the log ends at %d records but a checkpoint covers %d", v.n, v.cps[v.next].Size)
	}
	if v.n > 0 && len(v.cps) == 0 {
		return tampered(0, "%d records and no signed checkpoint", v.n)
	}
	return nil
}

// compare checks the recomputed hashes of record v.n against the stored
// ones. Stored hashes may end early (hashes past the last checkpoint are
// not fsynced); from there on the recomputed ones are used.
func (v *verifier) compare(hs, buf []tlog.Hash) error {
	if v.short {
		return nil
	}
	for i := range buf {
		if _, err := io.ReadFull(v.stored, buf[i][:]); err != nil {
			v.short = true
			v.hs.durable = tlog.StoredHashCount(v.n) // nothing after this was compared
			return nil
		}
	}
	for i := range hs {
		if hs[i] != buf[i] {
			return tampered(v.n, "record %d does not match the tree's stored hashes", v.n)
		}
	}
	return nil
}

// recordSeq reads the seq field of a record line (see record.go: the
// first `,"seq":` is the field).
func recordSeq(line []byte) (uint64, bool) {
	if !bytes.HasPrefix(line, []byte(`{"v":`)) {
		return 0, false
	}
	i := bytes.Index(line, []byte(`,"seq":`))
	if i < 0 {
		return 0, false
	}
	rest := line[i+len(`,"seq":`):]
	j := 0
	for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
		j++
	}
	if j == 0 || j >= len(rest) || rest[j] != ',' || (rest[0] == '0' && j > 1) {
		return 0, false
	}
	seq, err := strconv.ParseUint(string(rest[:j]), 10, 64)
	return seq, err == nil
}

func seqText(line []byte) string {
	if seq, ok := recordSeq(line); ok {
		return strconv.FormatUint(seq, 10)
	}
	return "(unreadable)"
}
