package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAddCareTeams(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		wantErr bool
	}{
		{"both practitioners", `{"chartguard_data":{"roles":{"x":1},"care_teams":{"Practitioner/pr1":{"p1":true},"Practitioner/pr9":{"p2":true}}}}`, false},
		{"pr9 missing", `{"chartguard_data":{"care_teams":{"Practitioner/pr1":{"p1":true}}}}`, true},
		{"no care teams", `{"chartguard_data":{}}`, true},
		{"care teams not an object", `{"chartguard_data":{"care_teams":[1]}}`, true},
		{"no chartguard_data", `{}`, true},
		{"not JSON", `{`, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, err := addCareTeams([]byte(tc.in))
			if tc.wantErr {
				assert.ErrorIs(t, err, errPolicy)
				return
			}
			require.NoError(t, err)
			var got struct {
				Data struct {
					Roles map[string]int             `json:"roles"`
					Teams map[string]map[string]bool `json:"care_teams"`
				} `json:"chartguard_data"`
			}
			require.NoError(t, json.Unmarshal(out, &got))
			assert.Equal(t, map[string]int{"x": 1}, got.Data.Roles, "other settings kept")
			assert.Equal(t, got.Data.Teams["Practitioner/pr1"], got.Data.Teams["physician@demo.chartguard.example"])
			assert.Equal(t, got.Data.Teams["Practitioner/pr9"], got.Data.Teams["nurse@demo.chartguard.example"])
			assert.Len(t, got.Data.Teams, 4)
		})
	}
}

func TestCopyPolicyLeavesTestsOut(t *testing.T) {
	t.Parallel()
	src := filepath.Join("..", "..", "configs", "policy")
	dst := filepath.Join(t.TempDir(), "policy")
	require.NoError(t, copyPolicy(src, dst))
	want, err := filepath.Glob(filepath.Join(src, "*.rego"))
	require.NoError(t, err)
	var names []string
	for _, f := range want {
		if n := filepath.Base(f); !strings.HasSuffix(n, "_test.rego") {
			names = append(names, n)
		}
	}
	names = append(names, "data.json")
	entries, err := os.ReadDir(dst)
	require.NoError(t, err)
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	assert.ElementsMatch(t, names, got)
	assert.Greater(t, len(want), len(names)-1, "the default policy has test files to leave out")
}
