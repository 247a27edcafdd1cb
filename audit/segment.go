package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// SegmentFile is an open segment, written by the writer goroutine only, at
// explicit offsets (it must not be opened with O_APPEND, which makes
// positioned writes append on Linux). *os.File implements it.
type SegmentFile interface {
	io.WriterAt
	Truncate(size int64) error
	Sync() error
	Close() error
}

const (
	segmentPrefix = "audit-"
	segmentSuffix = ".log"
	seqDigits     = 20 // len of math.MaxUint64 in decimal

	// maxRecordBytes bounds how far back the startup scan reads to find the
	// last record. A line longer than this is treated as corruption.
	maxRecordBytes = 64 << 20
	tailChunk      = 64 << 10

	// probeName is the scratch file Ready's probe writes; it is not a
	// segment, so recovery ignores a leftover one.
	probeName  = ".probe"
	probeBytes = 16 << 10

	// preallocBytes is how far ahead of its records a durable writer
	// zero-fills the current segment (see [segmentWriter.reserve]).
	preallocBytes = 4 << 20
)

// zeros is the source of preallocation writes; never written to.
var zeros [1 << 20]byte

// SegmentData returns the records in the content of a segment file: the
// bytes before the first NUL. A durable log zero-fills space ahead of its
// last record in the segment it is writing; records (JSON lines) never
// contain a NUL byte, and a segment the log has finished with has no such
// space.
func SegmentData(content []byte) []byte {
	if i := bytes.IndexByte(content, 0); i >= 0 {
		return content[:i]
	}
	return content
}

// segmentName is the file name of the segment whose first record has seq.
func segmentName(seq uint64) string {
	return fmt.Sprintf("%s%0*d%s", segmentPrefix, seqDigits, seq, segmentSuffix)
}

// parseSegmentName returns the first seq encoded in a canonical segment
// name. Anything else (other files, non-canonical spellings) is not a
// segment.
func parseSegmentName(name string) (uint64, bool) {
	digits, ok := strings.CutPrefix(name, segmentPrefix)
	if !ok {
		return 0, false
	}
	digits, ok = strings.CutSuffix(digits, segmentSuffix)
	if !ok || len(digits) != seqDigits {
		return 0, false
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, false
		}
	}
	seq, err := strconv.ParseUint(digits, 10, 64)
	if err != nil {
		return 0, false
	}
	return seq, true
}

// tailState is where appending resumes: the current segment, the length
// of its acknowledged records and the next sequence number.
type tailState struct {
	path  string
	acked int64
	next  uint64
}

// recoverTail finds the last segment in dir and the position after its
// last complete record. A partial last line is not counted (openCurrent
// trims it); an unreadable last record is ErrCorrupt.
func recoverTail(dir string) (tailState, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return tailState{}, fmt.Errorf("audit: read dir: %w", err)
	}
	var last string
	var first uint64
	for _, e := range entries { // ReadDir sorts by name: the last segment wins
		seq, ok := parseSegmentName(e.Name())
		if !ok {
			continue
		}
		if !e.Type().IsRegular() {
			return tailState{}, fmt.Errorf("%w: %s is not a regular file", ErrCorrupt, e.Name())
		}
		last, first = e.Name(), seq
	}
	if last == "" {
		return tailState{path: filepath.Join(dir, segmentName(0))}, nil
	}
	path := filepath.Join(dir, last)
	end, line, err := readLastLine(path)
	if err != nil {
		return tailState{}, err
	}
	st := tailState{path: path, acked: end, next: first}
	if end == 0 {
		return st, nil
	}
	var rec struct {
		Seq *uint64 `json:"seq"`
	}
	if err := json.Unmarshal(line, &rec); err != nil || rec.Seq == nil {
		return tailState{}, fmt.Errorf("%w: %s: last record has no readable seq", ErrCorrupt, last)
	}
	if *rec.Seq < first || *rec.Seq == ^uint64(0) {
		return tailState{}, fmt.Errorf("%w: %s: last seq %d does not belong in this segment", ErrCorrupt, last, *rec.Seq)
	}
	st.next = *rec.Seq + 1
	return st, nil
}

// readLastLine returns the offset just past the last '\n' before the
// segment's first NUL byte (0 if there is none) and the complete line
// ending there, without its '\n'.
//
// The records end at the first NUL: acknowledged records were fsynced
// whole before anything after them was written, so they contain none, and
// a crash can leave preallocated zeros, a torn batch or both after them.
// Finding the first NUL takes a scan of the segment; it runs once, at
// startup.
func readLastLine(path string) (int64, []byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, nil, fmt.Errorf("audit: open segment: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return 0, nil, fmt.Errorf("audit: stat segment: %w", err)
	}
	size, err := firstNUL(f, info.Size())
	if err != nil {
		return 0, nil, err
	}
	return lastLine(f, size)
}

