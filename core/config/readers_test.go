package config

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// schemaKeys walks the JSON Schema and returns every leaf key: a value a
// person writes, as opposed to a mapping or list of mappings that only
// holds keys.
func schemaKeys(t *testing.T) []string {
	t.Helper()
	raw, err := Schema()
	if err != nil {
		t.Fatal(err)
	}
	var root map[string]any
	if err := json.Unmarshal(raw, &root); err != nil {
		t.Fatal(err)
	}
	defs := root["$defs"].(map[string]any)
	resolve := func(s map[string]any) map[string]any {
		ref, _ := s["$ref"].(string)
		if all, ok := s["allOf"].([]any); ok && ref == "" {
			ref, _ = all[0].(map[string]any)["$ref"].(string)
		}
		if ref == "" {
			return s
		}
		return defs[strings.TrimPrefix(ref, "#/$defs/")].(map[string]any)
	}
	var keys []string
	var walk func(s map[string]any, path string)
	walk = func(s map[string]any, path string) {
		s = resolve(s)
		if props, ok := s["properties"].(map[string]any); ok {
			for k, v := range props {
				p := k
				if path != "" {
					p = path + "." + k
				}
				walk(v.(map[string]any), p)
			}
			return
		}
		if items, ok := s["items"].(map[string]any); ok {
			if _, object := resolve(items)["properties"]; object {
				walk(items, path+"[]")
				return
			}
		}
		keys = append(keys, path)
	}
	walk(root, "")
	slices.Sort(keys)
	return keys
}

// goField is the Go field a key decodes into.
func goField(t *testing.T, key string) string {
	t.Helper()
	typ := reflect.TypeFor[File]()
	var name string
	for _, part := range strings.Split(key, ".") {
		part = strings.TrimSuffix(part, "[]")
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice {
			typ = typ.Elem()
		}
		found := false
		for _, fi := range fieldsOf(typ) {
			if fi.key == part {
				f := typ.FieldByIndex(fi.index)
				typ, name, found = f.Type, f.Name, true
				break
			}
		}
		if !found {
			t.Fatalf("key %s: no field for %q in %s", key, part, typ)
		}
	}
	return name
}

// funcBody finds a function in a package directory of the module:
// "cmd/ripcord.rolloutSteps" or "cmd/ripcord.(*world).start".
func funcBody(t *testing.T, reader string) *ast.BlockStmt {
	t.Helper()
	slash := strings.LastIndex(reader, "/")
	dot := strings.Index(reader[slash+1:], ".")
	if dot < 0 {
		t.Fatalf("reader %q: want DIR.FUNC or DIR.(*TYPE).METHOD", reader)
	}
	dir, fn := reader[:slash+1+dot], reader[slash+1+dot+1:]
	recv, name := "", fn
	if strings.HasPrefix(fn, "(") {
		r, m, _ := strings.Cut(strings.TrimPrefix(fn, "("), ").")
		recv, name = strings.TrimPrefix(r, "*"), m
	}
	files, err := filepath.Glob(filepath.Join("..", "..", dir, "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("reader %q: no Go files in %s", reader, dir)
	}
	fset := token.NewFileSet()
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		src, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, path, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Name.Name != name || fd.Body == nil {
				continue
			}
			got := ""
			if fd.Recv != nil && len(fd.Recv.List) > 0 {
				typ := fd.Recv.List[0].Type
				if star, ok := typ.(*ast.StarExpr); ok {
					typ = star.X
				}
				if id, ok := typ.(*ast.Ident); ok {
					got = id.Name
				}
			}
			if got == recv {
				return fd.Body
			}
		}
	}
	t.Fatalf("reader %q: no such function in %s", reader, dir)
	return nil
}

func touches(body *ast.BlockStmt, field string) bool {
	found := false
	ast.Inspect(body, func(n ast.Node) bool {
		if sel, ok := n.(*ast.SelectorExpr); ok && sel.Sel.Name == field {
			found = true
		}
		return !found
	})
	return found
}

// Every key a person can write is read by some code: a key that is
// accepted, defaulted and documented but changes nothing is a lie in the
// config file.
func TestEverySchemaKeyHasAReader(t *testing.T) {
	keys := schemaKeys(t)
	for _, key := range keys {
		reader, ok := Readers[key]
		if !ok {
			if why, pending := Pending[key]; pending {
				t.Logf("%s: pending (%s)", key, why)
				continue
			}
			t.Errorf("%s: no code reads this key; register its reader in config.Readers, or remove the key", key)
			continue
		}
		if field := goField(t, key); !touches(funcBody(t, reader), field) {
			t.Errorf("%s: its reader %s never touches .%s", key, reader, field)
		}
	}
	for key := range Readers {
		if !slices.Contains(keys, key) {
			t.Errorf("config.Readers lists %s, which is not a key of the schema", key)
		}
	}
	for key := range Pending {
		if !slices.Contains(keys, key) {
			t.Errorf("config.Pending lists %s, which is not a key of the schema", key)
		}
		if _, both := Readers[key]; both {
			t.Errorf("%s is both read and pending; remove it from config.Pending", key)
		}
	}
}
