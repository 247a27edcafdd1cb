package audit

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// latestCheckpoint returns the newest checkpoint of dir, verified with v,
// and its note text; ok is false when the log has none yet.
func latestCheckpoint(dir string, v note.Verifier) (c Checkpoint, text string, ok bool, err error) {
	lines, _, err := readLogLines(dir)
	if err != nil {
		return Checkpoint{}, "", false, err
	}
	for i := len(lines) - 1; i >= 0; i-- {
		if lines[i].Kind != kindCheckpoint {
			continue
		}
		c, err := OpenCheckpoint([]byte(lines[i].Checkpoint), v)
		if err != nil {
			return Checkpoint{}, "", false, fmt.Errorf("%w: latest checkpoint: %w", ErrTampered, err)
		}
		return c, lines[i].Checkpoint, true, nil
	}
	return Checkpoint{}, "", false, nil
}

// frontier is the compact range of an RFC 6962 tree over [0, size): the
// roots of its complete subtrees, largest first. It extends the tree one
// leaf at a time and yields the root at any size without the old leaves,
// which is what lets the index verify only the records added since it
// last verified.
type frontier struct {
	Size   uint64      `json:"size"`
	Hashes []tlog.Hash `json:"hashes"`
}

// push appends a leaf hash.
func (f *frontier) push(leaf tlog.Hash) {
	h := leaf
	for n := f.Size; n&1 == 1; n >>= 1 {
		last := len(f.Hashes) - 1
		h = tlog.NodeHash(f.Hashes[last], h)
		f.Hashes = f.Hashes[:last]
	}
	f.Hashes = append(f.Hashes, h)
	f.Size++
}

// root is the tree hash over [0, Size).
func (f *frontier) root() tlog.Hash {
	if len(f.Hashes) == 0 {
		return tlog.Hash{} // RFC 6962 gives SHA-256(""); a size-0 checkpoint is not verified against it
	}
	r := f.Hashes[len(f.Hashes)-1]
	for i := len(f.Hashes) - 2; i >= 0; i-- {
		r = tlog.NodeHash(f.Hashes[i], r)
	}
	return r
}

// valid checks the shape: one hash per set bit of Size.
func (f *frontier) valid() bool {
	n := 0
	for s := f.Size; s > 0; s &= s - 1 {
		n++
	}
	return n == len(f.Hashes)
}

// errRebuild says the index no longer describes the log (replaced,
// truncated, rewritten or another origin): it must be rebuilt from 0.
var errRebuild = errors.New("audit index: log changed; rebuilding")

// sameHash compares two leaf hashes.
func sameHash(a, b tlog.Hash) bool { return bytes.Equal(a[:], b[:]) }

// noBlock stands for a block retention removed: no time range starts in
// it and it is after every time (so it never ends a scan early either).
var noBlock = timeBlock{min: math.MaxInt64, max: math.MinInt64}

// storedFrontier is the compact range over records [0, size) read from
// the stored hashes of dir, which keeps the hashes of records retention
// removed. They are checked only through the root they lead to: the
// caller compares it with a signed checkpoint.
func storedFrontier(dir string, size uint64) (frontier, error) {
	f, err := os.Open(filepath.Join(dir, hashesName))
	if err != nil {
		return frontier{}, fmt.Errorf("%w: %s: records before %d were removed and their stored hashes are unreadable: %w",
			ErrTampered, dir, size, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return frontier{}, fmt.Errorf("audit index: %w", err)
	}
	have := info.Size() / tlog.HashSize
	hr := &hashStore{f: f, durable: have, memBase: have}
	fr := frontier{Size: size}
	start := uint64(0)
	for level := 63; level >= 0; level-- {
		if size&(1<<level) == 0 {
			continue
		}
		hs, err := hr.ReadHashes([]int64{tlog.StoredHashIndex(level, int64(start>>level))})
		if err != nil {
			return frontier{}, fmt.Errorf("%w: %s: records before %d were removed: %w", ErrTampered, dir, size, err)
		}
		fr.Hashes = append(fr.Hashes, hs[0])
		start += 1 << level
	}
	return fr, nil
}
