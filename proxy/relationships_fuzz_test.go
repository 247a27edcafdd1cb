package proxy

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// FuzzRelationshipAnswers feeds arbitrary EMR answers to the readers of
// the relationship lookups. Properties: nothing panics; what is not JSON
// yields no entries and no Patient; and no relationship is ever found in
// an answer that does not name the user and the patient (compared on the
// answer's canonical re-encoding, so JSON escapes cannot hide a name).
func FuzzRelationshipAnswers(f *testing.F) {
	const user, patient = "Practitioner/pr1", "p1"
	bundle := func(res ...string) string {
		var entries []string
		for _, r := range res {
			entries = append(entries, `{"resource":`+r+`,"search":{"mode":"match"}}`)
		}
		return `{"resourceType":"Bundle","type":"searchset","entry":[` + strings.Join(entries, ",") + `]}`
	}
	for _, seed := range []string{
		bundle(ctJSON("active", patient, user, "")),
		bundle(ctJSON("active", patient, "http://up/fhir/"+user, "")),
		bundle(ctJSON("inactive", patient, user, "")),
		bundle(encJSON("finished", patient, user, relNow.Add(-time.Hour), "er")),
		bundle(encJSON("in-progress", patient, "Practitioner/pr2", relNow, "icu")),
		patientJSON(patient, user),
		patientJSON(patient, "Practitioner/pr\\u0031"),
		`{"resourceType":"Bundle","type":"searchset","entry":{}}`,
		`{"resourceType":"Bundle","type":"searchset","entry":[{"resource":null},{}]}`,
		`{"resourceType":"OperationOutcome"}`,
		`[]`, `null`, ``, `{`,
	} {
		f.Add([]byte(seed))
	}
	r := &relationships{base: "http://up/fhir", bases: []string{"http://up/fhir", "https://emr.example.org/fhir"}}
	since := relNow.Add(-30 * 24 * time.Hour)
	f.Fuzz(func(t *testing.T, body []byte) {
		entries, next, err := searchEntries("CareTeam", body)
		if err != nil {
			assert.Nil(t, entries)
			assert.Empty(t, next)
		}
		if u, ok := r.pageURL(next); ok {
			assert.True(t, strings.HasPrefix(u, r.base), "a next page off the upstream: %q", u)
			assert.NotContains(t, u, "..")
		}
		onTeam := r.onCareTeam(entries, who{user}, patient, relNow)
		enc := r.lastEncounter(entries, who{user}, patient, since, relNow)
		dept := r.departmentOf(entries, patient)
		gp, gpErr := r.isGP(body, who{user}, patient)

		var v any
		if json.Unmarshal(body, &v) != nil {
			require.Error(t, err, "not JSON, yet entries")
			require.Error(t, gpErr, "not JSON, yet a Patient")
			return
		}
		canon, merr := json.Marshal(v)
		require.NoError(t, merr)
		c := string(canon)
		mentions := func(ref string) bool {
			return strings.Contains(c, ref+`"`) || strings.Contains(c, ref+"/_history/")
		}
		names := mentions(user) && mentions("Patient/"+patient)
		if onTeam || enc.found {
			assert.True(t, names, "relationship found in an answer that does not name both: %s", c)
			assert.Contains(t, c, "searchset")
		}
		if enc.found {
			assert.False(t, enc.last.Before(since), "encounter before the window")
			assert.False(t, enc.last.After(relNow), "encounter after now")
		}
		if dept != "" {
			assert.Contains(t, c, `Organization/`+dept+`"`)
			assert.Contains(t, c, `"in-progress"`)
			assert.True(t, fhirID.MatchString(dept))
		}
		if gp {
			assert.True(t, mentions(user), "GP found in a Patient that does not name the user: %s", c)
			assert.Contains(t, c, `"id":"`+patient+`"`)
		}
	})
}
