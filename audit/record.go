package audit

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/chartguard/chartguard/chartguard"
)

// record is one marshalled event, ending in '\n', whose seq is still 0.
// The writer splices the real seq in when it assigns one, so events are
// marshalled concurrently by their callers, not by the single writer.
type record struct {
	line  []byte
	seqAt int // index of the '0' of `"seq":0`
}

// seqField is how the zero seq appears in a marshalled Event. Event's
// fields before seq are v (a number), id and time (strings). Inside a JSON
// string a '"' is always escaped as `\"`, so `,"seq":` cannot occur there:
// the first match is the field itself.
var seqField = []byte(`,"seq":0,`)

// appendWithSeq appends the record to dst with seq in place of the 0.
func (r record) appendWithSeq(dst []byte, seq uint64) []byte {
	dst = append(dst, r.line[:r.seqAt]...)
	dst = strconv.AppendUint(dst, seq, 10)
	return append(dst, r.line[r.seqAt+1:]...)
}

// prepare fills the envelope of ev, caps its patient list and marshals it.
// It mutates ev: the caller sees what was logged.
func (l *Log) prepare(ev *chartguard.Event) (record, error) {
	ev.V = chartguard.EventVersion
	if ev.ID == "" {
		id, err := l.ids.next()
		if err != nil {
			return record{}, err
		}
		ev.ID = id
	}
	if ev.Time == "" {
		ev.Time = l.now().UTC().Format(time.RFC3339Nano)
	}
	ev.Seq = 0
	ev.Node = l.cfg.Node
	if ev.Count <= 0 {
		ev.Count = 1
	}
	l.normalise(ev)
	b, err := json.Marshal(ev)
	if err != nil {
		return record{}, fmt.Errorf("%w: %w", ErrInvalidEvent, err)
	}
	i := bytes.Index(b, seqField)
	if i < 0 {
		return record{}, fmt.Errorf("%w: seq field not found", ErrInvalidEvent)
	}
	return record{line: append(b, '\n'), seqAt: i + len(seqField) - 2}, nil
}

// normalise caps the patient list and writes absent lists as [] so
// auditors never have to tell null from empty.
func (l *Log) normalise(ev *chartguard.Event) {
	if r := ev.Resource; r != nil {
		if len(r.Patients) > l.cfg.MaxPatientsPerEvent {
			r.Patients = r.Patients[:l.cfg.MaxPatientsPerEvent:l.cfg.MaxPatientsPerEvent]
			r.PatientsTruncated = true
		}
		if r.Patients == nil {
			r.Patients = []string{}
		}
	}
	if ev.User != nil && ev.User.Roles == nil {
		ev.User.Roles = []string{}
	}
	if ev.Decision != nil && ev.Decision.Reasons == nil {
		ev.Decision.Reasons = []string{}
	}
}

// idBatch is how many event ids one read of the random source yields.
const idBatch = 64

// idSource hands out event ids: 128 random bits in hex each. It reads the
// random source once per idBatch ids, under a lock because Config.Rand
// need not be safe for concurrent use.
//
// Security: ids name events, they are not secrets (every id is written to
// the log), so holding the next few in memory exposes nothing.
type idSource struct {
	mu  sync.Mutex
	r   io.Reader
	buf [idBatch * 16]byte
	off int // buf[off:end] is unused
	end int
}

func (s *idSource) next() (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.end-s.off < 16 {
		n, err := io.ReadAtLeast(s.r, s.buf[:], 16)
		if err != nil {
			return "", fmt.Errorf("audit: event id: %w", err)
		}
		s.off, s.end = 0, n
	}
	id := hex.EncodeToString(s.buf[s.off : s.off+16])
	s.off += 16
	return id, nil
}
