package themes

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBuiltinsDefineEveryToken(t *testing.T) {
	if len(Names()) != 5 {
		t.Fatalf("Names() = %v, want the five built-in themes", Names())
	}
	for _, n := range Names() {
		th, err := Get(n)
		if err != nil {
			t.Fatal(err)
		}
		for _, tok := range Tokens {
			if _, err := ParseHex(th.Color(tok)); err != nil {
				t.Errorf("theme %s token %s: %v", n, tok, err)
			}
		}
	}
}

// Text and every status colour must stay readable on the surface: WCAG AA
// (4.5:1) everywhere, AAA (7:1) in the high-contrast theme.
func TestContrastOnSurface(t *testing.T) {
	for _, n := range Names() {
		th, _ := Get(n)
		want := 4.5
		if n == "high-contrast" {
			want = 7
		}
		for _, tok := range []string{"text", "muted", "accent", "ok", "warn", "danger", "production"} {
			r, err := Contrast(th.Color(tok), th.Surface)
			if err != nil {
				t.Fatal(err)
			}
			if r < want {
				t.Errorf("theme %s: %s %s on surface %s is %.2f:1, want ≥ %.1f:1", n, tok, th.Color(tok), th.Surface, r, want)
			}
		}
	}
}

func TestContrastKnownValues(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want float64
	}{
		{"#000000", "#ffffff", 21},
		{"#ffffff", "#ffffff", 1},
		{"#767676", "#ffffff", 4.54}, // the classic lightest AA grey on white
	} {
		got, err := Contrast(c.a, c.b)
		if err != nil {
			t.Fatal(err)
		}
		if got < c.want-0.01 || got > c.want+0.01 {
			t.Errorf("Contrast(%s, %s) = %.3f, want %.2f", c.a, c.b, got, c.want)
		}
	}
}

func TestGetUnknown(t *testing.T) {
	_, err := Get("solarised")
	if err == nil || !strings.Contains(err.Error(), "solarised") || !strings.Contains(err.Error(), "okabe-ito") {
		t.Fatalf("Get(unknown) error = %v, want it to name the theme and the choices", err)
	}
}

func writeTheme(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "mine.json")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const fullTheme = `{"text":"#ffffff","muted":"#bbbbbb","accent":"#56b4e9","surface":"#000000",
"border":"#999999","ok":"#009e73","warn":"#f0e442","danger":"#d55e00","production":"#cc79a7"}`

func TestLoad(t *testing.T) {
	th, err := Load(writeTheme(t, fullTheme))
	if err != nil {
		t.Fatal(err)
	}
	if th.Name != "mine" || th.Danger != "#d55e00" || th.Surface != "#000000" {
		t.Fatalf("Load = %+v", th)
	}
}

func TestLoadErrors(t *testing.T) {
	for _, c := range []struct {
		name, body string
		want       []string
	}{
		{"unknown token", strings.Replace(fullTheme, `"ok"`, `"good"`, 1), []string{"mine.json", `unknown token "good"`}},
		{"missing token", strings.Replace(fullTheme, `"warn":"#f0e442",`, "", 1), []string{"mine.json", `missing token "warn"`}},
		{"bad colour", strings.Replace(fullTheme, `#d55e00`, `red`, 1), []string{"mine.json", `token "danger"`, `bad colour "red"`}},
		{"not json", `text: "#fff"`, []string{"mine.json:1:2:", "JSON"}},
		{"broken json", "{\n  \"text\": \"#ffffff\",\n  \"ok\" \"#00ff00\"\n}", []string{"mine.json:3:8:", "JSON"}},
		{"number colour", "{\n  \"text\": 7\n}", []string{"mine.json:2:11:", "JSON"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Load(writeTheme(t, c.body))
			if err == nil {
				t.Fatal("Load accepted a broken theme")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}
