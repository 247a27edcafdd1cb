package policy

import (
	"context"
	"maps"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chartguard/chartguard/chartguard"
)

// responseEntry is the response-phase input for one Observation of a
// search's answer.
func responseEntry(id, patient string, labels ...string) chartguard.Input {
	return with(physicianRead(), func(in *chartguard.Input) {
		in.Resource.Phase, in.Resource.Action, in.Resource.Interaction = chartguard.PhaseResponse, "search", "search-type"
		in.Resource.ID, in.Resource.Patients, in.Resource.Labels = id, []string{patient}, append([]string{}, labels...)
		in.Relationship = map[string]chartguard.Relationship{"p1": {CareTeam: true}}
	})
}

// TestMemoDecidesAlikeResourcesOnce runs the default policy over the
// entries of a search's answer: those that differ only in their id (which
// the policy does not read) are evaluated once; each decision is the one
// Decide gives, with an ID of its own.
func TestMemoDecidesAlikeResourcesOnce(t *testing.T) {
	e := newDefaultEngine(t)
	entries := []struct {
		in        chartguard.Input
		evaluated int // memo entries after the decision
	}{
		{responseEntry("o1", "p1"), 1},
		{responseEntry("o2", "p1"), 1},
		{responseEntry("o3", "p1"), 1},
		{responseEntry("o4", "p1", "PSY"), 2}, // a label the policy reads
		{responseEntry("o5", "p1", "PSY"), 2},
		{responseEntry("o6", "p2"), 3}, // another patient: denied
		{responseEntry("o7", "p2"), 3},
		{responseEntry("o8", "p1"), 3},
	}
	var memo Memo
	ids := map[string]bool{}
	for _, tc := range entries {
		want, err := e.Decide(t.Context(), &tc.in)
		require.NoError(t, err)
		got, err := e.DecideWith(t.Context(), &tc.in, &memo)
		require.NoError(t, err)
		assert.Len(t, memo.known, tc.evaluated, "%s", tc.in.Resource.ID)

		assert.Regexp(t, decisionID, got.ID)
		assert.False(t, ids[got.ID], "decision ids repeat")
		ids[got.ID] = true
		want.ID, got.ID = "", ""
		assert.Equal(t, want, got, "%s", tc.in.Resource.ID)
	}
}

func TestMemoKeepsApartWhatThePolicyReads(t *testing.T) {
	e := newEngine(t, map[string]string{"p.rego": `package chartguard

decision := {"allow": true, "reasons": [input.resource.id]}
`}, Config{})
	var memo Memo
	for _, id := range []string{"o1", "o2", "o1"} {
		in := responseEntry(id, "p1")
		d, err := e.DecideWith(t.Context(), &in, &memo)
		require.NoError(t, err)
		assert.Equal(t, []string{id}, d.Reasons)
	}
	assert.Len(t, memo.known, 2)
}

func TestMemoRemembersNothingItCannotStandBehind(t *testing.T) {
	nondeterministic := newEngine(t, map[string]string{"p.rego": `package chartguard

decision := {"allow": rand.intn("coin", 2) == 0}
`}, Config{})
	failing := newEngine(t, map[string]string{"p.rego": `package chartguard

decision := {"allow": to_number(input.resource.id) > 0}
`}, Config{})
	deterministic := newEngine(t, map[string]string{"p.rego": `package chartguard

decision := {"allow": time.now_ns() > 0}
`}, Config{})
	tests := []struct {
		name   string
		engine *Engine
		in     chartguard.Input
		ctx    func() context.Context
		kept   int
	}{
		{"a policy calling a non-deterministic built-in", nondeterministic, responseEntry("o1", "p1"), nil, 0},
		{"an evaluation error", failing, responseEntry("x", "p1"), nil, 0},
		{"no request time", deterministic, with(responseEntry("o1", "p1"), func(in *chartguard.Input) { in.Request.Time = time.Time{} }), nil, 0},
		{"time.now_ns is the request time", deterministic, responseEntry("o1", "p1"), nil, 1},
		{"a canceled request", deterministic, responseEntry("o1", "p1"), func() context.Context {
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			return ctx
		}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			if tc.ctx != nil {
				ctx = tc.ctx()
			}
			var memo Memo
			for range 2 {
				_, _ = tc.engine.DecideWith(ctx, &tc.in, &memo)
			}
			assert.Len(t, memo.known, tc.kept)
		})
	}
}

