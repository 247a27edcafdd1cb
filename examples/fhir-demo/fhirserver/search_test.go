package fhirserver

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func subjectIs(refs ...string) func(map[string]any) bool {
	return func(r map[string]any) bool { return slices.Contains(refs, refOf(r, "subject")) }
}

func hasCoding(elem, sysCode string) func(map[string]any) bool {
	return func(r map[string]any) bool { return slices.Contains(codings(r, elem), sysCode) }
}

func hasParticipant(elem, ref string) func(map[string]any) bool {
	return func(r map[string]any) bool {
		list, _ := r["participant"].([]any)
		for _, p := range list {
			if refOf(p.(map[string]any), elem) == ref {
				return true
			}
		}
		return false
	}
}

func TestSearch(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	p1 := decode(t, get(t, s, "/fhir/Patient/p1"))
	mrn := p1["identifier"].([]any)[0].(map[string]any)["value"].(string)
	none := func(map[string]any) bool { return false }
	all := func(map[string]any) bool { return true }
	form := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}

	tests := []struct {
		name string
		r    req
		typ  string                    // type whose resources the oracle filters
		want func(map[string]any) bool // oracle over resource content
	}{
		{"patient bare id", req{target: "/fhir/Observation?patient=p1"}, "Observation", subjectIs("Patient/p1")},
		{"patient typed", req{target: "/fhir/Observation?patient=Patient/p1"}, "Observation", subjectIs("Patient/p1")},
		{"subject bare id", req{target: "/fhir/Condition?subject=p2"}, "Condition", subjectIs("Patient/p2")},
		{"subject typed", req{target: "/fhir/Encounter?subject=Patient%2Fp2"}, "Encounter", subjectIs("Patient/p2")},
		{"comma is OR", req{target: "/fhir/Observation?patient=p1,p2"}, "Observation", subjectIs("Patient/p1", "Patient/p2")},
		{"repeat is AND", req{target: "/fhir/Observation?patient=p1&patient=p2"}, "Observation", none},
		{"repeat of the same is the same", req{target: "/fhir/Observation?patient=p1&subject=Patient/p1"}, "Observation", subjectIs("Patient/p1")},
		{"patient param refuses other types", req{target: "/fhir/Observation?patient=Practitioner/p1"}, "Observation", none},
		{"malformed reference matches nothing", req{target: "/fhir/Observation?patient=Patient/p1/x"}, "Observation", none},
		{"empty value ignored", req{target: "/fhir/MedicationRequest?patient="}, "MedicationRequest", all},
		{"empty alternative matches nothing", req{target: "/fhir/MedicationRequest?patient=,"}, "MedicationRequest", none},
		{"unknown param ignored", req{target: "/fhir/DocumentReference?patient=p3&color=blue"}, "DocumentReference", subjectIs("Patient/p3")},
		{"unknown _include ignored", req{target: "/fhir/Observation?patient=p1&_include=Observation:performer"}, "Observation", subjectIs("Patient/p1")},
		{"type modifier", req{target: "/fhir/Observation?subject:Patient=p1"}, "Observation", subjectIs("Patient/p1")},
		{"_id list", req{target: "/fhir/Patient?_id=p1,p3,nope"}, "Patient",
			func(r map[string]any) bool { return r["id"] == "p1" || r["id"] == "p3" }},
		{"_id and patient", req{target: "/fhir/Observation?_id=obs-p1-1,obs-p2-1&patient=p1"}, "Observation",
			func(r map[string]any) bool { return r["id"] == "obs-p1-1" }},
		{"code system|code", req{target: "/fhir/Observation?code=http://loinc.org|8867-4"}, "Observation", hasCoding("code", "http://loinc.org|8867-4")},
		{"code without system", req{target: "/fhir/Observation?code=8867-4,718-7"}, "Observation",
			func(r map[string]any) bool {
				return hasCoding("code", "http://loinc.org|8867-4")(r) || hasCoding("code", "http://loinc.org|718-7")(r)
			}},
		{"code wrong system", req{target: "/fhir/Observation?code=http://snomed.info/sct|8867-4"}, "Observation", none},
		{"code system only", req{target: "/fhir/Condition?code=http://snomed.info/sct|"}, "Condition", all},
		{"code and patient", req{target: "/fhir/Condition?patient=p4&code=35489007,370143000,197480006"}, "Condition",
			func(r map[string]any) bool {
				return subjectIs("Patient/p4")(r) && slices.ContainsFunc(codings(r, "code"), func(c string) bool {
					return strings.HasSuffix(c, "|35489007") || strings.HasSuffix(c, "|370143000") || strings.HasSuffix(c, "|197480006")
				})
			}},
		{"medication code", req{target: "/fhir/MedicationRequest?code=" + url.QueryEscape(sysRxNorm+"|314076")}, "MedicationRequest",
			hasCoding("medicationCodeableConcept", sysRxNorm+"|314076")},
		{"document type", req{target: "/fhir/DocumentReference?type=11488-4"}, "DocumentReference", hasCoding("type", sysLOINC+"|11488-4")},
		{"care team participant", req{target: "/fhir/CareTeam?participant=pr1"}, "CareTeam", hasParticipant("member", "Practitioner/pr1")},
		{"encounter participant", req{target: "/fhir/Encounter?participant=Practitioner/pr2"}, "Encounter", hasParticipant("individual", "Practitioner/pr2")},
		{"observation encounter", req{target: "/fhir/Observation?encounter=enc-p1-1"}, "Observation",
			func(r map[string]any) bool { return refOf(r, "encounter") == "Encounter/enc-p1-1" }},
		{"general practitioner", req{target: "/fhir/Patient?general-practitioner=pr1"}, "Patient",
			func(r map[string]any) bool {
				gp := r["generalPractitioner"].([]any)[0].(map[string]any)
				return gp["reference"] == "Practitioner/pr1"
			}},
		{"identifier", req{target: "/fhir/Patient?identifier=" + url.QueryEscape(sysMRN+"|"+mrn)}, "Patient",
			func(r map[string]any) bool { return r["id"] == "p1" }},
		{"compartment", req{target: "/fhir/Patient/p1/Observation"}, "Observation", subjectIs("Patient/p1")},
		{"compartment ANDs params", req{target: "/fhir/Patient/p1/Observation?patient=p2"}, "Observation", none},
		{"compartment with code", req{target: "/fhir/Patient/p1/Observation?code=8867-4"}, "Observation",
			func(r map[string]any) bool {
				return subjectIs("Patient/p1")(r) && hasCoding("code", "http://loinc.org|8867-4")(r)
			}},
		{"POST _search", req{method: http.MethodPost, target: "/fhir/Observation/_search", body: "patient=p2", header: form},
			"Observation", subjectIs("Patient/p2")},
		{"POST _search merges URL and body (AND)", req{method: http.MethodPost, target: "/fhir/Observation/_search?patient=p1",
			body: "patient=p2", header: form}, "Observation", none},
		{"POST _search merges URL and body", req{method: http.MethodPost, target: "/fhir/Observation/_search?patient=p1,p2",
			body: "code=8867-4", header: form}, "Observation",
			func(r map[string]any) bool {
				return subjectIs("Patient/p1", "Patient/p2")(r) && hasCoding("code", "http://loinc.org|8867-4")(r)
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := refsWhere(t, s, tc.typ, tc.want)
			if !strings.Contains(tc.r.target, "_count") {
				tc.r.target += map[bool]string{true: "&", false: "?"}[strings.Contains(tc.r.target, "?")] + "_count=1000"
			}
			rec := do(t, s, tc.r)
			require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			b := decode(t, rec)
			assert.Equal(t, "searchset", b["type"])
			assert.ElementsMatch(t, want, resourceRefs(t, b))
			assert.EqualValues(t, len(want), b["total"])
			for _, e := range entries(t, b) {
				assert.Equal(t, map[string]any{"mode": "match"}, e["search"])
				r := e["resource"].(map[string]any)
				assert.Equal(t, "http://fhir.example:8081/fhir/"+r["resourceType"].(string)+"/"+r["id"].(string), e["fullUrl"])
			}
		})
	}
}

