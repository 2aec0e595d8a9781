package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core/config"
	"github.com/ripcordhq/ripcord/plugins/builtin"
	"github.com/ripcordhq/ripcord/plugins/sdk"
)

const fakeSelf = "/opt/ripcord tools/bin/ripcord's"

func newWorld(t *testing.T, self string) World {
	t.Helper()
	w, err := Workspace(filepath.Join(t.TempDir(), "shop"), WorkspaceOptions{Self: self})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func loadWorld(t *testing.T, w World) *config.File {
	t.Helper()
	f, err := config.Load(w.ConfigPath, config.Options{Providers: config.BuiltinProviders})
	if err != nil {
		t.Fatalf("the demo's ripcord.yaml does not load:\n%v", err)
	}
	return f
}

func TestWorkspaceConfigDescribesTheDemoWorld(t *testing.T) {
	w := newWorld(t, fakeSelf)
	f := loadWorld(t, w)

	if f.Project != "shop" || len(f.Services) != 2 || f.Services[0].Name != "api" || f.Services[1].Name != "web" {
		t.Fatalf("project %q services %+v, want shop with api and web", f.Project, f.Services)
	}
	var stages []string
	for _, st := range f.Services[0].Pipeline.Settings["stages"].([]any) {
		stages = append(stages, st.(map[string]any)["name"].(string))
	}
	if got := strings.Join(stages, ","); got != "build,test,lint,security-scan" {
		t.Errorf("pipeline stages %s", got)
	}
	if len(f.Environments) != 2 {
		t.Fatalf("%d environments, want staging and production", len(f.Environments))
	}
	staging, prod := f.Environments[0], f.Environments[1]
	if staging.Name != "staging" || !staging.Auto || prod.Name != "production" || prod.From != "staging" {
		t.Errorf("environments: %s auto=%v, %s from %q", staging.Name, staging.Auto, prod.Name, prod.From)
	}
	if got := strings.Join(prod.Gates, ","); got != "pipeline,errors,backups,migrations,branch,lock" {
		t.Errorf("production gates %s", got)
	}
	if len(prod.Rollout) != 3 || *prod.Rollout[0].Weight != 25 || prod.Rollout[1].Analysis != "errors" ||
		prod.Rollout[1].For.D() != 10*time.Minute || *prod.Rollout[2].Weight != 100 {
		t.Errorf("production rollout %+v", prod.Rollout)
	}
	if prod.Confirm != "y" || prod.Rollback.Auto != "off" {
		t.Errorf("production confirm %q, rollback auto %q", prod.Confirm, prod.Rollback.Auto)
	}
	for i, env := range []Env{w.Staging, w.Production} {
		checkEnvWiring(t, f.Environments[i], "api", env)
	}
	for i, env := range []Env{w.WebStaging, w.WebProduction} {
		checkEnvWiring(t, f.Environments[i], "web", env)
	}
	if m := f.Services[0].Migrations; m == nil || m.Dir != filepath.Join(w.Dir, MigrationsDir) {
		t.Errorf("api migrations %+v, want %s", m, MigrationsDir)
	}
	if n := len(prod.SharedBackups()); n != 2 || prod.Backups[1].Name != "uploads" || prod.Backups[1].Every.D() != 24*time.Hour {
		t.Errorf("production backups %+v, want orders and uploads every 24h, shared by both services", prod.Backups)
	}
}

// checkEnvWiring checks that an environment's blocks point at the ports
// and directories the World reports, which the demo's jobs use.
func checkEnvWiring(t *testing.T, e config.Environment, service string, want Env) {
	t.Helper()
	got := e.Placement(service)
	if got == nil {
		t.Fatalf("%s does not place %s", e.Name, service)
	}
	target := got.Target.Settings
	if fmt.Sprint(target["port"]) != strconv.Itoa(want.Port) {
		t.Errorf("%s: target port %v, world says %d", want.Name, target["port"], want.Port)
	}
	if want.URL != "http://127.0.0.1:"+strconv.Itoa(want.Port) {
		t.Errorf("%s: URL %s does not use port %d", want.Name, want.URL, want.Port)
	}
	env, _ := target["env"].(map[string]any)
	ingest := "127.0.0.1:" + strconv.Itoa(want.IngestPort)
	if got.Errors.Settings["listen"] != ingest {
		t.Errorf("%s: ingest listens on %v, world says %s", want.Name, got.Errors.Settings["listen"], ingest)
	}
	key := got.Errors.Settings["keys"].(map[string]any)["1"].(string)
	if dsn := "http://" + key + "@" + ingest + "/1"; env["SENTRY_DSN"] != dsn {
		t.Errorf("%s: SENTRY_DSN does not report to the environment's ingest with its key", want.Name)
	}
	if env["SENTRY_ENVIRONMENT"] != want.Name || env["DEMO_DATA"] != want.DataDir {
		t.Errorf("%s: release env SENTRY_ENVIRONMENT=%v DEMO_DATA=%v", want.Name, env["SENTRY_ENVIRONMENT"], env["DEMO_DATA"])
	}
	orders := e.SharedBackups()[0]
	if orders.Name != "orders" || orders.Every.D() != want.BackupEvery {
		t.Errorf("%s: first backup set %s every %v", want.Name, orders.Name, orders.Every)
	}
	glob := filepath.Join(filepath.Dir(e.Pos.File), orders.Provider.Settings["path"].(string))
	if filepath.Dir(glob) != want.BackupDir || filepath.Dir(want.BackupDB) != want.DataDir {
		t.Errorf("%s: orders backups watched at %s, job writes to %s", want.Name, glob, want.BackupDir)
	}
}

// Each provider block is accepted by the built-in provider's own strict
// settings decoder, given the fields the console adds (where the block
// sits, and relative paths made absolute).
func TestWorkspaceProviderBlocksAreAcceptedByTheBuiltins(t *testing.T) {
	w := newWorld(t, fakeSelf)
	f := loadWorld(t, w)
	registry := builtin.Registry("test")
	configure := func(what, name string, settings map[string]any) {
		t.Helper()
		raw, err := json.Marshal(settings)
		if err != nil {
			t.Fatal(err)
		}
		serve, ok := registry[name]
		if !ok {
			t.Fatalf("%s uses %s, which is not a built-in", what, name)
		}
		if err := serve().Provider.Configure(context.Background(), sdk.ConfigureRequest{Settings: raw}); err != nil {
			t.Errorf("%s: provider %s refused its settings: %v", what, name, err)
		}
	}
	abs := func(p string) string { return filepath.Join(w.Dir, p) }

	for _, s := range f.Services {
		pipe := maps.Clone(s.Pipeline.Settings)
		pipe["service"], pipe["state_dir"], pipe["work_dir"] = s.Name, abs(".ripcord/pipelines/"+s.Name), w.Dir
		configure(s.Name+" pipeline", s.Pipeline.Name, pipe)
	}
	for _, e := range f.Environments {
		for _, pl := range e.Services {
			target := maps.Clone(pl.Target.Settings)
			target["ref"] = map[string]any{"service": pl.Name, "env": e.Name}
			target["root"] = abs(target["root"].(string))
			configure(pl.Name+" "+e.Name+" target", pl.Target.Name, target)

			errs := maps.Clone(pl.Errors.Settings)
			errs["service"], errs["env"] = pl.Name, e.Name
			configure(pl.Name+" "+e.Name+" errors", pl.Errors.Name, errs)
		}
		for _, b := range e.Backups {
			set := maps.Clone(b.Provider.Settings)
			set["set"], set["path"] = b.Name, abs(set["path"].(string))
			configure(e.Name+" backup "+b.Name, b.Provider.Name, set)
		}
	}
}

func TestWorkspaceUploadsBackupIsOldEnoughToWarn(t *testing.T) {
	w := newWorld(t, fakeSelf)
	f := loadWorld(t, w)
	uploads := f.Environments[1].Backups[1]
	matches, err := filepath.Glob(filepath.Join(w.Dir, uploads.Provider.Settings["path"].(string)))
	if err != nil || len(matches) != 1 {
		t.Fatalf("uploads backups: %v %v, want exactly one", matches, err)
	}
	st, err := os.Stat(matches[0])
	if err != nil {
		t.Fatal(err)
	}
	age := time.Since(st.ModTime())
	every := uploads.Every.D()
	if age < time.Duration(uploads.Warn*float64(every)) || age >= 2*every {
		t.Fatalf("uploads backup is %v old with every %v, warn %v: want a warning, not critical", age, every, uploads.Warn)
	}
}

func TestWorkspaceRefusesToOverwriteADemo(t *testing.T) {
	w := newWorld(t, fakeSelf)
	before, _ := os.ReadFile(w.ConfigPath)
	if _, err := Workspace(w.Dir, WorkspaceOptions{Self: fakeSelf}); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second Workspace in %s: %v, want fs.ErrExist", w.Dir, err)
	}
	if after, _ := os.ReadFile(w.ConfigPath); !bytes.Equal(before, after) {
		t.Fatal("the refused Workspace changed ripcord.yaml")
	}
	if _, err := Workspace(t.TempDir(), WorkspaceOptions{Self: "ripcord"}); err == nil {
		t.Fatal("Workspace accepted a relative path for the ripcord binary")
	}
}