// TestMemoDeniesACanceledRequest: a remembered allow is not given to a
// request whose context ended; the evaluation denies it as Decide would.
func TestMemoDeniesACanceledRequest(t *testing.T) {
	e := newDefaultEngine(t)
	in := responseEntry("o1", "p1")
	var memo Memo
	d, err := e.DecideWith(t.Context(), &in, &memo)
	require.NoError(t, err)
	require.True(t, d.Allow)

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	d, err = e.DecideWith(ctx, &in, &memo)
	require.ErrorIs(t, err, context.Canceled)
	assert.False(t, d.Allow)
	assert.Equal(t, []string{ReasonCanceled}, d.Reasons)
}

func TestMemoHoldsOneEngineAndOneRequestTime(t *testing.T) {
	a, b := newDefaultEngine(t), newDefaultEngine(t)
	var memo Memo
	in := responseEntry("o1", "p1")
	decide := func(e *Engine, in chartguard.Input) {
		t.Helper()
		_, err := e.DecideWith(t.Context(), &in, &memo)
		require.NoError(t, err)
	}
	decide(a, in)
	decide(a, with(in, func(in *chartguard.Input) { in.Request.Time = in.Request.Time.Add(time.Second) }))
	assert.Len(t, memo.known, 2, "another request time is another key")
	decide(b, in)
	assert.Len(t, memo.known, 1, "another engine starts afresh")
	assert.Same(t, b, memo.engine)
}

// fullInput has every field set, lists and maps non-empty.
func fullInput() chartguard.Input {
	days := 3
	in := physicianRead()
	in.User.Email, in.User.Department, in.User.PatientLinks = "a@example.org", "cardiology", []string{"Patient/p9"}
	in.Token = chartguard.Token{Kind: "bearer", ClientID: "app", Scopes: []string{"user/*.rs"}, LaunchPatient: "p1", PurposeOfUse: "TREAT"}
	in.Session.BreakGlass = []chartguard.BTGGrant{{Grant: "g1", Patient: "p2", Reason: "ETREAT", ExpiresAt: in.Request.Time.Add(time.Hour)}}
	in.Request.Query = map[string][]string{"patient": {"p1"}, "_count": {"10"}}
	in.Resource.Operation = "everything"
	in.Resource.Labels = []string{"N"}
	in.Relationship["p1"] = chartguard.Relationship{CareTeam: true, PCP: true, EncounterDaysAgo: &days, Department: "cardiology"}
	return in
}

// leafNames lists the fields of t down to strings, numbers, booleans,
// times, pointers and lists of strings, as "User.Roles",
// "Session.BreakGlass[].Reason", "Relationship{}.PCP".
func leafNames(t reflect.Type, prefix string) []string {
	var out []string
	for f := range t.Fields() {
		name := prefix + f.Name
		switch ft := f.Type; {
		case ft == reflect.TypeFor[time.Time]():
			out = append(out, name)
		case ft.Kind() == reflect.Struct:
			out = append(out, leafNames(ft, name+".")...)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			out = append(out, name+"[]")
			out = append(out, leafNames(ft.Elem(), name+"[].")...)
		case ft.Kind() == reflect.Map && ft.Elem().Kind() == reflect.Struct:
			out = append(out, name+"{}")
			out = append(out, leafNames(ft.Elem(), name+"{}.")...)
		default:
			out = append(out, name)
		}
	}
	return out
}

