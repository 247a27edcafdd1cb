package policy

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chartguard/chartguard/chartguard"
)

// viaJSON is the reference conversion: what `opa eval --input` would see
// for the JSON encoding of in.
func viaJSON(t testing.TB, in *chartguard.Input) ast.Value {
	t.Helper()
	buf, err := json.Marshal(in)
	require.NoError(t, err)
	v, err := ast.ValueFromReader(bytes.NewReader(buf))
	require.NoError(t, err)
	return v
}

func TestInputValueMatchesJSON(t *testing.T) {
	days := 3
	tests := []struct {
		name string
		in   chartguard.Input
	}{
		{"zero input", chartguard.Input{}},
		{"typical read", physicianRead()},
		{"every field set", filled()},
		{"empty but non-nil slices and maps", chartguard.Input{
			User:         chartguard.Identity{Roles: []string{}, Groups: []string{}, PatientLinks: []string{}},
			Token:        chartguard.Token{Scopes: []string{}},
			Session:      chartguard.SessionInfo{BreakGlass: []chartguard.BTGGrant{}},
			Request:      chartguard.Request{Query: map[string][]string{"a": nil, "b": {}}},
			Resource:     chartguard.Resource{Patients: []string{}, Labels: []string{}},
			Relationship: map[string]chartguard.Relationship{},
		}},
		{"relationship with encounter days", chartguard.Input{
			Relationship: map[string]chartguard.Relationship{
				"p1": {CareTeam: true, EncounterDaysAgo: &days, Department: "cardio"},
				"p2": {PCP: true},
			},
		}},
		{"invalid UTF-8 is replaced like encoding/json", chartguard.Input{
			User:     chartguard.Identity{Subject: "a\xffb\xfe\xfdc", Roles: []string{"\xc3"}},
			Request:  chartguard.Request{Query: map[string][]string{"k\xff": {"v\xff"}}},
			Resource: chartguard.Resource{Type: "Obs\xe2\x82ervation"},
		}},
		{"large and negative numbers", chartguard.Input{
			Session: chartguard.SessionInfo{MFAAgeS: 1 << 62, AuthAgeS: -5},
			Usage:   chartguard.Usage{DistinctPatientsWindow: -1},
		}},
		{"times keep their zone and nanoseconds", chartguard.Input{
			Request: chartguard.Request{Time: time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("x", 3600))},
		}},
	}
	enc := newEncoder(allFields)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := enc.input(&tc.in)
			require.NoError(t, err)
			want := viaJSON(t, &tc.in)
			assert.Zero(t, got.Compare(want), "input(%+v)\n got %v\nwant %v", tc.in, got, want)
		})
	}
}

func TestInputValueRejectsUnencodableTimes(t *testing.T) {
	tests := []struct {
		name string
		in   chartguard.Input
	}{
		{"request time after year 9999", chartguard.Input{Request: chartguard.Request{Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}}},
		{"grant expiry before year 0", chartguard.Input{Session: chartguard.SessionInfo{BreakGlass: []chartguard.BTGGrant{{ExpiresAt: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)}}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, jsonErr := json.Marshal(&tc.in)
			require.Error(t, jsonErr, "encoding/json refuses it too")
			_, err := newEncoder(allFields).input(&tc.in)
			assert.Error(t, err)
		})
	}
}

// FuzzInputValue checks the direct conversion against the JSON round trip
// for any input encoding/json can decode.
func FuzzInputValue(f *testing.F) {
	for _, in := range []chartguard.Input{{}, physicianRead(), filled()} {
		buf, err := json.Marshal(&in)
		require.NoError(f, err)
		f.Add(buf)
	}
	f.Add([]byte(`{"user":{"roles":null,"groups":[]},"request":{"query":{"a":null}},"relationship":{"p":{"encounter_days_ago":0}}}`))
	f.Add([]byte(`{"session":{"mfa_age_s":-9223372036854775808,"break_glass":[{"expires_at":"2026-01-01T00:00:00.123+05:30"}]}}`))
	enc := newEncoder(allFields)
	f.Fuzz(func(t *testing.T, data []byte) {
		var in chartguard.Input
		if json.Unmarshal(data, &in) != nil {
			return
		}
		got, err := enc.input(&in)
		buf, jsonErr := json.Marshal(&in)
		if jsonErr != nil {
			require.Error(t, err, "encoding/json failed (%v) but the encoder did not", jsonErr)
			return
		}
		require.NoError(t, err)
		want, err := ast.ValueFromReader(bytes.NewReader(buf))
		require.NoError(t, err)
		require.Zero(t, got.Compare(want), "input(%s)\n got %v\nwant %v", data, got, want)
	})
}

// filled returns an Input with every field, at every depth, set to a
// non-zero value, found by reflection: a field added to the shared types
// shows up here and in the JSON, and TestInputValueMatchesJSON fails until
// the encoder handles it.
func filled() chartguard.Input {
	var in chartguard.Input
	n := 0
	fill(reflect.ValueOf(&in).Elem(), &n)
	return in
}

func fill(v reflect.Value, n *int) {
	*n++
	switch v.Kind() {
	case reflect.String:
		v.SetString("s" + strconv.Itoa(*n))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64:
		v.SetInt(int64(1000 + *n))
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), n)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		for i := range 2 {
			fill(v.Index(i), n)
		}
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		for range 2 {
			k := reflect.New(v.Type().Key()).Elem()
			e := reflect.New(v.Type().Elem()).Elem()
			fill(k, n)
			fill(e, n)
			v.SetMapIndex(k, e)
		}
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Date(2026, 11, 25, 10, 0, 0, *n, time.UTC)))
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), n)
			}
		}
	default:
		panic("fill: unhandled kind " + v.Kind().String() + ": extend fill")
	}
}

// TestInputObjectsFitMaxKeys: the encoder keeps each object's items in a
// fixed array of maxKeys. Every struct the input encodes as an object
// must fit, so a field added to a shared type fails here, not with an
// index panic on a request.
func TestInputObjectsFitMaxKeys(t *testing.T) {
	for _, v := range []any{
		chartguard.Input{}, chartguard.Identity{}, chartguard.Token{}, chartguard.SessionInfo{},
		chartguard.BTGGrant{}, chartguard.Request{}, chartguard.Resource{}, chartguard.Relationship{},
		chartguard.Usage{},
	} {
		typ := reflect.TypeOf(v)
		assert.LessOrEqual(t, typ.NumField(), maxKeys, "%s has more fields than an encoder object holds", typ)
	}
}
