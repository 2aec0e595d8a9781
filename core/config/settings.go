package config

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// SettingProblem is one provider setting a provider's schema rejects,
// located by its dotted path in the provider's block ("stages.1.run"),
// which Provider.SettingPos turns into file:line:col.
type SettingProblem struct {
	Path    string
	Message string
}

// SettingAt is where a setting is written, by its dotted path; a
// missing one is placed at the block that lacks it (artifact.path at
// artifact), else at the provider.
func (p *Provider) SettingAt(dotted string) Pos {
	for path := dotted; ; {
		if pos, ok := p.SettingPos[path]; ok {
			return pos
		}
		i := strings.LastIndex(path, ".")
		if i < 0 {
			return p.Pos
		}
		path = path[:i]
	}
}

// CheckSettings checks a provider's settings against the JSON Schema the
// provider publishes, without running the provider: `validate` catches
// what the provider would refuse at start-up. It understands the parts of
// JSON Schema settings schemas use: type, properties, required,
// additionalProperties, items, enum, pattern, minimum, maximum,
// minLength, minItems and $ref into $defs. Messages never quote a value,
// since a misplaced secret must not reach the screen. blockKeys are the
// keys the block itself takes besides the provider's settings (a backup
// set's every, verify_every…, see Provider.BlockKeys): a misspelled one
// arrives as an unknown setting, and the suggestion names it.
func CheckSettings(schema json.RawMessage, settings map[string]any, blockKeys ...string) ([]SettingProblem, error) {
	if len(schema) == 0 {
		return nil, nil
	}
	var root map[string]any
	if err := json.Unmarshal(schema, &root); err != nil {
		return nil, fmt.Errorf("the provider's settings schema is not a JSON object: %w", err)
	}
	// Settings travel as JSON: check what the provider will receive.
	raw, err := json.Marshal(settings)
	if err != nil {
		return nil, fmt.Errorf("encoding settings: %w", err)
	}
	var doc any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("encoding settings: %w", err)
	}
	c := &schemaChecker{root: root, blockKeys: blockKeys}
	c.check("", root, doc, 0)
	slices.SortStableFunc(c.problems, func(a, b SettingProblem) int { return strings.Compare(a.Path, b.Path) })
	return c.problems, nil
}

type schemaChecker struct {
	root      map[string]any
	blockKeys []string
	problems  []SettingProblem
}

func (c *schemaChecker) add(path, format string, args ...any) {
	c.problems = append(c.problems, SettingProblem{Path: path, Message: fmt.Sprintf(format, args...)})
}

func (c *schemaChecker) resolve(s map[string]any) map[string]any {
	for range 32 {
		ref, ok := s["$ref"].(string)
		if !ok {
			return s
		}
		name, found := strings.CutPrefix(ref, "#/$defs/")
		if !found {
			return s
		}
		defs, _ := c.root["$defs"].(map[string]any)
		next, ok := defs[name].(map[string]any)
		if !ok {
			return s
		}
		s = next
	}
	return s
}

func (c *schemaChecker) check(path string, s map[string]any, v any, depth int) {
	if depth > maxDepth || s == nil {
		return
	}
	s = c.resolve(s)
	if all, ok := s["allOf"].([]any); ok {
		for _, sub := range all {
			if m, ok := sub.(map[string]any); ok {
				c.check(path, m, v, depth+1)
			}
		}
	}
	if t, ok := s["type"]; ok && !typeMatches(t, v) {
		c.add(path, "expected %s, got %s", typeWords(t), valueWord(v))
		return
	}
	if enum, ok := s["enum"].([]any); ok && !slices.ContainsFunc(enum, func(e any) bool { return jsonEqual(e, v) }) {
		var words []string
		for _, e := range enum {
			b, _ := json.Marshal(e)
			words = append(words, string(b))
		}
		c.add(path, "expected one of %s", strings.Join(words, ", "))
		return
	}
	switch x := v.(type) {
	case map[string]any:
		props, _ := s["properties"].(map[string]any)
		for _, key := range slices.Sorted(mapKeys(x)) {
			at := joinSetting(path, key)
			if p, ok := props[key].(map[string]any); ok {
				c.check(at, p, x[key], depth+1)
				continue
			}
			switch extra := s["additionalProperties"].(type) {
			case bool:
				if !extra {
					var known []string
					for k := range props {
						known = append(known, k)
					}
					slices.Sort(known)
					hint := didYouMeanSep(key, known)
					if path == "" && hint == ";" {
						if own := suggest(key, c.blockKeys); own != "" {
							hint = fmt.Sprintf("; did you mean %q (a key of the block itself)?", own)
						}
					}
					c.add(at, "unknown setting%s known settings: %s", hint, strings.Join(known, ", "))
				}
			case map[string]any:
				c.check(at, extra, x[key], depth+1)
			}
		}
		if req, ok := s["required"].([]any); ok {
			for _, r := range req {
				if k, ok := r.(string); ok {
					if _, present := x[k]; !present {
						c.add(joinSetting(path, k), "is required")
					}
				}
			}
		}
	case []any:
		if n, ok := number(s["minItems"]); ok && float64(len(x)) < n {
			c.add(path, "needs at least %v items", n)
		}
		if items, ok := s["items"].(map[string]any); ok {
			for i, item := range x {
				c.check(joinSetting(path, strconv.Itoa(i)), items, item, depth+1)
			}
		}
	case string:
		if n, ok := number(s["minLength"]); ok && float64(len([]rune(x))) < n {
			c.add(path, "must not be empty")
		}
		if p, ok := s["pattern"].(string); ok {
			if re, err := regexp.Compile(p); err == nil && !re.MatchString(x) {
				what := "does not have the expected form"
				if d, ok := s["description"].(string); ok && d != "" {
					what = "expected " + d
				}
				c.add(path, "%s", what)
			}
		}
	case float64:
		if n, ok := number(s["minimum"]); ok && x < n {
			c.add(path, "must be at least %v", n)
		}
		if n, ok := number(s["maximum"]); ok && x > n {
			c.add(path, "must be at most %v", n)
		}
	}
}

