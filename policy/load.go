package policy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/loader"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
)

// Limits on a policy directory. Policies are operator files, but a stray
// data dump in the directory must fail loading, not exhaust memory.
const (
	maxFileBytes  = 16 << 20
	maxTotalBytes = 64 << 20
)

// errTooLarge reports a policy file or directory over the size limits.
var errTooLarge = errors.New("too large")

// source is what a policy directory holds once loaded and parsed.
type source struct {
	modules map[string]*ast.Module // by file name relative to the directory
	raw     map[string][]byte      // module sources, for the revision
	data    map[string]any         // merged data documents
}

// loadDir reads the policy directory dir. Rego files are parsed as Rego v1;
// *_test.rego files are included only if withTests. Hidden files and
// directories and files of other types are ignored. Names in errors and in
// the result are relative to dir.
//
// Security: dir is opened with [os.OpenRoot], so a symlink cannot pull in
// files from outside the policy directory.
func loadDir(dir string, withTests bool) (*source, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()

	var sizeErrs []error
	var total int64
	filter := func(name string, info fs.FileInfo, depth int) bool {
		if depth > 0 && strings.HasPrefix(info.Name(), ".") {
			return true
		}
		if info.IsDir() {
			return false
		}
		if !isPolicyFile(info.Name(), withTests) {
			return true
		}
		total += info.Size()
		switch {
		case info.Size() > maxFileBytes:
			sizeErrs = append(sizeErrs, fmt.Errorf("%s: %w: %d bytes, limit %d", name, errTooLarge, info.Size(), maxFileBytes))
			return true
		case total > maxTotalBytes:
			sizeErrs = append(sizeErrs, fmt.Errorf("%s: %w: directory exceeds %d bytes", name, errTooLarge, maxTotalBytes))
			return true
		}
		return false
	}

	res, err := loader.NewFileLoader().
		WithFS(&limitedFS{FS: root.FS()}).
		WithRegoVersion(ast.RegoV1).
		WithProcessAnnotation(true).
		Filtered([]string{"."}, filter)
	if err != nil {
		return nil, err
	}
	if len(sizeErrs) > 0 {
		return nil, errors.Join(sizeErrs...)
	}

	src := &source{
		modules: make(map[string]*ast.Module, len(res.Modules)),
		raw:     make(map[string][]byte, len(res.Modules)),
		data:    res.Documents,
	}
	for _, m := range res.Modules {
		src.modules[m.Name] = m.Parsed
		src.raw[m.Name] = m.Raw
	}
	return src, nil
}

// limitedFS reads each file through it with a budget: maxFileBytes each,
// maxTotalBytes in all. The loader's filter checks the sizes as it lists
// the files; one that grows before it is read would get past that alone.
type limitedFS struct {
	fs.FS
	total atomic.Int64
}

func (l *limitedFS) ReadFile(name string) ([]byte, error) {
	f, err := l.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxFileBytes {
		return nil, fmt.Errorf("%s: %w: over %d bytes", name, errTooLarge, maxFileBytes)
	}
	if l.total.Add(int64(len(b))) > maxTotalBytes {
		return nil, fmt.Errorf("%s: %w: directory exceeds %d bytes", name, errTooLarge, maxTotalBytes)
	}
	return b, nil
}

func (l *limitedFS) ReadDir(name string) ([]fs.DirEntry, error) { return fs.ReadDir(l.FS, name) }

func (l *limitedFS) Stat(name string) (fs.FileInfo, error) { return fs.Stat(l.FS, name) }

// isPolicyFile reports whether a file named name belongs in a load.
func isPolicyFile(name string, withTests bool) bool {
	switch path.Ext(name) {
	case ".rego":
		return withTests || !strings.HasSuffix(name, "_test.rego")
	case ".json", ".yaml", ".yml":
		return true
	}
	return false
}

// revision is a stable hash of the loaded policy: the sorted module names
// and sources, then the merged data in canonical JSON (sorted keys), so the
// same policy gives the same revision on every replica.
func (src *source) revision() (string, error) {
	h := sha256.New()
	for _, name := range slices.Sorted(maps.Keys(src.raw)) {
		fmt.Fprintf(h, "module %d:%s\n%d:", len(name), name, len(src.raw[name]))
		h.Write(src.raw[name])
		h.Write([]byte{'\n'})
	}
	data, err := json.Marshal(src.data)
	if err != nil {
		return "", fmt.Errorf("hash data: %w", err)
	}
	fmt.Fprintf(h, "data %d:", len(data))
	h.Write(data)
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// maxSharedKeys bounds the data keys dataKeys returns.
const maxSharedKeys = 4096

// dataKeys returns the object keys in the source's data, at most
// maxSharedKeys of them. Keys such as role names and resource types recur
// in inputs, so the encoder shares one term for each.
func (src *source) dataKeys() []string {
	var keys []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				if len(keys) == maxSharedKeys {
					return
				}
				keys = append(keys, k)
				walk(e)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(src.data)
	return keys
}

// store returns an in-memory store holding the source's data. Values are
// kept as AST so evaluation reads them without conversion.
func (src *source) store() storage.Store {
	return inmem.NewFromObjectWithOpts(src.data, inmem.OptReturnASTValuesOnRead(true))
}

// compiler compiles the source's modules as Rego v1 with the built-ins that
// do I/O removed. A rule and data at the same path are refused, as `opa`
// refuses them: the rule would silently hide the data.
func (src *source) compiler() (*ast.Compiler, error) {
	ctx := context.Background() // the store is in memory
	store := src.store()
	txn, err := store.NewTransaction(ctx)
	if err != nil {
		return nil, err
	}
	defer store.Abort(ctx, txn)
	c := ast.NewCompiler().
		WithDefaultRegoVersion(ast.RegoV1).
		WithCapabilities(capabilities()).
		WithPathConflictsCheck(storage.NonEmpty(ctx, store, txn))
	c.Compile(src.modules)
	if c.Failed() {
		return nil, c.Errors
	}
	return c, nil
}

// capabilities are this OPA's built-ins less those a policy may not call.
//
// Security: a decision must not do network I/O: it would make the hot path
// depend on remote services and let a policy leak input. Relationship data
// reaches the policy through the input instead.
func capabilities() *ast.Capabilities {
	caps := ast.CapabilitiesForThisVersion()
	kept := caps.Builtins[:0]
	for _, b := range caps.Builtins {
		if b.Name != ast.HTTPSend.Name && b.Name != ast.NetLookupIPAddr.Name {
			kept = append(kept, b)
		}
	}
	caps.Builtins = kept
	return caps
}

// withoutTests returns src less its *_test.rego modules: what a decision
// compiles. The data is shared.
func (src *source) withoutTests() *source {
	out := &source{modules: map[string]*ast.Module{}, raw: map[string][]byte{}, data: src.data}
	for name, m := range src.modules {
		if !strings.HasSuffix(name, "_test.rego") {
			out.modules[name], out.raw[name] = m, src.raw[name]
		}
	}
	return out
}