func TestSearchFindsSomething(t *testing.T) {
	t.Parallel()
	// Guards the oracle-based table above against vacuous "both empty" passes.
	s := newTestServer(t)
	for _, target := range []string{"/fhir/Observation?patient=p1", "/fhir/CareTeam?participant=pr1",
		"/fhir/Condition?patient=p4&code=35489007,370143000,197480006", "/fhir/Patient?general-practitioner=pr1",
		"/fhir/Patient/p1/Observation", "/fhir/Observation?code=8867-4"} {
		b := decode(t, get(t, s, target))
		assert.NotEmpty(t, entries(t, b), target)
	}
}

func TestSearchErrors(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	strict := map[string]string{"Prefer": "handling=strict"}
	tests := []struct {
		name       string
		r          req
		wantStatus int
		wantCode   string
	}{
		{"modifier", req{target: "/fhir/Observation?patient:missing=true"}, 400, "invalid"},
		{"type modifier on a token", req{target: "/fhir/Observation?code:Patient=p1"}, 400, "invalid"},
		{"_count not a number", req{target: "/fhir/Observation?_count=ten"}, 400, "invalid"},
		{"_count negative", req{target: "/fhir/Observation?_count=-1"}, 400, "invalid"},
		{"_count twice", req{target: "/fhir/Observation?_count=1&_count=2"}, 400, "invalid"},
		{"_offset negative", req{target: "/fhir/Observation?_offset=-5"}, 400, "invalid"},
		{"_total invalid", req{target: "/fhir/Observation?_total=maybe"}, 400, "invalid"},
		{"malformed query", req{target: "/fhir/Observation?patient=%zz"}, 400, "invalid"},
		{"semicolon query", req{target: "/fhir/Observation?patient=p1;p2"}, 400, "invalid"},
		{"strict unknown param", req{target: "/fhir/Observation?color=blue", header: strict}, 400, "invalid"},
		{"strict unknown _include", req{target: "/fhir/Observation?_include=Observation:performer", header: strict}, 400, "invalid"},
		{"strict in a list", req{target: "/fhir/Observation?foo=1", header: map[string]string{"Prefer": "return=minimal, handling=strict"}}, 400, "invalid"},
		{"_search without form type", req{method: http.MethodPost, target: "/fhir/Observation/_search", body: "patient=p1",
			header: map[string]string{"Content-Type": "application/json"}}, 415, "not-supported"},
		{"_search malformed body", req{method: http.MethodPost, target: "/fhir/Observation/_search", body: "patient=%zz",
			header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}}, 400, "invalid"},
		{"_search body too large", req{method: http.MethodPost, target: "/fhir/Observation/_search",
			body:   "patient=" + strings.Repeat("p", maxFormBody),
			header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}}, 413, "too-costly"},
		{"history strict param", req{target: "/fhir/Patient/p1/_history?_since=2020", header: strict}, 400, "invalid"},
		{"history bad count", req{target: "/fhir/_history?_count=x"}, 400, "invalid"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			requireOutcome(t, do(t, s, tc.r), tc.wantStatus, tc.wantCode)
		})
	}
}

