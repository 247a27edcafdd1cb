package audit

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chartguard/chartguard/chartguard"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// TestReportNeverNamesOtherPatients: random events, many listing several
// patients, over two replicas' logs; every patient's report, in every
// format, lists exactly that patient's accesses and no other patient id.
func TestReportNeverNamesOtherPatients(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	patients := make([]string, 12)
	for i := range patients {
		patients[i] = fmt.Sprintf("pat-%02d", i) // "-" cannot occur in base64 roots and hashes
	}
	want := map[string]int{}
	root := t.TempDir()
	var srcs []Source
	for n, node := range []string{"n1", "n2"} {
		k := newTestKeys(t, "n"+node)
		var evs []chartguard.Event
		for i := range 150 {
			ps := []string{}
			for range rng.IntN(4) {
				if p := patients[rng.IntN(len(patients))]; !containsStr(ps, p) {
					ps = append(ps, p)
				}
			}
			ev := access(t0.Add(time.Duration(i*2+n)*time.Minute), "u"+fmt.Sprint(rng.IntN(3)), "Observation", "search", ps...)
			if rng.IntN(5) == 0 {
				ev.BreakGlass = &chartguard.EventBreakGlass{Event: "use", Reason: "ETREAT", Justification: "about " + joinIDs(ps)}
			}
			if len(ps) == 1 && rng.IntN(3) == 0 {
				ev.Resource.Type, ev.Resource.ID = "Patient", ps[0]
			}
			for _, p := range ps {
				want[p]++
			}
			evs = append(evs, ev)
		}
		dir := filepath.Join(root, node)
		writeTestLog(t, dir, node, k, evs)
		srcs = append(srcs, Source{Dir: dir, Verifier: k.verifier})
	}
	s, err := OpenSearcher(context.Background(), filepath.Join(root, "index"), srcs)
	require.NoError(t, err)
	defer s.Close()

	for _, p := range patients {
		for _, format := range []string{ReportText, ReportJSON, ReportCSV, ReportFHIR} {
			var buf bytes.Buffer
			require.NoError(t, WriteReport(context.Background(), &buf, s, ReportRequest{Patient: p, Format: format}))
			out := buf.String()
			for _, other := range patients {
				if other != p {
					require.NotContains(t, out, other, "report of %s (%s) names %s", p, format, other)
				}
			}
			if format == ReportText {
				for _, node := range []string{"n1", "n2"} {
					require.Contains(t, out, "checkpoint test/audit/"+node+" size 150 root ", "header names each log's checkpoint")
				}
				require.Contains(t, out, fmt.Sprintf("\n%d accesses. Logs verified against a signed checkpoint: 2 of 2.\n", want[p]))
			}
			if format == ReportJSON {
				var rep struct {
					Count    int         `json:"count"`
					Accesses []ReportRow `json:"accesses"`
				}
				require.NoError(t, json.Unmarshal(buf.Bytes(), &rep))
				assert.Equal(t, want[p], rep.Count, "accesses of %s", p)
				for i := 1; i < len(rep.Accesses); i++ {
					assert.False(t, rep.Accesses[i].Time.Before(rep.Accesses[i-1].Time), "merged by time")
				}
			}
		}
	}
}

func containsStr(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func TestParseRange(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	require.NoError(t, err)
	tests := []struct {
		name, from, to string
		loc            *time.Location
		wantFrom       time.Time
		wantTo         time.Time
		wantErr        bool
	}{
		{"dates in UTC", "2026-01-01", "2026-01-31", time.UTC,
			t0, time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), false},
		{"spring forward day is 23h", "2026-03-08", "2026-03-08", ny,
			time.Date(2026, 3, 8, 5, 0, 0, 0, time.UTC), time.Date(2026, 3, 9, 4, 0, 0, 0, time.UTC), false},
		{"fall back day is 25h", "2026-11-01", "2026-11-01", ny,
			time.Date(2026, 11, 1, 4, 0, 0, 0, time.UTC), time.Date(2026, 11, 2, 5, 0, 0, 0, time.UTC), false},
		{"local minutes inclusive", "2026-03-08T01:30", "2026-03-08T03:15", ny,
			time.Date(2026, 3, 8, 6, 30, 0, 0, time.UTC), time.Date(2026, 3, 8, 7, 16, 0, 0, time.UTC), false},
		{"rfc3339 keeps its zone", "2026-01-01T00:00:00+01:00", "", ny,
			time.Date(2025, 12, 31, 23, 0, 0, 0, time.UTC), time.Time{}, false},
		{"open", "", "", nil, time.Time{}, time.Time{}, false},
		{"reversed", "2026-02-01", "2026-01-01", nil, time.Time{}, time.Time{}, true},
		{"garbage", "yesterday", "", nil, time.Time{}, time.Time{}, true},
		{"US date order", "01/02/2026", "", nil, time.Time{}, time.Time{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, to, err := ParseRange(tt.from, tt.to, tt.loc)
			if tt.wantErr {
				require.ErrorIs(t, err, ErrBadQuery)
				return
			}
			require.NoError(t, err)
			assert.True(t, f.Equal(tt.wantFrom), "from = %s, want %s", f, tt.wantFrom)
			assert.True(t, to.Equal(tt.wantTo), "to = %s, want %s", to, tt.wantTo)
		})
	}
}

