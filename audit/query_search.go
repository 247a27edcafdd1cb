package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/note"

	"github.com/chartguard/chartguard/chartguard"
)

// Searcher answers queries over one or more log directories (one per
// replica), each verified against its own checkpoints and merged by time.
// Open one per query; it holds the index files open until Close.
type Searcher struct {
	idx []*dirIndex
}

// DefaultIndexDir is where the CLI keeps indexes of logs read offline when
// no --index-dir is given: the user's cache directory.
func DefaultIndexDir() string {
	d, err := os.UserCacheDir()
	if err != nil {
		d = os.TempDir()
	}
	return filepath.Join(d, "chartguard", "audit-index")
}

// OpenSearcher brings the index of every source in indexDir up to date
// (verifying the records added since the last query, or rebuilding it if
// the log was replaced) and returns a Searcher over them. An error
// wrapping [ErrTampered] means a log failed verification.
func OpenSearcher(ctx context.Context, indexDir string, srcs []Source) (*Searcher, error) {
	if indexDir == "" {
		return nil, errors.New("audit: no index directory (audit.index_dir or --index-dir)")
	}
	if len(srcs) == 0 {
		return nil, fmt.Errorf("%w: no log directory", ErrBadQuery)
	}
	s := &Searcher{}
	for _, src := range srcs {
		x, err := openIndex(ctx, indexDir, src)
		if err != nil {
			_ = s.Close()
			return nil, err
		}
		s.idx = append(s.idx, x)
	}
	return s, nil
}

// Close releases the index files.
func (s *Searcher) Close() error {
	var errs []error
	for _, x := range s.idx {
		errs = append(errs, x.Close())
	}
	s.idx = nil
	return errors.Join(errs...)
}

// Sources says, per directory, what the results were verified against.
func (s *Searcher) Sources() []SourceState {
	out := make([]SourceState, 0, len(s.idx))
	for _, x := range s.idx {
		ss := SourceState{Dir: x.src.Dir, Verified: x.state.Verified, Size: x.state.Tree.Size,
			Origin: x.state.Origin, Checkpoint: x.state.Checkpoint}
		if x.state.Verified && x.state.Tree.Size > 0 {
			ss.Root = x.state.Tree.root().String()
		}
		out = append(out, ss)
	}
	return out
}

// Search returns the matching events of every directory merged in time
// order. A query with a Patient is answered from the patient index and
// each event comes back reduced to that patient: its patient list is just
// that patient, and the request path, other patients' resource ids, the
// policy's free-text reasons and multi-patient break-glass text are
// removed. Other queries scan the verified records in the time range.
func (s *Searcher) Search(ctx context.Context, q Query) iter.Seq2[Match, error] {
	return func(yield func(Match, error) bool) {
		if err := q.Validate(); err != nil {
			yield(Match{}, err)
			return
		}
		seqs := make([]iter.Seq2[Match, error], len(s.idx))
		for i, x := range s.idx {
			if q.Patient != "" {
				seqs[i] = x.byPatient(q)
			} else {
				seqs[i] = x.scan(q)
			}
		}
		n := 0
		for m, err := range mergeByTime(seqs) {
			if err == nil {
				err = ctx.Err()
			}
			if !yield(m, err) || err != nil {
				return
			}
			if n++; q.Limit > 0 && n >= q.Limit {
				return
			}
		}
	}
}

// byPatient iterates one patient's index entries in [From, To).
func (x *dirIndex) byPatient(q Query) iter.Seq2[Match, error] {
	return func(yield func(Match, error) bool) {
		if bytes.IndexByte([]byte(q.Patient), 0) >= 0 {
			return
		}
		from := int64(0)
		if !q.From.IsZero() {
			from = q.From.UnixNano()
		}
		prefix := append([]byte(q.Patient), 0)
		err := x.db.View(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketPatients)
			if b == nil {
				return nil
			}
			c := b.Cursor()
			for k, v := c.Seek(patientKey(q.Patient, from, 0)); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
				ns, index, ok := splitPatientKey(k[len(prefix):])
				if !ok {
					return fmt.Errorf("%w: audit index: bad key; the next query rebuilds it", ErrCorrupt)
				}
				t := time.Unix(0, ns).UTC()
				if !q.To.IsZero() && !t.Before(q.To) {
					return nil
				}
				if index >= x.state.Tree.Size {
					continue // written by an interrupted catch-up, not verified yet
				}
				m := Match{Dir: x.src.Dir, Index: index, Time: t}
				if err := json.Unmarshal(v, &m.Event); err != nil {
					return fmt.Errorf("%w: audit index: %w", ErrCorrupt, err)
				}
				if !q.matches(&m.Event) {
					continue
				}
				if !yield(m, nil) {
					return errStop
				}
			}
			return nil
		})
		if errors.Is(err, ErrCorrupt) {
			x.invalidate() // this query fails; the next one rebuilds
		}
		if err != nil && !errors.Is(err, errStop) {
			yield(Match{}, err)
		}
	}
}

