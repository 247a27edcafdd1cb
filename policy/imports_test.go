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

// TestImports enforces DESIGN.md: policy uses net/http only as a client
// (bundle.go, for the bundle download) and serves no HTTP, and uses OPA
// only through its v1 packages.
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
		src, err := os.ReadFile(name)
		require.NoError(t, err)
		for _, server := range []string{"http.Server", "http.Handler", "http.ResponseWriter", "http.ServeMux", "ListenAndServe", "http.Serve("} {
			assert.NotContains(t, string(src), server, "%s serves HTTP", name)
		}
		for _, imp := range f.Imports {
			path, err := strconv.Unquote(imp.Path.Value)
			require.NoError(t, err)
			if strings.HasPrefix(path, "net/http") {
				assert.True(t, name == "bundle.go" && path == "net/http", "%s imports %s", name, path)
			}
			if strings.HasPrefix(path, "github.com/open-policy-agent/opa/") {
				assert.True(t, strings.HasPrefix(path, "github.com/open-policy-agent/opa/v1/"), "%s imports OPA v0 package %s", name, path)
			}
		}
	}
}
