package config

import (
	"fmt"
	"math"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/token"
)

// The decoder walks the YAML syntax tree itself, rather than handing it to
// a generic unmarshaller, so that every complaint carries the line and
// column of the node it is about and names the key path in the file.

const (
	// maxDepth bounds nesting in provider settings and through aliases.
	maxDepth = 64
	// maxNodes bounds the work done expanding aliases, so a small file of
	// nested aliases cannot make the loader build an enormous value.
	maxNodes = 200_000
)

var (
	durationType = reflect.TypeFor[Duration]()
	providerType = reflect.TypeFor[Provider]()
	posType      = reflect.TypeFor[Pos]()
)

type decoder struct {
	file    string
	errs    *errorSet
	env     *expander
	anchors map[string]ast.Node
	nodes   int
	// set holds the position of the value of every key that was given a
	// value, by key path ("environments[1].spike.alpha"). Validation uses
	// it to tell "not written" from "written as zero" and to point at values.
	set map[string]Pos
	// budgetExceeded stops reporting once the alias budget is spent.
	budgetExceeded bool
}

func newDecoder(file string, errs *errorSet, env *expander) *decoder {
	return &decoder{file: file, errs: errs, env: env, anchors: map[string]ast.Node{}, set: map[string]Pos{}}
}

// fieldInfo describes one key of a struct as the file spells it.
type fieldInfo struct {
	key      string
	index    []int
	required bool
	enum     []string
	doc      string
}

// fieldsOf lists the keys of a struct type in declaration order, flattening
// `yaml:",inline"` fields.
func fieldsOf(t reflect.Type) []fieldInfo {
	var out []fieldInfo
	for i := range t.NumField() {
		sf := t.Field(i)
		tag := sf.Tag.Get("yaml")
		if tag == "-" || !sf.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if opts == "inline" {
			for _, inner := range fieldsOf(sf.Type) {
				inner.index = append([]int{i}, inner.index...)
				out = append(out, inner)
			}
			continue
		}
		if name == "" {
			continue
		}
		fi := fieldInfo{key: name, index: []int{i}, required: sf.Tag.Get("required") == "true", doc: sf.Tag.Get("doc")}
		if e := sf.Tag.Get("enum"); e != "" {
			fi.enum = strings.Split(e, ",")
		}
		out = append(out, fi)
	}
	return out
}

// providerIndex returns the index of the Provider a struct carries inline,
// or nil. A Provider itself returns an empty index.
func providerIndex(t reflect.Type) []int {
	if t == providerType {
		return []int{}
	}
	for i := range t.NumField() {
		sf := t.Field(i)
		if sf.Type == providerType && strings.HasSuffix(sf.Tag.Get("yaml"), ",inline") {
			return []int{i}
		}
	}
	return nil
}

func (d *decoder) pos(tk *token.Token) Pos {
	if tk == nil || tk.Position == nil {
		return Pos{File: d.file, Line: 1, Col: 1}
	}
	return Pos{File: d.file, Line: tk.Position.Line, Col: tk.Position.Column}
}

// nodePos is where a node starts as a person reads it: a block mapping
// starts at its first key, not at the first ':'.
func (d *decoder) nodePos(n ast.Node) Pos {
	switch v := n.(type) {
	case nil:
		return Pos{File: d.file, Line: 1, Col: 1}
	case *ast.MappingNode:
		if !v.IsFlowStyle && len(v.Values) > 0 && v.Values[0].Key != nil {
			return d.nodePos(v.Values[0].Key)
		}
	case *ast.MappingValueNode:
		if v.Key != nil {
			return d.nodePos(v.Key)
		}
	case *ast.MappingKeyNode:
		if v.Value != nil {
			return d.nodePos(v.Value)
		}
	}
	return d.pos(n.GetToken())
}

// collectAnchors records every anchor in the tree so aliases resolve even
// when the anchored value sits somewhere the decoder does not visit.
func (d *decoder) collectAnchors(n ast.Node, depth int) {
	if n == nil || depth > 4*maxDepth {
		return
	}
	switch v := n.(type) {
	case *ast.AnchorNode:
		if v.Name != nil {
			d.anchors[v.Name.GetToken().Value] = v.Value
		}
		d.collectAnchors(v.Value, depth+1)
	case *ast.TagNode:
		d.collectAnchors(v.Value, depth+1)
	case *ast.MappingNode:
		for _, mv := range v.Values {
			d.collectAnchors(mv.Key, depth+1)
			d.collectAnchors(mv.Value, depth+1)
		}
	case *ast.MappingValueNode:
		d.collectAnchors(v.Key, depth+1)
		d.collectAnchors(v.Value, depth+1)
	case *ast.SequenceNode:
		for _, e := range v.Values {
			d.collectAnchors(e, depth+1)
		}
	}
}

