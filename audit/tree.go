package audit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/mod/sumdb/tlog"
)

// The tree's stored hashes (golang.org/x/mod/sumdb/tlog numbering: the
// hashes of leaf n and of every complete subtree it closes, 2 per leaf on
// average) live in one file, "hashes", 32 bytes each at offset
// 32*index. It is written in the writer's group commit after the records'
// fsync, and fsynced before each checkpoint is signed: hashes past the
// last checkpoint are recomputed from the records at startup.

// recentHashes is how many of the latest stored hashes a hashStore keeps
// in memory: the tree's right edge, which the next leaves read.
const recentHashes = 1 << 14

// hashStore is a tlog.HashReader over the hashes file plus an in-memory
// window of the most recent hashes, some maybe not yet in the file.
type hashStore struct {
	f       *os.File
	durable int64       // hashes in the file (written, not necessarily synced)
	mem     []tlog.Hash // hashes [memBase, memBase+len(mem))
	memBase int64
}

var _ tlog.HashReader = (*hashStore)(nil)

// count is the number of stored hashes known.
func (h *hashStore) count() int64 { return h.memBase + int64(len(h.mem)) }

// ReadHashes implements tlog.HashReader.
func (h *hashStore) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		switch {
		case x >= h.memBase && x < h.count():
			out[i] = h.mem[x-h.memBase]
		case x >= 0 && x < h.memBase && x < h.durable:
			if _, err := h.f.ReadAt(out[i][:], x*tlog.HashSize); err != nil {
				return nil, fmt.Errorf("read stored hash %d: %w", x, err)
			}
		default:
			return nil, fmt.Errorf("stored hash %d not available (have %d)", x, h.count())
		}
	}
	return out, nil
}

// add appends the hashes of the next leaf.
func (h *hashStore) add(hs []tlog.Hash) {
	h.mem = append(h.mem, hs...)
	if len(h.mem) < 2*recentHashes {
		return
	}
	// Keep the latest recentHashes; only hashes already in the file may
	// go. Dropping half the window at a time keeps the copying linear.
	if drop := min(int64(len(h.mem))-recentHashes, h.durable-h.memBase); drop >= recentHashes/2 {
		h.mem = append(h.mem[:0], h.mem[drop:]...)
		h.memBase += drop
	}
}

// flush writes the hashes not yet in the file (no fsync).
func (h *hashStore) flush() error {
	if h.durable >= h.count() {
		return nil
	}
	if h.durable < h.memBase {
		return errors.New("stored hashes lost from memory")
	}
	buf := make([]byte, 0, (h.count()-h.durable)*tlog.HashSize)
	for _, x := range h.mem[h.durable-h.memBase:] {
		buf = append(buf, x[:]...)
	}
	if _, err := h.f.WriteAt(buf, h.durable*tlog.HashSize); err != nil {
		return fmt.Errorf("write hashes: %w", err)
	}
	h.durable = h.count()
	return nil
}

// tree is the log's Merkle tree as the writer sees it.
type tree struct {
	hs   *hashStore
	size int64 // leaves
	// stored is how many hashes the file held at open; those past the
	// last checkpoint are compared as the records are hashed again.
	stored int64
}

// addLeaf appends the record line (without '\n') as leaf t.size.
func (t *tree) addLeaf(line []byte) error {
	hs, err := tlog.StoredHashesForRecordHash(t.size, tlog.RecordHash(line), t.hs)
	if err != nil {
		return err
	}
	t.hs.add(hs)
	t.size++
	return nil
}

// addLines adds every '\n'-terminated line of buf as a leaf.
func (t *tree) addLines(buf []byte) error {
	for len(buf) > 0 {
		i := bytes.IndexByte(buf, '\n')
		if i < 0 {
			return errors.New("record without newline")
		}
		if err := t.addLeaf(buf[:i]); err != nil {
			return err
		}
		buf = buf[i+1:]
	}
	return nil
}

