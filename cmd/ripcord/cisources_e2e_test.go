package main

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/core/sqlitestore"
	"github.com/ripcordhq/ripcord/plugins/githubactions/githubtest"
	"github.com/ripcordhq/ripcord/plugins/gitlabci/gitlabtest"
)

// releaseArtifact is what a workflow uploads as its release: a zip (as
// every GitHub artifact is) that is also a shell script starting the test
// service at version, so the local target can run it as it is.
func releaseArtifact(t *testing.T, version string) []byte {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "#!/bin/sh\nRIPCORD_TEST_SERVICE=%s exec %s \"$@\"\n", version, self)
	zw := zip.NewWriter(&buf)
	w, err := zw.Create("app")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(w, "api %s\n", version)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// A GitHub Actions run, in the console on a real terminal with the
// provider as its own process: each step shows as GitHub reports it, and
// the green run's release — its artifact downloaded and checked — is
// deployed to staging by itself.
func TestGitHubActionsRunShowsStepByStepAndAutoDeploysToStaging(t *testing.T) {
	gh := githubtest.New("shop", "api", "ci.yml")
	defer gh.Close()
	// The project's clone: the config and the migrations live in it, and
	// GitHub built its commit.
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "db", "migrations"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "db", "migrations", "0001_orders.up.sql"), []byte("CREATE TABLE orders (id bigint PRIMARY KEY);\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	gitOut(t, dir, "init", "-q", "-b", "main")
	gitOut(t, dir, "add", "db")
	gitOut(t, dir, "-c", "user.name=ana", "-c", "user.email=ana@example.com", "-c", "commit.gpgsign=false", "commit", "-q", "-m", "orders")
	sha := strings.TrimSpace(gitOut(t, dir, "rev-parse", "HEAD"))
	cfg := writeConfigFile(t, dir, `project: shop
services:
  - name: api
    migrations: { dir: db/migrations }
    pipeline:
      provider: github-actions
      repository: shop/api
      workflow: ci.yml
      token: ${GITHUB_TOKEN}
      api_url: `+gh.APIURL()+`
      poll: 300ms
      poll_active: 100ms
environments:
  - name: staging
    auto: true
    gates: [pipeline, branch]
    target: { provider: local, root: envs/staging, run: "./artifact", health: "http://127.0.0.1:{{.Port}}/healthz" }
`)
	t.Cleanup(func() { stopReleases(filepath.Join(dir, "envs")) })

	start := time.Now().UTC().Truncate(time.Second)
	run := gh.Add(githubtest.Run{Status: "queued", HeadSHA: sha, Branch: "main", CreatedAt: start, StartedAt: start, UpdatedAt: start,
		Jobs: []githubtest.Job{{ID: 1, Name: "build", Status: "queued"}, {ID: 2, Name: "test", Status: "queued"}}})

	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	s := newTmuxSession(t, 160, 48, fmt.Sprintf("cd %s && env RIPCORD_TEST_CLI=1 RIPCORD_ACTOR=ana GITHUB_TOKEN=ghs_test %s console -c %s; sleep 30", dir, self, cfg))
	t.Cleanup(func() {
		if s.alive() {
			s.keys("q")
		}
	})
	s.waitFor("main@"+sha[:7], 30*time.Second) // the run GitHub reported, with its commit and branch

	at := func(d time.Duration) time.Time { return start.Add(d) }
	gh.Update(func() {
		run.Status, run.UpdatedAt = "in_progress", at(time.Second)
		run.Jobs[0].Status, run.Jobs[0].StartedAt = "in_progress", at(time.Second)
		run.Jobs[0].Steps = []githubtest.Step{
			{Name: "Set up job", Status: "completed", Conclusion: "success", StartedAt: at(time.Second), CompletedAt: at(2 * time.Second)},
			{Name: "Compile release", Status: "in_progress", StartedAt: at(2 * time.Second)},
		}
	})
	s.waitFor("◐ Compile release", 15*time.Second)
	s.waitFor("✓ Set up job", time.Second)

	artifact := releaseArtifact(t, "v1.5.0")
	gh.Update(func() {
		run.Jobs[0].Status, run.Jobs[0].Conclusion, run.Jobs[0].CompletedAt = "completed", "success", at(4*time.Second)
		run.Jobs[0].Steps[1].Status, run.Jobs[0].Steps[1].Conclusion, run.Jobs[0].Steps[1].CompletedAt = "completed", "success", at(4*time.Second)
		run.Jobs[1].Status, run.Jobs[1].StartedAt = "in_progress", at(4*time.Second)
		run.Jobs[1].Steps = []githubtest.Step{{Name: "Run unit tests", Status: "in_progress", StartedAt: at(4 * time.Second)}}
	})
	s.waitFor("◐ Run unit tests", 15*time.Second)
	s.waitFor("✓ build", time.Second)

	gh.Update(func() {
		run.Status, run.Conclusion, run.UpdatedAt = "completed", "success", at(9*time.Second)
		run.Jobs[1].Status, run.Jobs[1].Conclusion, run.Jobs[1].CompletedAt = "completed", "success", at(9*time.Second)
		run.Jobs[1].Steps[0].Status, run.Jobs[1].Steps[0].Conclusion, run.Jobs[1].Steps[0].CompletedAt = "completed", "success", at(9*time.Second)
		run.Artifacts = []githubtest.Artifact{{ID: 77, Name: "release-v1.5.0", Body: artifact, CreatedAt: at(8 * time.Second)}}
	})
	scr := s.waitFor("staging v1.5.0", 60*time.Second)
	if !strings.Contains(scr, "succeeded") {
		t.Errorf("the pipeline pane does not show the run succeeded:\n%s", scr)
	}
	deployed := func() string {
		link, _ := os.Readlink(filepath.Join(dir, "envs", "staging", "current"))
		return filepath.Base(link)
	}
	deadline := time.Now().Add(30 * time.Second)
	for deployed() != "v1.5.0" {
		if time.Now().After(deadline) {
			t.Fatalf("staging runs %q, want v1.5.0 deployed by itself; screen:\n%s", deployed(), s.screen())
		}
		time.Sleep(100 * time.Millisecond)
	}
	got, err := os.ReadFile(filepath.Join(dir, "envs", "staging", "current", "artifact"))
	if err != nil || !bytes.Equal(got, artifact) {
		t.Errorf("staging's artifact is not the bytes GitHub built (%v)", err)
	}
	s.keys("q")
	// The release carries the migrations at the commit GitHub built, read
	// in the clone: the migrations gate judges them.
	t.Setenv("GITHUB_TOKEN", "ghs_test")
	if code, out, errs := ripcord(t, "server", "stop", "-c", cfg); code != exitOK {
		t.Fatalf("server stop: exit %d\n%s%s", code, out, errs)
	}
	st, err := sqlitestore.Open(context.Background(), filepath.Join(dir, ".ripcord", "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rel, err := st.Release(context.Background(), "api", "v1.5.0")
	if err != nil || rel.Commit != sha || rel.MigrationsUnknown != "" || len(rel.Migrations) != 1 || rel.Migrations[0].ID != "0001_orders" || rel.Migrations[0].Kind != core.MigrationExpand {
		t.Errorf("release v1.5.0 = %+v (%v); want commit %s with 0001_orders, expand", rel, err, sha[:12])
	}
}

// writeConfigFile writes ripcord.yaml as given, with the project's state
// created as after its first console.
func writeConfigFile(t *testing.T, dir, body string) string {
	t.Helper()
	cfg := filepath.Join(dir, "ripcord.yaml")
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// The CI example the README points to is a valid config.
func TestCIExampleValidates(t *testing.T) {
	t.Setenv("GITHUB_TOKEN", "ghs_example")
	t.Setenv("GITHUB_WEBHOOK_SECRET", "example")
	t.Setenv("GITLAB_TOKEN", "glpat-example")
	code, out, errs := ripcord(t, "validate", "-c", "../../docs/examples/ci.yaml")
	if code != 0 {
		t.Fatalf("validate exited %d: %s%s", code, out, errs)
	}
}

// A GitLab CI pipeline, in the console on a real terminal with the
// provider as its own process: each job shows under its stage as GitLab
// reports it, and the green pipeline's release — the build job's file,
// its version from the VERSION file — is downloaded where the local
// target deploys from and deployed to staging by itself.
func TestGitLabCIPipelineShowsJobByJobAndAutoDeploysToStaging(t *testing.T) {
	gl := gitlabtest.New("shop/worker")
	defer gl.Close()
	gl.RequireToken("glpat-e2e")
	t.Setenv("GITLAB_TOKEN", "glpat-e2e")
	dir := t.TempDir()
	cfg := writeConfigFile(t, dir, `project: shop
services:
  - name: worker
    pipeline:
      provider: gitlab-ci
      project: shop/worker
      ref: main
      token: ${GITLAB_TOKEN}
      api_url: `+gl.APIURL()+`
      artifact: { job: compile, path: dist/worker, version_path: VERSION }
      poll: 300ms
      poll_active: 100ms
environments:
  - name: staging
    auto: true
    gates: [pipeline, branch]
    target: { provider: local, root: envs/staging, run: "./artifact", health: "http://127.0.0.1:{{.Port}}/healthz" }
`)
	stopWorldAtEnd(t, cfg)

	start := time.Now().UTC().Truncate(time.Second)
	at := func(d time.Duration) time.Time { return start.Add(d) }
	sha := "4c1e9f3a7b2d60185e9a0c3d4f5b6a7980e1d2c3"
	p := gl.Add(gitlabtest.Pipeline{Status: "pending", Ref: "main", SHA: sha, CreatedAt: start, UpdatedAt: start, Jobs: []gitlabtest.Job{
		{ID: 1, Name: "compile", Stage: "build", Status: "pending"},
		{ID: 2, Name: "unit-tests", Stage: "test", Status: "created"},
	}})

	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	s := newTmuxSession(t, 160, 48, fmt.Sprintf("cd %s && env RIPCORD_TEST_CLI=1 RIPCORD_ACTOR=ana GITLAB_TOKEN=glpat-e2e %s console -c %s; sleep 30", dir, self, cfg))
	t.Cleanup(func() {
		if s.alive() {
			s.keys("q")
		}
	})
	s.waitFor("main@4c1e9f3", 30*time.Second) // the pipeline GitLab reported, with CI_COMMIT_SHA and its ref

	gl.Update(func() {
		p.Status, p.UpdatedAt = "running", at(time.Second)
		p.Jobs[0].Status, p.Jobs[0].StartedAt = "running", at(time.Second)
	})
	s.waitFor("◐ compile", 15*time.Second)

	// The release file is a script starting the test service at v1.6.0.
	artifact := []byte(fmt.Sprintf("#!/bin/sh\nRIPCORD_TEST_SERVICE=v1.6.0 exec %s \"$@\"\n", self))
	gl.Update(func() {
		p.Jobs[0].Status, p.Jobs[0].FinishedAt = "success", at(4*time.Second)
		p.Jobs[0].Files = map[string][]byte{"dist/worker": artifact, "VERSION": []byte("v1.6.0\n")}
		p.Jobs[1].Status, p.Jobs[1].StartedAt = "running", at(4*time.Second)
	})
	s.waitFor("◐ unit-tests", 15*time.Second)
	s.waitFor("✓ build", time.Second) // the stage, its one job done

	gl.Update(func() {
		p.Status, p.UpdatedAt = "success", at(9*time.Second)
		p.Jobs[1].Status, p.Jobs[1].FinishedAt = "success", at(9*time.Second)
		// Job traces as a runner writes them: colours, section markers, a
		// terminal title a log must not set, and a secret a job echoed.
		p.Jobs[0].Trace = "\x1b[0KRunning with gitlab-runner 17.5.0\n" +
			"section_start:1560896353:step_script\r\x1b[0K\x1b[32;1m$ make worker\x1b[0;m\n" +
			"token is glpat-e2e\n" +
			"\x1b]0;owned\x07compiled worker v1.6.0\n" +
			"section_end:1560896360:step_script\r\x1b[0K\x1b[32;1mJob succeeded\x1b[0;m\n"
		p.Jobs[1].Trace = "$ go test ./...\nok  \tshop/worker\t0.412s\nJob succeeded\n"
	})
	scr := s.waitFor("staging v1.6.0", 60*time.Second)
	if !strings.Contains(scr, "succeeded") {
		t.Errorf("the pipeline pane does not show the pipeline succeeded:\n%s", scr)
	}
	deployed := func() string {
		link, _ := os.Readlink(filepath.Join(dir, "envs", "staging", "current"))
		return filepath.Base(link)
	}
	deadline := time.Now().Add(30 * time.Second)
	for deployed() != "v1.6.0" {
		if time.Now().After(deadline) {
			t.Fatalf("staging runs %q, want v1.6.0 deployed by itself; screen:\n%s", deployed(), s.screen())
		}
		time.Sleep(100 * time.Millisecond)
	}
	got, err := os.ReadFile(filepath.Join(dir, "envs", "staging", "current", "artifact"))
	if err != nil || !bytes.Equal(got, artifact) {
		t.Errorf("staging's artifact is not the bytes GitLab's build job made (%v)", err)
	}
	for _, tok := range gl.Tokens() {
		if tok != "glpat-e2e" {
			t.Errorf("a request to GitLab carried PRIVATE-TOKEN %q, want the one from GITLAB_TOKEN", tok)
		}
	}

	// A job's log is read when a person opens it, not before: enter on the
	// pipeline's last row (the test stage) shows its job's trace, read
	// once; the build stage's row shows compile's, escaped and redacted.
	traces := func() (n int) {
		for _, r := range gl.Requests() {
			if strings.HasSuffix(r.Path, "/trace") {
				n++
			}
		}
		return n
	}
	if n := traces(); n != 0 {
		t.Fatalf("%d job traces were read before anyone opened a log", n)
	}
	// Reading a log takes no lock: another person's does not stop it.
	t.Setenv("RIPCORD_ACTOR", "bob")
	if code, out, errs := ripcord(t, "lock", "worker", "--env", "staging", "--reason", "release freeze", "-c", cfg); code != exitOK {
		t.Fatalf("lock: exit %d: %s%s", code, out, errs)
	}
	s.keys("Enter")
	scr = s.waitFor("ok      shop/worker     0.412s", 30*time.Second)
	if !strings.Contains(scr, "Log · worker · test") {
		t.Errorf("enter did not open the test stage's log:\n%s", scr)
	}
	if n := traces(); n != 1 {
		t.Errorf("opening one job's log read %d traces, want 1", n)
	}
	s.keys("Escape")
	s.waitFor("Pipeline v1.6.0", 5*time.Second) // the main screen again, before k (else ESC k reads as alt+k)
	s.keys("k")
	s.keys("Enter")
	scr = s.waitFor("compiled worker v1.6.0", 30*time.Second)
	if !strings.Contains(scr, "Log · worker · build") || !strings.Contains(scr, "$ make worker") || !strings.Contains(scr, `\x1b]0;owned\x07`) {
		t.Errorf("the build stage's log is not compile's trace with its control characters escaped:\n%s", scr)
	}
	if strings.Contains(scr, "glpat-e2e") || !strings.Contains(scr, "token is [redacted]") {
		t.Errorf("the log shows the token a job echoed instead of its redaction:\n%s", scr)
	}
	if n := traces(); n != 2 {
		t.Errorf("opening two job logs read %d traces, want 2", n)
	}
	// Reading is not an action: the audit log has bob's lock and no read.
	code, out, errs := ripcord(t, "audit", "--json", "-c", cfg)
	if code != exitOK {
		t.Fatalf("audit: exit %d: %s%s", code, out, errs)
	}
	var audit struct {
		Entries []auditJSON `json:"entries"`
	}
	if err := json.Unmarshal([]byte(out), &audit); err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range audit.Entries {
		actions = append(actions, e.Action)
	}
	if !slices.Contains(actions, "lock") || slices.Contains(actions, string(core.CmdStepLog)) {
		t.Errorf("audit actions %v: want bob's lock and no %s", actions, core.CmdStepLog)
	}
	s.keys("Escape")
	s.keys("q")
}

// validate checks a gitlab-ci block against the provider's settings and
// says where, and refuses a token written into the file.
func TestValidateChecksGitLabCISettings(t *testing.T) {
	dir := t.TempDir()
	head := `project: shop
services:
  - name: worker
    pipeline:
      provider: gitlab-ci
      project: shop/worker
`
	tail := `environments:
  - name: staging
    target: { provider: local, root: envs/staging, run: "./artifact", health: "http://127.0.0.1:{{.Port}}/healthz" }
`
	cfg := writeConfigFile(t, dir, head+`      token: ${GITLAB_TOKEN}
      poll: soon
      artifact: { job: build, pth: dist/worker }
`+tail)
	t.Setenv("GITLAB_TOKEN", "glpat-validate")
	code, out, errs := ripcord(t, "validate", "-c", cfg)
	if code != exitFailed {
		t.Fatalf("validate: exit %d, want %d\n%s%s", code, exitFailed, out, errs)
	}
	for _, want := range []string{
		cfg + `:8:13: provider gitlab-ci: poll: expected a duration`,
		cfg + `:9:17: provider gitlab-ci: artifact.path: is required`,
		cfg + `:9:36: provider gitlab-ci: artifact.pth: unknown setting; did you mean "path"? known settings: job, path, version_path`,
	} {
		if !strings.Contains(errs, want) {
			t.Errorf("validate does not report %q:\n%s", want, errs)
		}
	}

	cfg = writeConfigFile(t, dir, head+`      token: glpat-Zk3vQ9sP0wXbT7yR2mLc
      artifact: { job: build, path: dist/worker }
`+tail)
	code, out, errs = ripcord(t, "validate", "-c", cfg)
	if code == exitOK {
		t.Fatalf("validate accepted a token written into the file:\n%s%s", out, errs)
	}
	if want := cfg + `:7:14: services[0].pipeline.token: a secret written inline; write token: ${`; !strings.Contains(errs, want) {
		t.Errorf("validate does not report %q:\n%s", want, errs)
	}
	if strings.Contains(out+errs, "Zk3vQ9sP0wXbT7yR2mLc") {
		t.Errorf("validate repeats the token:\n%s%s", out, errs)
	}
}