// resolve looks through anchors, tags and aliases to the value node. It
// returns nil for a null value and false when it reported a problem.
func (d *decoder) resolve(n ast.Node, path string) (ast.Node, bool) {
	for hops := 0; ; hops++ {
		if hops > maxDepth {
			d.errs.add(d.nodePos(n), "%s: aliases refer to each other too deeply", displayPath(path))
			return nil, false
		}
		d.nodes++
		if d.nodes > maxNodes {
			if !d.budgetExceeded {
				d.budgetExceeded = true
				d.errs.add(d.nodePos(n), "%s: aliases expand to more than %d values; the file is too large once expanded", displayPath(path), maxNodes)
			}
			return nil, false
		}
		switch v := n.(type) {
		case nil, *ast.NullNode:
			return nil, true
		case *ast.AnchorNode:
			n = v.Value
		case *ast.TagNode:
			n = v.Value
		case *ast.MappingValueNode:
			// A lone "key: value" at some depths parses as a MappingValueNode
			// rather than a one-entry MappingNode.
			m := ast.Mapping(v.GetToken(), false, v)
			return m, true
		case *ast.AliasNode:
			name := ""
			if v.Value != nil {
				name = v.Value.GetToken().Value
			}
			target, ok := d.anchors[name]
			if !ok {
				d.errs.add(d.nodePos(v), "%s: alias *%s names no anchor", displayPath(path), name)
				return nil, false
			}
			n = target
		default:
			return n, true
		}
	}
}

