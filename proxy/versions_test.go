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
	manyGone := make([]string, maxReads+1)
	for i := range manyGone {
		manyGone[i] = obs(fmt.Sprintf("g%d", i), "1", "")
	}
	// Half the budget of reads gone in each of two types: more than it in all.
	goneTwoTypes := slices.Clone(manyGone[:maxReads/2+1])
	for i := range maxReads/2 + 1 {
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

// TestVersionsWhereverTheAnswerHoldsThem: versions are found by what the
// answer holds, not only by the request's interaction: a batch's vread, a
// history page reached through a paging link. A search for the current
// versions is trusted only for the resources it is about, and only history
// entries (not their contained resources, not an error's outcome) are
// versions.
func TestVersionsWhereverTheAnswerHoldsThem(t *testing.T) {
	const (
		v1  = `{"resourceType":"Observation","id":"o1","meta":{"versionId":"1"},"subject":{"reference":"Patient/p1"},"status":"final"}`
		v2  = `{"resourceType":"Observation","id":"o1","meta":{"versionId":"2","security":[{"code":"R"}]},"subject":{"reference":"Patient/p1"},"status":"final"}`
		o2  = `{"resourceType":"Observation","id":"o2","meta":{"versionId":"1"},"subject":{"reference":"Patient/p1"},"status":"final"}`
		o1c = `{"resourceType":"Observation","id":"o1","meta":{"versionId":"1"},"contained":[{"resourceType":"Medication","id":"med"}],"subject":{"reference":"Patient/p1"},"status":"final"}`
	)
	history := func(resources ...string) string {
		var entries []string
		for _, r := range resources {
			entries = append(entries, `{"resource":`+r+`}`)
		}
		return `{"resourceType":"Bundle","type":"history","entry":[` + strings.Join(entries, ",") + `]}`
	}
	// A searchset without o1 but with a resource that contains one,
	// unlabelled.
	decoy := `{"resourceType":"Bundle","type":"searchset","entry":[{"resource":{"resourceType":"Observation","id":"o2","contained":[` + v1 + `],"subject":{"reference":"Patient/p1"}}}]}`
	cases := []struct {
		name     string
		method   string
		path     string
		body     string            // request body (batch)
		answers  map[string]string // the upstream's answers by request URI ("" for the request itself)
		status   int
		shows    []string // substrings delivered
		hides    []string
		requests []string // what ChartGuard asked besides the request
	}{
		{name: "a vread in a batch", method: "POST", path: "/fhir",
			body: bundle("batch", `{"request":{"method":"GET","url":"Observation/o1/_history/1"}}`),
			answers: map[string]string{
				"":                     `{"resourceType":"Bundle","type":"batch-response","entry":[{"resource":` + v1 + `,"response":{"status":"200 OK"}}]}`,
				"/fhir/Observation/o1": v2,
			},
			status: 200, shows: []string{"403"}, hides: []string{`"versionId":"1"`},
			requests: []string{"/fhir/Observation/o1"}},
		{name: "a history page through a paging link", method: "GET", path: "/fhir?_getpages=abc&_bundletype=history",
			answers: map[string]string{
				"":                                     history(v2, v1, o2),
				"/fhir/Observation?_id=o1,o2&_count=2": `{"resourceType":"Bundle","type":"searchset","entry":[{"resource":` + v2 + `},{"resource":` + o2 + `}]}`,
			},
			status: 200, shows: []string{`"id":"o2"`}, hides: []string{`"versionId":"1","security"`, `"id":"o1","meta":{"versionId":"1"}`},
			requests: []string{"/fhir/Observation?_id=o1,o2&_count=2"}},
		{name: "a search's contained resource does not count as the current version", method: "GET", path: "/fhir/Observation/_history",
			answers: map[string]string{
				"":                                  history(v1),
				"/fhir/Observation?_id=o1&_count=1": decoy,
				"/fhir/Observation/o1":              v2,
			},
			status: 200, hides: []string{`"id":"o1","meta":{"versionId":"1"}`},
			requests: []string{"/fhir/Observation?_id=o1&_count=1", "/fhir/Observation/o1"}},
		{name: "an error answer passes with its status", method: "GET", path: "/fhir/Observation/_history?_since=garbage",
			answers: map[string]string{"": `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid"}]}`},
			status:  400, shows: []string{`"code":"invalid"`}, requests: []string{}},
		{name: "contained resources of a version are not versions", method: "GET", path: "/fhir/Observation/_history",
			answers: map[string]string{
				"":                                  history(o1c),
				"/fhir/Observation?_id=o1&_count=1": `{"resourceType":"Bundle","type":"searchset","entry":[{"resource":` + v1 + `}]}`,
			},
			status: 200, shows: []string{`"id":"med"`}, requests: []string{"/fhir/Observation?_id=o1&_count=1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, carePolicy, nil, func(w http.ResponseWriter, r *http.Request) {
				answer, ok := tc.answers[r.RequestURI]
				if !ok && (r.Method == http.MethodPost || r.URL.Path == strings.SplitN(tc.path, "?", 2)[0]) {
					answer, ok = tc.answers[""], true
				}
				switch {
				case !ok:
					fhirUpstream(404, `{"resourceType":"OperationOutcome"}`)(w, r)
				case strings.Contains(answer, `"OperationOutcome","issue"`):
					fhirUpstream(400, answer)(w, r)
				default:
					fhirUpstream(200, answer)(w, r)
				}
			})
			resp := h.do(t, tc.method, tc.path, good, tc.body)
			body := readBody(t, resp)
			require.Equal(t, tc.status, resp.StatusCode, body)
			for _, s := range tc.shows {
				assert.Contains(t, body, s)
			}
			for _, s := range tc.hides {
				assert.NotContains(t, body, s)
			}
			asked := []string{}
			for _, rec := range h.seen()[1:] {
				asked = append(asked, rec.RequestURI)
			}
			assert.Equal(t, tc.requests, asked)
		})
	}
}
