package audit

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/chartguard/chartguard/chartguard"
)

// Report formats accepted by [WriteReport].
const (
	ReportText = "text"
	ReportJSON = "json"
	ReportCSV  = "csv"
	ReportFHIR = "fhir"
)

// ReportRequest is a patient access report ("who looked at my record").
type ReportRequest struct {
	Patient string
	// From inclusive, To exclusive (see [ParseRange]); zero is open.
	From, To time.Time
	// Location shows dates and times; if nil, UTC.
	Location *time.Location
	// IncludeStatic keeps static-asset requests (left out by default).
	IncludeStatic bool
	// Format is text (default), json, csv or fhir.
	Format string
	// Generated is the report time; if zero, time.Now.
	Generated time.Time
}

// ReportRow is one access in a patient access report. It holds nothing
// about any other patient.
type ReportRow struct {
	Time    time.Time `json:"time"`
	Date    string    `json:"date"`  // in the report's time zone
	Clock   string    `json:"clock"` // hh:mm:ss in the report's time zone
	Zone    string    `json:"zone"`  // its UTC offset then, e.g. UTC-05:00
	Person  string    `json:"person"`
	UserID  string    `json:"user_id,omitempty"` // iss + " " + sub
	Roles   []string  `json:"roles"`
	What    string    `json:"what"`
	Action  string    `json:"action"`
	Purpose string    `json:"purpose,omitempty"`
	Outcome string    `json:"outcome"`
	Node    string    `json:"node"`
	Index   uint64    `json:"index"`

	ev *chartguard.Event
}

// Validate checks the request before anything is read.
func (r *ReportRequest) Validate() error {
	if strings.TrimSpace(r.Patient) == "" {
		return fmt.Errorf("%w: a report needs a patient", ErrBadQuery)
	}
	switch r.Format {
	case "":
		r.Format = ReportText
	case ReportText, ReportJSON, ReportCSV, ReportFHIR:
	default:
		return fmt.Errorf("%w: format %q: use text, json, csv or fhir", ErrBadQuery, r.Format)
	}
	if r.Location == nil {
		r.Location = time.UTC
	}
	if r.Generated.IsZero() {
		r.Generated = time.Now()
	}
	return Query{From: r.From, To: r.To}.Validate()
}

// WriteReport streams the patient access report of req.Patient to w: a
// header naming the checkpoint(s) the records were verified against, one
// row per access in time order, and a footer. Rows come from
// [Searcher.Search] with the patient set, so no row can name another
// patient.
func WriteReport(ctx context.Context, w io.Writer, s *Searcher, req ReportRequest) error {
	if err := req.Validate(); err != nil {
		return err
	}
	q := Query{Patient: req.Patient, From: req.From, To: req.To, IncludeStatic: req.IncludeStatic}
	var f reportWriter
	switch req.Format {
	case ReportJSON:
		f = &jsonReport{jsonStream{w: w}}
	case ReportCSV:
		f = &csvReport{w: csv.NewWriter(w)}
	case ReportFHIR:
		f = &fhirReport{jsonStream{w: w}}
	default:
		f = &textReport{w: w}
	}
	srcs := s.Sources()
	if err := f.header(&req, srcs); err != nil {
		return err
	}
	n := 0
	for m, err := range s.Search(ctx, q) {
		if err != nil {
			return err
		}
		row := newRow(&m, req.Location)
		if err := f.row(&row); err != nil {
			return err
		}
		n++
	}
	return f.footer(&req, srcs, n)
}

type reportWriter interface {
	header(req *ReportRequest, srcs []SourceState) error
	row(r *ReportRow) error
	footer(req *ReportRequest, srcs []SourceState, n int) error
}