// TestReportDateRangeAcrossDST: a report for the New York day of the
// spring-forward change holds the accesses of that local day only.
func TestReportDateRangeAcrossDST(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	require.NoError(t, err)
	local := func(d, h, m, s int) time.Time { return time.Date(2026, 3, d, h, m, s, 0, ny) }
	times := []struct {
		at time.Time
		in bool
	}{
		{local(7, 23, 59, 59), false},
		{local(8, 0, 0, 0), true},
		{local(8, 1, 59, 59), true},
		{local(8, 3, 0, 0), true}, // 02:00 does not exist that day
		{local(8, 23, 59, 59), true},
		{local(9, 0, 0, 0), false},
	}
	var evs []chartguard.Event
	wantRows := 0
	for _, tm := range times {
		evs = append(evs, access(tm.at, "u1", "Observation", "read", "p1"))
		if tm.in {
			wantRows++
		}
	}
	dir, k := t.TempDir(), newTestKeys(t, "n1")
	writeTestLog(t, dir, "n1", k, evs)
	from, to, err := ParseRange("2026-03-08", "2026-03-08", ny)
	require.NoError(t, err)
	s, err := OpenSearcher(context.Background(), filepath.Join(t.TempDir(), "idx"), []Source{{Dir: dir, Verifier: k.verifier}})
	require.NoError(t, err)
	defer s.Close()
	var buf bytes.Buffer
	require.NoError(t, WriteReport(context.Background(), &buf, s, ReportRequest{Patient: "p1", From: from, To: to, Location: ny, Format: ReportCSV}))
	rows, err := csv.NewReader(&buf).ReadAll()
	require.NoError(t, err)
	var got []string
	for _, r := range rows[1:] {
		if r[0] != "#checkpoint" {
			got = append(got, r[0]+" "+r[1]+" "+r[2])
		}
	}
	assert.Equal(t, []string{"2026-03-08 00:00:00 UTC-05:00", "2026-03-08 01:59:59 UTC-05:00",
		"2026-03-08 03:00:00 UTC-04:00", "2026-03-08 23:59:59 UTC-04:00"}, got)
	assert.Len(t, got, wantRows)
}

func TestCSVCell(t *testing.T) {
	for in, want := range map[string]string{
		"=HYPERLINK(\"x\")": "'=HYPERLINK(\"x\")", "+1": "'+1", "-2+3": "'-2+3", "@SUM(A1)": "'@SUM(A1)",
		"\tx": "'\tx", "\rx": "'\rx", "Dr Who": "Dr Who", "": "", "a=b": "a=b",
	} {
		assert.Equal(t, want, CSVCell(in), "CSVCell(%q)", in)
	}
}

// TestReportCSVDefusesFormulas: a user name crafted as a formula reaches
// the CSV quoted and prefixed, whatever column it lands in.
func TestReportCSVDefusesFormulas(t *testing.T) {
	ev := access(t0, "u1", "Observation", "read", "p1")
	ev.User.Name = `=HYPERLINK("http://evil","x")`
	ev.User.Roles = []string{"@admin"}
	ev.BreakGlass = &chartguard.EventBreakGlass{Event: "use", Reason: "ETREAT", Justification: "x"}
	ev.Decision.PurposeOfUse = ""
	dir, k := t.TempDir(), newTestKeys(t, "n1")
	writeTestLog(t, dir, "n1", k, []chartguard.Event{ev})
	s, err := OpenSearcher(context.Background(), filepath.Join(t.TempDir(), "idx"), []Source{{Dir: dir, Verifier: k.verifier}})
	require.NoError(t, err)
	defer s.Close()
	var buf bytes.Buffer
	require.NoError(t, WriteReport(context.Background(), &buf, s, ReportRequest{Patient: "p1", Format: ReportCSV}))
	rows, err := csv.NewReader(bytes.NewReader(buf.Bytes())).ReadAll()
	require.NoError(t, err)
	require.Len(t, rows, 3) // header, one access, one checkpoint
	assert.Equal(t, csvColumns, rows[0])
	assert.Equal(t, `'=HYPERLINK("http://evil","x")`, rows[1][3])
	assert.Equal(t, "'@admin", rows[1][5])
	assert.Equal(t, "break-glass use ETREAT: x", rows[1][8])
	for _, r := range rows {
		for _, c := range r {
			if c != "" {
				assert.NotContains(t, "=+-@\t\r", c[:1], "cell %q", c)
			}
		}
	}
	assert.Equal(t, "#checkpoint", rows[2][0])
	assert.Equal(t, "test/audit/n1", rows[2][1])
	assert.Equal(t, "1", rows[2][2])
}

