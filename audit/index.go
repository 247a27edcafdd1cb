package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/chartguard/chartguard/chartguard"
)

// The index of one log directory is a bbolt file in the index directory,
// named after the log directory's absolute path. It is a cache: every
// entry can be rebuilt from the log, and it is rebuilt whenever the log no
// longer matches it. Buckets:
//
//	meta:     "state" → indexState (JSON)
//	patients: patient 0x00 be64(unix ns) be64(index) → the event reduced to that patient (JSON)
//	blocks:   be64(index / blockSize) → be64(min unix ns) be64(max unix ns)
var (
	bucketMeta     = []byte("meta")
	bucketPatients = []byte("patients")
	bucketBlocks   = []byte("blocks")
	keyState       = []byte("state")
)

const (
	indexVersion = 1
	// blockSize records share one time-index entry.
	blockSize = 1024
	// batchEntries bounds the entries written per bbolt transaction while
	// catching up (memory vs. transaction count).
	batchEntries = 200_000
)

// indexState is what the index has verified and indexed.
type indexState struct {
	Version int    `json:"version"`
	Dir     string `json:"dir"`
	// Verified says the entries were checked against signed checkpoints.
	Verified bool `json:"verified"`
	// Tree is the compact range over the indexed records [0, Tree.Size).
	Tree frontier `json:"tree"`
	// LastLeaf is the leaf hash of record Tree.Size-1; a log whose record
	// there differs was rewritten and the index is rebuilt.
	LastLeaf tlog.Hash `json:"last_leaf"`
	// Origin and Checkpoint: the checkpoint the records were verified
	// against (its size is Tree.Size).
	Origin     string `json:"origin,omitempty"`
	Checkpoint string `json:"checkpoint,omitempty"`
	// Pending is set while a catch-up writes entries: entries of records
	// not verified yet. An index found Pending (a crash or error mid-way)
	// is rebuilt, so no such entry is ever returned.
	Pending bool `json:"pending,omitempty"`
}

// dirIndex is the open index of one log directory.
type dirIndex struct {
	src    Source
	path   string
	db     *bolt.DB
	state  indexState
	blocks []timeBlock // in index order
}

type timeBlock struct{ min, max int64 }

// indexFile is the index file of dir inside indexDir.
func indexFile(indexDir, dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("audit index: %w", err)
	}
	sum := sha256.Sum256([]byte(abs))
	return filepath.Join(indexDir, "log-"+hex.EncodeToString(sum[:12])+".db"), nil
}

// openIndex opens (creating if needed) the index of src and brings it up
// to date with the log: see [dirIndex.catchUp].
func openIndex(ctx context.Context, indexDir string, src Source) (*dirIndex, error) {
	if info, err := os.Stat(src.Dir); err != nil || !info.IsDir() {
		return nil, fmt.Errorf("%w: %s is not a log directory", ErrBadQuery, src.Dir)
	}
	if err := os.MkdirAll(indexDir, 0o700); err != nil {
		return nil, fmt.Errorf("audit index: %w", err)
	}
	// The index names patients: like audit.dir, nobody else may read it.
	if info, err := os.Stat(indexDir); err != nil {
		return nil, fmt.Errorf("audit index: %w", err)
	} else if info.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("audit.index_dir: %s has mode %04o, want 0700 (chmod 700 it)", indexDir, info.Mode().Perm())
	}
	path, err := indexFile(indexDir, src.Dir)
	if err != nil {
		return nil, err
	}
	x := &dirIndex{src: src, path: path}
	if err := x.open(); err != nil {
		return nil, err
	}
	err = x.catchUp(ctx)
	if errors.Is(err, errRebuild) {
		if err = x.reset(); err == nil {
			err = x.catchUp(ctx)
		}
	}
	if err != nil {
		_ = x.db.Close()
		return nil, err
	}
	return x, nil
}

func (x *dirIndex) open() error {
	opts := &bolt.Options{Timeout: 10 * time.Second}
	db, err := bolt.Open(x.path, 0o600, opts)
	if err != nil && !errors.Is(err, berrors.ErrTimeout) {
		// A cache file a crash left unreadable: start it again.
		if rmErr := os.Remove(x.path); rmErr == nil {
			db, err = bolt.Open(x.path, 0o600, opts)
		}
	}
	if err != nil {
		return fmt.Errorf("audit index: open: %w", err)
	}
	x.db = db
	x.state = indexState{}
	return db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketMeta); b != nil {
			if v := b.Get(keyState); v != nil {
				if json.Unmarshal(v, &x.state) != nil || !x.state.Tree.valid() {
					// Unreadable: nothing in the file can be trusted to
					// belong to the log, so catchUp drops the whole file.
					x.state = indexState{Pending: true}
				}
			}
		}
		return nil
	})
}