// newRow builds a row from an event already reduced to the patient.
func newRow(m *Match, loc *time.Location) ReportRow {
	ev := &m.Event
	t := m.Time.In(loc)
	r := ReportRow{Time: m.Time, Date: t.Format(time.DateOnly), Clock: t.Format(time.TimeOnly),
		Zone:   "UTC" + t.Format("-07:00"),
		Action: ev.Action, Outcome: ev.Outcome, Node: ev.Node, Index: m.Index, Roles: []string{}, ev: ev}
	if u := ev.User; u != nil {
		r.Person, r.UserID = userLabel(u), u.Issuer+" "+u.Subject
		if u.Roles != nil {
			r.Roles = u.Roles
		}
	}
	r.What = what(ev)
	r.Purpose = purpose(ev)
	return r
}

// what is the resource type, or a category for non-FHIR accesses.
func what(ev *chartguard.Event) string {
	switch {
	case ev.Resource != nil && ev.Resource.Type != "":
		return ev.Resource.Type
	case ev.Action == "break_glass":
		return "break-the-glass"
	case ev.Resource != nil && ev.Resource.Kind == chartguard.KindRoute:
		return "EMR page"
	case ev.Resource != nil && ev.Resource.Kind != "":
		return ev.Resource.Kind
	}
	return "other"
}

// purpose is the purpose of use, with the break-the-glass reason and
// justification when the access was an emergency override.
func purpose(ev *chartguard.Event) string {
	var parts []string
	if d := ev.Decision; d != nil && d.PurposeOfUse != "" {
		parts = append(parts, d.PurposeOfUse)
	}
	if bg := ev.BreakGlass; bg != nil {
		s := "break-glass " + bg.Event
		if bg.Reason != "" {
			s += " " + bg.Reason
		}
		if bg.Justification != "" {
			s += ": " + bg.Justification
		}
		parts = append(parts, s)
	} else if ev.Decision != nil && ev.Decision.BreakGlass {
		parts = append(parts, "break-glass")
	}
	return strings.Join(parts, "; ")
}

// periodText describes [from, to) for headers.
func periodText(req *ReportRequest) string {
	f, t := "the beginning", "now"
	if !req.From.IsZero() {
		f = req.From.In(req.Location).Format("2006-01-02 15:04:05 MST")
	}
	if !req.To.IsZero() {
		t = req.To.Add(-time.Nanosecond).In(req.Location).Format("2006-01-02 15:04:05 MST")
	}
	return fmt.Sprintf("%s to %s (inclusive, %s)", f, t, req.Location)
}

// sourceText is one line per log: the checkpoint its records were
// verified against, or that they were not verified.
func sourceText(s SourceState) string {
	if !s.Verified {
		return fmt.Sprintf("%s: NOT VERIFIED (no checkpoint key given), %d records read", s.Dir, s.Size)
	}
	if s.Size == 0 {
		return fmt.Sprintf("%s: no signed checkpoint yet; no records", s.Dir)
	}
	return fmt.Sprintf("%s: checkpoint %s size %d root %s", s.Dir, s.Origin, s.Size, s.Root)
}

// textReport is a human-readable table.
type textReport struct{ w io.Writer }

const textRowFormat = "%-10s  %-8s  %-24s  %-16s  %-20s  %-12s  %-8s  %s\n"

func (f *textReport) header(req *ReportRequest, srcs []SourceState) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Patient access report\nPatient:   %s\nPeriod:    %s\nGenerated: %s\nVerified against:\n",
		clean(req.Patient), periodText(req), req.Generated.In(req.Location).Format(time.RFC3339))
	for _, s := range srcs {
		fmt.Fprintf(&b, "  %s\n", clean(sourceText(s)))
	}
	fmt.Fprintf(&b, "\n"+textRowFormat, "DATE", "TIME", "PERSON", "ROLE", "WHAT", "ACTION", "OUTCOME", "PURPOSE")
	_, err := io.WriteString(f.w, b.String())
	return err
}

func (f *textReport) row(r *ReportRow) error {
	_, err := fmt.Fprintf(f.w, textRowFormat, r.Date, r.Clock, clean(r.Person), clean(strings.Join(r.Roles, ",")),
		clean(r.What), clean(r.Action), clean(r.Outcome), clean(r.Purpose))
	return err
}