// TestReportFHIR: the fhir format is a Bundle of BALP-shaped AuditEvents
// naming only the queried patient.
func TestReportFHIR(t *testing.T) {
	dir, k := t.TempDir(), newTestKeys(t, "n1")
	denied := access(t0.Add(time.Minute), "u2", "Observation", "search-type", "pt-1", "pt-2")
	denied.Outcome = chartguard.OutcomeDenied
	writeTestLog(t, dir, "n1", k, []chartguard.Event{access(t0, "u1", "Patient", "read", "pt-1"), denied})
	s, err := OpenSearcher(context.Background(), filepath.Join(t.TempDir(), "idx"), []Source{{Dir: dir, Verifier: k.verifier}})
	require.NoError(t, err)
	defer s.Close()
	var buf bytes.Buffer
	require.NoError(t, WriteReport(context.Background(), &buf, s, ReportRequest{Patient: "pt-1", Format: ReportFHIR}))
	require.NotContains(t, buf.String(), "pt-2")
	var b struct {
		ResourceType string
		Type         string
		Total        int
		Meta         struct{ Tag []fhirCoding }
		Entry        []struct{ Resource fhirAuditEvent }
	}
	require.NoError(t, json.Unmarshal(buf.Bytes(), &b))
	assert.Equal(t, "Bundle", b.ResourceType)
	assert.Equal(t, "collection", b.Type)
	require.Equal(t, 2, b.Total)
	require.Len(t, b.Entry, 2)
	require.Len(t, b.Meta.Tag, 1)
	assert.True(t, strings.HasPrefix(b.Meta.Tag[0].Code, "test/audit/n1 2 "), b.Meta.Tag[0].Code)
	for i, want := range []struct{ subtype, action, outcome string }{{"read", "R", "0"}, {"search-type", "E", "4"}} {
		ae := b.Entry[i].Resource
		assert.Equal(t, "AuditEvent", ae.ResourceType)
		assert.Equal(t, fhirCoding{System: sysAuditEventType, Code: "rest", Display: "Restful Operation"}, ae.Type)
		assert.Equal(t, []fhirCoding{{System: sysRESTful, Code: want.subtype}}, ae.Subtype)
		assert.Equal(t, want.action, ae.Action)
		assert.Equal(t, want.outcome, ae.Outcome)
		require.Len(t, ae.Agent, 1)
		assert.True(t, ae.Agent[0].Requestor)
		assert.Equal(t, "https://idp", ae.Agent[0].Who.Identifier.System)
		assert.Equal(t, "IRCP", ae.Agent[0].Type.Coding[0].Code)
		assert.Equal(t, "TREAT", ae.Agent[0].PurposeOfUse[0].Coding[0].Code)
		var patients []string
		for _, e := range ae.Entity {
			if e.Role != nil && e.Role.Code == "1" {
				patients = append(patients, e.What.Reference)
			}
		}
		assert.Equal(t, []string{"Patient/pt-1"}, patients)
		assert.Equal(t, "n1", ae.Source["observer"].(map[string]any)["display"])
	}
}

