package config

import (
	"encoding/json"
	"fmt"
	"reflect"
)

// durationPattern matches what ParseDuration accepts.
const durationPattern = `[0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h|d)`

// schemaRefinements add what struct tags cannot say, keyed by
// "Type.key". They mirror checks in validate.go.
var schemaRefinements = map[string]map[string]any{
	"Environment.gates": {"items": map[string]any{
		"type":    "string",
		"pattern": `^(pipeline|errors|backups|migrations|branch|lock|soak (` + durationPattern + `)+)$`,
	}},
	"Environment.confirm":          {"default": "y"},
	"Step.weight":                  {"minimum": 0, "maximum": 100},
	"Step.pause":                   {"pattern": `^(judgment|(` + durationPattern + `)+)$`},
	"SpikePolicy.alpha":            {"exclusiveMinimum": 0, "maximum": 0.5, "default": 0.01},
	"SpikePolicy.min_events":       {"minimum": 1, "default": 5},
	"SpikePolicy.tolerance":        {"exclusiveMinimum": 1, "maximum": 100, "default": 1.5},
	"SpikePolicy.on_inconclusive":  {"default": "wait"},
	"SpikePolicy.window":           {"default": "30m"},
	"Backup.every":                 {"default": "24h"},
	"Backup.warn":                  {"exclusiveMinimum": 0, "default": 1.5},
	"Backup.critical":              {"exclusiveMinimum": 0, "default": 2},
	"Rollback.auto":                {"default": "off"},
	"Rollback.action":              {"default": "rollback"},
	"Store.driver":                 {"default": "sqlite"},
	"Store.path":                   {"default": ".ripcord/state.db"},
	"Notify.bell":                  {"default": true},
	"Notify.desktop":               {"default": true},
	"Service.branches":             {"default": []string{"main"}},
	"Plugin.env":                   {"items": map[string]any{"type": "string", "pattern": `^[A-Za-z_][A-Za-z0-9_]*$`}},
	"Environment.name":             {"minLength": 1},
	"Service.name":                 {"minLength": 1},
	"Plugin.name":                  {"minLength": 1},
	"Backup.name":                  {"minLength": 1},
	"Migrations.dir":               {"minLength": 1},
	"File.project":                 {"minLength": 1},
	"File.services":                {"minItems": 1},
	"File.environments":            {"minItems": 1},
	"Provider.provider":            {"minLength": 1},
	"Environment.auto":             {"default": false},
	"Bastion.max_sessions":         {"minimum": 1, "default": 50},
	"Bastion.max_sessions_per_key": {"minimum": 1, "default": 4},
	"Bastion.idle_timeout":         {"default": "15m"},
	"Operator.role":                {"default": "viewer"},
	"Operator.name":                {"minLength": 1},
}

// Schema returns a JSON Schema (draft 2020-12) for ripcord.yaml, generated
// from the same structs and tags the loader decodes with, so the two
// cannot drift apart.
func Schema() ([]byte, error) {
	g := &schemaGen{defs: map[string]any{}}
	root := g.structSchema(reflect.TypeFor[File]())
	root["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	root["title"] = "ripcord.yaml"
	root["$defs"] = g.defs
	out, err := json.MarshalIndent(root, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding config schema: %w", err)
	}
	return append(out, '\n'), nil
}

type schemaGen struct {
	defs map[string]any
}

func (g *schemaGen) typeSchema(t reflect.Type) map[string]any {
	switch {
	case t == durationType:
		g.defs["Duration"] = map[string]any{
			"type":        "string",
			"pattern":     "^(" + durationPattern + ")+$",
			"description": "A duration such as 90s, 5m, 24h or 1d.",
		}
		return map[string]any{"$ref": "#/$defs/Duration"}
	case t.Kind() == reflect.Pointer:
		return g.typeSchema(t.Elem())
	case t.Kind() == reflect.Struct:
		name := t.Name()
		if _, done := g.defs[name]; !done {
			g.defs[name] = true // placeholder against recursion
			g.defs[name] = g.structSchema(t)
		}
		return map[string]any{"$ref": "#/$defs/" + name}
	case t.Kind() == reflect.Slice:
		return map[string]any{"type": "array", "items": g.typeSchema(t.Elem())}
	case t.Kind() == reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": g.typeSchema(t.Elem())}
	case t.Kind() == reflect.String:
		return map[string]any{"type": "string"}
	case t.Kind() == reflect.Bool:
		return map[string]any{"type": "boolean"}
	case t.Kind() == reflect.Int:
		return map[string]any{"type": "integer"}
	case t.Kind() == reflect.Float64:
		return map[string]any{"type": "number"}
	}
	return map[string]any{}
}

func (g *schemaGen) structSchema(t reflect.Type) map[string]any {
	props := map[string]any{}
	var required []string
	for _, fi := range fieldsOf(t) {
		s := g.typeSchema(fieldType(t, fi.index))
		if fi.doc != "" {
			s["description"] = fi.doc
		}
		if len(fi.enum) > 0 {
			if each, ok := s["additionalProperties"].(map[string]any); ok {
				each["enum"] = fi.enum // a map's values, not the map
			} else {
				s["enum"] = fi.enum
			}
		}
		for k, v := range schemaRefinements[t.Name()+"."+fi.key] {
			s[k] = v
		}
		// A $ref with siblings is fine in 2020-12, but keep refs clean
		// for older editors by wrapping them.
		if ref, ok := s["$ref"]; ok && len(s) > 1 {
			delete(s, "$ref")
			s["allOf"] = []any{map[string]any{"$ref": ref}}
		}
		props[fi.key] = s
		if fi.required {
			required = append(required, fi.key)
		}
	}
	out := map[string]any{
		"type":       "object",
		"properties": props,
		// Provider settings belong to the provider, which publishes its
		// own schema; everything else is closed.
		"additionalProperties": providerIndex(t) != nil,
	}
	if len(required) > 0 {
		out["required"] = required
	}
	if t.Name() == "Step" {
		out["oneOf"] = []any{
			map[string]any{"required": []string{"weight"}},
			map[string]any{"required": []string{"analysis"}},
			map[string]any{"required": []string{"pause"}},
		}
	}
	return out
}

func fieldType(t reflect.Type, index []int) reflect.Type {
	return t.FieldByIndex(index).Type
}