func TestSearchStrictAcceptsSupported(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	rec := do(t, s, req{target: "/fhir/Observation?patient=p1&_count=2&_format=json&_total=accurate",
		header: map[string]string{"Prefer": "handling=strict"}})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.Len(t, entries(t, decode(t, rec)), 2)
}

func TestPaging(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	want := refsWhere(t, s, "Observation", func(map[string]any) bool { return true })
	require.Greater(t, len(want), 100, "the data set should need several pages")

	var got []string
	target := "/fhir/Observation?_count=37"
	pages := 0
	for target != "" {
		rec := get(t, s, target)
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		b := decode(t, rec)
		assert.EqualValues(t, len(want), b["total"])
		self := link(b, "self")
		assert.True(t, strings.HasPrefix(self, "http://fhir.example:8081/fhir/Observation?"), self)
		if pages > 0 {
			assert.NotEmpty(t, link(b, "previous"), "page %d has a previous link", pages)
		} else {
			assert.Empty(t, link(b, "previous"))
		}
		refs := resourceRefs(t, b)
		assert.LessOrEqual(t, len(refs), 37)
		got = append(got, refs...)
		next := link(b, "next")
		if next != "" {
			u, err := url.Parse(next)
			require.NoError(t, err)
			assert.Equal(t, "fhir.example:8081", u.Host)
			assert.Equal(t, "/fhir/Observation", u.Path)
			assert.Equal(t, "37", u.Query().Get("_count"))
			assert.Equal(t, itoa(len(got)), u.Query().Get("_offset"))
		}
		target = strings.TrimPrefix(next, "http://fhir.example:8081")
		pages++
	}
	assert.Equal(t, want, got, "pages concatenate to the full result, in order, without duplicates")
	assert.Equal(t, (len(want)+36)/37, pages)
}