// TestSearchFilters: user, action, outcome, time range and static
// exclusion, over the scan path (no patient) and the index path.
func TestSearchFilters(t *testing.T) {
	static := access(t0.Add(3*time.Minute), "u1", "", "read")
	static.Resource = &chartguard.EventResource{Kind: chartguard.KindStatic, Patients: []string{}, PatientStatus: chartguard.PatientsNone}
	denied := access(t0.Add(2*time.Minute), "u2", "Observation", "search", "p1")
	denied.Outcome = chartguard.OutcomeDenied
	login := chartguard.Event{Time: t0.Add(4 * time.Minute).Format(time.RFC3339Nano), Action: chartguard.ActionLogin,
		Outcome: chartguard.OutcomeAllowed, User: &chartguard.EventUser{Issuer: "https://idp", Subject: "u1"}}
	evs := []chartguard.Event{access(t0, "u1", "Patient", "read", "p1"), access(t0.Add(time.Minute), "u1", "Observation", "search", "p2"),
		denied, static, login}
	dir, k := t.TempDir(), newTestKeys(t, "n1")
	writeTestLog(t, dir, "n1", k, evs)
	s, err := OpenSearcher(context.Background(), filepath.Join(t.TempDir(), "idx"), []Source{{Dir: dir, Verifier: k.verifier}})
	require.NoError(t, err)
	defer s.Close()
	tests := []struct {
		name string
		q    Query
		want []uint64
	}{
		{"all but static", Query{}, []uint64{0, 1, 2, 4}},
		{"include static", Query{IncludeStatic: true}, []uint64{0, 1, 2, 3, 4}},
		{"user", Query{Subject: "u1"}, []uint64{0, 1, 4}},
		{"user at another issuer", Query{Issuer: "https://other", Subject: "u1"}, nil},
		{"action", Query{Action: "search"}, []uint64{1, 2}},
		{"outcome", Query{Outcome: chartguard.OutcomeDenied}, []uint64{2}},
		{"range", Query{From: t0.Add(time.Minute), To: t0.Add(2 * time.Minute)}, []uint64{1}},
		{"patient", Query{Patient: "p1"}, []uint64{0, 2}},
		{"patient and outcome", Query{Patient: "p1", Outcome: chartguard.OutcomeAllowed}, []uint64{0}},
		{"patient and range", Query{Patient: "p1", From: t0.Add(time.Second)}, []uint64{2}},
		{"limit", Query{Limit: 2}, []uint64{0, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []uint64
			for _, m := range collect(t, s, tt.q) {
				got = append(got, m.Index)
				if tt.q.Patient != "" {
					assert.Equal(t, []string{tt.q.Patient}, m.Event.Resource.Patients)
					assert.Empty(t, m.Event.Request.Path, "path can name other patients")
				}
			}
			assert.Equal(t, tt.want, got)
		})
	}
}

// TestIndexCatchesUpAndRebuilds: new records appear on the next query; a
// log replaced by another one (same directory) rebuilds the index.
func TestIndexCatchesUpAndRebuilds(t *testing.T) {
	root := t.TempDir()
	dir, idx, k := filepath.Join(root, "log"), filepath.Join(root, "idx"), newTestKeys(t, "n1")
	count := func() int {
		s, err := OpenSearcher(context.Background(), idx, []Source{{Dir: dir, Verifier: k.verifier}})
		require.NoError(t, err)
		defer s.Close()
		return len(collect(t, s, Query{Patient: "p1"}))
	}
	writeTestLog(t, dir, "n1", k, []chartguard.Event{access(t0, "u1", "Patient", "read", "p1")})
	require.Equal(t, 1, count())
	writeTestLog(t, dir, "n1", k, []chartguard.Event{access(t0.Add(time.Hour), "u1", "Patient", "read", "p1")})
	require.Equal(t, 2, count())

	// Replace the log with a different one of the same length.
	require.NoError(t, os.RemoveAll(dir))
	writeTestLog(t, dir, "n1", k, []chartguard.Event{access(t0, "u9", "Patient", "read", "p2"), access(t0, "u9", "Patient", "read", "p1")})
	require.Equal(t, 1, count())
	// And with a longer one whose first records differ (the consistency
	// proof fails).
	require.NoError(t, os.RemoveAll(dir))
	writeTestLog(t, dir, "n1", k, []chartguard.Event{access(t0, "u8", "Patient", "read", "p3"), access(t0, "u8", "Patient", "read", "p3"),
		access(t0, "u8", "Patient", "read", "p1"), access(t0, "u8", "Patient", "read", "p1")})
	require.Equal(t, 2, count())
	// And with a shorter one.
	require.NoError(t, os.RemoveAll(dir))
	writeTestLog(t, dir, "n1", k, []chartguard.Event{access(t0, "u9", "Patient", "read", "p2")})
	require.Equal(t, 0, count())
}