func joinSetting(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func mapKeys(m map[string]any) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func number(v any) (float64, bool) {
	f, ok := v.(float64)
	return f, ok
}

func typeMatches(t any, v any) bool {
	switch tt := t.(type) {
	case string:
		return oneTypeMatches(tt, v)
	case []any:
		for _, one := range tt {
			if s, ok := one.(string); ok && oneTypeMatches(s, v) {
				return true
			}
		}
		return false
	}
	return true
}

func oneTypeMatches(t string, v any) bool {
	switch t {
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	case "string":
		_, ok := v.(string)
		return ok
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "number":
		_, ok := v.(float64)
		return ok
	case "integer":
		f, ok := v.(float64)
		return ok && f == math.Trunc(f)
	case "null":
		return v == nil
	}
	return true
}

func typeWords(t any) string {
	word := func(s string) string {
		switch s {
		case "object":
			return "a mapping"
		case "array":
			return "a list"
		case "string":
			return "a string"
		case "boolean":
			return "true or false"
		case "integer":
			return "a whole number"
		case "number":
			return "a number"
		}
		return s
	}
	switch tt := t.(type) {
	case string:
		return word(tt)
	case []any:
		var words []string
		for _, one := range tt {
			if s, ok := one.(string); ok {
				words = append(words, word(s))
			}
		}
		return strings.Join(words, " or ")
	}
	return "another type"
}

// valueWord names what a value is, never the value itself.
func valueWord(v any) string {
	switch x := v.(type) {
	case nil:
		return "nothing"
	case map[string]any:
		return "a mapping"
	case []any:
		return "a list"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case float64:
		if x == math.Trunc(x) {
			return "a whole number"
		}
		return "a number"
	}
	return "a value"
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// secretWords mark a setting whose value is a secret, wherever it sits in
// a provider's block (password:, options.api_token:, keys: {"1": …},
// env: {STRIPE_SECRET: …}).
var secretWords = []string{"password", "passwd", "passphrase", "secret", "token", "credential", "cipher_pass", "apikey", "api_key", "private_key"}

func secretName(key string) bool {
	k := strings.ToLower(key)
	if k == "key" || k == "keys" || strings.HasSuffix(k, "_key") || strings.HasSuffix(k, "_keys") || strings.HasSuffix(k, "-key") {
		return true
	}
	for _, w := range secretWords {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}

// envReference is one ${NAME} or ${NAME:-default} reference.
var envReference = regexp.MustCompile(`\$\{[^}]*\}`)

// urlPassword finds a password written in a URL: scheme://user:PASSWORD@.
var urlPassword = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*://([^/@:\s]*):([^@/\s]+)@`)

// inlineSecret says why a provider setting, written as raw, is a secret
// written into the file, and how to write it instead; "" when it is not.
// dotted is the setting's path in its block ("options.token"). Values
// that are, or hold, an ${ENV} reference are fine: the secret lives in the
// environment.
func inlineSecret(dotted, raw string) string {
	if raw == "" {
		return ""
	}
	// References are masked first: ${KEY:-default} holds a colon of its
	// own, and a reference is how a password is meant to be written.
	masked := envReference.ReplaceAllString(raw, "\x00")
	if m := urlPassword.FindStringSubmatch(masked); m != nil && !strings.Contains(m[2], "\x00") {
		user := m[1]
		if strings.Contains(user, "\x00") {
			user = "USER"
		}
		return fmt.Sprintf("this URL carries a password written inline; write it as %s://%s:${%s}@… and set %s in the environment",
			masked[:strings.Index(masked, "://")], user, envNameFor(dotted, "password"), envNameFor(dotted, "password"))
	}
	if strings.Contains(raw, "${") {
		return ""
	}
	parts := strings.Split(dotted, ".")
	for i := len(parts) - 1; i >= 0; i-- {
		if _, index := strconv.Atoi(parts[i]); index == nil {
			continue
		}
		if secretName(parts[i]) {
			name := envNameFor(dotted, "")
			return fmt.Sprintf("a secret written inline; write %s: ${%s} and set %s in the environment (secrets are only ${ENV} references)", parts[len(parts)-1], name, name)
		}
	}
	return ""
}

// envNameFor suggests an environment variable name for a setting.
func envNameFor(dotted, suffix string) string {
	var words []string
	for _, p := range strings.Split(dotted, ".") {
		if _, err := strconv.Atoi(p); err == nil {
			continue
		}
		words = append(words, p)
	}
	if suffix != "" {
		words = append(words, suffix)
	}
	name := strings.ToUpper(strings.Join(words, "_"))
	name = regexp.MustCompile(`[^A-Z0-9_]+`).ReplaceAllString(name, "_")
	if name == "" || (name[0] >= '0' && name[0] <= '9') {
		name = "SECRET_" + name
	}
	return name
}
