package sdk

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ripcordhq/ripcord/core/config"
)

// readmeBlocks returns the README's fenced blocks of one language, in
// order.
func readmeBlocks(t *testing.T, lang string) []string {
	t.Helper()
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile("(?s)```" + lang + "\n(.*?)```\n")
	var out []string
	for _, m := range re.FindAllStringSubmatch(string(readme), -1) {
		out = append(out, m[1])
	}
	return out
}

// pluginBlocks are the README's complete plugin: its main.go and its test.
func pluginBlocks(t *testing.T) (mainGo, testGo string) {
	t.Helper()
	for _, b := range readmeBlocks(t, "go") {
		switch {
		case strings.Contains(b, "func main()"):
			mainGo = b
		case strings.Contains(b, "func TestConformance("):
			testGo = b
		}
	}
	if mainGo == "" || testGo == "" {
		t.Fatal("the README lacks its plugin's main.go or its conformance test")
	}
	return mainGo, testGo
}

// The README's plugin is the file internal/readmeplugin/main.go, which
// the build compiles and vets with the rest.
func TestReadmePluginIsTheCompiledOne(t *testing.T) {
	mainGo, _ := pluginBlocks(t)
	src, err := os.ReadFile("internal/readmeplugin/main.go")
	if err != nil {
		t.Fatal(err)
	}
	if mainGo != string(src) {
		t.Fatal("README's plugin differs from internal/readmeplugin/main.go")
	}
}

// Someone outside the project copies the README's two files into a module
// of their own: it builds, and its test — the conformance kit against the
// real binary — passes. The module requires this checkout in place of a
// release, through the module cache only (no network).
func TestReadmePluginPassesTheKitFromAModuleOfItsOwn(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a module of its own; skipped with -short")
	}
	mainGo, testGo := pluginBlocks(t)
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	// The module's go.mod is as `go mod tidy` leaves it: besides ripcord,
	// it lists the modules ripcord requires, so the go command resolves
	// the build from those go.mod files alone. With ripcord alone it would
	// load the whole module graph, which needs the go.mod of versions no
	// build downloads (hclog's go-spew v1.1.1): on a cold module cache and
	// without the network, the test then fails before the kit runs.
	rootMod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	requires := string(rootMod)
	if i := strings.Index(requires, "\nrequire"); i >= 0 {
		requires = requires[i+1:]
	} else {
		t.Fatal("ripcord's go.mod has no require block")
	}
	mod := "module example.com/snapshots\n\ngo 1.26.8\n\nrequire github.com/ripcordhq/ripcord v0.0.0\n\nreplace github.com/ripcordhq/ripcord => " + root + "\n\n" + requires
	dir := t.TempDir()
	for name, body := range map[string]string{"go.mod": mod, "go.sum": string(sum), "main.go": mainGo, "main_test.go": testGo} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("go", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go %s in the README's module: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	out := run("test", "-count=1", "-v", ".")
	for _, want := range []string{"--- PASS: TestConformance/handshake", "--- PASS: TestConformance/backup/verify/idempotent", "--- PASS: TestConformance/backup/watch_freshness"} {
		if !strings.Contains(out, want) {
			t.Errorf("the README's module test output lacks %q:\n%s", want, out)
		}
	}
}

// The README's YAML is a valid ripcord.yaml: the plugin it shows is used
// the way the file accepts.
func TestReadmeYAMLIsAValidConfig(t *testing.T) {
	blocks := readmeBlocks(t, "yaml")
	if len(blocks) == 0 {
		t.Fatal("the README shows no ripcord.yaml")
	}
	for _, b := range blocks {
		if _, err := config.Parse("ripcord.yaml", []byte(b), config.Options{Providers: config.BuiltinProviders, LookupEnv: func(string) (string, bool) { return "", false }}); err != nil {
			t.Errorf("the README's ripcord.yaml does not load:\n%v", err)
		}
	}
}
