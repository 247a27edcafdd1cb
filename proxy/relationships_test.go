package proxy

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chartguard/chartguard/chartguard"
	"github.com/chartguard/chartguard/policy"
)

// relNow is the fake clock's start.
var relNow = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

// fakeEMR is a FHIR upstream for relationship lookups. Its searches are
// lenient on purpose — they return every CareTeam or Encounter of the
// patient, whatever participant, status or date was asked — so the tests
// prove ChartGuard checks the answers itself.
type fakeEMR struct {
	mu         sync.Mutex
	careTeams  []string
	encounters []string
	roles      []string          // PractitionerRole resources, all answered to any search
	queries    map[string]string // resource type -> the last query asked
	patients   map[string]string // id -> Patient JSON
	other      map[string]string // path -> body, for requests that are not lookups
	fail       map[string]int    // resource type, or Type/id, -> status to answer
	malformed  bool              // answer searches with a non-Bundle
	block      chan struct{}     // when set, lookups wait for it or their request's end
	lookups    map[string]int    // resource type -> lookups served
	pageSize   int               // when set, searches answer pages of this size
	pageBase   string            // the base of next links (the EMR's own URL if empty)
}

func newFakeEMR() *fakeEMR {
	return &fakeEMR{patients: map[string]string{}, other: map[string]string{}, fail: map[string]int{},
		lookups: map[string]int{}, queries: map[string]string{}}
}

func (f *fakeEMR) count(typ string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lookups[typ]
}

func (f *fakeEMR) total() int {
	return f.count("CareTeam") + f.count("Encounter") + f.count("Patient")
}