// reset drops the index file and starts an empty one.
func (x *dirIndex) reset() error {
	_ = x.db.Close()
	if err := os.Remove(x.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("audit index: remove: %w", err)
	}
	return x.open()
}

// ResetIndex drops the index of dir in indexDir: the next query rebuilds
// it from the log, verifying every record again.
func ResetIndex(indexDir, dir string) error {
	path, err := indexFile(indexDir, dir)
	if err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("audit index: %w", err)
	}
	return nil
}

// invalidate marks the index for a rebuild at the next query: an entry
// was found corrupt, and a rebuild from the log replaces every entry.
func (x *dirIndex) invalidate() {
	st := x.state
	st.Pending = true
	_ = x.saveState(st) // if this fails too, the next read fails the same way
}

// Close closes the index file.
func (x *dirIndex) Close() error { return x.db.Close() }

// catchUp verifies and indexes the records added since the last query.
//
// With a verifier it indexes exactly the records the latest signed
// checkpoint covers: it extends the stored compact range with the new
// records' leaf hashes and requires the resulting root to equal the
// checkpoint's. Together with the same check at every earlier catch-up
// this proves each indexed record is in the signed tree, at O(new records)
// per query instead of re-reading the whole log. Records written after the
// latest checkpoint are not returned until a checkpoint covers them.
// Without a verifier every record is indexed and marked unverified.
//
// Each catch-up first proves the latest checkpoint consistent with the
// indexed tree (see checkConsistent); a replaced log is re-indexed.
//
// Security: the index file is trusted once written (it lives in
// audit.index_dir, mode 0600 in a 0700 directory): whoever can write it
// can change what reports show, as whoever can write the log directory
// could before the records were verified. A later rewrite of an already
// indexed record in the log does not change reports (they come from the
// index) and is caught by `audit verify`; --reindex drops the index so
// the next query verifies everything again.
func (x *dirIndex) catchUp(ctx context.Context) error {
	st := x.state
	verified := x.src.Verifier != nil
	target := uint64(1<<63 - 1)
	var ckpt Checkpoint
	var ckptText string
	if verified {
		c, text, ok, err := latestCheckpoint(x.src.Dir, x.src.Verifier)
		if err != nil {
			return err
		}
		if !ok {
			c = Checkpoint{Size: 0}
		}
		ckpt, ckptText, target = c, text, uint64(c.Size)
		if st.Origin != "" && ok && c.Origin != st.Origin {
			return errRebuild
		}
	}
	if st.Pending {
		return errRebuild
	}
	if st.Version != indexVersion || st.Verified != verified || target < st.Tree.Size {
		if st.Version == 0 && st.Tree.Size == 0 {
			st = indexState{Version: indexVersion, Verified: verified}
		} else {
			return errRebuild
		}
	}
	if verified {
		if err := x.checkConsistent(st, ckpt); err != nil {
			return err
		}
	} else if err := x.checkLastLeaf(st); err != nil {
		return err
	}
	built := uint64(0)
	if st.Tree.Size < target {
		before := st.Tree.Size
		st.Pending = true
		if err := x.saveState(st); err != nil {
			return err
		}
		var err error
		if st, err = x.index(ctx, st, target); err != nil {
			return err
		}
		st.Pending = false
		if before == 0 {
			built = st.Tree.Size
		}
	}
	if verified && st.Tree.Size > 0 {
		if st.Tree.Size != target || !sameHash(st.Tree.root(), ckpt.Root) {
			_ = x.reset() // never leave unverified entries behind
			return fmt.Errorf("%w: %s: records 0..%d do not match the signed checkpoint", ErrTampered, x.src.Dir, target)
		}
		st.Origin, st.Checkpoint = ckpt.Origin, ckptText
	}
	st.Dir = x.src.Dir
	if err := x.saveState(st); err != nil {
		return err
	}
	x.state = st
	if built >= compactAfter {
		if err := x.compact(); err != nil {
			return err
		}
	}
	return x.loadBlocks()
}

// compactAfter: a build from scratch of at least this many records is
// compacted (bbolt leaves pages half full after unordered inserts).
const compactAfter = 10_000

