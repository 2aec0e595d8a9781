package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ripcordhq/ripcord/core/config"
)

// --theme takes a built-in name or a theme file; anything else is a usage
// error that says what would work, before anything starts.
func TestConsoleThemeFlag(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "")
	f, err := config.Load(cfg, config.Options{Providers: config.BuiltinProviders})
	if err != nil {
		t.Fatal(err)
	}
	o, err := consoleOptions(f, consoleFlags{theme: "okabe-ito"})
	if err != nil || o.ThemeName != "okabe-ito" {
		t.Fatalf("built-in theme: %+v, %v", o.ThemeName, err)
	}

	mine := filepath.Join(dir, "mine.json")
	body := `{"text":"#ffffff","muted":"#bbbbbb","accent":"#56b4e9","surface":"#000000",
"border":"#999999","ok":"#009e73","warn":"#f0e442","danger":"#d55e00","production":"#cc79a7"}`
	if err := os.WriteFile(mine, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	o, err = consoleOptions(f, consoleFlags{theme: mine})
	if err != nil || o.Theme.Name != "mine" || o.Theme.Danger != "#d55e00" {
		t.Fatalf("theme file: %+v, %v", o.Theme, err)
	}

	code, _, errs := ripcord(t, "console", "-c", cfg, "--theme", "solarized")
	if code != exitUsage || !strings.Contains(errs, `--theme "solarized" is neither a built-in theme (dark, high-contrast, light, monochrome, okabe-ito)`) {
		t.Fatalf("unknown theme: exit %d, stderr %q", code, errs)
	}
	broken := filepath.Join(dir, "broken.json")
	if err := os.WriteFile(broken, []byte("{\n  \"text\": \"#ffffff\"\n  \"ok\": \"#00ff00\"\n}"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errs = ripcord(t, "console", "-c", cfg, "--theme", broken)
	if code != exitUsage || !strings.Contains(errs, broken+":3:3:") {
		t.Fatalf("broken theme file: exit %d, stderr %q", code, errs)
	}
}