func (f *textReport) footer(_ *ReportRequest, srcs []SourceState, n int) error {
	verified := 0
	for _, s := range srcs {
		if s.Verified {
			verified++
		}
	}
	_, err := fmt.Fprintf(f.w, "\n%d accesses. Logs verified against a signed checkpoint: %d of %d.\n", n, verified, len(srcs))
	return err
}

// clean keeps control characters (terminal escapes) out of text output.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return '?'
		}
		return r
	}, s)
}

// jsonReport is one JSON object: header fields, "accesses", footer count.
type jsonReport struct{ jsonStream }

// jsonStream writes one JSON object whose last member is an array that is
// streamed item by item, so a report of any length needs no buffer.
type jsonStream struct {
	w     io.Writer
	first bool
}

// open writes head (a JSON object) without its closing brace, then
// "key":[.
func (s *jsonStream) open(head any, key string) error {
	b, err := json.Marshal(head)
	if err != nil {
		return err
	}
	s.first = true
	_, err = fmt.Fprintf(s.w, "%s,%q:[", b[:len(b)-1], key)
	return err
}

// item writes one array element.
func (s *jsonStream) item(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if !s.first {
		b = append([]byte{',', '\n'}, b...)
	}
	s.first = false
	_, err = s.w.Write(b)
	return err
}

// close ends the array and the object with "countKey":n.
func (s *jsonStream) close(countKey string, n int) error {
	_, err := fmt.Fprintf(s.w, "],%q:%d}\n", countKey, n)
	return err
}

func (f *jsonReport) header(req *ReportRequest, srcs []SourceState) error {
	h := struct {
		Patient   string        `json:"patient"`
		From      *time.Time    `json:"from,omitempty"`
		To        *time.Time    `json:"to,omitempty"` // exclusive
		TimeZone  string        `json:"time_zone"`
		Generated time.Time     `json:"generated"`
		Sources   []SourceState `json:"sources"`
	}{Patient: req.Patient, TimeZone: req.Location.String(), Generated: req.Generated, Sources: srcs}
	if !req.From.IsZero() {
		h.From = &req.From
	}
	if !req.To.IsZero() {
		h.To = &req.To
	}
	return f.open(h, "accesses")
}

func (f *jsonReport) row(r *ReportRow) error { return f.item(r) }

func (f *jsonReport) footer(_ *ReportRequest, _ []SourceState, n int) error {
	return f.close("count", n)
}

// csvReport is RFC 4180 CSV: a header row, one row per access, then one
// "#checkpoint" row per log (origin, size, root, verified), padded to the
// same width. Cells are protected against formula injection.
type csvReport struct{ w *csv.Writer }

var csvColumns = []string{"date", "time", "time_zone", "person", "user_id", "roles", "what", "action", "purpose", "outcome", "node", "index"}

func (f *csvReport) header(*ReportRequest, []SourceState) error { return f.w.Write(csvColumns) }

func (f *csvReport) row(r *ReportRow) error {
	return f.write([]string{r.Date, r.Clock, r.Zone, r.Person, r.UserID,
		strings.Join(r.Roles, " "), r.What, r.Action, r.Purpose, r.Outcome, r.Node, fmt.Sprint(r.Index)})
}

func (f *csvReport) footer(_ *ReportRequest, srcs []SourceState, _ int) error {
	for _, s := range srcs {
		v := "verified"
		if !s.Verified {
			v = "NOT VERIFIED"
		}
		rec := make([]string, len(csvColumns)) // same width: strict CSV readers refuse ragged rows
		copy(rec, []string{"#checkpoint", s.Origin, fmt.Sprint(s.Size), s.Root, v})
		if err := f.write(rec); err != nil {
			return err
		}
	}
	f.w.Flush()
	return f.w.Error()
}

func (f *csvReport) write(rec []string) error {
	for i := range rec {
		rec[i] = CSVCell(rec[i])
	}
	return f.w.Write(rec)
}

// CSVCell defuses spreadsheet formula injection: a cell starting with =,
// +, -, @, tab or carriage return is prefixed with a single quote.
func CSVCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
