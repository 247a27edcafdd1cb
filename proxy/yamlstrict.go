package proxy

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// decoder decodes a YAML tree into config structs strictly: every error names
// the key path ("limits.max_body") and says what would fix it, and all errors
// are reported at once.
type decoder struct {
	notYet map[string]string // key path → the feature that will bring it
	errs   []error
	getenv func(string) (string, bool)
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	envRef       = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)
	sizeRe       = regexp.MustCompile(`^([0-9]+)\s*(B|KiB|MiB|GiB|TiB|KB|MB|GB|TB)?$`)
)

func (d *decoder) fail(path string, node *yaml.Node, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if node != nil {
		msg = fmt.Sprintf("line %d: %s", node.Line, msg)
	}
	d.errs = append(d.errs, fmt.Errorf("%s: %s", path, msg))
}

// decode walks node into v, which must be addressable.
func (d *decoder) decode(node *yaml.Node, v reflect.Value, path string) {
	if node.Kind == yaml.AliasNode {
		d.fail(path, node, "YAML aliases are not allowed in ChartGuard config; write the value out")
		return
	}
	if node.Kind == yaml.ScalarNode && node.Tag == "!!null" {
		return // keep the default
	}
	switch {
	case v.Type() == durationType:
		d.scalar(node, path, "a duration such as 30s or 15m", func(s string) error {
			dur, err := time.ParseDuration(s)
			if err == nil && dur < 0 {
				err = errors.New("negative")
			}
			v.SetInt(int64(dur))
			return err
		})
	case v.Kind() == reflect.Struct:
		d.structure(node, v, path)
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Struct:
		if node.Kind != yaml.SequenceNode {
			d.fail(path, node, "want a list")
			return
		}
		v.Set(reflect.MakeSlice(v.Type(), len(node.Content), len(node.Content)))
		for i, item := range node.Content {
			d.decode(item, v.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.String:
		if node.Kind != yaml.SequenceNode {
			d.fail(path, node, "want a list of strings, e.g. [a, b]")
			return
		}
		out := reflect.MakeSlice(v.Type(), len(node.Content), len(node.Content))
		for i, item := range node.Content {
			d.decode(item, out.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(out)
	case v.Kind() == reflect.Map:
		if node.Kind != yaml.MappingNode {
			d.fail(path, node, "want a mapping of key: value")
			return
		}
		m := reflect.MakeMapWithSize(v.Type(), len(node.Content)/2)
		for i := 0; i+1 < len(node.Content); i += 2 {
			k := reflect.New(v.Type().Key()).Elem()
			val := reflect.New(v.Type().Elem()).Elem()
			keyPath := path + "." + node.Content[i].Value
			d.decode(node.Content[i], k, keyPath)
			d.decode(node.Content[i+1], val, keyPath)
			m.SetMapIndex(k, val)
		}
		v.Set(m)
	case v.Kind() == reflect.String:
		d.scalar(node, path, "a string", func(s string) error {
			v.SetString(d.expand(path, node, s))
			return nil
		})
	case v.Kind() == reflect.Bool:
		d.scalar(node, path, "true or false", func(s string) error {
			if node.Tag != "!!bool" {
				return errors.New("not a boolean")
			}
			b, err := strconv.ParseBool(s)
			v.SetBool(b)
			return err
		})
	case v.CanInt():
		d.scalar(node, path, "a whole number (sizes may use KiB, MiB, GiB)", func(s string) error {
			n, err := parseSize(s)
			if err == nil && v.OverflowInt(n) {
				err = errors.New("too large")
			}
			v.SetInt(n)
			return err
		})
	case v.CanFloat():
		d.scalar(node, path, "a number", func(s string) error {
			f, err := strconv.ParseFloat(s, 64)
			if err == nil && f < 0 {
				err = errors.New("negative")
			}
			v.SetFloat(f)
			return err
		})
	default:
		d.fail(path, node, "unsupported config field type %s", v.Type())
	}
}

func (d *decoder) scalar(node *yaml.Node, path, want string, set func(string) error) {
	if node.Kind != yaml.ScalarNode {
		d.fail(path, node, "want %s", want)
		return
	}
	if err := set(node.Value); err != nil {
		d.fail(path, node, "want %s, got %q", want, node.Value)
	}
}

// expand replaces ${NAME} with the environment variable's value. It runs on
// parsed string values only, never on the raw file, so a variable cannot
// inject YAML structure.
func (d *decoder) expand(path string, node *yaml.Node, s string) string {
	return envRef.ReplaceAllStringFunc(s, func(ref string) string {
		name := ref[2 : len(ref)-1]
		val, ok := d.getenv(name)
		if !ok {
			d.fail(path, node, "environment variable %s is not set; set it or write the value", name)
		}
		return val
	})
}

func (d *decoder) structure(node *yaml.Node, v reflect.Value, path string) {
	if node.Kind != yaml.MappingNode {
		d.fail(path, node, "want a mapping of keys")
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(node.Content); i += 2 {
		key, val := node.Content[i], node.Content[i+1]
		keyPath := joinKey(path, key.Value)
		if seen[key.Value] {
			d.fail(keyPath, key, "key repeated")
			continue
		}
		seen[key.Value] = true
		if feature, ok := d.notYet[keyPath]; ok {
			d.fail(keyPath, key, "not supported yet (%s); remove the key", feature)
			continue
		}
		field, ok := fieldByKey(v, key.Value)
		if !ok {
			d.fail(keyPath, key, "unknown key; valid keys here: %s", strings.Join(keysOf(v.Type()), ", "))
			continue
		}
		d.decode(val, field, keyPath)
	}
}

func joinKey(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// fieldByKey finds the field tagged yaml:"key", looking into inline structs.
func fieldByKey(v reflect.Value, key string) (reflect.Value, bool) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if opts == "inline" {
			if fv, ok := fieldByKey(v.Field(i), key); ok {
				return fv, true
			}
			continue
		}
		if name == key && name != "-" && f.IsExported() {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}

func keysOf(t reflect.Type) []string {
	var keys []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		switch {
		case opts == "inline":
			keys = append(keys, keysOf(f.Type)...)
		case name != "" && name != "-" && f.IsExported():
			keys = append(keys, name)
		}
	}
	slices.Sort(keys)
	return keys
}

// parseSize parses "32KiB", "10MiB", "8192".
func parseSize(s string) (int64, error) {
	m := sizeRe.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, errors.New("not a size")
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return 0, err
	}
	mult := map[string]int64{"": 1, "B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30,
		"TiB": 1 << 40, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}[m[2]]
	if n > (1<<62)/mult {
		return 0, errors.New("too large")
	}
	return n * mult, nil
}

// ReadSecretFile reads a secret from a file named in config, trimming one
// trailing newline; key names the setting in its errors. Clients of the
// admin API (the CLI) read the admin token with it, so they send exactly
// what the server compares against.
func ReadSecretFile(key, path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: cannot read %q: %w; point it at a readable secret file", key, path, err)
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", fmt.Errorf("%s: %q is empty; write the secret into it", key, path)
	}
	return s, nil
}
