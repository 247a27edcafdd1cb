package fhirserver

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// dump returns every stored version's bytes in commit order.
func dump(s *Server) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]string, 0, len(s.log))
	for _, v := range s.log {
		out = append(out, string(v.body))
	}
	return out
}

func TestDeterminism(t *testing.T) {
	t.Parallel()
	at := func(h int) func() time.Time {
		return func() time.Time { return time.Date(2026, 3, 10, h, 30, 0, 0, time.UTC) }
	}
	base := dump(New(Options{Seed: 7, Now: at(9)}))
	require.NotEmpty(t, base)
	tests := []struct {
		name string
		opts Options
		same bool
	}{
		{"same seed", Options{Seed: 7, Now: at(9)}, true},
		{"same seed, later the same day", Options{Seed: 7, Now: at(23)}, true},
		{"other seed", Options{Seed: 8, Now: at(9)}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := dump(New(tc.opts))
			if tc.same {
				assert.Equal(t, base, got)
			} else {
				assert.NotEqual(t, base, got)
			}
		})
	}
	// Seed 0 means the default seed 1.
	assert.Equal(t, dump(New(Options{Seed: 1, Now: at(9)})), dump(New(Options{Now: at(9)})))
}

func TestSyntheticData(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	patients := allResources(t, s, "Patient")
	require.Len(t, patients, DefaultPatients)
	for i, p := range patients {
		assert.Equal(t, fmt.Sprintf("p%d", i+1), p["id"])
	}
	practitioners := idsOf(allResources(t, s, "Practitioner"))
	assert.Len(t, practitioners, 10)
	assert.Contains(t, practitioners, "pr1")
	assert.Contains(t, practitioners, "pr10")

	// Identifiers: an MRN and a (never-issued 9xx) SSN per patient, each unique.
	mrns, ssns := map[string]bool{}, map[string]bool{}
	for _, p := range patients {
		for _, raw := range p["identifier"].([]any) {
			id := raw.(map[string]any)
			switch id["system"] {
			case sysMRN:
				mrns[id["value"].(string)] = true
			case sysSSN:
				v := id["value"].(string)
				assert.Regexp(t, `^9\d\d-\d\d-\d{4}$`, v)
				ssns[v] = true
			}
		}
		assert.NotEmpty(t, p["telecom"])
		assert.NotEmpty(t, p["birthDate"])
		assert.Contains(t, []any{"male", "female", "other", "unknown"}, p["gender"])
		assert.NotEmpty(t, p["name"].([]any)[0].(map[string]any)["family"])
	}
	assert.Len(t, mrns, len(patients))
	assert.Len(t, ssns, len(patients))

	// Every patient has at least one of each clinical type, ids follow
	// the documented scheme, and references point at existing resources.
	prefixes := map[string]string{"Observation": "obs", "Condition": "cond", "Encounter": "enc",
		"MedicationRequest": "med", "DocumentReference": "doc", "CareTeam": "ct"}
	for typ, prefix := range prefixes {
		perPatient := map[string]int{}
		for _, r := range allResources(t, s, typ) {
			subj := strings.TrimPrefix(refOf(r, "subject"), "Patient/")
			perPatient[subj]++
			assert.True(t, strings.HasPrefix(r["id"].(string), prefix+"-"+subj+"-"), r["id"])
		}
		for _, p := range patients {
			assert.Positive(t, perPatient[p["id"].(string)], "%s of %s", typ, p["id"])
		}
	}
	for _, r := range allResources(t, s, "Observation") {
		assert.Equal(t, sysLOINC, strings.Split(codings(r, "code")[0], "|")[0])
		q := r["valueQuantity"].(map[string]any)
		assert.IsType(t, float64(0), q["value"])
		assert.Equal(t, sysUCUM, q["system"])
		assert.Equal(t, 200, get(t, s, "/fhir/"+refOf(r, "encounter")).Code)
	}
	for _, r := range allResources(t, s, "DocumentReference") {
		att := r["content"].([]any)[0].(map[string]any)["attachment"].(map[string]any)
		assert.Equal(t, "text/plain", att["contentType"])
		text, err := base64.StdEncoding.DecodeString(att["data"].(string))
		require.NoError(t, err)
		assert.NotEmpty(t, text)
	}
}

// hasLabel reports whether res carries system|code in meta.security or meta.tag.
func hasLabel(res map[string]any, sysCode string) bool { return slices.Contains(labels(res), sysCode) }

