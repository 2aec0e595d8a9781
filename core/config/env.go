package config

import (
	"fmt"
	"slices"
	"strings"
)

// expander replaces ${NAME} and ${NAME:-default} references with values
// from the environment, remembering every value it took from there so the
// loaded file can redact them.
//
// $${ is a literal ${. A $ not followed by { is left alone, so shell
// snippets such as "echo $HOME" pass through untouched.
type expander struct {
	lookup  func(string) (string, bool)
	secrets map[string]struct{}
}

func newExpander(lookup func(string) (string, bool)) *expander {
	return &expander{lookup: lookup, secrets: map[string]struct{}{}}
}

// expand returns s with its references replaced, whether any value came
// from the environment (and so must never be shown), and one problem per
// reference that could not be expanded.
func (x *expander) expand(s string) (out string, fromEnv bool, problems []string) {
	if !strings.Contains(s, "$") {
		return s, false, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if strings.HasPrefix(s[i:], "$${") {
			b.WriteString("${")
			i += 3
			continue
		}
		if !strings.HasPrefix(s[i:], "${") {
			b.WriteByte(s[i])
			i++
			continue
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			problems = append(problems, "unterminated ${ reference; write ${NAME}, ${NAME:-default}, or $${ for a literal ${")
			b.WriteString(s[i:])
			break
		}
		ref := s[i+2 : i+end]
		i += end + 1
		name, def, hasDefault := strings.Cut(ref, ":-")
		if !validEnvName(name) {
			problems = append(problems, fmt.Sprintf("invalid reference ${%s}: a variable name is letters, digits and _, not starting with a digit; write $${ for a literal ${", name))
			continue
		}
		val, ok := x.lookup(name)
		switch {
		case ok && (val != "" || !hasDefault):
			b.WriteString(val)
			fromEnv = true
			if val != "" {
				x.secrets[val] = struct{}{}
			}
		case hasDefault:
			b.WriteString(def)
		default:
			problems = append(problems, fmt.Sprintf("environment variable %s is not set", name))
		}
	}
	return b.String(), fromEnv, problems
}

// secretList returns the values taken from the environment, longest first
// so that a secret containing another is redacted whole.
func (x *expander) secretList() []string {
	out := make([]string, 0, len(x.secrets))
	for s := range x.secrets {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b string) int {
		if len(a) != len(b) {
			return len(b) - len(a)
		}
		return strings.Compare(a, b)
	})
	return out
}

func validEnvName(name string) bool {
	if name == "" {
		return false
	}
	for i, r := range name {
		switch {
		case r == '_', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// redactWith replaces every secret in s with [redacted].
func redactWith(secrets []string, s string) string {
	for _, secret := range secrets {
		if secret != "" {
			s = strings.ReplaceAll(s, secret, "[redacted]")
		}
	}
	return s
}