// TestMemoKeyCoversEveryField changes each field of the input in turn:
// every change gives another key, but resource.id when the policy does
// not read it. A field added to the input types fails this test until it
// is in the key (appendKey) and here.
func TestMemoKeyCoversEveryField(t *testing.T) {
	rel := func(f func(*chartguard.Relationship)) func(*chartguard.Input) {
		return func(in *chartguard.Input) { r := in.Relationship["p1"]; f(&r); in.Relationship["p1"] = r }
	}
	grant := func(f func(*chartguard.BTGGrant)) func(*chartguard.Input) {
		return func(in *chartguard.Input) { f(&in.Session.BreakGlass[0]) }
	}
	changes := map[string]func(*chartguard.Input){
		"User.Issuer":         func(in *chartguard.Input) { in.User.Issuer += "x" },
		"User.Subject":        func(in *chartguard.Input) { in.User.Subject += "x" },
		"User.Name":           func(in *chartguard.Input) { in.User.Name += "x" },
		"User.Email":          func(in *chartguard.Input) { in.User.Email += "x" },
		"User.Roles":          func(in *chartguard.Input) { in.User.Roles = append(in.User.Roles, "nurse") },
		"User.Groups":         func(in *chartguard.Input) { in.User.Groups[0] += "x" },
		"User.Department":     func(in *chartguard.Input) { in.User.Department += "x" },
		"User.FHIRUser":       func(in *chartguard.Input) { in.User.FHIRUser += "x" },
		"User.PatientLinks":   func(in *chartguard.Input) { in.User.PatientLinks = nil },
		"Token.Kind":          func(in *chartguard.Input) { in.Token.Kind = "session" },
		"Token.ClientID":      func(in *chartguard.Input) { in.Token.ClientID += "x" },
		"Token.Scopes":        func(in *chartguard.Input) { in.Token.Scopes = []string{} },
		"Token.LaunchPatient": func(in *chartguard.Input) { in.Token.LaunchPatient += "x" },
		"Token.PurposeOfUse":  func(in *chartguard.Input) { in.Token.PurposeOfUse += "x" },
		"Session.MFA":         func(in *chartguard.Input) { in.Session.MFA = !in.Session.MFA },
		"Session.MFAMethod":   func(in *chartguard.Input) { in.Session.MFAMethod += "x" },
		"Session.MFAAgeS":     func(in *chartguard.Input) { in.Session.MFAAgeS++ },
		"Session.AuthAgeS":    func(in *chartguard.Input) { in.Session.AuthAgeS++ },
		"Session.BreakGlass[]": func(in *chartguard.Input) {
			in.Session.BreakGlass = append(in.Session.BreakGlass, in.Session.BreakGlass[0])
		},
		"Session.BreakGlass[].Grant":      grant(func(g *chartguard.BTGGrant) { g.Grant += "x" }),
		"Session.BreakGlass[].Patient":    grant(func(g *chartguard.BTGGrant) { g.Patient += "x" }),
		"Session.BreakGlass[].Reason":     grant(func(g *chartguard.BTGGrant) { g.Reason += "x" }),
		"Session.BreakGlass[].ExpiresAt":  grant(func(g *chartguard.BTGGrant) { g.ExpiresAt = g.ExpiresAt.Add(time.Nanosecond) }),
		"Request.Method":                  func(in *chartguard.Input) { in.Request.Method = "POST" },
		"Request.Path":                    func(in *chartguard.Input) { in.Request.Path += "x" },
		"Request.Query":                   func(in *chartguard.Input) { in.Request.Query["patient"] = []string{"p2"} },
		"Request.IP":                      func(in *chartguard.Input) { in.Request.IP += "0" },
		"Request.Time":                    func(in *chartguard.Input) { in.Request.Time = in.Request.Time.In(time.FixedZone("x", 3600)) },
		"Resource.Kind":                   func(in *chartguard.Input) { in.Resource.Kind = "route" },
		"Resource.Phase":                  func(in *chartguard.Input) { in.Resource.Phase = "response" },
		"Resource.Type":                   func(in *chartguard.Input) { in.Resource.Type += "x" },
		"Resource.ID":                     func(in *chartguard.Input) { in.Resource.ID += "x" },
		"Resource.Patients":               func(in *chartguard.Input) { in.Resource.Patients = []string{"p1", ""} },
		"Resource.PatientStatus":          func(in *chartguard.Input) { in.Resource.PatientStatus = "unknown" },
		"Resource.Action":                 func(in *chartguard.Input) { in.Resource.Action = "vread" },
		"Resource.Interaction":            func(in *chartguard.Input) { in.Resource.Interaction = "vread" },
		"Resource.Operation":              func(in *chartguard.Input) { in.Resource.Operation += "x" },
		"Resource.Labels":                 func(in *chartguard.Input) { in.Resource.Labels = nil },
		"Relationship{}":                  func(in *chartguard.Input) { in.Relationship["p2"] = chartguard.Relationship{} },
		"Relationship{}.CareTeam":         rel(func(r *chartguard.Relationship) { r.CareTeam = false }),
		"Relationship{}.PCP":              rel(func(r *chartguard.Relationship) { r.PCP = false }),
		"Relationship{}.EncounterDaysAgo": rel(func(r *chartguard.Relationship) { r.EncounterDaysAgo = nil }),
		"Relationship{}.Department":       rel(func(r *chartguard.Relationship) { r.Department += "x" }),
		"Usage.DistinctPatientsWindow":    func(in *chartguard.Input) { in.Usage.DistinctPatientsWindow++ },
	}
	assert.ElementsMatch(t, leafNames(reflect.TypeFor[chartguard.Input](), ""), slices.Collect(maps.Keys(changes)),
		"every field of the input has a change here")

	full := fullInput()
	for _, skipID := range []bool{false, true} {
		base := string(appendKey(nil, &full, skipID))
		for name, change := range changes {
			in := fullInput()
			change(&in)
			same := base == string(appendKey(nil, &in, skipID))
			assert.Equal(t, skipID && name == "Resource.ID", same, "%s (skip id %v)", name, skipID)
		}
	}

	// Map order does not matter; nil and empty differ, as in JSON.
	a, b := fullInput(), fullInput()
	b.Request.Query = map[string][]string{"_count": {"10"}, "patient": {"p1"}}
	assert.Equal(t, appendKey(nil, &a, true), appendKey(nil, &b, true))
	b.Request.Query, a.Request.Query = map[string][]string{}, nil
	assert.NotEqual(t, appendKey(nil, &a, true), appendKey(nil, &b, true))
	// Moving a byte from one string to the next is another key.
	a, b = fullInput(), fullInput()
	a.User.Issuer, a.User.Subject = "ab", "c"
	b.User.Issuer, b.User.Subject = "a", "bc"
	assert.NotEqual(t, appendKey(nil, &a, true), appendKey(nil, &b, true))
}

