// Package themes holds the console's colour themes: semantic tokens
// (text, warn, production...) mapped to hex colours, so screens never name
// a colour directly and every theme can be checked for legible contrast.
package themes

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Theme maps each semantic token to a "#rrggbb" colour.
type Theme struct {
	Name       string
	Text       string // body text
	Muted      string // secondary text: ages, hints
	Accent     string // titles, selection
	Surface    string // the background everything is drawn on
	Border     string // pane borders
	OK         string // healthy, fresh, succeeded
	Warn       string // paused, ageing, waiting for a person
	Danger     string // spike, failed, stale
	Production string // marks the production environment
}

// Tokens lists the token names as they appear in a theme file.
var Tokens = []string{"text", "muted", "accent", "surface", "border", "ok", "warn", "danger", "production"}

// field returns a pointer to the token's colour in t, or nil for an
// unknown token.
func (t *Theme) field(token string) *string {
	switch token {
	case "text":
		return &t.Text
	case "muted":
		return &t.Muted
	case "accent":
		return &t.Accent
	case "surface":
		return &t.Surface
	case "border":
		return &t.Border
	case "ok":
		return &t.OK
	case "warn":
		return &t.Warn
	case "danger":
		return &t.Danger
	case "production":
		return &t.Production
	}
	return nil
}

// Color returns the colour of a token ("" for an unknown token).
func (t Theme) Color(token string) string {
	if p := t.field(token); p != nil {
		return *p
	}
	return ""
}

var builtin = map[string]Theme{
	"dark": {
		Name: "dark", Surface: "#1a1b26", Text: "#e6e6e6", Muted: "#a0a4b8", Accent: "#7aa2f7",
		Border: "#565f89", OK: "#73daca", Warn: "#e0af68", Danger: "#f7768e", Production: "#ff9e64",
	},
	"light": {
		Name: "light", Surface: "#ffffff", Text: "#1f2328", Muted: "#57606a", Accent: "#0550ae",
		Border: "#8c959f", OK: "#116329", Warn: "#7d4e00", Danger: "#a40e26", Production: "#953800",
	},
	// high-contrast keeps every foreground at 7:1 (WCAG AAA) or better.
	"high-contrast": {
		Name: "high-contrast", Surface: "#000000", Text: "#ffffff", Muted: "#d0d0d0", Accent: "#66ccff",
		Border: "#ffffff", OK: "#00ff7f", Warn: "#ffff00", Danger: "#ff6b6b", Production: "#ffa94d",
	},
	// okabe-ito uses the Okabe & Ito palette, distinguishable with the
	// common forms of colour blindness; states also carry glyphs.
	"okabe-ito": {
		Name: "okabe-ito", Surface: "#000000", Text: "#ffffff", Muted: "#bbbbbb", Accent: "#56b4e9",
		Border: "#999999", OK: "#009e73", Warn: "#f0e442", Danger: "#d55e00", Production: "#cc79a7",
	},
	// monochrome leaves meaning to glyphs and words alone.
	"monochrome": {
		Name: "monochrome", Surface: "#000000", Text: "#ffffff", Muted: "#bdbdbd", Accent: "#ffffff",
		Border: "#808080", OK: "#ffffff", Warn: "#ffffff", Danger: "#ffffff", Production: "#ffffff",
	},
}

// Default is the theme used when none is named.
const Default = "dark"

// Names lists the built-in themes, sorted.
func Names() []string {
	names := make([]string, 0, len(builtin))
	for n := range builtin {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Get returns a built-in theme by name.
func Get(name string) (Theme, error) {
	t, ok := builtin[name]
	if !ok {
		return Theme{}, fmt.Errorf("unknown theme %q (built in: %s)", name, strings.Join(Names(), ", "))
	}
	return t, nil
}

// Load reads a user's theme: a JSON object mapping every token to a
// "#rrggbb" colour. The theme is named after the file.
func Load(path string) (Theme, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Theme{}, fmt.Errorf("load theme: %w", err)
	}
	var raw map[string]string
	if err := json.Unmarshal(b, &raw); err != nil {
		where := path
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syn):
			where = position(path, b, syn.Offset)
		case errors.As(err, &typ):
			where = position(path, b, typ.Offset)
		}
		return Theme{}, fmt.Errorf("%s: want a JSON object of token to \"#rrggbb\": %w", where, err)
	}
	t := Theme{Name: strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p := t.field(k)
		if p == nil {
			return Theme{}, fmt.Errorf("load theme %s: unknown token %q (tokens: %s)", path, k, strings.Join(Tokens, ", "))
		}
		if _, err := ParseHex(raw[k]); err != nil {
			return Theme{}, fmt.Errorf("load theme %s: token %q: %w", path, k, err)
		}
		*p = raw[k]
	}
	for _, k := range Tokens {
		if _, ok := raw[k]; !ok {
			return Theme{}, fmt.Errorf("load theme %s: missing token %q (every token is required: %s)", path, k, strings.Join(Tokens, ", "))
		}
	}
	return t, nil
}

// position is path:line:col of byte offset off in b (JSON error offsets
// point just past the offending byte).
func position(path string, b []byte, off int64) string {
	off = min(max(off, 1), int64(len(b)))
	line, col := 1, 1
	for _, c := range b[:off-1] {
		if c == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return fmt.Sprintf("%s:%d:%d", path, line, col)
}

// ParseHex parses "#rrggbb" into its 8-bit channels.
func ParseHex(s string) ([3]uint8, error) {
	var c [3]uint8
	if len(s) != 7 || s[0] != '#' {
		return c, fmt.Errorf("bad colour %q: want #rrggbb", s)
	}
	for i := range 3 {
		var v uint8
		for _, ch := range s[1+2*i : 3+2*i] {
			var d uint8
			switch {
			case ch >= '0' && ch <= '9':
				d = uint8(ch - '0')
			case ch >= 'a' && ch <= 'f':
				d = uint8(ch-'a') + 10
			case ch >= 'A' && ch <= 'F':
				d = uint8(ch-'A') + 10
			default:
				return c, fmt.Errorf("bad colour %q: want #rrggbb", s)
			}
			v = v*16 + d
		}
		c[i] = v
	}
	return c, nil
}