// openTree opens the hashes file of dir for the writer and keeps the
// hashes of the first keep leaves (those a signed checkpoint covers,
// fsynced before it was signed). The hashes after them stay in the file
// until the records are hashed again ([tree.checkStored] compares them)
// and [tree.dropStale] removes them.
func openTree(dir string, keep int64) (*tree, error) {
	f, err := os.OpenFile(dir+string(os.PathSeparator)+hashesName, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: open hashes: %w", err)
	}
	info, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("audit: stat hashes: %w", err)
	}
	n := tlog.StoredHashCount(keep)
	if info.Size() < n*tlog.HashSize {
		_ = f.Close()
		return nil, fmt.Errorf("%w: hashes file holds %d bytes, the last checkpoint needs %d", ErrCorrupt, info.Size(), n*tlog.HashSize)
	}
	t := &tree{hs: &hashStore{f: f, durable: n, memBase: n}, size: keep}
	if t.stored, err = writtenHashes(f, n, info.Size()/tlog.HashSize); err != nil {
		_ = f.Close()
		return nil, err
	}
	if err := t.loadRecent(); err != nil {
		_ = f.Close()
		return nil, err
	}
	return t, nil
}

// writtenHashes returns the number of stored hashes in f (which holds
// have, the first from of them covered by a checkpoint) without the
// all-zero ones at its end: space a crash extended the file by before
// the hashes reached it. (A SHA-256 hash of zero is not found by chance.)
func writtenHashes(f *os.File, from, have int64) (int64, error) {
	var h tlog.Hash
	for ; have > from; have-- {
		if _, err := f.ReadAt(h[:], (have-1)*tlog.HashSize); err != nil {
			return 0, fmt.Errorf("audit: read hashes: %w", err)
		}
		if h != (tlog.Hash{}) {
			break
		}
	}
	return have, nil
}

// checkStored compares the hashes the last addLeaf computed with those
// the hashes file held for that leaf when the tree was opened: a
// difference means the record changed since it was written. An all-zero
// stored hash is space a crash left unwritten, not a hash.
func (t *tree) checkStored() error {
	from, to := tlog.StoredHashCount(t.size-1), min(tlog.StoredHashCount(t.size), t.stored)
	if from >= to {
		return nil
	}
	buf := make([]byte, (to-from)*tlog.HashSize)
	if _, err := t.hs.f.ReadAt(buf, from*tlog.HashSize); err != nil {
		return fmt.Errorf("read stored hash %d: %w", from, err)
	}
	mem := t.hs.mem[from-t.hs.memBase:]
	for i := range to - from {
		stored := buf[i*tlog.HashSize : (i+1)*tlog.HashSize]
		if !bytes.Equal(mem[i][:], stored) && !bytes.Equal(stored, zeroHash[:]) {
			return fmt.Errorf("stored hash %d differs from the record's", from+i)
		}
	}
	return nil
}

var zeroHash tlog.Hash

// dropStale cuts the hashes file back to the hashes a checkpoint covers,
// once the rest were checked and recomputed (they are written again).
func (t *tree) dropStale() error {
	t.stored = 0
	if err := t.hs.f.Truncate(t.hs.durable * tlog.HashSize); err != nil {
		return fmt.Errorf("audit: trim hashes: %w", err)
	}
	return nil
}

// loadRecent reads the latest stored hashes into memory.
func (t *tree) loadRecent() error {
	h := t.hs
	from := max(0, h.durable-recentHashes)
	buf := make([]byte, (h.durable-from)*tlog.HashSize)
	if _, err := h.f.ReadAt(buf, from*tlog.HashSize); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("audit: read hashes: %w", err)
	}
	h.mem = make([]tlog.Hash, 0, len(buf)/tlog.HashSize)
	for i := 0; i < len(buf); i += tlog.HashSize {
		h.mem = append(h.mem, tlog.Hash(buf[i:i+tlog.HashSize]))
	}
	h.memBase = from
	return nil
}

func (t *tree) root() (tlog.Hash, error) { return tlog.TreeHash(t.size, t.hs) }

func (t *tree) close() error { return t.hs.f.Close() }