func TestTwoWorkspacesUseDifferentPorts(t *testing.T) {
	a, b := newWorld(t, fakeSelf), newWorld(t, fakeSelf)
	seen := map[int]bool{}
	for _, w := range []World{a, b} {
		for _, e := range append(w.Envs(), w.WebEnvs()...) {
			for _, p := range []int{e.Port, e.IngestPort} {
				if seen[p] {
					t.Fatalf("port %d is used twice", p)
				}
				seen[p] = true
			}
		}
	}
}

// runBuild runs the workspace's build script as the pipeline would, in
// workDir.
func runBuild(t *testing.T, w World, workDir, version string) (string, error) {
	t.Helper()
	return runServiceBuild(t, w, workDir, "api", version)
}

func runServiceBuild(t *testing.T, w World, workDir, service, version string) (string, error) {
	t.Helper()
	cmd := exec.Command("/bin/sh", filepath.Join(w.Dir, BuildScript))
	cmd.Dir = workDir
	cmd.Env = append(os.Environ(), "RIPCORD_VERSION="+version, "RIPCORD_SERVICE="+service, "RIPCORD_RUN_ID=run-1")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestBuildScriptWritesALauncherForItsVersion(t *testing.T) {
	w := newWorld(t, fakeSelf)
	work := t.TempDir()
	out, err := runBuild(t, w, work, DefectiveVersion)
	if err != nil {
		t.Fatalf("build failed: %v\n%s", err, out)
	}
	if !strings.Contains(out, "building api "+DefectiveVersion) || !strings.Contains(out, "dist/api") {
		t.Errorf("build printed %q", out)
	}
	artifact := filepath.Join(work, "dist", "api")
	st, err := os.Stat(artifact)
	if err != nil || st.Mode()&0o111 == 0 {
		t.Fatalf("artifact %s: %v, mode %v; want an executable", artifact, err, st)
	}
	body, _ := os.ReadFile(artifact)
	for _, want := range []string{"#!/bin/sh\n", shellQuote(fakeSelf), "--version " + DefectiveVersion} {
		if !strings.Contains(string(body), want) {
			t.Errorf("artifact lacks %q:\n%s", want, body)
		}
	}

	// Building the same version again gives the same bytes: the digest
	// names the version.
	again := t.TempDir()
	if out, err := runBuild(t, w, again, DefectiveVersion); err != nil {
		t.Fatalf("second build failed: %v\n%s", err, out)
	}
	if body2, _ := os.ReadFile(filepath.Join(again, "dist", "api")); !bytes.Equal(body, body2) {
		t.Error("two builds of one version differ")
	}
}

// The second service builds with the same script into its own artifact,
// which runs the service under its own name.
func TestBuildScriptBuildsEachService(t *testing.T) {
	w := newWorld(t, fakeSelf)
	work := t.TempDir()
	if out, err := runServiceBuild(t, w, work, "web", "v2.0.0"); err != nil {
		t.Fatalf("web build failed: %v\n%s", err, out)
	}
	body, err := os.ReadFile(filepath.Join(work, "dist", "web"))
	if err != nil || !strings.Contains(string(body), "--name web --version v2.0.0") {
		t.Fatalf("dist/web = %q (%v)", body, err)
	}
	if out, err := runServiceBuild(t, w, work, "../etc", "v1"); err == nil {
		t.Fatalf("a build for an unknown service succeeded:\n%s", out)
	}
}

func TestBuildScriptRefusesAVersionTheShellWouldInterpret(t *testing.T) {
	w := newWorld(t, fakeSelf)
	for _, v := range []string{"v1; rm -rf /", "$(id)", "--port", ""} {
		work := t.TempDir()
		if out, err := runBuild(t, w, work, v); err == nil {
			t.Errorf("build of version %q succeeded:\n%s", v, out)
		}
		if _, err := os.Stat(filepath.Join(work, "dist", "api")); err == nil {
			t.Errorf("build of version %q left an artifact", v)
		}
	}
}

// selfAsRipcord is the test binary, which acts as ripcord (see TestMain).
func selfAsRipcord(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(asRipcordEnv, "1")
	return self
}

// The built artifact really runs its version of the service through the
// ripcord binary, as a local target starts it: ./artifact --port N with
// the environment's variables.
func TestBuiltArtifactServesItsVersion(t *testing.T) {
	w := newWorld(t, selfAsRipcord(t))
	work := t.TempDir()
	if out, err := runBuild(t, w, work, DefectiveVersion); err != nil {
		t.Fatalf("build failed: %v\n%s", err, out)
	}
	ports, err := freePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(work, "dist", "api"), "--port", strconv.Itoa(ports[0]))
	cmd.Env = append(os.Environ(), "DEMO_DATA="+w.Staging.DataDir, "SENTRY_ENVIRONMENT=staging")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("the service did not exit cleanly on SIGTERM: %v\n%s", err, stderr.String())
			}
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			t.Error("the service ignored SIGTERM for 10s")
		}
	}()
	base := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	waitFor(t, 20*time.Second, "the built service to answer", func() bool {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusOK
	})
	if code, body := getText(t, base+"/"); code != 200 || body != "api "+DefectiveVersion+"\n" {
		t.Fatalf("GET / = %d %q", code, body)
	}
	if code, body := getText(t, base+"/checkout"); !strings.HasPrefix(body, "api "+DefectiveVersion+"\n") || (code != 200 && code != 500) {
		t.Fatalf("GET /checkout = %d %q", code, body)
	}
	if _, err := os.Stat(w.Staging.BackupDB); err != nil {
		t.Fatalf("the service did not use DEMO_DATA for its orders: %v", err)
	}
}

// The pipeline's test stage: the artifact checks its own answers.
func TestBuiltArtifactChecksItself(t *testing.T) {
	w := newWorld(t, selfAsRipcord(t))
	work := t.TempDir()
	if out, err := runBuild(t, w, work, "v1.4.2"); err != nil {
		t.Fatalf("build failed: %v\n%s", err, out)
	}
	out, err := exec.Command(filepath.Join(work, "dist", "api"), "--check").CombinedOutput()
	if err != nil {
		t.Fatalf("--check failed: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), `"api v1.4.2"`) || !strings.Contains(string(out), "/healthz") {
		t.Fatalf("--check printed %q", out)
	}
}