func (f *fakeEMR) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, "/fhir/")
	typ, id, _ := strings.Cut(path, "/")
	f.mu.Lock()
	body, isOther := f.other[r.URL.Path]
	lookup := !isOther && (typ == "CareTeam" || typ == "Encounter" || (typ == "Patient" && id != ""))
	if lookup || typ == "PractitionerRole" {
		f.lookups[typ]++
		f.queries[typ] = r.URL.RawQuery
	}
	block, status, malformed := f.block, max(f.fail[typ], f.fail[path]), f.malformed
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/fhir+json")
	if isOther {
		_, _ = w.Write([]byte(body))
		return
	}
	if block != nil && lookup {
		select {
		case <-block:
		case <-r.Context().Done():
			return
		}
	}
	if status != 0 {
		w.WriteHeader(status)
		_, _ = w.Write([]byte(`{"resourceType":"OperationOutcome"}`))
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch typ {
	case "CareTeam", "Encounter":
		if malformed {
			_, _ = w.Write([]byte(`{"resourceType":"Bundle","type":"searchset","entry":{}}`))
			return
		}
		src := f.careTeams
		if typ == "Encounter" {
			src = f.encounters
		}
		var entries []string
		for _, res := range src {
			if strings.Contains(res, `"reference":"`+r.URL.Query().Get("patient")+`"`) {
				entries = append(entries, `{"resource":`+res+`,"search":{"mode":"match"}}`)
			}
		}
		link := ""
		if f.pageSize > 0 {
			q := r.URL.Query()
			offset, _ := strconv.Atoi(q.Get("_offset"))
			entries = entries[min(offset, len(entries)):]
			if len(entries) > f.pageSize {
				entries = entries[:f.pageSize]
				q.Set("_offset", strconv.Itoa(offset+f.pageSize))
				base := cmp.Or(f.pageBase, "http://"+r.Host+"/fhir")
				link = fmt.Sprintf(`"link":[{"relation":"next","url":%q}],`, base+"/"+typ+"?"+q.Encode())
			}
		}
		fmt.Fprintf(w, `{"resourceType":"Bundle","type":"searchset",%s"entry":[%s]}`, link, strings.Join(entries, ","))
	case "PractitionerRole":
		entries := make([]string, len(f.roles))
		for i, res := range f.roles {
			entries[i] = `{"resource":` + res + `}`
		}
		fmt.Fprintf(w, `{"resourceType":"Bundle","type":"searchset","entry":[%s]}`, strings.Join(entries, ","))
	case "Patient":
		p, ok := f.patients[id]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"resourceType":"OperationOutcome"}`))
			return
		}
		_, _ = w.Write([]byte(p))
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

func ctJSON(status, patient, member, org string) string {
	mo := ""
	if org != "" {
		mo = fmt.Sprintf(`,"managingOrganization":[{"reference":"Organization/%s"}]`, org)
	}
	return fmt.Sprintf(`{"resourceType":"CareTeam","status":%q,"subject":{"reference":"Patient/%s"},"participant":[{"member":{"reference":%q}}]%s}`,
		status, patient, member, mo)
}

func encJSON(status, patient, individual string, end time.Time, org string) string {
	sp := ""
	if org != "" {
		sp = fmt.Sprintf(`,"serviceProvider":{"reference":"Organization/%s"}`, org)
	}
	per := fmt.Sprintf(`{"start":%q,"end":%q}`, end.Add(-time.Hour).Format(time.RFC3339), end.Format(time.RFC3339))
	if status == "in-progress" { // end is when it started
		per = fmt.Sprintf(`{"start":%q}`, end.Format(time.RFC3339))
	}
	return fmt.Sprintf(`{"resourceType":"Encounter","status":%q,"subject":{"reference":"Patient/%s"},"participant":[{"individual":{"reference":%q}}],"period":%s%s}`,
		status, patient, individual, per, sp)
}

func patientJSON(id string, gps ...string) string {
	refs := make([]string, len(gps))
	for i, g := range gps {
		refs[i] = fmt.Sprintf(`{"reference":%q}`, g)
	}
	return fmt.Sprintf(`{"resourceType":"Patient","id":%q,"generalPractitioner":[%s]}`, id, strings.Join(refs, ","))
}

// fakeClock is an injectable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// newTestRelationships runs the lookup against emr with a fake clock.
func newTestRelationships(t *testing.T, emr *fakeEMR, timeout time.Duration) (*relationships, *fakeClock) {
	t.Helper()
	srv := httptest.NewServer(emr)
	t.Cleanup(srv.Close)
	cfg := policy.RelationshipsConfig{Source: policy.RelationshipsFHIR, Timeout: timeout}
	cfg.SetDefaults()
	clock := &fakeClock{t: relNow}
	r := newRelationships(cfg, srv.Client(), srv.URL+"/fhir", []string{srv.URL + "/fhir"}, clock.now,
		slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	return r, clock
}

func days(n int) *int { return &n }

// counterValue reads one counter.
func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	require.NoError(t, c.Write(&m))
	return m.GetCounter().GetValue()
}

func TestRelationshipLookup(t *testing.T) {
	t.Parallel()
	const me, other = "Practitioner/pr1", "Practitioner/pr2"
	cases := []struct {
		name       string
		careTeams  []string
		encounters []string
		patient    string
		want       chartguard.Relationship
	}{
		{name: "no relationship", patient: patientJSON("p1"), want: chartguard.Relationship{}},
		{name: "care team active", careTeams: []string{ctJSON("active", "p1", me, "cardio")},
			want: chartguard.Relationship{CareTeam: true}},
		{name: "care team inactive", careTeams: []string{ctJSON("inactive", "p1", me, "")}},
		{name: "care team of someone else", careTeams: []string{ctJSON("active", "p1", other, "")}},
		{name: "care team of another patient", careTeams: []string{ctJSON("active", "p2", me, "")}},
		{name: "care team absolute reference", careTeams: []string{ctJSON("active", "p1", "{{base}}/Practitioner/pr1", "")},
			want: chartguard.Relationship{CareTeam: true}},
		{name: "encounter within window", encounters: []string{
			encJSON("finished", "p1", me, relNow.Add(-3*24*time.Hour-time.Hour), "er"),
			encJSON("finished", "p1", me, relNow.Add(-10*24*time.Hour), "cardio")},
			want: chartguard.Relationship{EncounterDaysAgo: days(3)}},
		{name: "encounter outside window", encounters: []string{encJSON("finished", "p1", me, relNow.Add(-40*24*time.Hour), "")}},
		{name: "encounter of someone else", encounters: []string{encJSON("finished", "p1", other, relNow.Add(-time.Hour), "")}},
		{name: "encounter cancelled", encounters: []string{encJSON("cancelled", "p1", me, relNow.Add(-time.Hour), "")}},
		{name: "encounter in progress", encounters: []string{encJSON("in-progress", "p1", me, relNow.Add(-9*24*time.Hour), "er")},
			want: chartguard.Relationship{EncounterDaysAgo: days(0), Department: "er"}},
		{name: "current department from anyone's encounter in progress", encounters: []string{
			encJSON("in-progress", "p1", other, relNow.Add(-50*24*time.Hour), "icu"),
			encJSON("in-progress", "p1", other, relNow.Add(-2*24*time.Hour), "cardio"),
			encJSON("finished", "p1", other, relNow.Add(-time.Hour), "er")},
			want: chartguard.Relationship{Department: "cardio"}},
		{name: "in-progress encounter of another patient", encounters: []string{encJSON("in-progress", "p2", other, relNow, "icu")}},
		{name: "pcp", patient: patientJSON("p1", other, me), want: chartguard.Relationship{PCP: true}},
		{name: "pcp of someone else", patient: patientJSON("p1", other)},
		{name: "patient unknown to the EMR", patient: ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			emr := newFakeEMR()
			r, _ := newTestRelationships(t, emr, time.Second)
			for _, ct := range tc.careTeams {
				emr.careTeams = append(emr.careTeams, strings.ReplaceAll(ct, "{{base}}", r.base))
			}
			emr.encounters = tc.encounters
			if tc.patient != "" {
				emr.patients["p1"] = tc.patient
			}
			got, err := r.lookup(context.Background(), "req-1", me, "p1")
			require.NoError(t, err)
			assert.Equal(t, tc.want, got, "lookup(%s, p1)", me)
			assert.Equal(t, 1, emr.count("CareTeam"))
			assert.Equal(t, 2, emr.count("Encounter"), "the user's encounters and the patient's current ones")
			assert.Equal(t, 1, emr.count("Patient"))
		})
	}
}

func TestRelationshipLookupFailures(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		setup   func(*fakeEMR)
		outcome string
		wantErr error
	}{
		{name: "care team 500", setup: func(f *fakeEMR) { f.fail["CareTeam"] = 500 }, outcome: "error", wantErr: errRelUpstream},
		{name: "patient 503", setup: func(f *fakeEMR) { f.fail["Patient"] = 503 }, outcome: "error", wantErr: errRelUpstream},
		{name: "encounter 400 (strict handling refused)", setup: func(f *fakeEMR) { f.fail["Encounter"] = 400 },
			outcome: "error", wantErr: errRelUpstream},
		{name: "malformed bundle", setup: func(f *fakeEMR) { f.malformed = true }, outcome: "error", wantErr: errRelUpstream},
		{name: "not a bundle", setup: func(f *fakeEMR) {
			f.other["/fhir/CareTeam"] = `{"resourceType":"OperationOutcome"}`
		}, outcome: "error", wantErr: errRelUpstream},
		{name: "timeout", setup: func(f *fakeEMR) { f.block = make(chan struct{}) }, outcome: "timeout", wantErr: errRelTimeout},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			emr := newFakeEMR()
			emr.patients["p1"] = patientJSON("p1")
			tc.setup(emr)
			r, _ := newTestRelationships(t, emr, 100*time.Millisecond)
			var logs strings.Builder
			r.log = slog.New(slog.NewJSONHandler(&logs, nil))
			st := &relState{got: map[string]relResult{}}
			r.resolve(context.Background(), st, "req-1", "Practitioner/pr1", []string{"p1"})
			require.ErrorIs(t, st.got["p1"].err, tc.wantErr)
			assert.Contains(t, logs.String(), "care relationship could not be checked")
			assert.Contains(t, logs.String(), `"request_id":"req-1"`)
			assert.NotContains(t, logs.String(), "p1", "logs name no patient")
			assert.NotContains(t, logs.String(), "pr1", "logs name no user")
			assert.Equal(t, 1.0, counterValue(t, r.lookups.WithLabelValues(tc.outcome)))
			assert.Equal(t, 0, r.cache.len(), "a failed lookup is not cached")
		})
	}
}

func TestRelationshipCacheTTL(t *testing.T) {
	t.Parallel()
	emr := newFakeEMR()
	emr.careTeams = []string{ctJSON("active", "p1", "Practitioner/pr1", "")}
	r, clock := newTestRelationships(t, emr, time.Second)
	resolve := func() chartguard.Relationship {
		st := &relState{got: map[string]relResult{}}
		r.resolve(context.Background(), st, "req", "Practitioner/pr1", []string{"p1"})
		require.NoError(t, st.got["p1"].err)
		return st.got["p1"].rel
	}
	assert.True(t, resolve().CareTeam)
	require.Equal(t, 4, emr.total())

	clock.advance(r.ttl - time.Second)
	emr.mu.Lock()
	emr.careTeams = nil // taken off the team: the cache does not know yet
	emr.mu.Unlock()
	assert.True(t, resolve().CareTeam, "within ttl the cached answer is used")
	assert.Equal(t, 4, emr.total(), "within ttl the EMR is not asked")
	assert.Equal(t, 1.0, counterValue(t, r.lookups.WithLabelValues("hit")))

	clock.advance(time.Second)
	assert.False(t, resolve().CareTeam, "after ttl the EMR is asked again")
	assert.Equal(t, 8, emr.total())
	assert.Equal(t, 2.0, counterValue(t, r.lookups.WithLabelValues("miss")))
}

// TestRelationshipNegativeTTL: an answer relating nothing is reused for
// negative_ttl only, so a clinician just added to the care team is not
// sent to break the glass for the whole ttl; the positive answer then
// lasts the ttl.
func TestRelationshipNegativeTTL(t *testing.T) {
	t.Parallel()
	emr := newFakeEMR()
	r, clock := newTestRelationships(t, emr, time.Second)
	require.Equal(t, 30*time.Second, r.negTTL)
	resolve := func() chartguard.Relationship {
		st := &relState{got: map[string]relResult{}}
		r.resolve(context.Background(), st, "req", "Practitioner/pr1", []string{"p1"})
		require.NoError(t, st.got["p1"].err)
		return st.got["p1"].rel
	}
	assert.False(t, resolve().CareTeam)
	require.Equal(t, 4, emr.total())

	emr.mu.Lock()
	emr.careTeams = []string{ctJSON("active", "p1", "Practitioner/pr1", "")} // added to the team
	emr.mu.Unlock()
	clock.advance(r.negTTL - time.Second)
	assert.False(t, resolve().CareTeam, "within negative_ttl the cached answer is used")
	assert.Equal(t, 4, emr.total())

	clock.advance(time.Second)
	assert.True(t, resolve().CareTeam, "after negative_ttl the EMR is asked again")
	assert.Equal(t, 8, emr.total())

	clock.advance(r.ttl - time.Second)
	assert.True(t, resolve().CareTeam, "a positive answer lasts the ttl")
	assert.Equal(t, 8, emr.total())
}

func TestRelationshipCacheFor(t *testing.T) {
	r := &relationships{ttl: 5 * time.Minute, negTTL: 30 * time.Second}
	cases := []struct {
		rel  chartguard.Relationship
		want time.Duration
	}{
		{chartguard.Relationship{}, 30 * time.Second},
		{chartguard.Relationship{Department: "org1"}, 30 * time.Second},
		{chartguard.Relationship{CareTeam: true}, 5 * time.Minute},
		{chartguard.Relationship{PCP: true}, 5 * time.Minute},
		{chartguard.Relationship{EncounterDaysAgo: days(3)}, 5 * time.Minute},
	}
	for _, tc := range cases {
		assert.Equal(t, tc.want, r.cacheFor(tc.rel), "%+v", tc.rel)
	}
}

func TestRelationshipCacheBounded(t *testing.T) {
	t.Parallel()
	c := newRelCache(3)
	exp := relNow.Add(time.Minute)
	for _, p := range []string{"p1", "p2", "p3"} {
		c.put("u", p, chartguard.Relationship{CareTeam: true}, exp)
	}
	_, ok := c.get("u", "p1", relNow) // p1 is now the most recently used
	require.True(t, ok)
	c.put("u", "p4", chartguard.Relationship{}, exp)
	assert.Equal(t, 3, c.len())
	_, ok = c.get("u", "p2", relNow)
	assert.False(t, ok, "the least recently used pair is evicted")
	for _, p := range []string{"p1", "p3", "p4"} {
		_, ok := c.get("u", p, relNow)
		assert.True(t, ok, p)
	}
	_, ok = c.get("u", "p1", exp)
	assert.False(t, ok, "expired at its expiry")
}

func TestRelationshipSingleFlight(t *testing.T) {
	t.Parallel()
	emr := newFakeEMR()
	emr.careTeams = []string{ctJSON("active", "p1", "Practitioner/pr1", "")}
	emr.block = make(chan struct{})
	r, _ := newTestRelationships(t, emr, 5*time.Second)
	const callers = 10
	results := make(chan relResult, callers)
	for range callers {
		go func() {
			st := &relState{got: map[string]relResult{}}
			r.resolve(context.Background(), st, "req", "Practitioner/pr1", []string{"p1"})
			results <- st.got["p1"]
		}()
	}
	// Every caller has joined the one fetch (or, if it came late, will
	// find the cache filled) before the EMR answers.
	require.Eventually(t, func() bool {
		r.flights.mu.Lock()
		defer r.flights.mu.Unlock()
		f := r.flights.m["Practitioner/pr1\x00p1"]
		return f != nil && f.joined == callers
	}, 5*time.Second, time.Millisecond)
	close(emr.block)
	for range callers {
		res := <-results
		require.NoError(t, res.err)
		assert.True(t, res.rel.CareTeam)
	}
	assert.Equal(t, 1, emr.count("CareTeam"), "one fetch for all callers")
	assert.Equal(t, 4, emr.total())
}

func TestRelationshipLookupCap(t *testing.T) {
	t.Parallel()
	emr := newFakeEMR()
	r, _ := newTestRelationships(t, emr, time.Second)
	r.maxLooks = 5
	var patients []string
	for i := range 8 {
		patients = append(patients, fmt.Sprintf("p%d", i))
	}
	r.cache.put("Practitioner/pr1", "p7", chartguard.Relationship{CareTeam: true}, relNow.Add(time.Minute))
	st := &relState{got: map[string]relResult{}}
	r.resolve(context.Background(), st, "req", "Practitioner/pr1", patients)
	for i, p := range patients {
		switch {
		case i < 5:
			assert.NoError(t, st.got[p].err, p)
		case p == "p7":
			assert.NoError(t, st.got[p].err, "a cache hit costs no lookup")
			assert.True(t, st.got[p].rel.CareTeam)
		default:
			assert.ErrorIs(t, st.got[p].err, errRelLimit, p)
		}
	}
	assert.Equal(t, 5, emr.count("CareTeam"))
	assert.Equal(t, 2.0, counterValue(t, r.lookups.WithLabelValues("limit")))
}

func TestRelationshipUserRef(t *testing.T) {
	t.Parallel()
	r := &relationships{bases: []string{"https://emr.example.org/fhir", "http://up/fhir"}}
	cases := []struct {
		in, want string
		ok       bool
	}{
		{"Practitioner/pr1", "Practitioner/pr1", true},
		{"PractitionerRole/r1", "PractitionerRole/r1", true},
		{"https://emr.example.org/fhir/Practitioner/pr1", "Practitioner/pr1", true},
		{"http://up/fhir/Practitioner/pr1/_history/3", "Practitioner/pr1", true},
		{"https://elsewhere/fhir/Practitioner/pr1", "", false},
		{"Patient/p9", "", false},
		{"RelatedPerson/r1", "", false},
		{"Practitioner/", "", false},
		{"Practitioner/a b", "", false},
		{"", "", false},
	}
	for _, tc := range cases {
		got, ok := r.userRef(tc.in)
		assert.Equal(t, tc.ok, ok, "userRef(%q)", tc.in)
		assert.Equal(t, tc.want, got, "userRef(%q)", tc.in)
	}
}

// BenchmarkRelationshipResolveHit is the per-request cost of a cached
// relationship: what a decision pays in the common case.
func BenchmarkRelationshipResolveHit(b *testing.B) {
	r := newRelationships(policy.RelationshipsConfig{Source: policy.RelationshipsFHIR, TTL: time.Hour, Timeout: time.Second},
		nil, "http://up/fhir", nil, func() time.Time { return relNow }, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	r.cache.put("Practitioner/pr1", "p1", chartguard.Relationship{CareTeam: true}, relNow.Add(time.Hour))
	patients := []string{"p1"}
	b.ReportAllocs()
	for b.Loop() {
		st := &relState{got: map[string]relResult{}}
		r.resolve(context.Background(), st, "req", "Practitioner/pr1", patients)
	}
}

// TestRelationshipSearchPages: a relationship on a later page of a search
// is found, following next links the EMR writes under its public base; a
// next link off the FHIR bases, or more than relMaxPages pages, fails the
// lookup (denied, not cached) rather than reading as "no relationship".
func TestRelationshipSearchPages(t *testing.T) {
	const user = "Practitioner/pr1"
	emr := newFakeEMR()
	emr.patients["p1"] = patientJSON("p1")
	for i := range 60 {
		emr.careTeams = append(emr.careTeams, ctJSON("active", "p1", fmt.Sprintf("Practitioner/x%d", i), ""))
	}
	emr.careTeams = append(emr.careTeams[:55], append([]string{ctJSON("active", "p1", user, "")}, emr.careTeams[55:]...)...)
	emr.pageSize, emr.pageBase = 50, "https://emr.example.org/fhir"
	srv := httptest.NewServer(emr)
	t.Cleanup(srv.Close)
	cfg := policy.RelationshipsConfig{Source: policy.RelationshipsFHIR, Timeout: 5 * time.Second}
	cfg.SetDefaults()
	newRel := func(bases ...string) *relationships {
		return newRelationships(cfg, srv.Client(), srv.URL+"/fhir", append([]string{srv.URL + "/fhir"}, bases...),
			func() time.Time { return relNow }, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	}

	r := newRel("https://emr.example.org/fhir")
	st := &relState{got: map[string]relResult{}}
	r.resolve(t.Context(), st, "req", user, []string{"p1"})
	require.NoError(t, st.got["p1"].err)
	assert.True(t, st.got["p1"].rel.CareTeam, "the team on page 2 counts")
	assert.Equal(t, 2, emr.count("CareTeam"))

	// The EMR's next link is under no base ChartGuard fronts.
	r = newRel()
	st = &relState{got: map[string]relResult{}}
	r.resolve(t.Context(), st, "req", user, []string{"p1"})
	require.ErrorIs(t, st.got["p1"].err, errRelUpstream)
	_, cached := r.cache.get(user, "p1", relNow)
	assert.False(t, cached, "a failed lookup is not cached")

	// Too many pages.
	emr.pageSize, emr.pageBase = 10, ""
	r = newRel()
	st = &relState{got: map[string]relResult{}}
	r.resolve(t.Context(), st, "req", user, []string{"p1"})
	require.ErrorIs(t, st.got["p1"].err, errRelUpstream)
	assert.Contains(t, st.got["p1"].err.Error(), "more than 4 pages")
}

// TestRelationshipPageURL: next links map onto the upstream only from
// under a FHIR base, never with a path that climbs out of it.
func TestRelationshipPageURL(t *testing.T) {
	r := &relationships{base: "http://up/fhir", bases: []string{"http://up/fhir", "https://emr.example.org/fhir"}}
	tests := []struct {
		next, want string
	}{
		{"http://up/fhir/CareTeam?_offset=50", "http://up/fhir/CareTeam?_offset=50"},
		{"https://emr.example.org/fhir?_getpages=abc", "http://up/fhir?_getpages=abc"},
		{"https://emr.example.org/fhir/Encounter?_offset=50&date=ge2026-11-06", "http://up/fhir/Encounter?_offset=50&date=ge2026-11-06"},
		{"https://evil.example.org/fhir/CareTeam?_offset=50", ""},
		{"http://up/fhirx/CareTeam", ""},
		{"http://up/fhir/../admin?x=1", ""},
		{"http://up/fhir/CareTeam#x", ""},
		{"/fhir/CareTeam?_offset=50", ""},
		{"", ""},
	}
	for _, tc := range tests {
		got, ok := r.pageURL(tc.next)
		assert.Equal(t, tc.want != "", ok, tc.next)
		assert.Equal(t, tc.want, got, tc.next)
	}
}

// TestRelationshipRequestDeadline: a request's lookups share one
// deadline, so a slow EMR holds the request for timeout, not for timeout
// per round of workers.
func TestRelationshipRequestDeadline(t *testing.T) {
	emr := newFakeEMR()
	emr.block = make(chan struct{})
	t.Cleanup(func() { close(emr.block) })
	r, _ := newTestRelationships(t, emr, 100*time.Millisecond)
	patients := make([]string, 24) // three rounds of 8 workers
	for i := range patients {
		patients[i] = fmt.Sprintf("p%d", i)
	}
	st := &relState{got: map[string]relResult{}}
	r.resolve(t.Context(), st, "req", "Practitioner/pr1", patients)
	for _, p := range patients {
		require.ErrorIs(t, st.got[p].err, errRelTimeout, p)
	}
	// Past the deadline no lookup starts: only the first round's 8
	// lookups (4 requests each) reached the EMR.
	assert.LessOrEqual(t, emr.total(), 8*4)
	assert.Equal(t, 24.0, counterValue(t, r.lookups.WithLabelValues("timeout")))
}

// TestRelationshipFetchesBoundedAcrossRequests: however many requests look
// up relationships at once, at most relMaxFetches lookups ask the EMR; the
// rest wait for a slot (within their timeout) and then run.
func TestRelationshipFetchesBoundedAcrossRequests(t *testing.T) {
	emr := newFakeEMR()
	emr.block = make(chan struct{})
	r, _ := newTestRelationships(t, emr, 10*time.Second)
	var wg sync.WaitGroup
	for i := range 5 { // 5 requests x 8 workers: 40 lookups at once
		wg.Go(func() {
			patients := make([]string, 8)
			for j := range patients {
				patients[j] = fmt.Sprintf("p%d-%d", i, j)
			}
			r.resolve(t.Context(), &relState{got: map[string]relResult{}}, "req", "Practitioner/pr1", patients)
		})
	}
	require.Eventually(t, func() bool { return emr.count("CareTeam") == relMaxFetches }, 10*time.Second, 10*time.Millisecond)
	time.Sleep(100 * time.Millisecond) // room for any lookup past the bound to arrive
	assert.Equal(t, relMaxFetches, emr.count("CareTeam"), "lookups asking the EMR at once")
	close(emr.block)
	wg.Wait()
	assert.Equal(t, 40, emr.count("CareTeam"), "the others ran once slots were free")
}
