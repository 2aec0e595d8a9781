package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core/sqlitestore"
)

func ripcord(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestValidateAcceptsTheShippedExample(t *testing.T) {
	code, out, errs := ripcord(t, "validate", "-c", "../../docs/ripcord.example.yaml")
	if code != exitOK {
		t.Fatalf("exit %d, stderr: %s", code, errs)
	}
	if !strings.Contains(out, "ok (project shop") {
		t.Fatalf("stdout = %q", out)
	}
}

func TestValidateReportsFileLineColAndFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ripcord.yaml")
	body := "project: shop\nservices:\n  - name: api\n    pipline: {}\nenvironments: []\n"
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errs := ripcord(t, "validate", "--config", path)
	if code != exitFailed {
		t.Fatalf("exit %d, want %d", code, exitFailed)
	}
	want := path + `:4:5: unknown key "pipline" in services[0]; did you mean "pipeline"?`
	if !strings.Contains(errs, want) {
		t.Fatalf("stderr = %q\nwant it to contain %q", errs, want)
	}
}

func TestMissingConfigSaysWhichFile(t *testing.T) {
	code, _, errs := ripcord(t, "validate", "-c", filepath.Join(t.TempDir(), "nope.yaml"))
	if code != exitFailed || !strings.Contains(errs, "nope.yaml") {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
}

func TestUsageErrorsExitTwo(t *testing.T) {
	for _, args := range [][]string{{"bogus"}, {"validate", "--nope"}, {"version", "extra"}} {
		if code, _, _ := ripcord(t, args...); code != exitUsage {
			t.Errorf("ripcord %v exited %d, want %d", args, code, exitUsage)
		}
	}
}

func TestConfigSchemaIsJSON(t *testing.T) {
	code, out, errs := ripcord(t, "config", "schema")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var schema struct {
		Properties map[string]any `json:"properties"`
	}
	if err := json.Unmarshal([]byte(out), &schema); err != nil {
		t.Fatalf("schema is not JSON: %v", err)
	}
	for _, k := range []string{"project", "services", "environments", "plugins", "store"} {
		if _, ok := schema.Properties[k]; !ok {
			t.Errorf("schema lacks %q", k)
		}
	}
}

func TestVersionJSON(t *testing.T) {
	code, out, _ := ripcord(t, "version", "--json")
	var v map[string]string
	if code != exitOK || json.Unmarshal([]byte(out), &v) != nil || v["version"] == "" {
		t.Fatalf("exit %d, out %q", code, out)
	}
}

// The test binary stands in for the ripcord binary when the plugin host
// re-executes itself as `plugin serve NAME`.
func TestMain(m *testing.M) {
	if len(os.Args) > 2 && os.Args[1] == "plugin" && os.Args[2] == "serve" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	// A command that starts the project's server runs this binary as
	// `ripcord serve`.
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	// The test binary is also the ripcord CLI in other processes (races,
	// crashes) and the small service those tests deploy.
	if os.Getenv("RIPCORD_TEST_CLI") != "" || (len(os.Args) > 2 && os.Args[1] == "demo" && !strings.HasPrefix(os.Args[2], "-test.")) {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	// ...and an external plugin whose Deploy hangs.
	if dir := os.Getenv("RIPCORD_TEST_HANGING_PLUGIN"); dir != "" {
		serveHangingPlugin(dir)
		os.Exit(0)
	}
	if v := os.Getenv("RIPCORD_TEST_SERVICE"); v != "" {
		os.Exit(serveTestService(v))
	}
	code := m.Run()
	if left := stopServersLeft(); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "servers left running by the tests (stopped now): %v\n", left)
		code = 1
	}
	os.Exit(code)
}

// stopServersLeft stops the servers this test process started that still
// run (a test that forgot to stop its server fails the run) and returns
// their command lines.
func stopServersLeft() []string {
	var left []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(fields) < 2 || fields[1] != strconv.Itoa(os.Getpid()) {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
		if len(args) > 1 && args[1] == "serve" {
			left = append(left, strings.Join(args[1:], " "))
			_ = syscall.Kill(pid, syscall.SIGTERM)
		}
	}
	return left
}