func TestMemoDecisionsAreCopies(t *testing.T) {
	e := newDefaultEngine(t)
	in := responseEntry("o1", "p2") // denied, with reasons
	var memo Memo
	first, err := e.DecideWith(t.Context(), &in, &memo)
	require.NoError(t, err)
	require.NotEmpty(t, first.Reasons)
	want := first.Reasons[0]
	first.Reasons[0] = "changed by a caller"
	second, err := e.DecideWith(t.Context(), &in, &memo)
	require.NoError(t, err)
	assert.Equal(t, want, second.Reasons[0])
	second.Reasons[0] = "changed again"
	third, err := e.DecideWith(t.Context(), &in, &memo)
	require.NoError(t, err)
	assert.Equal(t, want, third.Reasons[0])
}

func TestMemoIsBounded(t *testing.T) {
	e := newDefaultEngine(t)
	var memo Memo
	for i := range memoSize + 10 {
		in := responseEntry("o", "p1", "L"+string(rune('a'+i%26))+string(rune('a'+i/26)))
		d, err := e.DecideWith(t.Context(), &in, &memo)
		require.NoError(t, err)
		assert.True(t, d.Allow)
	}
	assert.Len(t, memo.known, memoSize)
}

// BenchmarkDecideSearchAnswer decides the 20 entries of a search's answer
// (one patient, a few labels), as the response phase does, with and
// without a Memo.
func BenchmarkDecideSearchAnswer(b *testing.B) {
	e := newDefaultEngine(b)
	var entries []chartguard.Input
	for i := range 20 {
		var labels []string
		if i%5 == 4 {
			labels = []string{"N"}
		}
		entries = append(entries, responseEntry("o"+string(rune('a'+i)), "p1", labels...))
	}
	for _, memoised := range []bool{false, true} {
		name := "each"
		if memoised {
			name = "memo"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var memo *Memo
				if memoised {
					memo = &Memo{}
				}
				for i := range entries {
					if _, err := e.DecideWith(b.Context(), &entries[i], memo); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
