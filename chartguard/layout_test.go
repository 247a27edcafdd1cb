package chartguard_test

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const module = "github.com/chartguard/chartguard"

type pkg struct {
	ImportPath string
	Dir        string
	GoFiles    []string
	Imports    []string
}

// packages lists the product module's packages with their direct (non-test)
// imports.
func packages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", module+"/...")
	cmd.Dir = ".."
	out, err := cmd.Output()
	require.NoError(t, err)
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p pkg
		require.NoError(t, dec.Decode(&p))
		pkgs = append(pkgs, p)
	}
	require.NotEmpty(t, pkgs)
	return pkgs
}

func ours(imports []string) []string {
	var out []string
	for _, i := range imports {
		if i == module || strings.HasPrefix(i, module+"/") {
			out = append(out, strings.TrimPrefix(strings.TrimPrefix(i, module), "/"))
		}
	}
	return out
}

// TestImportRules checks the direct-import rules of DESIGN.md ("Layout").
func TestImportRules(t *testing.T) {
	for _, p := range packages(t) {
		rel := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		imports := ours(p.Imports)
		t.Run(rel, func(t *testing.T) {
			if slices.Contains(imports, "proxy") {
				assert.Equal(t, "cmd/chartguard", rel, "only cmd/chartguard imports proxy")
			}
			switch rel {
			case "chartguard":
				assert.Empty(t, imports, "the shared types import nothing of ours")
			case "audit":
				for _, i := range imports {
					assert.Equal(t, "chartguard", i, "audit imports no package of ours but chartguard")
				}
			}
			if rel == "policy" || rel == "audit" {
				assertServesNoHTTP(t, p)
			}
		})
	}
}

// serving are the net/http names that serve HTTP.
var serving = []string{"Server", "ListenAndServe", "ListenAndServeTLS", "Serve", "ServeTLS",
	"Handle", "HandleFunc", "HandlerFunc", "ServeMux", "NewServeMux", "Handler", "ResponseWriter"}

// assertServesNoHTTP: policy and audit may use net/http as clients only.
func assertServesNoHTTP(t *testing.T, p pkg) {
	fset := token.NewFileSet()
	for _, name := range p.GoFiles {
		f, err := parser.ParseFile(fset, filepath.Join(p.Dir, name), nil, 0)
		require.NoError(t, err)
		for _, imp := range f.Imports {
			assert.NotEqual(t, `"net/http/httptest"`, imp.Path.Value, "%s imports httptest", name)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if id, ok := sel.X.(*ast.Ident); ok && id.Name == "http" && slices.Contains(serving, sel.Sel.Name) {
				t.Errorf("%s: %s uses http.%s: policy and audit serve no HTTP", p.ImportPath, fset.Position(sel.Pos()), sel.Sel.Name)
			}
			return true
		})
	}
}
