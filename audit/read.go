package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"path/filepath"
	"slices"

	"github.com/chartguard/chartguard/chartguard"
)

// StoredRecord is one record read back from a log directory.
type StoredRecord struct {
	Index uint64           // leaf index = seq
	Line  []byte           // the exact JSON line as stored (no trailing newline)
	Event chartguard.Event // decoded
}

// segmentInfo is one segment file of a directory.
type segmentInfo struct {
	first uint64 // seq of its first record (from the name)
	path  string
}

// listSegments returns the segments of dir in log order.
func listSegments(dir string) ([]segmentInfo, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("audit: read dir: %w", err)
	}
	var segs []segmentInfo
	for _, e := range entries {
		seq, ok := parseSegmentName(e.Name())
		if !ok {
			continue
		}
		if !e.Type().IsRegular() {
			return nil, fmt.Errorf("%w: %s is not a regular file", ErrCorrupt, e.Name())
		}
		segs = append(segs, segmentInfo{first: seq, path: filepath.Join(dir, e.Name())})
	}
	slices.SortFunc(segs, func(a, b segmentInfo) int { return cmpUint(a.first, b.first) })
	return segs, nil
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// rawLine is one line of a segment with its position; Line is only valid
// until the iteration continues.
type rawLine struct {
	Index   uint64
	Segment uint64 // first seq of its segment
	Line    []byte
}

// errNoMore ends a segment scan at its first NUL (preallocated space).
var errNoMore = errors.New("end of records")

// readLines iterates the complete lines of the segments in order from
// index from, without decoding them. A segment's lines are numbered from
// the seq in its name; a gap between segments (retention or deletion) is
// not an error here: the caller sees the jump in Index. A final line
// without '\n' (a crash mid-write, before recovery trims it) is not a
// record and is skipped.
func readLines(segs []segmentInfo, from uint64) iter.Seq2[rawLine, error] {
	return func(yield func(rawLine, error) bool) {
		start := 0
		for i, s := range segs {
			if s.first <= from {
				start = i
			}
		}
		for _, s := range segs[start:] {
			if !scanSegment(s, from, yield) {
				return
			}
		}
	}
}

// scanSegment yields the lines of one segment; false if the caller stopped.
func scanSegment(s segmentInfo, from uint64, yield func(rawLine, error) bool) bool {
	f, err := os.Open(s.path)
	if err != nil {
		return yield(rawLine{}, fmt.Errorf("audit: open segment: %w", err))
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 256<<10)
	idx := s.first
	for {
		line, err := readRecordLine(r)
		if errors.Is(err, io.EOF) || errors.Is(err, errNoMore) {
			return true
		}
		if err != nil {
			return yield(rawLine{}, fmt.Errorf("audit: %s: record %d: %w", filepath.Base(s.path), idx, err))
		}
		if idx >= from && !yield(rawLine{Index: idx, Segment: s.first, Line: line}, nil) {
			return false
		}
		idx++
	}
}

// readRecordLine returns the next complete line without its '\n'. It
// returns io.EOF at the end (a partial last line is dropped) and
// errNoMore at a NUL byte (zero-filled space after the records).
func readRecordLine(r *bufio.Reader) ([]byte, error) {
	line, err := r.ReadSlice('\n')
	if bytes.IndexByte(line, 0) >= 0 {
		return nil, errNoMore
	}
	if errors.Is(err, bufio.ErrBufferFull) {
		full := append([]byte(nil), line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			if len(full) > maxRecordBytes {
				return nil, fmt.Errorf("%w: record longer than %d bytes", ErrCorrupt, maxRecordBytes)
			}
			line, err = r.ReadSlice('\n')
			if bytes.IndexByte(line, 0) >= 0 {
				return nil, errNoMore
			}
			full = append(full, line...)
		}
		line = full
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, err
	}
	return line[:len(line)-1], nil
}

// ReadDir iterates the records of one log directory in order from index
// from, across segments (segments removed by retention are skipped:
// iteration starts at the first available record >= from). It does not
// verify; it stops with an error on a malformed line. Each StoredRecord's
// Line is its own copy.
func ReadDir(dir string, from uint64) iter.Seq2[StoredRecord, error] {
	return func(yield func(StoredRecord, error) bool) {
		segs, err := listSegments(dir)
		if err != nil {
			yield(StoredRecord{}, err)
			return
		}
		for rl, err := range readLines(segs, from) {
			if err != nil {
				yield(StoredRecord{}, err)
				return
			}
			rec := StoredRecord{Index: rl.Index, Line: bytes.Clone(rl.Line)}
			if err := json.Unmarshal(rec.Line, &rec.Event); err != nil {
				yield(StoredRecord{}, fmt.Errorf("%w: record %d: %w", ErrCorrupt, rl.Index, err))
				return
			}
			if !yield(rec, nil) {
				return
			}
		}
	}
}
