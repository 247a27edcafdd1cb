package policy

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chartguard/chartguard/chartguard"
)

// TestCheckInputSizeCountsEveryString puts one string over maxInputBytes
// in each string of the input in turn (fields, list elements, map keys
// and values), found by reflection, so a string field added to the shared
// types without being counted fails here.
func TestCheckInputSizeCountsEveryString(t *testing.T) {
	big := strings.Repeat("x", maxInputBytes+1)
	base := physicianRead()
	base.Session.BreakGlass = []chartguard.BTGGrant{{Grant: "g", Patient: "p1", Reason: "TREAT"}}
	base.Request.Query = map[string][]string{"patient": {"p1"}}
	days := 3
	base.Relationship = map[string]chartguard.Relationship{"p1": {CareTeam: true, EncounterDaysAgo: &days, Department: "cardiology"}}
	base.User.Groups, base.User.PatientLinks, base.Token.Scopes = []string{"g"}, []string{"Patient/p9"}, []string{"user/*.rs"}
	require.NoError(t, checkInputSize(&base))

	var paths []string
	walkStrings(reflect.ValueOf(&base).Elem(), "input", func(path string, set func(string)) {
		paths = append(paths, path)
	})
	require.Greater(t, len(paths), 30, "the walk should reach every string")
	for i, path := range paths {
		t.Run(path, func(t *testing.T) {
			in := physicianRead()
			in.Session.BreakGlass = []chartguard.BTGGrant{{Grant: "g", Patient: "p1", Reason: "TREAT"}}
			in.Request.Query = map[string][]string{"patient": {"p1"}}
			in.Relationship = map[string]chartguard.Relationship{"p1": {CareTeam: true, EncounterDaysAgo: &days, Department: "cardiology"}}
			in.User.Groups, in.User.PatientLinks, in.Token.Scopes = []string{"g"}, []string{"Patient/p9"}, []string{"user/*.rs"}
			n := 0
			walkStrings(reflect.ValueOf(&in).Elem(), "input", func(_ string, set func(string)) {
				if n == i {
					set(big)
				}
				n++
			})
			assert.ErrorIs(t, checkInputSize(&in), errInputTooLarge)
		})
	}
}

// walkStrings calls f with the path of every string reachable from v and a
// function that replaces it.
func walkStrings(v reflect.Value, path string, f func(path string, set func(string))) {
	switch v.Kind() {
	case reflect.String:
		f(path, func(s string) { v.SetString(s) })
	case reflect.Struct:
		for i := range v.NumField() {
			walkStrings(v.Field(i), path+"."+v.Type().Field(i).Name, f)
		}
	case reflect.Slice:
		for i := range v.Len() {
			walkStrings(v.Index(i), path+"[]", f)
		}
	case reflect.Pointer:
		if !v.IsNil() {
			walkStrings(v.Elem(), path, f)
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			// Map values are not addressable: walk a copy and store it back.
			val := reflect.New(v.Type().Elem()).Elem()
			val.Set(v.MapIndex(k))
			walkStrings(val, path+"{}", func(p string, set func(string)) {
				f(p, func(s string) {
					set(s)
					v.SetMapIndex(k, val)
				})
			})
			if k.Kind() == reflect.String {
				f(path+"{key}", func(s string) {
					v.SetMapIndex(k, reflect.Value{})
					v.SetMapIndex(reflect.ValueOf(s).Convert(k.Type()), val)
				})
			}
		}
	}
}

// TestLimitedFSBoundsReads: whatever a directory listing said, a policy
// file is read to at most maxFileBytes, and a directory to maxTotalBytes.
func TestLimitedFSBoundsReads(t *testing.T) {
	chunk := make([]byte, maxFileBytes)
	files := fstest.MapFS{"big.json": {Data: make([]byte, maxFileBytes+1)}}
	for i := range maxTotalBytes / maxFileBytes {
		files[fmt.Sprintf("d%d.json", i)] = &fstest.MapFile{Data: chunk}
	}
	files["last.json"] = &fstest.MapFile{Data: []byte("{}")}
	l := &limitedFS{FS: files}

	_, err := l.ReadFile("big.json")
	require.ErrorIs(t, err, errTooLarge)
	for i := range maxTotalBytes / maxFileBytes {
		b, err := l.ReadFile(fmt.Sprintf("d%d.json", i))
		require.NoError(t, err)
		require.Len(t, b, maxFileBytes)
	}
	_, err = l.ReadFile("last.json")
	require.ErrorIs(t, err, errTooLarge, "the directory's budget is spent")
}
