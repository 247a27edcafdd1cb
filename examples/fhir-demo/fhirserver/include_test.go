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

// byMode returns "Type/id" of a searchset's entries in search mode mode, in
// bundle order, and checks every entry's fullUrl.
func byMode(t testing.TB, bundle map[string]any, mode string) []string {
	t.Helper()
	var out []string
	for _, e := range entries(t, bundle) {
		r := e["resource"].(map[string]any)
		ref := r["resourceType"].(string) + "/" + r["id"].(string)
		assert.Equal(t, "http://fhir.example:8081/fhir/"+ref, e["fullUrl"])
		if e["search"].(map[string]any)["mode"] == mode {
			out = append(out, ref)
		}
	}
	return out
}

// where returns the resources of typ for which keep holds.
func where(t testing.TB, h http.Handler, typ string, keep func(map[string]any) bool) []map[string]any {
	t.Helper()
	return slices.DeleteFunc(allResources(t, h, typ), func(r map[string]any) bool { return !keep(r) })
}

// refsTo returns the distinct references that pick finds in rs.
func refsTo(rs []map[string]any, pick func(map[string]any) []string) []string {
	var out []string
	for _, r := range rs {
		for _, ref := range pick(r) {
			if !slices.Contains(out, ref) {
				out = append(out, ref)
			}
		}
	}
	return out
}

func elem(name string) func(map[string]any) []string {
	return func(r map[string]any) []string {
		if ref := refOf(r, name); ref != "" {
			return []string{ref}
		}
		return nil
	}
}

func participants(inner string) func(map[string]any) []string {
	return func(r map[string]any) []string {
		var out []string
		list, _ := r["participant"].([]any)
		for _, p := range list {
			out = append(out, refOf(p.(map[string]any), inner))
		}
		return out
	}
}

func refList(typ string, rs []map[string]any) []string {
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		out = append(out, typ+"/"+r["id"].(string))
	}
	return out
}

func TestInclude(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	obsP1 := where(t, s, "Observation", subjectIs("Patient/p1"))
	obsP12 := where(t, s, "Observation", subjectIs("Patient/p1", "Patient/p2"))
	encP1 := where(t, s, "Encounter", subjectIs("Patient/p1"))
	teamsPr1 := where(t, s, "CareTeam", hasParticipant("member", "Practitioner/pr1"))
	p1 := where(t, s, "Patient", func(r map[string]any) bool { return r["id"] == "p1" })
	obsOfEncP1 := where(t, s, "Observation", func(r map[string]any) bool {
		return slices.Contains(refList("Encounter", encP1), refOf(r, "encounter"))
	})
	for _, rs := range [][]map[string]any{obsP1, encP1, teamsPr1, p1, obsOfEncP1} {
		require.NotEmpty(t, rs, "the oracles find something")
	}
	form := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	strict := map[string]string{"Prefer": "handling=strict"}

	tests := []struct {
		name        string
		r           req
		wantMatch   []string
		wantInclude []string
	}{
		{"subject", req{target: "/fhir/Observation?patient=p1&_include=Observation:subject"},
			refList("Observation", obsP1), []string{"Patient/p1"}},
		{"subject with target type", req{target: "/fhir/Observation?patient=p1&_include=Observation:subject:Patient"},
			refList("Observation", obsP1), []string{"Patient/p1"}},
		{"other target type includes nothing", req{target: "/fhir/Observation?patient=p1&_include=Observation:subject:Practitioner"},
			refList("Observation", obsP1), nil},
		{"patient parameter", req{target: "/fhir/Observation?patient=p1,p2&_include=Observation:patient"},
			refList("Observation", obsP12), []string{"Patient/p1", "Patient/p2"}},
		{"shared targets once", req{target: "/fhir/Observation?patient=p1&_include=Observation:encounter"},
			refList("Observation", obsP1), refsTo(obsP1, elem("encounter"))},
		{"several _include", req{target: "/fhir/Observation?patient=p1&_include=Observation:encounter&_include=Observation:subject"},
			refList("Observation", obsP1), append(refsTo(obsP1, elem("encounter")), "Patient/p1")},
		{"same _include twice", req{target: "/fhir/Observation?patient=p1&_include=Observation:subject&_include=Observation:subject"},
			refList("Observation", obsP1), []string{"Patient/p1"}},
		{"general practitioner", req{target: "/fhir/Patient?_id=p1&_include=Patient:general-practitioner"},
			[]string{"Patient/p1"}, refsTo(p1, func(r map[string]any) []string {
				return []string{r["generalPractitioner"].([]any)[0].(map[string]any)["reference"].(string)}
			})},
		{"participants", req{target: "/fhir/Encounter?patient=p1&_include=Encounter:participant"},
			refList("Encounter", encP1), refsTo(encP1, participants("individual"))},
		{"revinclude", req{target: "/fhir/Patient?_id=p1&_revinclude=Observation:subject"},
			[]string{"Patient/p1"}, refList("Observation", obsP1)},
		{"revinclude with target type", req{target: "/fhir/Patient?_id=p1&_revinclude=Observation:subject:Patient"},
			[]string{"Patient/p1"}, refList("Observation", obsP1)},
		{"revinclude of another target type", req{target: "/fhir/Patient?_id=p1&_revinclude=Observation:subject:Group"},
			[]string{"Patient/p1"}, nil},
		{"revinclude members", req{target: "/fhir/Practitioner?_id=pr1&_revinclude=CareTeam:participant"},
			[]string{"Practitioner/pr1"}, refList("CareTeam", teamsPr1)},
		{"include and revinclude", req{target: "/fhir/Patient?_id=p1&_include=Patient:general-practitioner&_revinclude=Observation:patient"},
			[]string{"Patient/p1"}, append([]string{"Practitioner/pr1"}, refList("Observation", obsP1)...)},
		{"compartment include", req{target: "/fhir/Patient/p1/Observation?_include=Observation:subject"},
			refList("Observation", obsP1), []string{"Patient/p1"}},
		{"compartment revinclude", req{target: "/fhir/Patient/p1/Encounter?_revinclude=Observation:encounter"},
			refList("Encounter", encP1), refList("Observation", obsOfEncP1)},
		{"POST _search body", req{method: http.MethodPost, target: "/fhir/Observation/_search?patient=p1",
			body: "_include=Observation%3Asubject", header: form},
			refList("Observation", obsP1), []string{"Patient/p1"}},
		{"strict accepts supported", req{target: "/fhir/Observation?patient=p1&_include=Observation:subject", header: strict},
			refList("Observation", obsP1), []string{"Patient/p1"}},
		{"empty value ignored", req{target: "/fhir/Observation?patient=p1&_include=", header: strict},
			refList("Observation", obsP1), nil},
		{"no matches, no includes", req{target: "/fhir/Observation?patient=nope&_include=Observation:subject"}, nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := do(t, s, tc.r)
			require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			b := decode(t, rec)
			match, incl := byMode(t, b, "match"), byMode(t, b, "include")
			assert.ElementsMatch(t, tc.wantMatch, match)
			assert.ElementsMatch(t, tc.wantInclude, incl)
			assert.Equal(t, append(match, incl...), resourceRefs(t, b), "matches come first")
			assert.EqualValues(t, len(tc.wantMatch), b["total"], "includes do not count")
		})
	}

	t.Run("count zero includes nothing", func(t *testing.T) {
		b := decode(t, get(t, s, "/fhir/Observation?patient=p1&_count=0&_include=Observation:subject"))
		assert.Empty(t, entries(t, b))
		assert.EqualValues(t, len(obsP1), b["total"])
	})
}

