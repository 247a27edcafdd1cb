package policy

import (
	"go/parser"
	"go/token"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestImports enforces DESIGN.md: policy serves no HTTP (it never imports
// net/http) and uses OPA only through its v1 packages.
func TestImports(t *testing.T) {
	entries, err := os.ReadDir(".")
	require.NoError(t, err)
	fset := token.NewFileSet()
	for _, entry := range entries {
		name := entry.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		require.NoError(t, err)
		for _, imp := range f.Imports {
			path, err := strconv.Unquote(imp.Path.Value)
			require.NoError(t, err)
			assert.False(t, strings.HasPrefix(path, "net/http"), "%s imports %s", name, path)
			if strings.HasPrefix(path, "github.com/open-policy-agent/opa/") {
				assert.True(t, strings.HasPrefix(path, "github.com/open-policy-agent/opa/v1/"), "%s imports OPA v0 package %s", name, path)
			}
		}
	}
}
