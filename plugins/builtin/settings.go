package builtin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ripcordhq/ripcord/plugins/sdk"
)

// Settings of the providers served by the adapters in this package are
// decoded by decodeStrict: every problem is reported, each with its dotted
// path from the provider's block in ripcord.yaml ("stages.1.timeout"), so
// the console can point at the line. Fields are named by their json tag;
// `required:"true"` marks keys that must be given; time.Duration fields
// are written as strings ("30s", "5m", "1d").
//
// Paths are used as written: the console resolves relative paths against
// the directory of ripcord.yaml before it passes the settings on, because
// a provider process cannot know where the file was.

var durationType = reflect.TypeFor[time.Duration]()

// decodeStrict decodes the JSON object settings into the struct *into.
func decodeStrict(settings json.RawMessage, into any) error {
	if len(bytes.TrimSpace(settings)) == 0 {
		settings = json.RawMessage("{}")
	}
	var errs sdk.SettingErrors
	decodeValue("", settings, reflect.ValueOf(into).Elem(), &errs)
	if len(errs) > 0 {
		return errs
	}
	return nil
}

func joinPath(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

func decodeValue(path string, raw json.RawMessage, v reflect.Value, errs *sdk.SettingErrors) {
	bad := func(format string, args ...any) {
		*errs = append(*errs, sdk.SettingError{Path: path, Message: fmt.Sprintf(format, args...)})
	}
	switch {
	case v.Type() == durationType:
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			bad("expected a duration like 30s, got %s", describe(raw))
			return
		}
		d, err := parseDuration(s)
		if err != nil {
			bad("expected a duration like 30s, got %q", s)
			return
		}
		v.SetInt(int64(d))
	case v.Kind() == reflect.Struct:
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
			bad("expected a mapping of settings, got %s", describe(raw))
			return
		}
		t := v.Type()
		known := map[string]int{}
		for i := range t.NumField() {
			known[jsonName(t.Field(i))] = i
		}
		keys := slices.Sorted(maps.Keys(obj))
		for _, key := range keys {
			val := obj[key]
			i, ok := known[key]
			if !ok {
				*errs = append(*errs, sdk.SettingError{Path: joinPath(path, key), Message: "unknown setting"})
				continue
			}
			decodeValue(joinPath(path, key), val, v.Field(i), errs)
		}
		for i := range t.NumField() {
			f := t.Field(i)
			if f.Tag.Get("required") == "true" && v.Field(i).IsZero() {
				*errs = append(*errs, sdk.SettingError{Path: joinPath(path, jsonName(f)), Message: "is required"})
			}
		}
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Struct:
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			bad("expected a list, got %s", describe(raw))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(items), len(items))
		for i, item := range items {
			decodeValue(joinPath(path, strconv.Itoa(i)), item, s.Index(i), errs)
		}
		v.Set(s)
	default:
		p := reflect.New(v.Type())
		if err := json.Unmarshal(raw, p.Interface()); err != nil {
			bad("expected %s, got %s", typeWord(v.Type()), describe(raw))
			return
		}
		v.Set(p.Elem())
	}
}

// parseDuration accepts Go durations plus whole days ("1d"), as
// ripcord.yaml does.
func parseDuration(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("bad duration %q", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("bad duration %q", s)
	}
	return d, nil
}

// describe names what a setting was written as, never its value: a
// misplaced secret must not end up on the screen.
func describe(raw json.RawMessage) string {
	var x any
	if err := json.Unmarshal(raw, &x); err != nil {
		return "invalid JSON"
	}
	switch x.(type) {
	case nil:
		return "nothing"
	case string:
		return "a string"
	case float64:
		return "a number"
	case bool:
		return "a boolean"
	case []any:
		return "a list"
	default:
		return "a mapping"
	}
}

func typeWord(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "a whole number"
	case reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice:
		return "a list of " + strings.TrimPrefix(typeWord(t.Elem()), "a ") + "s"
	case reflect.Map:
		return "a mapping of " + strings.TrimPrefix(typeWord(t.Elem()), "a ") + "s"
	}
	return t.String()
}

// schemaFor derives the JSON Schema of a settings struct, nested structs,
// lists and mappings included.
func schemaFor(s any) json.RawMessage {
	m := schemaOfType(reflect.TypeOf(s))
	m["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	b, _ := json.Marshal(m)
	return b
}

func schemaOfType(t reflect.Type) map[string]any {
	switch {
	case t == durationType:
		return map[string]any{"type": "string", "description": "a duration such as 30s, 5m or 1d",
			"pattern": `^(([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+|[0-9]+d)$`}
	case t.Kind() == reflect.Struct:
		props := map[string]any{}
		required := []string{}
		for i := range t.NumField() {
			f := t.Field(i)
			props[jsonName(f)] = schemaOfType(f.Type)
			if f.Tag.Get("format") == "duration" {
				// A duration kept as text and parsed by the provider.
				props[jsonName(f)] = schemaOfType(durationType)
			}
			if f.Tag.Get("required") == "true" {
				required = append(required, jsonName(f))
			}
		}
		return map[string]any{"type": "object", "properties": props, "required": required, "additionalProperties": false}
	case t.Kind() == reflect.Slice:
		return map[string]any{"type": "array", "items": schemaOfType(t.Elem())}
	case t.Kind() == reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": schemaOfType(t.Elem())}
	case t.Kind() == reflect.String:
		return map[string]any{"type": "string"}
	case t.Kind() == reflect.Int, t.Kind() == reflect.Int64:
		return map[string]any{"type": "integer"}
	case t.Kind() == reflect.Float64:
		return map[string]any{"type": "number"}
	case t.Kind() == reflect.Bool:
		return map[string]any{"type": "boolean"}
	}
	return map[string]any{}
}
