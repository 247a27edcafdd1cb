package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// TailOptions controls [Tail].
type TailOptions struct {
	// Last starts this many verified records before the end; 0 shows only
	// what comes next.
	Last uint64
	// Poll is how often the log is checked for a new checkpoint. If zero,
	// one second.
	Poll time.Duration
}

// TailPosition is where a tail starts: a verified tree over one log.
type TailPosition struct {
	src    Source
	tree   frontier
	start  uint64
	origin string
}

// TailStart returns the position last records before the end of the
// verified log. The Searcher must have exactly one source.
func (s *Searcher) TailStart(last uint64) (TailPosition, error) {
	if len(s.idx) != 1 {
		return TailPosition{}, fmt.Errorf("%w: tail follows one log directory", ErrBadQuery)
	}
	x := s.idx[0]
	t := frontier{Size: x.state.Tree.Size, Hashes: slices.Clone(x.state.Tree.Hashes)}
	return TailPosition{src: x.src, tree: t, start: t.Size - min(last, t.Size), origin: x.state.Origin}, nil
}

// Tail follows the log from pos and verifies as it reads: it emits one
// JSON line per record, {"index":N,"verified":true,"event":{…}}, only once
// a signed checkpoint covers the record and the records hash to that
// checkpoint's root, then {"checkpoint":{"origin","size","root"}}. So a
// record shows up at most audit.checkpoint_interval after it was written.
// Without a verifier records are emitted as they appear with
// "verified":false. It returns when ctx ends (nil), when emit fails, or
// with an error wrapping [ErrTampered] when the log stops matching its
// checkpoints (a record rewritten, the log truncated or replaced).
func Tail(ctx context.Context, pos TailPosition, opts TailOptions, emit func(line []byte) error) error {
	if opts.Poll <= 0 {
		opts.Poll = time.Second
	}
	next := pos.tree.Size
	if pos.start < next {
		if err := emitRecords(pos, pos.start, next, emit); err != nil {
			return err
		}
		if pos.src.Verifier != nil {
			if err := emit(checkpointLine(pos.origin, next, pos.tree.root())); err != nil {
				return err
			}
		}
	}
	tick := time.NewTicker(opts.Poll)
	defer tick.Stop()
	for {
		var err error
		if next, err = tailStep(pos.src, &pos.tree, next, emit); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// tailStep emits what became verifiable since next and returns the new
// end.
func tailStep(src Source, tree *frontier, next uint64, emit func([]byte) error) (uint64, error) {
	if src.Verifier == nil {
		for rec, err := range ReadDir(src.Dir, next) {
			if err != nil {
				return next, err
			}
			if rec.Index != next {
				return next, fmt.Errorf("%w: record %d missing", ErrTampered, next)
			}
			if err := emit(tailLine(rec.Index, false, rec.Line)); err != nil {
				return next, err
			}
			next++
		}
		return next, nil
	}
	c, _, ok, err := latestCheckpoint(src.Dir, src.Verifier)
	if err != nil || !ok {
		return next, err
	}
	size := uint64(c.Size)
	if size < next {
		return next, fmt.Errorf("%w: the latest checkpoint (size %d) is behind records already verified (%d)", ErrTampered, size, next)
	}
	if size == next {
		return next, nil
	}
	t := frontier{Size: tree.Size, Hashes: slices.Clone(tree.Hashes)}
	var lines [][]byte
	for rec, err := range ReadDir(src.Dir, next) {
		if err != nil {
			return next, err
		}
		if rec.Index >= size {
			break
		}
		if rec.Index != t.Size {
			return next, fmt.Errorf("%w: record %d missing", ErrTampered, t.Size)
		}
		t.push(tlog.RecordHash(rec.Line))
		lines = append(lines, tailLine(rec.Index, true, rec.Line))
	}
	if t.Size != size || !sameHash(t.root(), c.Root) {
		return next, fmt.Errorf("%w: records %d..%d do not match the signed checkpoint", ErrTampered, next, size)
	}
	for _, l := range lines {
		if err := emit(l); err != nil {
			return next, err
		}
	}
	if err := emit(checkpointLine(c.Origin, size, c.Root)); err != nil {
		return next, err
	}
	*tree = t
	return size, nil
}

// emitRecords emits records [from, to) of the tree the index verified.
// With a verifier each record is read again and proved to be in that
// tree (whose root equals the signed checkpoint's) before it is emitted
// as verified: an inclusion proof from the stored hashes, so a record
// rewritten after the index verified it fails the tail with ErrTampered.
func emitRecords(pos TailPosition, from, to uint64, emit func([]byte) error) error {
	var hr tlog.HashReader
	if pos.src.Verifier != nil {
		f, err := os.Open(filepath.Join(pos.src.Dir, hashesName))
		if err != nil {
			return fmt.Errorf("%w: stored hashes unreadable: %w", ErrTampered, err)
		}
		defer f.Close()
		info, err := f.Stat()
		if err != nil {
			return err
		}
		have := info.Size() / tlog.HashSize
		hr = &hashStore{f: f, durable: have, memBase: have}
	}
	root := pos.tree.root()
	for rec, err := range ReadDir(pos.src.Dir, from) {
		if err != nil {
			return err
		}
		if rec.Index >= to {
			return nil
		}
		if hr != nil {
			proof, err := tlog.ProveRecord(int64(to), int64(rec.Index), hr)
			if err == nil {
				err = tlog.CheckRecord(proof, int64(to), root, int64(rec.Index), tlog.RecordHash(rec.Line))
			}
			if err != nil {
				return fmt.Errorf("%w: record %d is not in the signed tree of size %d: %w", ErrTampered, rec.Index, to, err)
			}
		}
		if err := emit(tailLine(rec.Index, hr != nil, rec.Line)); err != nil {
			return err
		}
	}
	return nil
}

func checkpointLine(origin string, size uint64, root tlog.Hash) []byte {
	b, _ := json.Marshal(map[string]any{"checkpoint": map[string]any{"origin": origin, "size": size, "root": root.String()}})
	return append(b, '\n')
}

func tailLine(index uint64, verified bool, line []byte) []byte {
	b := make([]byte, 0, len(line)+48)
	b = append(b, `{"index":`...)
	b = strconv.AppendUint(b, index, 10)
	b = append(b, `,"verified":`...)
	b = strconv.AppendBool(b, verified)
	b = append(b, `,"event":`...)
	b = append(b, line...)
	return append(b, '}', '\n')
}

// WriteSearch streams the results of q as JSON lines: first
// {"sources":[…]} (what each log was verified against), then one
// {"node","index","time","event"} per match.
func WriteSearch(ctx context.Context, w io.Writer, s *Searcher, q Query) error {
	head, err := json.Marshal(map[string]any{"sources": s.Sources()})
	if err != nil {
		return err
	}
	if _, err := w.Write(append(head, '\n')); err != nil {
		return err
	}
	enc := json.NewEncoder(w)
	for m, err := range s.Search(ctx, q) {
		if err != nil {
			return err
		}
		if err := enc.Encode(searchLine{Node: m.Event.Node, Index: m.Index, Time: m.Time, Event: &m.Event}); err != nil {
			return err
		}
	}
	return nil
}

type searchLine struct {
	Node  string    `json:"node"`
	Index uint64    `json:"index"`
	Time  time.Time `json:"time"`
	Event any       `json:"event"`
}