func TestPluginsListStartsBuiltinsAsSeparateProcesses(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "db-1.sqlite"), []byte("backup"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, dir, `    backups:
      - { name: db, provider: dir, path: "`+filepath.Join(dir, "*.sqlite")+`" }
`)
	code, out, errs := ripcord(t, "plugins", "list", "--json", "-c", cfg)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var got struct {
		Plugins []struct {
			Name    string   `json:"name"`
			Kinds   []string `json:"kinds"`
			Builtin bool     `json:"builtin"`
			PID     int      `json:"pid"`
			Health  struct {
				State string `json:"state"`
			} `json:"health"`
		} `json:"plugins"`
		InProcess []string `json:"in_process"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(got.Plugins) != 2 || len(got.InProcess) != 0 {
		t.Fatalf("plugins = %+v, in process %v; want local and dir, both as plugins", got.Plugins, got.InProcess)
	}
	pids := map[int]bool{}
	for i, want := range []struct{ name, kind string }{{"local@production", "target"}, {"dir@production.db", "backup"}} {
		p := got.Plugins[i]
		if p.Name != want.name || !p.Builtin || p.Health.State != "healthy" || len(p.Kinds) != 1 || p.Kinds[0] != want.kind {
			t.Fatalf("plugin %d = %+v, want healthy built-in %s (%s)", i, p, want.name, want.kind)
		}
		if p.PID <= 0 || p.PID == os.Getpid() || pids[p.PID] {
			t.Fatalf("%s pid %d: want its own process (we are %d, others %v)", p.Name, p.PID, os.Getpid(), pids)
		}
		pids[p.PID] = true
	}
	// The console resolved the local root against the config's directory.
	if _, err := os.Stat(filepath.Join(dir, "envs", "production")); err != nil {
		t.Fatalf("local target root not created beside the config: %v", err)
	}
}

func TestPluginsListReportsBadSettingsWithTheirPath(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, `    backups:
      - { name: db, provider: dir, pth: "*.sqlite" }
`)
	code, out, errs := ripcord(t, "plugins", "list", "-c", cfg)
	if want := cfg + ":8:41: provider dir: pth: unknown setting"; !strings.Contains(errs, want) {
		t.Fatalf("stderr = %q, want %q", errs, want)
	}
	// The table still says how each plugin is, and the exit code says
	// the config is not usable as written.
	if code != exitFailed || !strings.Contains(out, "dir@production.db") {
		t.Fatalf("plugins list with refused settings: exit %d, want %d, and the table\n%s", code, exitFailed, out)
	}
}

func TestPluginsLockVerifyAndRefuseATamperedBinary(t *testing.T) {
	dir := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// An external plugin: a launcher that serves the dir provider.
	pluginDir := filepath.Join(dir, ".ripcord", "plugins")
	if err := os.MkdirAll(pluginDir, 0o700); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(pluginDir, "ripcord-provider-mine")
	script := "#!/bin/sh\nexec " + self + " plugin serve dir\n"
	if err := os.WriteFile(bin, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, dir, `    backups:
      - { name: db, provider: mine, path: "*.sqlite" }
plugins:
  - name: mine
`)
	if code, out, errs := ripcord(t, "plugins", "lock", "-c", cfg); code != exitOK || !strings.Contains(out, "1 plugin(s) locked") {
		t.Fatalf("lock: exit %d, out %q, err %q", code, out, errs)
	}
	if _, err := os.Stat(filepath.Join(dir, "ripcord.lock")); err != nil {
		t.Fatalf("no ripcord.lock beside the config: %v", err)
	}
	if code, _, errs := ripcord(t, "plugins", "verify", "-c", cfg); code != exitOK {
		t.Fatalf("verify: exit %d: %s", code, errs)
	}
	code, out, errs := ripcord(t, "plugins", "list", "--json", "-c", cfg)
	if code != exitOK || !strings.Contains(out, `"name": "mine@production.db"`) || !strings.Contains(out, `"state": "healthy"`) {
		t.Fatalf("list: exit %d, out %s, err %s", code, out, errs)
	}

	// Someone swaps the binary: every command that would run it refuses,
	// naming both digests.
	if err := os.WriteFile(bin, []byte(script+"# changed\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	code, _, errs = ripcord(t, "plugins", "verify", "-c", cfg)
	if code == exitOK || !strings.Contains(errs, "mine") || strings.Count(errs, "sha256") < 1 {
		t.Fatalf("verify after tampering: exit %d, stderr %q", code, errs)
	}
	if code, _, errs := ripcord(t, "plugins", "list", "-c", cfg); code == exitOK {
		t.Fatalf("list ran a tampered plugin: stderr %q", errs)
	}
}

// An external plugin used in two places runs once per place, each process
// with its own block's settings: a mistake in the second block is
// reported there, never dropped for the first block's settings.
func TestExternalPluginUsedTwiceGetsEachBlocksSettings(t *testing.T) {
	dir := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	pluginDir := filepath.Join(dir, ".ripcord", "plugins")
	if err := os.MkdirAll(pluginDir, 0o700); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(pluginDir, "ripcord-provider-mine")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\nexec "+self+" plugin serve dir\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, dir, `    backups:
      - { name: db, provider: mine, path: "*.sqlite" }
      - { name: uploads, provider: mine, path: "*.tar", pol: 10s }
plugins:
  - name: mine
`)
	if code, out, errs := ripcord(t, "plugins", "lock", "-c", cfg); code != exitOK {
		t.Fatalf("lock: exit %d, out %q, err %q", code, out, errs)
	}
	_, out, errs := ripcord(t, "plugins", "list", "--json", "-c", cfg)
	var list struct {
		Plugins []struct {
			Name string `json:"name"`
			PID  int    `json:"pid"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("list --json: %v\n%s", err, out)
	}
	pids := map[string]int{}
	for _, p := range list.Plugins {
		pids[p.Name] = p.PID
	}
	if pids["mine@production.db"] == 0 || pids["mine@production.uploads"] == 0 || pids["mine@production.db"] == pids["mine@production.uploads"] {
		t.Fatalf("instances of mine = %v; want one process per backup set", pids)
	}
	if want := cfg + ":9:62: provider mine: pol: unknown setting"; !strings.Contains(errs, want) {
		t.Fatalf("the second block's unknown setting is not reported at its place (%s…):\n%s", want, errs)
	}
	// validate asks the external plugin for its settings schema over the
	// protocol and finds the same mistake without configuring anything.
	code, _, errs := ripcord(t, "validate", "-c", cfg)
	if want := cfg + ":9:62: provider mine: pol: unknown setting"; code != exitFailed || !strings.Contains(errs, want) {
		t.Fatalf("validate: exit %d, want %d reporting %s:\n%s", code, exitFailed, want, errs)
	}
}