// compact rewrites the index file with full pages and each patient's
// entries stored together, which halves its size and makes a cold report
// read few pages.
func (x *dirIndex) compact() error {
	tmp := x.path + ".compact"
	_ = os.Remove(tmp)
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{NoSync: true})
	if err != nil {
		return fmt.Errorf("audit index: compact: %w", err)
	}
	err = bolt.Compact(dst, x.db, 64<<20)
	if err == nil {
		err = dst.Sync()
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("audit index: compact: %w", err)
	}
	_ = x.db.Close()
	if err := os.Rename(tmp, x.path); err != nil {
		return fmt.Errorf("audit index: compact: %w", err)
	}
	return x.open()
}

// checkConsistent proves, from the log's stored hashes, that the tree the
// latest checkpoint signs extends the tree the index verified (RFC 6962
// consistency proof, O(log n) hashes read). A log that was replaced or
// rewritten fails it and the index is rebuilt from its records, which
// verifies everything again.
func (x *dirIndex) checkConsistent(st indexState, c Checkpoint) error {
	old := st.Tree.Size
	if old == 0 {
		return nil
	}
	if uint64(c.Size) == old {
		if !sameHash(st.Tree.root(), c.Root) {
			return errRebuild
		}
		return nil
	}
	f, err := os.Open(filepath.Join(x.src.Dir, hashesName))
	if err != nil {
		return errRebuild
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return errRebuild
	}
	have := info.Size() / tlog.HashSize
	proof, err := tlog.ProveTree(c.Size, int64(old), &hashStore{f: f, durable: have, memBase: have})
	if err != nil || tlog.CheckTree(proof, c.Size, c.Root, int64(old), st.Tree.root()) != nil {
		return errRebuild
	}
	return nil
}

// checkLastLeaf makes sure an unverified log still holds the last indexed
// record as it was (a replaced log is re-read).
func (x *dirIndex) checkLastLeaf(st indexState) error {
	if st.Tree.Size == 0 {
		return nil
	}
	want := st.Tree.Size - 1
	for rec, err := range ReadDir(x.src.Dir, want) {
		if err != nil || rec.Index != want || !sameHash(tlog.RecordHash(rec.Line), st.LastLeaf) {
			return errRebuild
		}
		return nil
	}
	return errRebuild // the log is shorter than the index
}

// index reads records [st.Tree.Size, target) (or to the end when
// unverified), adding them to the tree and the buckets.
func (x *dirIndex) index(ctx context.Context, st indexState, target uint64) (indexState, error) {
	// A cache: no fsync per batch, one at the end (the state is saved
	// after it). A crash mid-way leaves entries past the saved size, which
	// queries skip and the next catch-up overwrites.
	x.db.NoSync = true
	defer func() { x.db.NoSync = false }()
	b := newBatch()
	for rec, err := range ReadDir(x.src.Dir, st.Tree.Size) {
		if err != nil {
			return st, err
		}
		if rec.Index >= target {
			break
		}
		if rec.Index != st.Tree.Size && st.Tree.Size == 0 {
			// Retention removed records [0, rec.Index): start from their
			// stored hashes; the root check against the signed checkpoint
			// covers them.
			if st.Tree, err = storedFrontier(x.src.Dir, rec.Index); err != nil {
				return st, err
			}
		}
		if rec.Index != st.Tree.Size {
			return st, fmt.Errorf("%w: %s: record %d missing", ErrTampered, x.src.Dir, st.Tree.Size)
		}
		leaf := tlog.RecordHash(rec.Line)
		st.Tree.push(leaf)
		st.LastLeaf = leaf
		if err := b.add(&rec); err != nil {
			return st, err
		}
		if len(b.entries) >= batchEntries {
			if err := ctx.Err(); err != nil {
				return st, err
			}
			if err := x.flush(b); err != nil {
				return st, err
			}
		}
	}
	if err := x.flush(b); err != nil {
		return st, err
	}
	if err := x.db.Sync(); err != nil {
		return st, fmt.Errorf("audit index: sync: %w", err)
	}
	return st, nil
}

// batch collects index entries before one bbolt transaction.
type batch struct {
	entries []entry
	blocks  map[uint64]timeBlock
}

type entry struct{ key, val []byte }

func newBatch() *batch { return &batch{blocks: map[uint64]timeBlock{}} }