// displayPath names a key path in messages; the root has no path.
func displayPath(path string) string {
	if path == "" {
		return "top level"
	}
	return path
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// describe says what a node is, for "expected X, got Y" messages. Scalars
// are shown as written in the file, never as expanded.
func describe(n ast.Node) string {
	switch v := n.(type) {
	case nil, *ast.NullNode:
		return "nothing"
	case *ast.MappingNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	case *ast.StringNode:
		return strconv.Quote(v.Value)
	case *ast.LiteralNode:
		return "a block of text"
	case *ast.BoolNode, *ast.IntegerNode, *ast.FloatNode, *ast.InfinityNode, *ast.NanNode:
		return n.GetToken().Value
	default:
		return "a " + strings.ToLower(n.Type().String())
	}
}

// scalar returns the text of a scalar node as written, and whether the
// node is a string (quoted or plain) rather than a number or boolean.
func scalar(n ast.Node) (text string, isString bool, ok bool) {
	switch v := n.(type) {
	case *ast.StringNode:
		return v.Value, true, true
	case *ast.LiteralNode:
		if v.Value == nil {
			return "", true, true
		}
		return v.Value.Value, true, true
	case *ast.BoolNode, *ast.IntegerNode, *ast.FloatNode, *ast.InfinityNode, *ast.NanNode:
		return v.GetToken().Value, false, true
	}
	return "", false, false
}

// text decodes a scalar as a string with ${ENV} references expanded. shown
// is what messages may quote: the text as written whenever a value came
// from the environment.
func (d *decoder) text(n ast.Node, path string) (val, shown string, ok bool) {
	raw, _, isScalar := scalar(n)
	if !isScalar {
		d.errs.add(d.nodePos(n), "%s: expected a string, got %s", displayPath(path), describe(n))
		return "", "", false
	}
	val, fromEnv, problems := d.env.expand(raw)
	for _, p := range problems {
		d.errs.add(d.nodePos(n), "%s: %s", displayPath(path), p)
	}
	if len(problems) > 0 {
		return "", "", false
	}
	shown = val
	if fromEnv {
		shown = raw
	}
	return val, shown, true
}

// typedText is text for a number, boolean or duration: the node's own text,
// or a string only when it holds an ${ENV} reference (keep: ${KEEP}).
func (d *decoder) typedText(n ast.Node, path, expected string, acceptPlainString bool) (val, shown string, ok bool) {
	raw, isString, isScalar := scalar(n)
	if !isScalar || (isString && !acceptPlainString && !strings.Contains(raw, "${")) {
		d.errs.add(d.nodePos(n), "%s: expected %s, got %s", displayPath(path), expected, describe(n))
		return "", "", false
	}
	return d.text(n, path)
}

// decodeInto decodes node n into v, reporting problems under path. It
// returns false when it reported a problem or the value was null.
func (d *decoder) decodeInto(n ast.Node, v reflect.Value, path string, fi *fieldInfo) bool {
	n, ok := d.resolve(n, path)
	if !ok {
		return false
	}
	if n == nil {
		return false
	}
	t := v.Type()
	switch {
	case t == durationType:
		val, shown, ok := d.typedText(n, path, "a duration like 24h or 5m", true)
		if !ok {
			return false
		}
		dur, err := ParseDuration(val)
		if err != nil {
			hint := ""
			if _, isString, _ := scalar(n); !isString {
				hint = fmt.Sprintf(" (add a unit: %sh, %sm or %ss)", shown, shown, shown)
			}
			d.errs.add(d.nodePos(n), "%s: expected a duration like 24h or 5m, got %q%s", displayPath(path), shown, hint)
			return false
		}
		v.Set(reflect.ValueOf(dur))
		return true
	case t.Kind() == reflect.Pointer:
		elem := reflect.New(t.Elem())
		if !d.decodeInto(n, elem.Elem(), path, fi) {
			return false
		}
		v.Set(elem)
		return true
	case t.Kind() == reflect.Struct:
		return d.decodeStruct(n, v, path)
	case t.Kind() == reflect.Slice:
		return d.decodeSlice(n, v, path, fi)
	case t.Kind() == reflect.Map && t.Key().Kind() == reflect.String:
		return d.decodeMap(n, v, path, fi)
	case t.Kind() == reflect.String:
		val, shown, ok := d.text(n, path)
		if !ok {
			return false
		}
		if fi != nil && len(fi.enum) > 0 && !contains(fi.enum, val) {
			d.errs.add(d.nodePos(n), "%s: expected one of %s, got %q%s", displayPath(path), strings.Join(fi.enum, ", "), shown, didYouMean(val, fi.enum))
			return false
		}
		v.SetString(val)
		return true
	case t.Kind() == reflect.Bool:
		val, shown, ok := d.typedText(n, path, "true or false", false)
		if !ok {
			return false
		}
		b, err := strconv.ParseBool(val)
		if err != nil {
			d.errs.add(d.nodePos(n), "%s: expected true or false, got %q", displayPath(path), shown)
			return false
		}
		v.SetBool(b)
		return true
	case t.Kind() == reflect.Int:
		val, shown, ok := d.typedText(n, path, "a whole number", false)
		if !ok {
			return false
		}
		i, err := strconv.ParseInt(strings.ReplaceAll(val, "_", ""), 0, 64)
		if err != nil || i < math.MinInt32 || i > math.MaxInt32 {
			d.errs.add(d.nodePos(n), "%s: expected a whole number, got %s", displayPath(path), quoteIfString(n, shown))
			return false
		}
		v.SetInt(i)
		return true
	case t.Kind() == reflect.Float64:
		val, shown, ok := d.typedText(n, path, "a number", false)
		if !ok {
			return false
		}
		f, err := strconv.ParseFloat(strings.ReplaceAll(val, "_", ""), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			d.errs.add(d.nodePos(n), "%s: expected a number, got %s", displayPath(path), quoteIfString(n, shown))
			return false
		}
		v.SetFloat(f)
		return true
	}
	d.errs.add(d.nodePos(n), "%s: cannot decode into %s", displayPath(path), t)
	return false
}

func quoteIfString(n ast.Node, shown string) string {
	if _, isString, _ := scalar(n); isString {
		return strconv.Quote(shown)
	}
	return shown
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (d *decoder) decodeSlice(n ast.Node, v reflect.Value, path string, fi *fieldInfo) bool {
	seq, ok := n.(*ast.SequenceNode)
	if !ok {
		d.errs.add(d.nodePos(n), "%s: expected a list, got %s", displayPath(path), describe(n))
		return false
	}
	out := reflect.MakeSlice(v.Type(), len(seq.Values), len(seq.Values))
	good := true
	for i, item := range seq.Values {
		itemPath := fmt.Sprintf("%s[%d]", path, i)
		var itemInfo *fieldInfo
		if fi != nil {
			itemInfo = &fieldInfo{enum: fi.enum}
		}
		r, ok := d.resolve(item, itemPath)
		if !ok {
			good = false
			continue
		}
		if r == nil {
			d.errs.add(d.nodePos(item), "%s: empty list entry", itemPath)
			good = false
			continue
		}
		if d.decodeInto(r, out.Index(i), itemPath, itemInfo) {
			d.set[itemPath] = d.nodePos(r)
		} else {
			good = false
		}
	}
	v.Set(out)
	return good
}

// decodeMap decodes a mapping whose keys are names the file chooses
// (environments) into a map; each value is checked as its field's
// values are (an enum applies to every value).
func (d *decoder) decodeMap(n ast.Node, v reflect.Value, path string, fi *fieldInfo) bool {
	m, ok := n.(*ast.MappingNode)
	if !ok {
		d.errs.add(d.nodePos(n), "%s: expected a mapping, got %s", displayPath(path), describe(n))
		return false
	}
	out := reflect.MakeMapWithSize(v.Type(), len(m.Values))
	var itemInfo *fieldInfo
	if fi != nil {
		itemInfo = &fieldInfo{enum: fi.enum}
	}
	good := true
	for _, kv := range m.Values {
		key, ok := d.key(kv, path)
		if !ok {
			good = false
			continue
		}
		keyPath := joinPath(path, key)
		if out.MapIndex(reflect.ValueOf(key)).IsValid() {
			d.errs.add(d.nodePos(kv.Key), "%s: %q is given twice", displayPath(path), key)
			good = false
			continue
		}
		val := reflect.New(v.Type().Elem()).Elem()
		if d.decodeInto(kv.Value, val, keyPath, itemInfo) {
			d.set[keyPath] = d.nodePos(kv.Key)
			out.SetMapIndex(reflect.ValueOf(key), val)
		} else {
			good = false
		}
	}
	v.Set(out)
	return good
}

// decodeStruct decodes a mapping into a struct. A struct that is, or
// carries inline, a Provider hands every key it does not know to the
// provider's settings instead of rejecting it.
func (d *decoder) decodeStruct(n ast.Node, v reflect.Value, path string) bool {
	t := v.Type()
	m, ok := n.(*ast.MappingNode)
	if !ok {
		expected := "a mapping"
		if t == providerType {
			expected = "a mapping with provider: NAME"
		}
		d.errs.add(d.nodePos(n), "%s: expected %s, got %s", displayPath(path), expected, describe(n))
		return false
	}
	mpos := d.nodePos(m)
	fields := fieldsOf(t)
	var prov *Provider
	if idx := providerIndex(t); idx != nil {
		prov = v.FieldByIndex(idx).Addr().Interface().(*Provider)
		prov.Settings = map[string]any{}
		prov.SettingPos = map[string]Pos{}
		prov.Pos = mpos
		prov.BlockKeys = nil
		for _, f := range fields {
			prov.BlockKeys = append(prov.BlockKeys, f.key)
		}
	}
	if f, ok := t.FieldByName("Pos"); ok && f.Type == posType {
		v.FieldByIndex(f.Index).Set(reflect.ValueOf(mpos))
	}
	seen := map[string]bool{}
	good := true
	for _, kv := range m.Values {
		key, ok := d.key(kv, path)
		if !ok {
			good = false
			continue
		}
		keyPath := joinPath(path, key)
		fi := findField(fields, key)
		if fi == nil && prov != nil {
			if val, ok := d.setting(kv.Value, keyPath, key, prov.SettingPos, 0); ok {
				prov.Settings[key] = val
			} else {
				good = false
			}
			continue
		}
		if fi == nil {
			keys := make([]string, len(fields))
			for i, f := range fields {
				keys[i] = f.key
			}
			where := "in " + displayPath(path)
			if path == "" {
				where = "at top level"
			}
			d.errs.add(d.nodePos(kv.Key), "unknown key %q %s%s valid keys: %s", key, where, didYouMeanSep(key, keys), strings.Join(keys, ", "))
			good = false
			continue
		}
		seen[key] = true
		val, ok := d.resolve(kv.Value, keyPath)
		if !ok {
			good = false
			continue
		}
		if val == nil {
			if fi.required {
				d.errs.add(d.nodePos(kv.Key), "%s has no value", keyPath)
				good = false
			}
			continue
		}
		if d.decodeInto(val, v.FieldByIndex(fi.index), keyPath, fi) {
			d.set[keyPath] = d.nodePos(val)
		} else {
			good = false
		}
	}
	for _, fi := range fields {
		if fi.required && !seen[fi.key] {
			if path == "" {
				d.errs.add(mpos, "missing required key %q", fi.key)
			} else {
				d.errs.add(mpos, "%s is missing required key %q", path, fi.key)
			}
			good = false
		}
	}
	return good
}

// didYouMeanSep is didYouMean followed by the separator before the list
// of valid keys.
func didYouMeanSep(got string, candidates []string) string {
	if s := didYouMean(got, candidates); s != "" {
		return s
	}
	return ";"
}

func findField(fields []fieldInfo, key string) *fieldInfo {
	for i := range fields {
		if fields[i].key == key {
			return &fields[i]
		}
	}
	return nil
}

// key returns a mapping key's text. Keys are never expanded.
func (d *decoder) key(kv *ast.MappingValueNode, path string) (string, bool) {
	if kv.Key == nil {
		d.errs.add(d.nodePos(kv), "%s: mapping entry without a key", displayPath(path))
		return "", false
	}
	if kv.Key.IsMergeKey() {
		d.errs.add(d.nodePos(kv.Key), "%s: merge keys (<<) are not supported; write the keys out", displayPath(path))
		return "", false
	}
	var k ast.Node = kv.Key
	if mk, ok := k.(*ast.MappingKeyNode); ok {
		k = mk.Value
	}
	for {
		switch v := k.(type) {
		case *ast.AnchorNode:
			k = v.Value
			continue
		case *ast.TagNode:
			k = v.Value
			continue
		}
		break
	}
	text, _, ok := scalar(k)
	if !ok {
		d.errs.add(d.nodePos(kv.Key), "%s: a key must be a plain word, got %s", displayPath(path), describe(k))
		return "", false
	}
	return text, true
}

// setting converts a provider setting to a plain JSON-able value and
// records the position of it and everything inside it by dotted path.
func (d *decoder) setting(n ast.Node, path, dotted string, posOf map[string]Pos, depth int) (any, bool) {
	if depth > maxDepth {
		d.errs.add(d.nodePos(n), "%s: nested more than %d levels deep", path, maxDepth)
		return nil, false
	}
	r, ok := d.resolve(n, path)
	if !ok {
		return nil, false
	}
	if r == nil {
		if n != nil {
			posOf[dotted] = d.nodePos(n)
		}
		return nil, true
	}
	posOf[dotted] = d.nodePos(r)
	switch v := r.(type) {
	case *ast.MappingNode:
		out := make(map[string]any, len(v.Values))
		good := true
		for _, kv := range v.Values {
			key, ok := d.key(kv, path)
			if !ok {
				good = false
				continue
			}
			val, ok := d.setting(kv.Value, path+"."+key, dotted+"."+key, posOf, depth+1)
			if !ok {
				good = false
				continue
			}
			out[key] = val
		}
		return out, good
	case *ast.SequenceNode:
		out := make([]any, len(v.Values))
		good := true
		for i, item := range v.Values {
			val, ok := d.setting(item, fmt.Sprintf("%s[%d]", path, i), fmt.Sprintf("%s.%d", dotted, i), posOf, depth+1)
			if !ok {
				good = false
			}
			out[i] = val
		}
		return out, good
	case *ast.StringNode, *ast.LiteralNode:
		val, _, ok := d.text(v, path)
		if raw, _, _ := scalar(v); ok {
			if why := inlineSecret(strings.TrimPrefix(dotted, "."), raw); why != "" {
				d.errs.add(d.nodePos(v), "%s: %s", path, why)
				return nil, false
			}
		}
		return val, ok
	case *ast.BoolNode:
		return v.Value, true
	case *ast.IntegerNode:
		switch i := v.Value.(type) {
		case int64:
			return i, true
		case uint64:
			if i <= math.MaxInt64 {
				return int64(i), true
			}
			return float64(i), true
		}
		return nil, true
	case *ast.FloatNode:
		return v.Value, true
	}
	d.errs.add(d.nodePos(r), "%s: %s cannot be a setting; settings are strings, numbers, booleans, lists and mappings", path, describe(r))
	return nil, false
}

var durationPart = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h|d)`)

// ParseDuration parses a Go duration ("90s", "1h30m") that may also count
// days ("1d", "1d12h"). Negative and unit-less values are refused.
func ParseDuration(s string) (Duration, error) {
	if s == "" {
		return 0, fmt.Errorf("empty duration")
	}
	var total float64
	rest := s
	for rest != "" {
		m := durationPart.FindStringSubmatch(rest)
		if m == nil {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		num, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		unit := m[2]
		if unit == "d" {
			total += num * float64(24*time.Hour)
		} else {
			part, err := time.ParseDuration(m[1] + unit)
			if err != nil {
				return 0, fmt.Errorf("invalid duration %q", s)
			}
			total += float64(part)
		}
		rest = rest[len(m[0]):]
	}
	if total >= math.MaxInt64 {
		return 0, fmt.Errorf("duration %q is too long", s)
	}
	return Duration(time.Duration(total)), nil
}

// String prints the duration the way it is written in the file.
func (d Duration) String() string {
	dur := time.Duration(d)
	if dur > 0 && dur%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(dur/(24*time.Hour)), 10) + "d"
	}
	return dur.String()
}