func TestLabels(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	r := sysConfidential + "|R"
	v := sysConfidential + "|V"
	psy := sysActCode + "|PSY"
	hiv := sysActCode + "|HIV"
	vip := SysTags + "|vip"
	employee := SysTags + "|employee"
	types := []string{"Patient", "CareTeam", "Encounter", "Observation", "Condition", "MedicationRequest", "DocumentReference"}
	byType := map[string][]map[string]any{}
	for _, typ := range types {
		byType[typ] = allResources(t, s, typ)
	}
	ofPatient := func(pid string) []map[string]any {
		var out []map[string]any
		for _, typ := range types {
			for _, res := range byType[typ] {
				if res["id"] == pid || refOf(res, "subject") == "Patient/"+pid {
					out = append(out, res)
				}
			}
		}
		return out
	}
	tests := []struct {
		name    string
		pid     string
		wantAll []string // labels on every resource of the record
		wantAny []string // labels on at least one resource of the record
		wantNot []string // labels on none
	}{
		{"p3 restricted record", "p3", []string{r}, nil, []string{v, vip, employee}},
		{"p4 psychiatric", "p4", nil, []string{psy, r}, nil},
		{"p5 HIV", "p5", nil, []string{hiv, r}, nil},
		{"p7 VIP", "p7", []string{v, vip}, nil, []string{r, employee}},
		{"p8 employee", "p8", []string{employee}, nil, []string{vip, v}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := ofPatient(tc.pid)
			require.Greater(t, len(rec), 5)
			for _, want := range tc.wantAny {
				assert.True(t, slices.ContainsFunc(rec, func(res map[string]any) bool { return hasLabel(res, want) }), want)
			}
			for _, res := range rec {
				for _, want := range tc.wantAll {
					assert.True(t, hasLabel(res, want), "%s/%s lacks %s", res["resourceType"], res["id"], want)
				}
				for _, not := range tc.wantNot {
					assert.False(t, hasLabel(res, not), "%s/%s has %s", res["resourceType"], res["id"], not)
				}
			}
		})
	}
	// Sensitive diagnoses are labelled and restricted wherever they occur.
	for _, c := range byType["Condition"] {
		code := strings.Split(codings(c, "code")[0], "|")[1]
		switch {
		case code == hivCondition.code:
			assert.True(t, hasLabel(c, hiv) && (hasLabel(c, r) || hasLabel(c, v)), c["id"])
		case slices.ContainsFunc(psyConditions, func(p condCode) bool { return p.code == code }):
			assert.True(t, hasLabel(c, psy) && (hasLabel(c, r) || hasLabel(c, v)), c["id"])
		default:
			assert.False(t, hasLabel(c, psy) || hasLabel(c, hiv), c["id"])
		}
		assert.False(t, hasLabel(c, r) && hasLabel(c, v), "one confidentiality code at most")
	}
	// Most of the data set is unlabelled.
	p1 := ofPatient("p1")
	assert.False(t, slices.ContainsFunc(p1, func(res map[string]any) bool {
		return hasLabel(res, v) || hasLabel(res, vip) || hasLabel(res, employee)
	}))
}

func TestDemoCareTeams(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	members := func(pid string) []string {
		var out []string
		for _, p := range decode(t, get(t, s, "/fhir/CareTeam/ct-"+pid+"-1"))["participant"].([]any) {
			out = append(out, refOf(p.(map[string]any), "member"))
		}
		return out
	}
	assert.Equal(t, "Practitioner/pr1", members("p1")[0], "pr1 is p1's GP")
	assert.NotContains(t, members("p2"), "Practitioner/pr1", "pr1 is not on p2's team")
	assert.Empty(t, entries(t, decode(t, get(t, s, "/fhir/Encounter?patient=p2&participant=pr1"))))
	assert.NotEmpty(t, entries(t, decode(t, get(t, s, "/fhir/CareTeam?patient=p1&participant=pr1"))))
	// p1 and p2 each had an encounter in the last 30 days.
	for _, pid := range []string{"p1", "p2"} {
		enc := decode(t, get(t, s, "/fhir/Encounter/enc-"+pid+"-1"))
		start, err := time.Parse(time.RFC3339, enc["period"].(map[string]any)["start"].(string))
		require.NoError(t, err)
		assert.WithinDuration(t, testNow(), start, 31*24*time.Hour, pid)
		assert.True(t, start.Before(testNow()), pid)
	}
}
