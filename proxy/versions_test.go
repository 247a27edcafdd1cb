package proxy

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestOldVersionsCarryTheCurrentLabels: a version from before the record
// was labelled restricted is decided with the current version's labels,
// in a vread and in the instance's history; a deleted resource's versions
// with their own; and a current version that cannot be read refuses the
// response.
func TestOldVersionsCarryTheCurrentLabels(t *testing.T) {
	const (
		v1 = `{"resourceType":"Observation","id":"o1","meta":{"versionId":"1"},"subject":{"reference":"Patient/p1"},"status":"final"}`
		v2 = `{"resourceType":"Observation","id":"o1","meta":{"versionId":"2","security":[{"code":"R"}]},"subject":{"reference":"Patient/p1"},"status":"final"}`
	)
	history := `{"resourceType":"Bundle","type":"history","entry":[{"resource":` + v2 + `},{"resource":` + v1 + `}]}`
	cases := []struct {
		name    string
		current int // status of the current version's read
		path    string
		status  int
		shows   bool // the unlabelled version 1 is delivered
	}{
		{"vread of a version before the label", 200, "/fhir/Observation/o1/_history/1", 403, false},
		{"history of the instance", 200, "/fhir/Observation/o1/_history", 200, false},
		{"vread of a deleted resource's version", 410, "/fhir/Observation/o1/_history/1", 200, true},
		{"the current version cannot be read", 503, "/fhir/Observation/o1/_history/1", 502, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, carePolicy, nil, func(w http.ResponseWriter, r *http.Request) {
				switch r.URL.Path {
				case "/fhir/Observation/o1":
					fhirUpstream(tc.current, v2)(w, r)
				case "/fhir/Observation/o1/_history/1":
					fhirUpstream(200, v1)(w, r)
				case "/fhir/Observation/o1/_history":
					fhirUpstream(200, history)(w, r)
				default:
					http.NotFound(w, r)
				}
			})
			resp := h.do(t, "GET", tc.path, good, "")
			body := readBody(t, resp)
			require.Equal(t, tc.status, resp.StatusCode, body)
			if tc.shows {
				assert.Contains(t, body, `"versionId":"1"`)
			} else {
				assert.NotContains(t, body, `"versionId":"1"`, "no byte of the old version")
			}
		})
	}

	// Other interactions read nothing more.
	h := newHarness(t, carePolicy, nil, fhirUpstream(200, obsP1))
	resp := h.do(t, "GET", "/fhir/Observation/o1", good, "")
	readBody(t, resp)
	assert.Len(t, h.seen(), 1)
}

