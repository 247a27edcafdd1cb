package policy

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/format"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDefaultPolicyRegoTests runs the Rego unit tests of the default policy
// and fails on any failing test.
func TestDefaultPolicyRegoTests(t *testing.T) {
	results, err := RunTests(t.Context(), defaultDir)
	require.NoError(t, err)
	require.NotEmpty(t, results)
	for _, r := range results {
		assert.Equal(t, TestPass, r.Outcome, "%s\n%s", r, r.Output)
	}
}

// TestDefaultPolicyIsFormatted keeps configs/policy as `opa fmt` writes it.
func TestDefaultPolicyIsFormatted(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(defaultDir, "*.rego"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		src, err := os.ReadFile(f)
		require.NoError(t, err)
		want, err := format.SourceWithOpts(f, src, format.Opts{RegoVersion: ast.RegoV1})
		require.NoError(t, err)
		assert.Equal(t, string(want), string(src), "%s is not formatted (opa fmt)", f)
	}
}

func TestRunTestsOutcomes(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "p.rego", "package p\n\nx := 1\n")
	writeFile(t, dir, "p_test.rego", `package p_test

import data.p

test_pass if p.x == 1

test_fail if p.x == 2

test_error if 1 / 0 == 1

todo_test_later if false
`)
	results, err := RunTests(t.Context(), dir)
	require.NoError(t, err)

	got := map[string]string{}
	for _, r := range results {
		got[r.Name] = r.Outcome
		assert.Equal(t, "p_test.rego", r.File, "%s", r)
		assert.Equal(t, "data.p_test", r.Package, "%s", r)
	}
	assert.Equal(t, map[string]string{
		"test_pass":       TestPass,
		"test_fail":       TestFail,
		"test_error":      TestError,
		"todo_test_later": TestSkip,
	}, got)
	for i := 1; i < len(results); i++ {
		assert.Less(t, results[i-1].Line, results[i].Line, "results ordered by line")
	}
}

func TestRunTestsLoadErrors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"syntax error names file and line", map[string]string{"bad_test.rego": "package p\n\ntest_x if { x := ] }\n"}, "bad_test.rego:3"},
		{"no modules", map[string]string{"data.json": "{}"}, ErrNoModules.Error()},
		{"network built-in refused", map[string]string{"x_test.rego": "package p\n\ntest_x if http.send({})\n"}, "http.send"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, body := range tc.files {
				writeFile(t, dir, name, body)
			}
			_, err := RunTests(t.Context(), dir)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

// defaultDir is the default policy shipped in configs/policy.
const defaultDir = "../configs/policy"

func writeFile(t *testing.T, dir, name, body string) {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
}