// firstNUL returns the offset of the first NUL byte in r, or size if
// there is none.
func firstNUL(r io.ReaderAt, size int64) (int64, error) {
	buf := make([]byte, min(size, 1<<20))
	for pos := int64(0); pos < size; {
		n, err := r.ReadAt(buf[:min(int64(len(buf)), size-pos)], pos)
		if i := bytes.IndexByte(buf[:n], 0); i >= 0 {
			return pos + int64(i), nil
		}
		pos += int64(n)
		if err != nil && !(errors.Is(err, io.EOF) && pos == size) {
			return 0, fmt.Errorf("audit: read segment: %w", err)
		}
	}
	return size, nil
}

// lastLine reads r backwards in chunks; see readLastLine.
func lastLine(r io.ReaderAt, size int64) (int64, []byte, error) {
	var buf []byte // holds bytes [pos, size)
	pos, end := size, int64(-1)
	for {
		if end < 0 {
			if i := bytes.LastIndexByte(buf, '\n'); i >= 0 {
				end = pos + int64(i) + 1
			}
		}
		if end >= 0 {
			line := buf[:end-1-pos]
			if i := bytes.LastIndexByte(line, '\n'); i >= 0 {
				return end, line[i+1:], nil
			}
			if pos == 0 {
				return end, line, nil
			}
		} else if pos == 0 {
			return 0, nil, nil
		}
		if int64(len(buf)) >= maxRecordBytes {
			return 0, nil, fmt.Errorf("%w: last record longer than %d bytes", ErrCorrupt, maxRecordBytes)
		}
		n := min(max(int64(tailChunk), int64(len(buf))), pos) // doubling: linear total copying
		chunk := make([]byte, n, n+int64(len(buf)))
		if _, err := r.ReadAt(chunk, pos-n); err != nil {
			return 0, nil, fmt.Errorf("audit: read segment: %w", err)
		}
		pos -= n
		buf = append(chunk, buf...)
	}
}

// segmentWriter appends records to the current segment. It is owned by
// the writer goroutine; nothing else touches it after New.
type segmentWriter struct {
	dir      string
	maxBytes int64
	durable  bool
	open     func(path string) (SegmentFile, error)
	observe  func(time.Duration) // fsync latency

	f SegmentFile // nil after a failure: reopened on the next attempt
	// unsynced: records were written (non-durable log) and no fsync has
	// succeeded since; with f nil they cannot be made durable until the
	// segment is reopened, so no checkpoint may cover them.
	unsynced bool
	tail     tailState
	size     int64 // of f: tail.acked plus the zero-filled space after it
	buf      []byte
	onTrim   func(n int64) // told when n unacknowledged bytes are removed

	// onChunk is told the lines of each chunk once they are written (and
	// fsynced if durable): the Merkle tree hashes them.
	onChunk func(buf []byte)
	// maxAge rotates a segment whose first record is older; started is
	// when the current segment's first record was written.
	maxAge  time.Duration
	now     func() time.Time
	started time.Time
	// onRotate is told the path of the new segment after a rotation.
	onRotate func(current string)
}

// append writes recs in order, assigning seqs from tail.next, rotating as
// segments fill. It returns how many records were written (and, if
// durable, fsynced): those are acknowledged even when err is not nil.
func (w *segmentWriter) append(recs []record) (int, error) {
	if err := w.ensureOpen(); err != nil {
		return 0, err
	}
	if w.maxAge > 0 && w.tail.acked > 0 && w.now().Sub(w.started) >= w.maxAge {
		if err := w.rotate(); err != nil {
			return 0, err
		}
	}
	done := 0
	for done < len(recs) {
		buf, k := w.buf[:0], done
		for ; k < len(recs); k++ {
			mark := len(buf)
			buf = recs[k].appendWithSeq(buf, w.tail.next+uint64(k-done))
			if w.tail.acked+int64(len(buf)) > w.maxBytes && (w.tail.acked > 0 || mark > 0) {
				buf = buf[:mark]
				break
			}
		}
		w.keep(buf)
		if k == done { // the next record does not fit into a non-empty segment
			if err := w.rotate(); err != nil {
				return done, err
			}
			continue
		}
		if err := w.writeChunk(buf); err != nil {
			return done, err
		}
		if w.tail.acked == 0 {
			w.started = w.now()
		}
		w.tail.acked += int64(len(buf))
		w.tail.next += uint64(k - done)
		done = k
		w.onChunk(buf)
	}
	return done, nil
}