// TestIndexRefusesTamperedRecords: a record the index has not verified
// yet that no longer matches the signed checkpoint fails the query.
func TestIndexRefusesTamperedRecords(t *testing.T) {
	root := t.TempDir()
	dir, idx, k := filepath.Join(root, "log"), filepath.Join(root, "idx"), newTestKeys(t, "n1")
	writeTestLog(t, dir, "n1", k, []chartguard.Event{access(t0, "u1", "Patient", "read", "p1"), access(t0, "u2", "Patient", "read", "p1")})
	segs, err := filepath.Glob(filepath.Join(dir, "audit-*.log"))
	require.NoError(t, err)
	require.NotEmpty(t, segs)
	b, err := os.ReadFile(segs[0])
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(segs[0], bytes.Replace(b, []byte(`"sub":"u2"`), []byte(`"sub":"u3"`), 1), 0o600))
	_, err = OpenSearcher(context.Background(), idx, []Source{{Dir: dir, Verifier: k.verifier}})
	require.ErrorIs(t, err, ErrTampered)
	// Another key's checkpoints do not verify either.
	other := newTestKeys(t, "n1")
	_, err = OpenSearcher(context.Background(), filepath.Join(t.TempDir(), "idx"), []Source{{Dir: dir, Verifier: other.verifier}})
	require.Error(t, err)
}

// TestUnverifiedSource: without a verifier everything is read and the
// sources say it was not verified.
func TestUnverifiedSource(t *testing.T) {
	dir, k := t.TempDir(), newTestKeys(t, "n1")
	writeTestLog(t, dir, "n1", k, []chartguard.Event{access(t0, "u1", "Patient", "read", "p1")})
	s, err := OpenSearcher(context.Background(), filepath.Join(t.TempDir(), "idx"), []Source{{Dir: dir}})
	require.NoError(t, err)
	defer s.Close()
	assert.Len(t, collect(t, s, Query{Patient: "p1"}), 1)
	var buf bytes.Buffer
	require.NoError(t, WriteReport(context.Background(), &buf, s, ReportRequest{Patient: "p1"}))
	assert.Contains(t, buf.String(), "NOT VERIFIED")
}

func TestOfflineAccessRecords(t *testing.T) {
	dir, k := t.TempDir(), newTestKeys(t, "n1")
	writeTestLog(t, dir, "n1", k, []chartguard.Event{access(t0, "u1", "Patient", "read", "p1")})
	auditor := newTestKeys(t, "alice")
	when := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	_, err := WriteOfflineAccess(dir, OfflineAccess{Who: "alice", When: when, Query: "report patient=p1"}, auditor.signer)
	require.ErrorIs(t, err, ErrNoReason)
	_, err = WriteOfflineAccess(dir, OfflineAccess{Who: "alice", When: when, Reason: "x\nwho: mallory", Query: "q"}, auditor.signer)
	require.ErrorIs(t, err, ErrBadQuery, "no forged lines")
	_, err = WriteOfflineAccess(dir, OfflineAccess{Who: "alice", When: when, Reason: "complaint #42", Query: "report patient=p1"}, auditor.signer)
	require.NoError(t, err)

	got, err := ReadOfflineAccess(dir, auditor.verifier)
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, "alice", got[0].Who)
	assert.Equal(t, "complaint #42", got[0].Reason)
	assert.Equal(t, "report patient=p1", got[0].Query)
	assert.True(t, got[0].When.Equal(when))
	assert.True(t, got[0].Verified)
	assert.Equal(t, "alice", got[0].KeyName)

	unverified, err := ReadOfflineAccess(dir)
	require.NoError(t, err)
	assert.False(t, unverified[0].Verified)
	assert.Equal(t, "alice", unverified[0].KeyName)

	_, err = ReadOfflineAccess(dir, k.verifier)
	require.ErrorIs(t, err, ErrTampered, "signed by another key")

	// The record does not disturb the log: it still verifies and queries.
	_, err = Verify(context.Background(), dir, VerifyOptions{Verifier: k.verifier})
	require.NoError(t, err)
	s, err := OpenSearcher(context.Background(), filepath.Join(t.TempDir(), "idx"), []Source{{Dir: dir, Verifier: k.verifier}})
	require.NoError(t, err)
	defer s.Close()
	assert.Len(t, collect(t, s, Query{Patient: "p1"}), 1)
}

