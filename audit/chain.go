package audit

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// chain turns the records into a verifiable log: it keeps the Merkle tree
// in step with the segments, signs checkpoints and applies retention. It is
// owned by the writer goroutine after New; unsigned is also read by the
// checkpoint age metric.
type chain struct {
	dir       string
	origin    string
	signer    note.Signer
	tree      *tree
	cpFile    *os.File
	every     int64
	retention time.Duration
	logger    *slog.Logger
	now       func() time.Time
	toSinks   func(line []byte) // copies a checkpoint line to the extra sinks
	// syncRecords makes the records durable before a checkpoint covers
	// them (a non-durable log does not fsync per batch).
	syncRecords func() error

	signed   atomic.Int64 // size of the last signed checkpoint
	haveCP   atomic.Bool
	unsigned atomic.Int64 // unix nanos of the oldest record no checkpoint covers; 0 if none
	cpFailed func()

	// Writer goroutine only.
	broken    error // a leaf could not be hashed: catch up before writing
	requested int64 // size of the last checkpoint handed to the checkpointer
}

// openChain recovers the tree of dir, whose records end before next: it
// opens every checkpoint and retention note with verifier (nil: re-sign
// with signer and compare, see resignVerifier), keeps the stored hashes a
// checkpoint covers, checks them against that checkpoint and recomputes
// the rest from the records, comparing them with the stored hashes still
// in the file.
//
// Security: the node signs whatever openChain accepts, so it refuses to
// start on anything that is not a crash's footprint: a checkpoint it
// cannot verify, a note of another origin, a record whose hash differs
// from the one stored when it was written, a record whose seq is not its
// position, or stored hashes for more records than a crash can take back
// (cut records). Accepted: someone who deletes the checkpoints and the
// hashes file together gets their edit signed; only an off-box checkpoint
// ([VerifyOptions.Trusted]) catches that.
func openChain(dir string, next uint64, signer note.Signer, verifier note.Verifier, origin string) (*chain, error) {
	lines, end, err := readLogLines(dir)
	if err != nil {
		return nil, err
	}
	if verifier == nil {
		verifier = resignVerifier{signer}
	}
	c := &chain{dir: dir, origin: origin, signer: signer, logger: slog.New(slog.DiscardHandler), now: time.Now,
		toSinks: func([]byte) {}, syncRecords: func() error { return nil }, cpFailed: func() {}}
	last, err := checkNotes(lines, verifier, origin)
	if err != nil {
		return nil, err
	}
	c.haveCP.Store(last != nil)
	var keep int64
	if last != nil {
		keep = last.Size
	}
	if keep > int64(next) {
		return nil, fmt.Errorf("%w: the last checkpoint covers %d records, the segments hold %d", ErrCorrupt, keep, next)
	}
	if c.cpFile, err = os.OpenFile(filepath.Join(dir, checkpointsName), os.O_RDWR|os.O_CREATE, 0o600); err != nil {
		return nil, fmt.Errorf("audit: open checkpoints: %w", err)
	}
	if err := c.cpFile.Truncate(end); err != nil { // a partial line from a crash
		_ = c.cpFile.Close()
		return nil, fmt.Errorf("audit: trim checkpoints: %w", err)
	}
	if c.tree, err = openTree(dir, keep); err != nil {
		_ = c.cpFile.Close()
		return nil, err
	}
	c.signed.Store(keep)
	c.requested = keep
	if last != nil {
		root, err := c.tree.root()
		if err != nil || root != last.Root {
			c.close()
			return nil, fmt.Errorf("%w: stored hashes do not match the last checkpoint (size %d); run `chartguard audit verify`", ErrCorrupt, keep)
		}
	}
	// A crash can leave stored hashes for at most the record it cut short
	// (hashes are written after their records): more means records were cut.
	if c.tree.stored > tlog.StoredHashCount(int64(next)+1) {
		c.close()
		return nil, fmt.Errorf("%w: the hashes file covers more records than the segments hold (%d); "+
			"records were removed: run `chartguard audit verify`", ErrCorrupt, next)
	}
	if err := c.catchUp(next); err != nil {
		c.close()
		return nil, err
	}
	if err := c.tree.dropStale(); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

// checkNotes opens every line of the checkpoints file with verifier and
// checks its origin; it returns the last checkpoint (nil if none).
func checkNotes(lines []logLine, verifier note.Verifier, origin string) (*Checkpoint, error) {
	var last *Checkpoint
	for i, ll := range lines {
		switch ll.Kind {
		case kindCheckpoint:
			cp, err := OpenCheckpoint([]byte(ll.Checkpoint), verifier)
			if err != nil {
				return nil, fmt.Errorf("%w: checkpoints line %d: %w; run `chartguard audit verify`", ErrCorrupt, i+1, err)
			}
			if cp.Origin != origin {
				return nil, fmt.Errorf("audit: the log in audit.dir has origin %q, this node signs as %q; "+
					"give each node its own audit.dir (node_id and public_url name the origin)", cp.Origin, origin)
			}
			last = &cp
		case kindRetention:
			n, err := note.Open([]byte(ll.Note), note.VerifierList(verifier))
			if err != nil {
				return nil, fmt.Errorf("%w: checkpoints line %d: retention note: %w; run `chartguard audit verify`", ErrCorrupt, i+1, err)
			}
			rn, err := parseRetentionNote(n.Text)
			if err != nil {
				return nil, fmt.Errorf("%w: checkpoints line %d: %w", ErrCorrupt, i+1, err)
			}
			if rn.Origin != origin {
				return nil, fmt.Errorf("%w: checkpoints line %d: retention note of origin %q, this log is %q; "+
					"run `chartguard audit verify`", ErrCorrupt, i+1, rn.Origin, origin)
			}
		}
	}
	return last, nil
}

// resignVerifier verifies notes signed by a key known only as a signer
// (Config.Signer): Ed25519 signatures are deterministic, so a signature
// is valid exactly when signing the message again gives the same bytes.
// A signer that is not deterministic fails closed (every note rejected).
type resignVerifier struct{ s note.Signer }

func (v resignVerifier) Name() string    { return v.s.Name() }
func (v resignVerifier) KeyHash() uint32 { return v.s.KeyHash() }
func (v resignVerifier) Verify(msg, sig []byte) bool {
	got, err := v.s.Sign(msg)
	return err == nil && subtle.ConstantTimeCompare(got, sig) == 1
}

// noteText returns the text of a signed note (without its signatures),
// or msg itself if it has none.
func noteText(msg string) string {
	if i := strings.LastIndex(msg, "\n\n"); i >= 0 {
		return msg[:i+1]
	}
	return msg
}

// catchUp hashes the records from the tree's size up to next (after a
// restart, or after a leaf could not be hashed).
func (c *chain) catchUp(next uint64) error {
	if c.broken == nil && c.tree.size == int64(next) {
		return nil
	}
	segs, err := listSegments(c.dir)
	if err != nil {
		return err
	}
	want := uint64(c.tree.size)
	for rl, err := range readLines(segs, want) {
		if err != nil {
			return err
		}
		if rl.Index >= next {
			break
		}
		if rl.Index != want {
			return fmt.Errorf("%w: record %d missing from the segments", ErrCorrupt, want)
		}
		if seq, ok := recordSeq(rl.Line); !ok || seq != rl.Index {
			return fmt.Errorf("%w: record in position %d has seq %s; run `chartguard audit verify`", ErrCorrupt, rl.Index, seqText(rl.Line))
		}
		if err := c.tree.addLeaf(rl.Line); err != nil {
			return fmt.Errorf("audit: hash record %d: %w", rl.Index, err)
		}
		if err := c.tree.checkStored(); err != nil {
			return fmt.Errorf("%w: record %d: %w; run `chartguard audit verify`", ErrCorrupt, rl.Index, err)
		}
		want++
	}
	if want != next {
		return fmt.Errorf("%w: segments end at record %d, want %d", ErrCorrupt, want, next)
	}
	c.broken = nil
	c.markUnsigned()
	return nil
}

// added hashes the lines of a chunk just written (and fsynced if
// durable) as it is handed over, without copying it (the segment writer
// reuses buf); afterBatch writes the hashes.
func (c *chain) added(buf []byte) {
	if c.broken != nil {
		return
	}
	if err := c.tree.addLines(buf); err != nil {
		c.broken = err
		c.logger.Error("audit tree hashing failed; recomputing before the next write", "err", err)
	}
}

func (c *chain) markUnsigned() {
	if c.tree.size > c.signed.Load() && c.unsigned.Load() == 0 {
		c.unsigned.Store(c.now().UnixNano())
	}
}

// afterBatch writes the hashes of the batch's records and signs a
// checkpoint if one is due, before the batch is answered.
func (c *chain) afterBatch() {
	if c.broken != nil {
		return
	}
	c.markUnsigned()
	if err := c.tree.hs.flush(); err != nil {
		c.logger.Error("audit hashes write failed; retrying", "err", err)
		return
	}
	if c.tree.size-c.requested >= c.every {
		c.request()
	}
}

// applyRetention removes, oldest first, whole segments that a checkpoint
// covers and whose last write is older than the retention period. It
// first appends a signed retention note naming the first record kept, so
// that verify can tell retention from deletion. The stored hashes of the
// removed records stay: the checkpoints still cover them.
func (c *chain) applyRetention(current string) error {
	if c.retention <= 0 {
		return nil
	}
	segs, err := listSegments(c.dir)
	if err != nil {
		return err
	}
	cutoff := c.now().Add(-c.retention)
	var remove []segmentInfo
	first := int64(-1)
	for i := 0; i+1 < len(segs); i++ {
		s, next := segs[i], segs[i+1]
		info, err := os.Stat(s.path)
		if err != nil {
			return fmt.Errorf("stat segment: %w", err)
		}
		if s.path == current || int64(next.first) > c.signed.Load() || !info.ModTime().Before(cutoff) {
			break
		}
		remove, first = append(remove, s), int64(next.first)
	}
	if len(remove) == 0 {
		return nil
	}
	msg, err := note.Sign(&note.Note{Text: retentionNote{Origin: c.origin, First: first}.String()}, c.signer)
	if err != nil {
		return fmt.Errorf("sign retention note: %w", err)
	}
	line := marshalLogLine(kindRetention, string(msg))
	if err := c.appendLine(line); err != nil {
		return err
	}
	c.toSinks(line)
	var errs []error
	for _, s := range remove {
		errs = append(errs, os.Remove(s.path))
	}
	errs = append(errs, syncDir(c.dir))
	c.logger.Info("audit retention removed segments", "segments", len(remove), "first_kept", first)
	return errors.Join(errs...)
}

func (c *chain) close() {
	if c.tree != nil {
		_ = c.tree.close()
	}
	if c.cpFile != nil {
		_ = c.cpFile.Close()
	}
}