// keep retains buf for reuse unless a recovery flush made it large.
func (w *segmentWriter) keep(buf []byte) {
	if cap(buf) <= 4<<20 {
		w.buf = buf[:0]
	} else {
		w.buf = nil
	}
}

// writeChunk writes buf after the acknowledged records and, if durable,
// fsyncs it.
func (w *segmentWriter) writeChunk(buf []byte) error {
	if err := w.reserve(int64(len(buf))); err != nil {
		w.fail()
		return err
	}
	n, err := w.f.WriteAt(buf, w.tail.acked)
	if err == nil && n != len(buf) {
		err = io.ErrShortWrite
	}
	if err != nil {
		w.fail()
		return fmt.Errorf("write segment: %w", err)
	}
	w.size = max(w.size, w.tail.acked+int64(n))
	if w.durable {
		return w.sync()
	}
	w.unsynced = true
	return nil
}

// reserve makes sure, for a durable log, that the n bytes after the
// acknowledged records lie in zero-filled space that is already part of
// the file: it grows the file by at least preallocBytes at a time.
//
// Why: an fsync after an append that grows the file must also commit the
// new file size, a file-system journal commit that costs about as much
// again as the data. Writing into space whose size is already durable
// makes the per-batch fsync flush data only; measured, it halves the
// fsync's time and CPU (bench/README.md). The price is the zero tail:
// readers stop at the first NUL ([SegmentData]), and the tail is removed
// when the segment is closed or rotated. Zero-filling, not fallocate:
// space fallocate reserves is "unwritten", and writing into it changes
// metadata again.
func (w *segmentWriter) reserve(n int64) error {
	if !w.durable || w.tail.acked+n <= w.size {
		return nil
	}
	want := min(max(w.tail.acked+n, w.size+preallocBytes), max(w.maxBytes, w.tail.acked+n))
	for off := w.size; off < want; {
		k, err := w.f.WriteAt(zeros[:min(int64(len(zeros)), want-off)], off)
		off += int64(k)
		w.size = max(w.size, off)
		if err != nil {
			return fmt.Errorf("preallocate segment: %w", err)
		}
	}
	return nil // the fsync of the records about to be written commits the growth
}

// trimTail cuts the zero-filled space off the segment, so that a segment
// the log is done with ends with its last record, and makes that durable.
func (w *segmentWriter) trimTail() error {
	if w.size == w.tail.acked {
		return nil
	}
	if err := w.f.Truncate(w.tail.acked); err != nil {
		w.fail()
		return fmt.Errorf("trim segment: %w", err)
	}
	w.size = w.tail.acked
	return w.sync()
}

func (w *segmentWriter) sync() error {
	start := time.Now()
	err := w.f.Sync()
	w.observe(time.Since(start))
	if err != nil {
		w.fail()
		return fmt.Errorf("fsync segment: %w", err)
	}
	w.unsynced = false
	return nil
}

// rotate closes the current segment (fsynced, without its zero tail) and
// opens the next one.
func (w *segmentWriter) rotate() error {
	if err := w.finish(); err != nil {
		return err
	}
	err := w.f.Close()
	w.f = nil
	if err != nil {
		return fmt.Errorf("close segment: %w", err)
	}
	w.tail.path = filepath.Join(w.dir, segmentName(w.tail.next))
	w.tail.acked = 0
	if err := w.openCurrent(); err != nil {
		return err
	}
	w.onRotate(w.tail.path)
	return nil
}

// syncRecords fsyncs the current segment of a non-durable log, whose
// batches are not fsynced, so a checkpoint never covers records a crash
// could take back. A durable log has nothing to do.
func (w *segmentWriter) syncRecords() error {
	if w.durable {
		return nil
	}
	if w.f == nil {
		return w.lostSync()
	}
	return w.sync()
}

// firstRecordTime returns the time of the first record of the segment at
// path, or zero if it has none or it cannot be read.
func firstRecordTime(path string) time.Time {
	f, err := os.Open(path)
	if err != nil {
		return time.Time{}
	}
	defer f.Close()
	line, err := readRecordLine(bufio.NewReaderSize(f, 64<<10))
	if err != nil {
		return time.Time{}
	}
	var rec struct {
		Time string `json:"time"`
	}
	if json.Unmarshal(line, &rec) != nil {
		return time.Time{}
	}
	t, _ := time.Parse(time.RFC3339Nano, rec.Time)
	return t
}