func (b *batch) add(rec *StoredRecord) error {
	t, err := eventTime(&rec.Event)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	ns := t.UnixNano()
	blk := rec.Index / blockSize
	tb, ok := b.blocks[blk]
	if !ok {
		tb = timeBlock{min: ns, max: ns}
	}
	tb.min, tb.max = min(tb.min, ns), max(tb.max, ns)
	b.blocks[blk] = tb
	if rec.Event.Resource == nil {
		return nil
	}
	for _, p := range uniquePatients(rec.Event.Resource.Patients) {
		val, err := json.Marshal(reduceTo(&rec.Event, p))
		if err != nil {
			return err
		}
		b.entries = append(b.entries, entry{patientKey(p, ns, rec.Index), val})
	}
	return nil
}

func uniquePatients(ps []string) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		if p != "" && !bytes.ContainsRune([]byte(p), 0) && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// flush writes a batch in one transaction, keys in order (bbolt appends
// fastest that way), and empties it.
func (x *dirIndex) flush(b *batch) error {
	slices.SortFunc(b.entries, func(a, c entry) int { return bytes.Compare(a.key, c.key) })
	err := x.db.Update(func(tx *bolt.Tx) error {
		pb, err := tx.CreateBucketIfNotExists(bucketPatients)
		if err != nil {
			return err
		}
		for _, e := range b.entries {
			if err := pb.Put(e.key, e.val); err != nil {
				return err
			}
		}
		bb, err := tx.CreateBucketIfNotExists(bucketBlocks)
		if err != nil {
			return err
		}
		for blk, tb := range b.blocks {
			k := binary.BigEndian.AppendUint64(nil, blk)
			if old := bb.Get(k); len(old) == 16 { // a block split across batches
				tb.min = min(tb.min, int64(binary.BigEndian.Uint64(old)))
				tb.max = max(tb.max, int64(binary.BigEndian.Uint64(old[8:])))
			}
			v := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, uint64(tb.min)), uint64(tb.max))
			if err := bb.Put(k, v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("audit index: write: %w", err)
	}
	b.entries, b.blocks = b.entries[:0], map[uint64]timeBlock{}
	return nil
}

func (x *dirIndex) saveState(st indexState) error {
	v, err := json.Marshal(st)
	if err != nil {
		return err
	}
	err = x.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		return b.Put(keyState, v)
	})
	if err != nil {
		return fmt.Errorf("audit index: write: %w", err)
	}
	return nil
}

func (x *dirIndex) loadBlocks() error {
	x.blocks = x.blocks[:0]
	return x.db.View(func(tx *bolt.Tx) error {
		bb := tx.Bucket(bucketBlocks)
		if bb == nil {
			return nil
		}
		return bb.ForEach(func(k, v []byte) error {
			if len(k) != 8 || len(v) != 16 || binary.BigEndian.Uint64(k) < uint64(len(x.blocks)) {
				return fmt.Errorf("%w: %w: audit index: time blocks out of order", ErrCorrupt, errRebuild)
			}
			for uint64(len(x.blocks)) < binary.BigEndian.Uint64(k) {
				x.blocks = append(x.blocks, noBlock) // removed by retention
			}
			x.blocks = append(x.blocks, timeBlock{int64(binary.BigEndian.Uint64(v)), int64(binary.BigEndian.Uint64(v[8:]))})
			return nil
		})
	})
}

// patientKey is patient 0x00 be64(time) be64(index): one patient's entries
// sort by time, then index.
func patientKey(patient string, ns int64, index uint64) []byte {
	k := make([]byte, 0, len(patient)+17)
	k = append(append(k, patient...), 0)
	k = binary.BigEndian.AppendUint64(k, uint64(max(ns, 0)))
	return binary.BigEndian.AppendUint64(k, index)
}

// reduceTo returns a copy of ev that says nothing about any patient but p:
// the patient list is [p], the request path (which can name other
// patients) is dropped, a resource id is kept only if it cannot be
// another patient's, and a break-glass justification (free text) only if
// the event was about p alone.
func reduceTo(ev *chartguard.Event, p string) chartguard.Event {
	out := *ev
	out.Request.Path = ""
	r := *ev.Resource
	r.Patients, r.PatientsTruncated = []string{p}, false
	if len(ev.Resource.Patients) != 1 || r.Type == "Patient" && r.ID != p {
		r.ID = ""
	}
	out.Resource = &r
	if ev.BreakGlass != nil {
		bg := *ev.BreakGlass
		if len(ev.Resource.Patients) != 1 {
			bg.Justification = ""
		}
		out.BreakGlass = &bg
	}
	if ev.Decision != nil {
		d := *ev.Decision
		d.Reasons = nil // free text from policy; may name other patients
		out.Decision = &d
	}
	return out
}
