package audit

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/chartguard/chartguard/chartguard"
)

// ErrBadQuery marks a query the caller got wrong (a usage error, not a
// failure of the log).
var ErrBadQuery = errors.New("audit: bad query")

// Query selects events. A zero field matches everything.
type Query struct {
	// Issuer and Subject select the user (user.iss, user.sub); a user is
	// iss+sub, so Subject alone matches that subject at any issuer.
	Issuer, Subject string
	// Patient selects events whose resource.patients lists this patient.
	// The matching events are returned reduced to this one patient (see
	// [Search]).
	Patient string
	// Action and Outcome match the event's action and outcome exactly.
	Action, Outcome string
	// From is inclusive, To exclusive; a zero bound is open. Build them
	// with [ParseRange].
	From, To time.Time
	// IncludeStatic keeps requests for static assets (resource.kind
	// static), which are left out by default.
	IncludeStatic bool
	// Limit stops after that many matches; 0 means no limit.
	Limit int
}

// Source is one log directory (one node) and how to verify it.
type Source struct {
	Dir string
	// Verifier checks the directory's signed checkpoints. If nil the
	// records are read unverified and every result says so.
	Verifier note.Verifier
}

// Match is one event a query selected.
type Match struct {
	Dir   string // the log directory it came from
	Index uint64 // its leaf index in that log
	Time  time.Time
	Event chartguard.Event
}

// SourceState says how far one directory was read and verified.
type SourceState struct {
	Dir string `json:"dir"`
	// Verified is false when no verifier was given: nothing was checked.
	Verified bool `json:"verified"`
	// Origin, Size and Root are those of the signed checkpoint the records
	// were verified against; only records below Size are returned.
	Origin string `json:"origin,omitempty"`
	Size   uint64 `json:"size"`
	Root   string `json:"root,omitempty"` // base64, as in the checkpoint
	// Checkpoint is the signed checkpoint note text.
	Checkpoint string `json:"checkpoint,omitempty"`
}

// Validate reports a query that cannot be answered.
func (q Query) Validate() error {
	if !q.From.IsZero() && !q.To.IsZero() && !q.From.Before(q.To) {
		return fmt.Errorf("%w: the range is empty (from %s is not before to %s)", ErrBadQuery,
			q.From.Format(time.RFC3339), q.To.Format(time.RFC3339))
	}
	if q.Limit < 0 {
		return fmt.Errorf("%w: limit %d is negative", ErrBadQuery, q.Limit)
	}
	if q.Issuer != "" && q.Subject == "" {
		return fmt.Errorf("%w: an issuer needs a subject (a user is iss+sub)", ErrBadQuery)
	}
	return nil
}

// inRange reports whether t falls in [From, To).
func (q Query) inRange(t time.Time) bool {
	return (q.From.IsZero() || !t.Before(q.From)) && (q.To.IsZero() || t.Before(q.To))
}

// matches applies every filter but the time range to ev.
func (q Query) matches(ev *chartguard.Event) bool {
	if ev.Resource != nil && ev.Resource.Kind == chartguard.KindStatic && !q.IncludeStatic {
		return false
	}
	if q.Action != "" && ev.Action != q.Action || q.Outcome != "" && ev.Outcome != q.Outcome {
		return false
	}
	if q.Subject != "" {
		if ev.User == nil || ev.User.Subject != q.Subject || q.Issuer != "" && ev.User.Issuer != q.Issuer {
			return false
		}
	}
	if q.Patient != "" && (ev.Resource == nil || !slices.Contains(ev.Resource.Patients, q.Patient)) {
		return false
	}
	return true
}

// eventTime parses an event's time; records always carry RFC 3339 UTC.
func eventTime(ev *chartguard.Event) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, ev.Time)
	if err != nil {
		return time.Time{}, fmt.Errorf("audit: record %d: bad time %q", ev.Seq, ev.Time)
	}
	return t, nil
}

// ParseRange turns the from/to arguments of a query into [from, to).
// Each may be empty (open), an RFC 3339 time with a zone, a date
// (2006-01-02) or a local time (2006-01-02T15:04[:05]) in loc. A date as
// from starts at midnight in loc; a date as to is inclusive through the
// end of that day in loc (the next midnight, whatever its distance in a
// daylight-saving change). A time as to is inclusive to the precision it
// was given (…T15:04 includes 15:04:59.999).
func ParseRange(from, to string, loc *time.Location) (time.Time, time.Time, error) {
	if loc == nil {
		loc = time.UTC
	}
	f, err := parseBound(from, loc, false)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("%w: from: %w", ErrBadQuery, err)
	}
	t, err := parseBound(to, loc, true)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("%w: to: %w", ErrBadQuery, err)
	}
	if !f.IsZero() && !t.IsZero() && !f.Before(t) {
		return time.Time{}, time.Time{}, fmt.Errorf("%w: from %q is after to %q", ErrBadQuery, from, to)
	}
	return f, t, nil
}

func parseBound(s string, loc *time.Location, end bool) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		if end {
			return t.Add(time.Nanosecond), nil // inclusive of the instant given
		}
		return t, nil
	}
	if d, err := time.ParseInLocation(time.DateOnly, s, loc); err == nil {
		if end {
			return time.Date(d.Year(), d.Month(), d.Day()+1, 0, 0, 0, 0, loc), nil
		}
		return d, nil
	}
	for _, l := range []struct {
		layout string
		step   time.Duration
	}{{"2006-01-02T15:04:05", time.Second}, {"2006-01-02T15:04", time.Minute}} {
		if t, err := time.ParseInLocation(l.layout, s, loc); err == nil {
			if end {
				return t.Add(l.step), nil
			}
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a date (2006-01-02), a local time (2006-01-02T15:04) or an RFC 3339 time", s)
}