// probe checks, without adding a record, that the log can take one: the
// segment (re)opens and syncs, and a scratch file in the same directory
// takes probeBytes and an fsync. Reopening and syncing alone would report a
// full disk as healthy.
func (w *segmentWriter) probe() error {
	if err := w.ensureOpen(); err != nil {
		return err
	}
	if err := w.sync(); err != nil {
		return err
	}
	path := filepath.Join(w.dir, probeName)
	defer os.Remove(path) // best effort: recovery ignores a leftover
	f, err := w.open(path)
	if err != nil {
		return fmt.Errorf("probe: open: %w", err)
	}
	_, err = f.WriteAt(zeros[:probeBytes], 0)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	return nil
}

func (w *segmentWriter) ensureOpen() error {
	if w.f != nil {
		return nil
	}
	return w.openCurrent()
}

// openCurrent opens tail.path for writing after trimming anything past
// the acknowledged records (unacknowledged data and zero-filled space).
//
// Security: bytes past tail.acked belong to a batch whose Commit failed (or,
// at startup, to a line a crash cut short). The caller answered 503 and
// deferred an amended event, so keeping them would leave records claiming
// an access that never happened, and keeping a partial line would corrupt
// the line framing the Merkle leaves rely on. Truncation removes only
// unacknowledged bytes, never an acknowledged record. Accepted risk: a
// record whose write landed but whose fsync failed is removed although it
// was readable for a moment; the deferred copy replaces it.
func (w *segmentWriter) openCurrent() error {
	created := false
	info, err := os.Stat(w.tail.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if w.tail.acked != 0 {
			return fmt.Errorf("%w: current segment disappeared", ErrCorrupt)
		}
		created = true
	case err != nil:
		return fmt.Errorf("stat segment: %w", err)
	case info.Size() < w.tail.acked:
		return fmt.Errorf("%w: current segment is shorter than its acknowledged records", ErrCorrupt)
	case info.Size() > w.tail.acked:
		unacked, err := unackedBytes(w.tail.path, w.tail.acked, info.Size())
		if err != nil {
			return err
		}
		if err := os.Truncate(w.tail.path, w.tail.acked); err != nil {
			return fmt.Errorf("trim segment: %w", err)
		}
		if unacked > 0 {
			w.onTrim(unacked)
		}
	}
	f, err := w.open(w.tail.path)
	if err != nil {
		return fmt.Errorf("open segment: %w", err)
	}
	w.size = w.tail.acked
	if created {
		// The new file's directory entry must be durable before any
		// record in it is acknowledged.
		if err := syncDir(w.dir); err != nil {
			_ = f.Close()
			return err
		}
	}
	w.f = f
	return nil
}

// unackedBytes counts the bytes in path between acked and the first NUL
// after it: data past the acknowledged records, not preallocated space.
func unackedBytes(path string, acked, size int64) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("open segment: %w", err)
	}
	defer f.Close()
	end, err := firstNUL(io.NewSectionReader(f, acked, size-acked), size-acked)
	if err != nil {
		return 0, err
	}
	return end, nil
}

// fail drops the file after a write or fsync error; the next attempt
// reopens it. The close error is moot: the segment is already suspect.
func (w *segmentWriter) fail() {
	if w.f != nil {
		_ = w.f.Close()
		w.f = nil
	}
}

// lostSync reports records written without fsync to a segment that a
// failure has since closed (nil if there are none).
func (w *segmentWriter) lostSync() error {
	if w.unsynced {
		return errors.New("records written since the last fsync could not be made durable (segment closed after a failure)")
	}
	return nil
}

// finish makes the current segment end with its last record, durably:
// it removes the zero tail of a durable log and syncs a non-durable one
// (nothing else would).
func (w *segmentWriter) finish() error {
	if w.durable {
		return w.trimTail()
	}
	return w.sync()
}

// close finishes and closes the segment.
func (w *segmentWriter) close() error {
	if w.f == nil {
		return w.lostSync()
	}
	if err := w.finish(); err != nil {
		return err
	}
	err := w.f.Close()
	w.f = nil
	if err != nil {
		return fmt.Errorf("close segment: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync dir: %w", err)
	}
	return nil
}

func openSegmentFile(path string) (SegmentFile, error) {
	return os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o600)
}