// TestHistoryOfATypeCarriesTheCurrentLabels: in a type's or the system's
// history, each version is decided with its resource's current labels,
// which ChartGuard finds with one _id search per type, reading one by one
// only the resources the search leaves out; anything it cannot establish
// refuses the response.
func TestHistoryOfATypeCarriesTheCurrentLabels(t *testing.T) {
	obs := func(id, version, label string) string {
		meta := `{"versionId":"` + version + `"}`
		if label != "" {
			meta = `{"versionId":"` + version + `","security":[{"code":"` + label + `"}]}`
		}
		return `{"resourceType":"Observation","id":"` + id + `","meta":` + meta + `,"subject":{"reference":"Patient/p1"},"status":"final"}`
	}
	cond := `{"resourceType":"Condition","id":"c1","meta":{"versionId":"1"},"subject":{"reference":"Patient/p1"}}`
	bundle := func(typ string, resources ...string) string {
		entries := make([]string, len(resources))
		for i, r := range resources {
			entries[i] = `{"resource":` + r + `}`
		}
		return `{"resourceType":"Bundle","type":"` + typ + `","entry":[` + strings.Join(entries, ",") + `]}`
	}
	// o1 was labelled R after version 1; o2 never was.
	typeHistory := bundle("history", obs("o1", "2", "R"), obs("o1", "1", ""), obs("o2", "1", ""))
	manyGone := make([]string, maxGoneReads+1)
	for i := range manyGone {
		manyGone[i] = obs(fmt.Sprintf("g%d", i), "1", "")
	}
	// Half the budget of reads gone in each of two types: more than it in all.
	goneTwoTypes := slices.Clone(manyGone[:maxGoneReads/2+1])
	for i := range maxGoneReads/2 + 1 {
		goneTwoTypes = append(goneTwoTypes, `{"resourceType":"Condition","id":"gc`+strconv.Itoa(i)+`","meta":{"versionId":"1"},"subject":{"reference":"Patient/p1"}}`)
	}
	tooMany := make([]string, idsPerSearch*maxSearches+1)
	for i := range tooMany {
		tooMany[i] = obs(fmt.Sprintf("m%d", i), "1", "")
	}
	cases := []struct {
		name     string
		path     string
		history  string
		search   map[string]string // _id search by type: the searchset, or "" for 500
		read     map[string]int    // status of one-by-one reads (200: the labelled o1)
		status   int
		shows    []string // versions delivered, as id/version
		hides    []string
		requests []string // what ChartGuard asked besides the history
	}{
		{name: "the type's history", path: "/fhir/Observation/_history", history: typeHistory,
			search: map[string]string{"Observation": bundle("searchset", obs("o1", "2", "R"), obs("o2", "1", ""))},
			status: 200, shows: []string{"o2/1"}, hides: []string{"o1/1", "o1/2"},
			requests: []string{"/fhir/Observation?_id=o1,o2&_count=2"}},
		{name: "the system's history, one search per type", path: "/fhir/_history",
			history: bundle("history", obs("o1", "1", ""), cond),
			search: map[string]string{"Observation": bundle("searchset", obs("o1", "2", "R")),
				"Condition": bundle("searchset", cond)},
			status: 200, shows: []string{"c1/1"}, hides: []string{"o1/1"},
			requests: []string{"/fhir/Condition?_id=c1&_count=1", "/fhir/Observation?_id=o1&_count=1"}},
		{name: "left out of the search, read on its own", path: "/fhir/Observation/_history", history: typeHistory,
			search: map[string]string{"Observation": bundle("searchset", obs("o2", "1", ""))},
			read:   map[string]int{"o1": 200},
			status: 200, shows: []string{"o2/1"}, hides: []string{"o1/1"},
			requests: []string{"/fhir/Observation?_id=o1,o2&_count=2", "/fhir/Observation/o1"}},
		{name: "deleted since: its versions keep their own labels", path: "/fhir/Observation/_history", history: typeHistory,
			search: map[string]string{"Observation": bundle("searchset", obs("o2", "1", ""))},
			read:   map[string]int{"o1": 410},
			status: 200, shows: []string{"o1/1", "o2/1"}, hides: []string{"o1/2"}},
		{name: "the search fails", path: "/fhir/Observation/_history", history: typeHistory,
			search: map[string]string{"Observation": ""}, status: 502, hides: []string{"o1/1", "o2/1"}},
		{name: "a read of a left-out resource fails", path: "/fhir/Observation/_history", history: typeHistory,
			search: map[string]string{"Observation": bundle("searchset")},
			read:   map[string]int{"o1": 503, "o2": 200},
			status: 502, hides: []string{"o1/1", "o2/1"}},
		{name: "too many left out to read", path: "/fhir/Observation/_history", history: bundle("history", manyGone...),
			search: map[string]string{"Observation": bundle("searchset")}, read: map[string]int{},
			status: 502, hides: []string{"g0/1"}},
		{name: "the budget of reads is the page's, across types", path: "/fhir/_history", history: bundle("history", goneTwoTypes...),
			search: map[string]string{"Observation": bundle("searchset"), "Condition": bundle("searchset")}, read: map[string]int{},
			status: 502, hides: []string{"g0/1"}},
		{name: "a page naming more resources than ChartGuard will search for", path: "/fhir/Observation/_history",
			history: bundle("history", tooMany...),
			search:  map[string]string{"Observation": bundle("searchset", tooMany...)},
			status:  502, hides: []string{"m0/1"}},
		{name: "a version without an id", path: "/fhir/Observation/_history",
			history: bundle("history", `{"resourceType":"Observation","meta":{"versionId":"1"},"subject":{"reference":"Patient/p1"}}`),
			status:  502, requests: []string{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, carePolicy, nil, func(w http.ResponseWriter, r *http.Request) {
				typ, id, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/fhir/"), "/")
				switch {
				case r.URL.Path == tc.path:
					fhirUpstream(200, tc.history)(w, r)
				case r.URL.Query().Has("_id"):
					if body := tc.search[typ]; body != "" {
						fhirUpstream(200, body)(w, r)
					} else {
						fhirUpstream(500, `{"resourceType":"OperationOutcome"}`)(w, r)
					}
				case tc.read[id] == 200:
					fhirUpstream(200, obs(id, "2", "R"))(w, r)
				case tc.read[id] != 0:
					fhirUpstream(tc.read[id], `{"resourceType":"OperationOutcome"}`)(w, r)
				default:
					fhirUpstream(404, `{"resourceType":"OperationOutcome"}`)(w, r)
				}
			})
			resp := h.do(t, "GET", tc.path, good, "")
			body := readBody(t, resp)
			require.Equal(t, tc.status, resp.StatusCode, body)
			for _, v := range tc.shows {
				id, version, _ := strings.Cut(v, "/")
				assert.Contains(t, body, `"id":"`+id+`","meta":{"versionId":"`+version+`"`, "version %s delivered", v)
			}
			for _, v := range tc.hides {
				id, version, _ := strings.Cut(v, "/")
				assert.NotContains(t, body, `"id":"`+id+`","meta":{"versionId":"`+version+`"`, "no byte of version %s", v)
			}
			if tc.requests != nil {
				var asked []string
				for _, rec := range h.seen()[1:] {
					asked = append(asked, rec.RequestURI)
				}
				assert.Equal(t, tc.requests, append([]string{}, asked...))
			}
		})
	}
}
