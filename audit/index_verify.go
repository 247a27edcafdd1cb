package audit

import (
	"bytes"
	"errors"
	"fmt"

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