// writeConfig writes dir/ripcord.yaml: project shop, service api, and a
// production environment on the local target, followed by more.
func writeConfig(t *testing.T, dir, more string) string {
	t.Helper()
	cfg := filepath.Join(dir, "ripcord.yaml")
	body := `project: shop
services:
  - name: api
environments:
  - name: production
    target: { provider: local, root: envs/production, run: "./api", health: "tcp://127.0.0.1:1" }
` + more
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	// The project's state exists, as after its first console.
	st, err := sqlitestore.Open(context.Background(), filepath.Join(dir, ".ripcord", "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	stopWorldAtEnd(t, cfg)
	return cfg
}

// validate checks each provider block against its provider's settings
// schema, built-in or external, and says where: what start-up would
// refuse, validate refuses first.
func TestValidateChecksProviderSettingsAgainstTheirSchemas(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "ripcord.yaml")
	body := `project: shop
services:
  - name: api
environments:
  - name: production
    target: { provider: local, root: envs/production, run: "./api", helth: "tcp://127.0.0.1:1" }
    errors: { provider: sentry, org: shop }
    backups:
      - { name: db, provider: dir, path: "*.sqlite", poll: soon, min_fraction: lots }
`
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := ripcord(t, "validate", "-c", cfg)
	if code != exitFailed {
		t.Fatalf("validate: exit %d, want %d\n%s%s", code, exitFailed, out, errs)
	}
	for _, want := range []string{
		cfg + `:6:13: provider local: health: is required`,
		cfg + `:6:76: provider local: helth: unknown setting; did you mean "health"? known settings: `,
		cfg + `:7:38: provider sentry: org: unknown setting; did you mean "organization"? known settings: `,
		cfg + `:7:13: provider sentry: project: is required`,
		cfg + `:9:80: provider dir: min_fraction: expected a number, got a string`,
		cfg + `:9:60: provider dir: poll: expected a duration such as 30s, 5m or 1d`,
	} {
		if !strings.Contains(errs, want) {
			t.Errorf("validate does not report %q:\n%s", want, errs)
		}
	}
}

// What a plugin logs reaches `ripcord watch` and `ripcord server logs`,
// with the plugin it came from: here the README's plugin saying what it
// watches once configured.
func TestWatchShowsWhatPluginsLog(t *testing.T) {
	dir := t.TempDir()
	pluginDir := filepath.Join(dir, ".ripcord", "plugins")
	if err := os.MkdirAll(pluginDir, 0o700); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(pluginDir, "ripcord-provider-snapshots")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/ripcordhq/ripcord/plugins/sdk/internal/readmeplugin").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	snaps := filepath.Join(dir, "snaps")
	if err := os.MkdirAll(snaps, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, dir, `    backups:
      - { name: media, provider: snapshots, dir: "`+snaps+`" }
plugins:
  - name: snapshots
`)
	if code, out, errs := ripcord(t, "plugins", "lock", "-c", cfg); code != exitOK {
		t.Fatalf("lock: exit %d %s %s", code, out, errs)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	watch := exec.Command(self, "watch", "-c", cfg)
	watch.Env = append(os.Environ(), "RIPCORD_TEST_CLI=1")
	stdout, err := watch.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = watch.Process.Signal(os.Interrupt)
		_ = watch.Wait()
		stopReleases(filepath.Join(dir, "envs"))
	})
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	deadline := time.After(60 * time.Second)
	var seen []string
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("watch ended before showing the plugin's log line:\n%s", strings.Join(seen, "\n"))
			}
			seen = append(seen, l)
			if strings.Contains(l, " log plugin/snapshots@production.media: ") && strings.Contains(l, "watching snapshots") {
				// As the plugin wrote it, without a second timestamp.
				if want := "plugin/snapshots@production.media: watching snapshots dir=" + snaps + " set=media"; !strings.HasSuffix(l, want) {
					t.Fatalf("watch shows %q; want it to end %q", l, want)
				}
				// The server that runs the plugin keeps the line in its log.
				until := time.Now().Add(10 * time.Second)
				for {
					code, logs, errs := ripcord(t, "server", "logs", "-c", cfg)
					if code == exitOK && strings.Contains(logs, "plugin/snapshots@production.media: ") && strings.Contains(logs, "watching snapshots") {
						return
					}
					if time.Now().After(until) {
						t.Fatalf("server logs: exit %d, without the plugin's line:\n%s%s", code, logs, errs)
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
		case <-deadline:
			t.Fatalf("watch never showed the plugin's log line within 60s:\n%s", strings.Join(seen, "\n"))
		}
	}
}

// stopWorldAtEnd stops, once the test is over, what a test's commands
// started on cfg and would outlive it by design: the server, then the
// local targets' proxies and releases under the config's envs/.
func stopWorldAtEnd(t *testing.T, cfg string) {
	t.Cleanup(func() {
		if code, out, errs := ripcord(t, "server", "stop", "-c", cfg); code != exitOK {
			t.Errorf("server stop: exit %d\n%s%s", code, out, errs)
		}
		stopReleases(filepath.Join(filepath.Dir(cfg), "envs"))
	})
}