func TestIncludePaging(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	tests := []struct {
		name, target string
		// includes returns what one page of matches (resources) includes.
		includes func(page []map[string]any) []string
	}{
		{"revinclude follows the page", "/fhir/Patient?_count=7&_revinclude=Observation:subject",
			func(page []map[string]any) []string {
				return refList("Observation", where(t, s, "Observation", subjectIs(refList("Patient", page)...)))
			}},
		{"include follows the page", "/fhir/Observation?_count=11&_include=Observation:subject",
			func(page []map[string]any) []string { return refsTo(page, elem("subject")) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var all []string
			var total any
			pages := 0
			for target := tc.target; target != ""; pages++ {
				b := decode(t, get(t, s, target))
				if total == nil {
					total = b["total"]
				}
				assert.Equal(t, total, b["total"], "total does not change with includes")
				var page []map[string]any
				for _, e := range entries(t, b) {
					if e["search"].(map[string]any)["mode"] == "match" {
						page = append(page, e["resource"].(map[string]any))
					}
				}
				incl := byMode(t, b, "include")
				want := tc.includes(page)
				require.NotEmpty(t, want)
				assert.ElementsMatch(t, want, incl, "page %d", pages)
				all = append(all, byMode(t, b, "match")...)
				next := link(b, "next")
				if next != "" {
					u, err := url.Parse(next)
					require.NoError(t, err)
					assert.NotEmpty(t, u.Query().Get("_include")+u.Query().Get("_revinclude"), "next keeps the includes")
				}
				target = strings.TrimPrefix(next, "http://fhir.example:8081")
			}
			assert.Greater(t, pages, 2)
			assert.EqualValues(t, len(all), total, "pages hold every match once")
		})
	}
}