func TestIndexDirMustBePrivate(t *testing.T) {
	dir, k := t.TempDir(), newTestKeys(t, "n1")
	writeTestLog(t, dir, "n1", k, []chartguard.Event{access(t0, "u1", "Patient", "read", "p1")})
	open := t.TempDir()
	require.NoError(t, os.Chmod(open, 0o755))
	_, err := OpenSearcher(context.Background(), open, []Source{{Dir: dir, Verifier: k.verifier}})
	require.ErrorContains(t, err, "audit.index_dir")
	entries, err := os.ReadDir(open)
	require.NoError(t, err)
	assert.Empty(t, entries, "no index written where others can read it")
}

func TestSearcherRefusesMissingDir(t *testing.T) {
	_, err := OpenSearcher(context.Background(), filepath.Join(t.TempDir(), "idx"), []Source{{Dir: filepath.Join(t.TempDir(), "nope")}})
	require.ErrorIs(t, err, ErrBadQuery, "a mistyped --dir must not give an empty report")
}

// TestIndexInterruptedCatchUpIsRebuilt: entries written by a catch-up
// that never finished (Pending) are never returned: the index is rebuilt.
func TestIndexInterruptedCatchUpIsRebuilt(t *testing.T) {
	dir, idx, k := t.TempDir(), filepath.Join(t.TempDir(), "idx"), newTestKeys(t, "n1")
	writeTestLog(t, dir, "n1", k, []chartguard.Event{access(t0, "u1", "Patient", "read", "p1")})
	src := Source{Dir: dir, Verifier: k.verifier}
	x, err := openIndex(context.Background(), idx, src)
	require.NoError(t, err)
	forged := access(t0, "mallory", "Patient", "read", "p1")
	val, err := json.Marshal(forged)
	require.NoError(t, err)
	b := newBatch()
	b.entries = append(b.entries, entry{patientKey("p1", t0.Add(time.Second).UnixNano(), 0), val})
	require.NoError(t, x.flush(b))
	st := x.state
	st.Pending = true
	require.NoError(t, x.saveState(st))
	require.NoError(t, x.Close())

	s, err := OpenSearcher(context.Background(), idx, []Source{src})
	require.NoError(t, err)
	defer s.Close()
	got := collect(t, s, Query{Patient: "p1"})
	require.Len(t, got, 1)
	assert.Equal(t, "u1", got[0].Event.User.Subject)
}

// TestTailVerifiesAsItReads: tail prints records once a checkpoint covers
// them, and stops with ErrTampered when the log stops matching.
func TestTailVerifiesAsItReads(t *testing.T) {
	dir, k := filepath.Join(t.TempDir(), "log"), newTestKeys(t, "n1")
	writeTestLog(t, dir, "n1", k, []chartguard.Event{access(t0, "u1", "Patient", "read", "p1"), access(t0, "u2", "Patient", "read", "p1")})
	src := Source{Dir: dir, Verifier: k.verifier}
	s, err := OpenSearcher(context.Background(), filepath.Join(t.TempDir(), "idx"), []Source{src})
	require.NoError(t, err)
	pos, err := s.TailStart(1)
	require.NoError(t, err)
	require.NoError(t, s.Close())

	lines := make(chan string, 100)
	done := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		done <- Tail(ctx, pos, TailOptions{Poll: 5 * time.Millisecond}, func(l []byte) error {
			lines <- string(l)
			return nil
		})
	}()
	next := func() string {
		select {
		case l := <-lines:
			return l
		case err := <-done:
			t.Fatalf("tail ended: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatal("no line from tail")
		}
		return ""
	}
	assert.Contains(t, next(), `{"index":1,"verified":true,"event":{`)
	assert.Contains(t, next(), `"checkpoint":{"origin":"test/audit/n1","root":`)
	writeTestLog(t, dir, "n1", k, []chartguard.Event{access(t0, "u3", "Patient", "read", "p1")})
	l := next()
	assert.Contains(t, l, `{"index":2,"verified":true`)
	assert.Contains(t, l, `"sub":"u3"`)
	assert.Contains(t, next(), `"size":3`)

	// The log is replaced by another one, longer, with other records.
	require.NoError(t, os.RemoveAll(dir))
	writeTestLog(t, dir, "n1", k, []chartguard.Event{access(t0, "u9", "Patient", "read", "p9"), access(t0, "u9", "Patient", "read", "p9"),
		access(t0, "u9", "Patient", "read", "p9"), access(t0, "u9", "Patient", "read", "p9")})
	select {
	case err := <-done:
		require.ErrorIs(t, err, ErrTampered)
	case <-time.After(10 * time.Second):
		t.Fatal("tail did not notice the replaced log")
	}
}