var errStop = errors.New("stop")

func splitPatientKey(k []byte) (int64, uint64, bool) {
	if len(k) != 16 {
		return 0, 0, false
	}
	return int64(be64(k)), be64(k[8:]), true
}

func be64(b []byte) uint64 {
	_ = b[7]
	return uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 |
		uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
}

// scan reads the indexed (verified) records of the directory whose time
// blocks overlap [From, To).
func (x *dirIndex) scan(q Query) iter.Seq2[Match, error] {
	return func(yield func(Match, error) bool) {
		start, ok := x.firstBlock(q.From)
		if !ok {
			return
		}
		for rec, err := range ReadDir(x.src.Dir, start) {
			if err != nil {
				yield(Match{}, err)
				return
			}
			if rec.Index >= x.state.Tree.Size {
				return
			}
			if rec.Index%blockSize == 0 && !q.To.IsZero() && x.blockStartsAfter(rec.Index/blockSize, q.To) {
				return
			}
			t, err := eventTime(&rec.Event)
			if err != nil {
				yield(Match{}, err)
				return
			}
			if !q.inRange(t) || !q.matches(&rec.Event) {
				continue
			}
			if !yield(Match{Dir: x.src.Dir, Index: rec.Index, Time: t, Event: rec.Event}, nil) {
				return
			}
		}
	}
}

// firstBlock is the first record of the first block that may hold a
// record at or after from.
func (x *dirIndex) firstBlock(from time.Time) (uint64, bool) {
	if from.IsZero() {
		return 0, x.state.Tree.Size > 0
	}
	ns := from.UnixNano()
	for i, b := range x.blocks {
		if b.max >= ns {
			return uint64(i) * blockSize, true
		}
	}
	return 0, false
}

// blockStartsAfter: every record of block blk and of all later blocks is
// at or after to. Clocks can step back, so it checks every later block.
func (x *dirIndex) blockStartsAfter(blk uint64, to time.Time) bool {
	ns := to.UnixNano()
	for _, b := range x.blocks[min(blk, uint64(len(x.blocks))):] {
		if b.min < ns {
			return false
		}
	}
	return true
}

// mergeByTime merges sequences that are each in time order (ties by
// directory order, then index).
func mergeByTime(seqs []iter.Seq2[Match, error]) iter.Seq2[Match, error] {
	return func(yield func(Match, error) bool) {
		type head struct {
			next func() (Match, error, bool)
			stop func()
			m    Match
			ok   bool
		}
		heads := make([]*head, len(seqs))
		for i, s := range seqs {
			next, stop := iter.Pull2(s)
			heads[i] = &head{next: next, stop: stop}
			defer stop()
		}
		advance := func(h *head) error {
			m, err, ok := h.next()
			if err != nil {
				return err
			}
			h.m, h.ok = m, ok
			return nil
		}
		for _, h := range heads {
			if err := advance(h); err != nil {
				yield(Match{}, err)
				return
			}
		}
		for {
			var best *head
			for _, h := range heads {
				if h.ok && (best == nil || h.m.Time.Before(best.m.Time)) {
					best = h
				}
			}
			if best == nil {
				return
			}
			if !yield(best.m, nil) {
				return
			}
			if err := advance(best); err != nil {
				yield(Match{}, err)
				return
			}
		}
	}
}

// userLabel is how a report names a user: the display name, else the subject.
func userLabel(u *chartguard.EventUser) string {
	if u == nil {
		return ""
	}
	if u.Name != "" {
		return u.Name
	}
	return u.Subject
}

// PickVerifier returns the one of vs that verifies the latest checkpoint
// of dir (replicas each have their own key). A log without a checkpoint
// gets the first. An error wrapping [ErrTampered] means none verifies it.
func PickVerifier(dir string, vs []note.Verifier) (note.Verifier, error) {
	if len(vs) == 0 {
		return nil, fmt.Errorf("%w: no verifier key", ErrBadQuery)
	}
	var last error
	for _, v := range vs {
		_, _, ok, err := latestCheckpoint(dir, v)
		if err == nil {
			if !ok {
				return vs[0], nil
			}
			return v, nil
		}
		if !errors.Is(err, ErrTampered) {
			return nil, err
		}
		last = err
	}
	return nil, fmt.Errorf("%s: no given key verifies the latest checkpoint: %w", dir, last)
}
