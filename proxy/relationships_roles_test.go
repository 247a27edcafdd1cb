package proxy

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chartguard/chartguard/chartguard"
)

func prJSON(id, practitioner string, active bool, end string) string {
	per := ""
	if end != "" {
		per = fmt.Sprintf(`,"period":{"end":%q}`, end)
	}
	return fmt.Sprintf(`{"resourceType":"PractitionerRole","id":%q,"active":%t,"practitioner":{"reference":%q}%s}`,
		id, active, practitioner, per)
}

// TestRelationshipPractitionerRoles: an EMR that names clinicians by
// their PractitionerRole (in a CareTeam, an Encounter, as GP) relates the
// Practitioner who signs in through their current roles only; the roles
// are asked for once per user.
func TestRelationshipPractitionerRoles(t *testing.T) {
	t.Parallel()
	emr := newFakeEMR()
	emr.roles = []string{
		prJSON("r1", "Practitioner/pr1", true, ""),
		prJSON("r2", "Practitioner/pr1", false, ""),                    // inactive
		prJSON("r3", "Practitioner/other", true, ""),                   // someone else's
		prJSON("r4", "Practitioner/pr1", true, "2026-01-01T00:00:00Z"), // ended
		`{"resourceType":"Patient","id":"r5"}`,
	}
	emr.careTeams = []string{ctJSON("active", "p1", "PractitionerRole/r1", ""), ctJSON("active", "p2", "PractitionerRole/r2", ""),
		ctJSON("active", "p3", "PractitionerRole/r3", ""), ctJSON("active", "p4", "PractitionerRole/r4", "")}
	emr.encounters = []string{encJSON("finished", "p5", "PractitionerRole/r1", relNow.Add(-24*time.Hour), "")}
	emr.patients["p6"] = patientJSON("p6", "PractitionerRole/r1")
	r, _ := newTestRelationships(t, emr, time.Second)

	st := &relState{got: map[string]relResult{}}
	r.resolve(t.Context(), st, "req", "Practitioner/pr1", []string{"p1", "p2", "p3", "p4", "p5", "p6"})
	for p, want := range map[string]chartguard.Relationship{
		"p1": {CareTeam: true}, "p2": {}, "p3": {}, "p4": {},
		"p5": {EncounterDaysAgo: days(1)}, "p6": {PCP: true},
	} {
		require.NoError(t, st.got[p].err, p)
		assert.Equal(t, want, st.got[p].rel, p)
	}
	assert.Equal(t, 1, emr.count("PractitionerRole"), "asked once for the user")
	assert.Contains(t, emr.queries["PractitionerRole"], "practitioner=Practitioner%2Fpr1")
	assert.Contains(t, emr.queries["CareTeam"], "participant=Practitioner%2Fpr1%2CPractitionerRole%2Fr1&",
		"the searches ask for the Practitioner and their current roles")

	// A user signed in as a PractitionerRole is that role only.
	st = &relState{got: map[string]relResult{}}
	r.resolve(t.Context(), st, "req", "PractitionerRole/r3", []string{"p3"})
	assert.True(t, st.got["p3"].rel.CareTeam)
	assert.Equal(t, 1, emr.count("PractitionerRole"))
}

// TestRelationshipRolesUnavailable: an EMR that cannot search
// PractitionerRole (a 4xx) gives no roles, and the Practitioner's own
// relationships still count; one that fails (5xx, 429) fails the lookup.
func TestRelationshipRolesUnavailable(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		status int
		ok     bool
	}{{400, true}, {403, true}, {404, true}, {429, false}, {500, false}, {503, false}} {
		t.Run(strconv.Itoa(tc.status), func(t *testing.T) {
			emr := newFakeEMR()
			emr.fail["PractitionerRole"] = tc.status
			emr.careTeams = []string{ctJSON("active", "p1", "Practitioner/pr1", "")}
			r, _ := newTestRelationships(t, emr, time.Second)
			st := &relState{got: map[string]relResult{}}
			r.resolve(t.Context(), st, "req", "Practitioner/pr1", []string{"p1"})
			if !tc.ok {
				require.ErrorIs(t, st.got["p1"].err, errRelUpstream)
				assert.Equal(t, 0, emr.total(), "no lookup without knowing who the user is")
				return
			}
			require.NoError(t, st.got["p1"].err)
			assert.True(t, st.got["p1"].rel.CareTeam)
			assert.Contains(t, emr.queries["CareTeam"], "participant=Practitioner%2Fpr1&")
		})
	}
}

// TestRelationshipRolePeriods: a role (or a care-team participation) that
// has ended, has not begun, or whose end cannot be read relates nobody.
func TestRelationshipRolePeriods(t *testing.T) {
	t.Parallel()
	emr := newFakeEMR()
	emr.roles = []string{
		prJSON("r1", "Practitioner/pr1", true, "2020-01-01T00:00:00"), // no zone: unreadable
		`{"resourceType":"PractitionerRole","id":"r2","active":true,"practitioner":{"reference":"Practitioner/pr1"},"period":{"start":"2030-01-01"}}`,
		prJSON("r3", "Practitioner/pr1", true, "2030-01-01"),
	}
	emr.careTeams = []string{ctJSON("active", "p1", "PractitionerRole/r1", ""), ctJSON("active", "p2", "PractitionerRole/r2", ""),
		ctJSON("active", "p3", "PractitionerRole/r3", ""),
		`{"resourceType":"CareTeam","status":"active","subject":{"reference":"Patient/p4"},"participant":[{"member":{"reference":"Practitioner/pr1"},"period":{"start":"2030-01-01"}}]}`,
		`{"resourceType":"CareTeam","status":"active","subject":{"reference":"Patient/p5"},"participant":[{"member":{"reference":"Practitioner/pr1"},"period":{"end":"soon"}}]}`}
	r, _ := newTestRelationships(t, emr, time.Second)
	st := &relState{got: map[string]relResult{}}
	r.resolve(t.Context(), st, "req", "Practitioner/pr1", []string{"p1", "p2", "p3", "p4", "p5"})
	for p, want := range map[string]bool{"p1": false, "p2": false, "p3": true, "p4": false, "p5": false} {
		require.NoError(t, st.got[p].err, p)
		assert.Equal(t, want, st.got[p].rel.CareTeam, p)
	}
}

// TestRelationshipRoleStaleness: a relationship computed from cached
// roles is kept no longer than the roles: a role withdrawn stops relating
// the clinician within ttl, not 2 x ttl.
func TestRelationshipRoleStaleness(t *testing.T) {
	t.Parallel()
	emr := newFakeEMR()
	emr.roles = []string{prJSON("r1", "Practitioner/pr1", true, "")}
	emr.careTeams = []string{ctJSON("active", "p1", "PractitionerRole/r1", ""), ctJSON("active", "p2", "PractitionerRole/r1", "")}
	r, clock := newTestRelationships(t, emr, time.Second)
	resolve := func(p string) bool {
		st := &relState{got: map[string]relResult{}}
		r.resolve(t.Context(), st, "req", "Practitioner/pr1", []string{p})
		require.NoError(t, st.got[p].err)
		return st.got[p].rel.CareTeam
	}
	require.True(t, resolve("p1")) // the roles are cached from now
	clock.advance(r.ttl / 2)
	require.True(t, resolve("p2")) // computed from roles with ttl/2 left
	emr.mu.Lock()
	emr.roles = nil // the role is withdrawn
	emr.mu.Unlock()
	clock.advance(r.ttl/2 + time.Second)
	assert.False(t, resolve("p2"), "the roles expired, and with them what they related")
}