func TestPagingKeepsFiltersAndCompartment(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	b := decode(t, get(t, s, "/fhir/Patient/p1/Observation?code=http://loinc.org|8867-4,8480-6,718-7,29463-7&_count=1"))
	next := link(b, "next")
	require.NotEmpty(t, next, "p1 has more than one matching observation")
	u, err := url.Parse(next)
	require.NoError(t, err)
	assert.Equal(t, "/fhir/Patient/p1/Observation", u.Path)
	assert.Equal(t, "http://loinc.org|8867-4,8480-6,718-7,29463-7", u.Query().Get("code"))
	assert.Equal(t, "1", u.Query().Get("_offset"))
}

func TestSearchResultParameters(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	total := len(refsWhere(t, s, "Patient", func(map[string]any) bool { return true }))
	tests := []struct {
		name        string
		target      string
		wantEntries int
		wantTotal   any // nil: absent
		wantNext    bool
	}{
		{"default count is 50", "/fhir/Patient", 50, float64(total), true},
		{"count zero gives the total only", "/fhir/Patient?_count=0", 0, float64(total), false},
		{"total none", "/fhir/Patient?_total=none&_count=5", 5, nil, true},
		{"offset past the end", "/fhir/Patient?_offset=100000", 0, float64(total), false},
		{"last page", "/fhir/Patient?_count=10&_offset=" + itoa(total-3), 3, float64(total), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := get(t, s, tc.target)
			require.Equal(t, http.StatusOK, rec.Code)
			b := decode(t, rec)
			assert.Len(t, entries(t, b), tc.wantEntries)
			assert.Equal(t, tc.wantTotal, b["total"])
			assert.Equal(t, tc.wantNext, link(b, "next") != "")
		})
	}
}

func TestSearchLinksUseRequestHost(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	r := req{target: "/fhir/Observation?patient=p1&_count=1"}
	rec := do(t, s, r)
	b := decode(t, rec)
	self, err := url.Parse(link(b, "self"))
	require.NoError(t, err)
	assert.Equal(t, "http", self.Scheme)
	assert.Equal(t, "fhir.example:8081", self.Host)
	assert.Equal(t, url.Values{"patient": {"p1"}, "_count": {"1"}}, self.Query())
}

func TestSearchCountIsCapped(t *testing.T) {
	t.Parallel()
	s := New(Options{Now: testNow, Patients: 400})
	b := decode(t, get(t, s, "/fhir/Observation?_count=100000"))
	require.Greater(t, b["total"], float64(maxCount))
	assert.Len(t, entries(t, b), maxCount)
	next, err := url.Parse(link(b, "next"))
	require.NoError(t, err)
	assert.Equal(t, itoa(maxCount), next.Query().Get("_count"))
}