func TestIncludeSkipsMatchesDeletedAndDangling(t *testing.T) {
	t.Parallel()
	s := New(Options{Now: testNow, Patients: 3})
	create := func(body string) string {
		rec := do(t, s, req{method: http.MethodPost, target: "/fhir/Observation", body: body})
		require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
		return decode(t, rec)["id"].(string)
	}
	// subject is not restricted to Patient, so it may point at a match.
	toMatch := create(`{"resourceType":"Observation","subject":{"reference":"Observation/obs-p1-1"}}`)
	dangling := create(`{"resourceType":"Observation","subject":{"reference":"Patient/nope"}}`)
	toDeleted := create(`{"resourceType":"Observation","subject":{"reference":"Patient/p3"}}`)
	require.Equal(t, http.StatusNoContent, do(t, s, req{method: http.MethodDelete, target: "/fhir/Patient/p3"}).Code)

	b := decode(t, get(t, s, "/fhir/Observation?_id=obs-p1-1,"+toMatch+","+dangling+","+toDeleted+
		"&_include=Observation:subject&_revinclude=Observation:subject"))
	assert.ElementsMatch(t, []string{"Observation/obs-p1-1", "Observation/" + toMatch, "Observation/" + dangling,
		"Observation/" + toDeleted}, byMode(t, b, "match"))
	assert.Equal(t, []string{"Patient/p1"}, byMode(t, b, "include"), "each resource once, live ones only")

	// A deleted resource is not revincluded either.
	require.Equal(t, http.StatusNoContent, do(t, s, req{method: http.MethodDelete, target: "/fhir/Observation/obs-p1-1"}).Code)
	b = decode(t, get(t, s, "/fhir/Patient?_id=p1&_revinclude=Observation:subject"))
	incl := byMode(t, b, "include")
	assert.NotContains(t, incl, "Observation/obs-p1-1")
	assert.Contains(t, incl, "Observation/obs-p1-2")
}

func TestIncludeUnsupported(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	unsupported := []struct{ name, query string }{
		{"parameter the type lacks", "_include=Observation:performer"},
		{"token parameter", "_include=Observation:code"},
		{"other source type", "_include=Patient:general-practitioner"},
		{"unknown target type", "_include=Observation:subject:Group"},
		{"unknown revinclude type", "_revinclude=Spaceship:subject"},
		{"revinclude parameter the type lacks", "_revinclude=Patient:subject"},
	}
	for _, tc := range unsupported {
		t.Run("lenient "+tc.name, func(t *testing.T) {
			rec := get(t, s, "/fhir/Observation?patient=p1&"+tc.query)
			require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			b := decode(t, rec)
			assert.NotEmpty(t, byMode(t, b, "match"))
			assert.Empty(t, byMode(t, b, "include"))
		})
		t.Run("strict "+tc.name, func(t *testing.T) {
			requireOutcome(t, do(t, s, req{target: "/fhir/Observation?patient=p1&" + tc.query,
				header: map[string]string{"Prefer": "handling=strict"}}), 400, "invalid")
		})
	}
	refused := []struct{ name, query string }{
		{"wildcard", "_include=*"},
		{"type wildcard", "_include=Observation:*"},
		{"revinclude wildcard", "_revinclude=*"},
		{"iterate", "_include:iterate=Observation:subject"},
		{"revinclude iterate", "_revinclude:iterate=Observation:subject"},
		{"recurse", "_include:recurse=Observation:subject"},
		{"no parameter", "_include=Observation"},
		{"empty parameter", "_include=Observation::Patient"},
		{"lower-case type", "_include=observation:subject"},
		{"lower-case target", "_include=Observation:subject:patient"},
		{"four parts", "_include=Observation:subject:Patient:x"},
	}
	for _, tc := range refused {
		t.Run("refused "+tc.name, func(t *testing.T) {
			requireOutcome(t, get(t, s, "/fhir/Observation?patient=p1&"+tc.query), 400, "invalid")
		})
	}
}

func TestIncludeOnHistoryIsAnUnknownParameter(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	rec := get(t, s, "/fhir/Patient/p1/_history?_include=Patient:general-practitioner")
	require.Equal(t, http.StatusOK, rec.Code)
	assert.Len(t, entries(t, decode(t, rec)), 1)
	requireOutcome(t, do(t, s, req{target: "/fhir/Patient/p1/_history?_include=Patient:general-practitioner",
		header: map[string]string{"Prefer": "handling=strict"}}), 400, "invalid")
}

func TestCapabilityStatementListsIncludes(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	cs := decode(t, get(t, s, "/fhir/metadata"))
	byType := map[string]map[string]any{}
	for _, r := range cs["rest"].([]any)[0].(map[string]any)["resource"].([]any) {
		m := r.(map[string]any)
		byType[m["type"].(string)] = m
	}
	assert.Contains(t, byType["Observation"]["searchInclude"], "Observation:subject")
	assert.Contains(t, byType["Patient"]["searchRevInclude"], "Observation:subject")
	assert.Contains(t, byType["Practitioner"]["searchRevInclude"], "CareTeam:participant")
	// Every advertised include is accepted under strict handling.
	for typ, r := range byType {
		list, _ := r["searchInclude"].([]any)
		list2, _ := r["searchRevInclude"].([]any)
		for _, v := range list {
			rec := do(t, s, req{target: "/fhir/" + typ + "?_count=1&_include=" + v.(string),
				header: map[string]string{"Prefer": "handling=strict"}})
			assert.Equal(t, http.StatusOK, rec.Code, v)
		}
		for _, v := range list2 {
			rec := do(t, s, req{target: "/fhir/" + typ + "?_count=1&_revinclude=" + v.(string),
				header: map[string]string{"Prefer": "handling=strict"}})
			assert.Equal(t, http.StatusOK, rec.Code, v)
		}
	}
}
