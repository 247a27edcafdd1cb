package audit

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
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
		id, err := l.newID()
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

// newID returns 128 random bits in hex.
func (l *Log) newID() (string, error) {
	var b [16]byte
	l.randMu.Lock()
	_, err := io.ReadFull(l.rand, b[:])
	l.randMu.Unlock()
	if err != nil {
		return "", fmt.Errorf("audit: event id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}
