package policy

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/stretchr/testify/require"

	"github.com/chartguard/chartguard/chartguard"
)

// BenchmarkDecide measures one decision of the default policy on typical
// inputs (setup outside the timer).
func BenchmarkDecide(b *testing.B) {
	e := newDefaultEngine(b)
	cases := []struct {
		name string
		in   chartguard.Input
	}{
		{"allow", physicianRead()},
		{"deny", with(physicianRead(), func(in *chartguard.Input) {
			in.User.Roles = []string{"nurse"}
			in.Resource.Action, in.Resource.Interaction = "delete", "delete"
		})},
		{"search", with(physicianRead(), func(in *chartguard.Input) {
			in.Resource.ID = ""
			in.Resource.Action, in.Resource.Interaction = "search", "search-type"
			in.Request.Query = map[string][]string{"patient": {"p1"}, "_count": {"50"}}
		})},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			in := tc.in
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.Decide(b.Context(), &in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkInputValue compares ways to turn an Input into the policy input:
// the direct builder Decide uses (with the default policy's fields, as
// Decide builds it, and whole), and the JSON round trips it replaces.
func BenchmarkInputValue(b *testing.B) {
	in := physicianRead()
	b.Run("direct/default-policy-fields", func(b *testing.B) {
		enc := newDefaultEngine(b).enc
		b.ReportAllocs()
		for b.Loop() {
			if _, err := enc.input(&in); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("direct", func(b *testing.B) {
		enc := newEncoder(allFields)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := enc.input(&in); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json+ValueFromReader", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf, err := json.Marshal(&in)
			require.NoError(b, err)
			if _, err := ast.ValueFromReader(bytes.NewReader(buf)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("InterfaceToValue", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ast.InterfaceToValue(&in); err != nil {
				b.Fatal(err)
			}
		}
	})
}
