package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/core/config"
	"github.com/ripcordhq/ripcord/plugins/githubactions/githubtest"
)

// A GitHub Actions step's log, asked of the project's server over the
// client API with the github-actions provider as its own process: nothing
// reads a job log until someone asks; then the step's lines — only those
// GitHub stamped within the step — come back in the answer, read once, and
// the ask is no action (nothing audited). A step the run does not have is
// refused with the provider's reason.
func TestGitHubStepLogIsReadWhenAskedThroughTheServer(t *testing.T) {
	gh := githubtest.New("shop", "api", "ci.yml")
	defer gh.Close()
	t.Setenv("GITHUB_TOKEN", "ghs_steplog")
	dir := t.TempDir()
	path := writeConfigFile(t, dir, `project: shop
services:
  - name: api
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
    target: { provider: local, root: envs/staging, run: "./artifact", health: "http://127.0.0.1:{{.Port}}/healthz" }
`)
	stopWorldAtEnd(t, path)

	t0 := time.Now().UTC().Truncate(time.Second).Add(-time.Minute)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	stamp := func(d time.Duration, text string) string { return at(d).Format(time.RFC3339Nano) + " " + text + "\n" }
	gh.Add(githubtest.Run{Status: "completed", Conclusion: "success", HeadSHA: "9f3c1e0d2b4a69788c7d1e2f3a4b5c6d7e8f9012", Branch: "main",
		CreatedAt: t0, StartedAt: t0, UpdatedAt: at(5 * time.Second),
		Jobs: []githubtest.Job{{ID: 1, Name: "build", Status: "completed", Conclusion: "success", StartedAt: t0, CompletedAt: at(4 * time.Second),
			Steps: []githubtest.Step{
				{Name: "Set up job", Status: "completed", Conclusion: "success", StartedAt: t0, CompletedAt: at(time.Second)},
				{Name: "Compile", Status: "completed", Conclusion: "success", StartedAt: at(2 * time.Second), CompletedAt: at(3 * time.Second)},
			},
			Log: stamp(500*time.Millisecond, "Runner image ubuntu-24.04") +
				stamp(2100*time.Millisecond, "go build ./...") +
				stamp(2900*time.Millisecond, "built api with token ghs_steplog") +
				stamp(4500*time.Millisecond, "Post job cleanup"),
		}}})

	cfg, err := config.Load(path, config.Options{Providers: config.BuiltinProviders})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := connect(ctx, cfg, startCreating)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var run core.PipelineRun
	for run.State != core.RunSucceeded {
		snap, sub := c.Subscribe()
		sub.Close()
		run = snap.Pipelines["api"]
		if ctx.Err() != nil {
			t.Fatalf("the server never showed the run succeeded: %+v", run)
		}
		time.Sleep(50 * time.Millisecond)
	}
	logReads := func() (n int) {
		for _, r := range gh.Requests() {
			if strings.HasSuffix(r.Path, "/logs") {
				n++
			}
		}
		return n
	}
	if n := logReads(); n != 0 {
		t.Fatalf("%d job logs were read before anyone asked", n)
	}

	staging := core.Ref{Service: "api", Env: "staging"}
	res, err := c.Do(ctx, core.Command{Kind: core.CmdStepLog, Ref: staging, Actor: currentActor(), Run: run.ID, Steps: []string{"build/Compile"}})
	if err != nil {
		t.Fatalf("step-log: %v", err)
	}
	var got []string
	for _, l := range res.Log {
		got = append(got, l.Source+": "+l.Text)
	}
	want := []string{run.ID + "/build/Compile: go build ./...", run.ID + "/build/Compile: built api with token [redacted]"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("step-log answered\n%q\nwant\n%q", got, want)
	}
	if n := logReads(); n != 1 {
		t.Errorf("one step-log read %d job logs, want 1", n)
	}

	// A step the run lacks is refused with the provider's reason: in the
	// answer's lines beside a step that was read, as the error alone.
	res, err = c.Do(ctx, core.Command{Kind: core.CmdStepLog, Ref: staging, Actor: currentActor(), Run: run.ID, Steps: []string{"build/Compile", "build/Deploy"}})
	if err != nil || len(res.Log) != 3 || !strings.Contains(res.Log[2].Text, `could not read the log of build/Deploy: `) || !strings.Contains(res.Log[2].Text, `no step "Deploy"`) {
		t.Errorf("a read of a step and of one the run lacks: %v, %+v", err, res.Log)
	}
	_, err = c.Do(ctx, core.Command{Kind: core.CmdStepLog, Ref: staging, Actor: currentActor(), Run: run.ID, Steps: []string{"build/Deploy"}})
	if err == nil || !strings.Contains(err.Error(), `no step "Deploy"`) {
		t.Errorf("a step the run lacks: %v, want the provider's refusal naming it", err)
	}
	if _, err := c.Do(ctx, core.Command{Kind: core.CmdStepLog, Ref: staging, Actor: currentActor()}); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("a step-log naming no run or step: %v, want invalid", err)
	}

	code, out, errs := ripcord(t, "audit", "-c", path)
	if code != exitOK {
		t.Fatalf("audit: exit %d: %s%s", code, out, errs)
	}
	if strings.Contains(out, string(core.CmdStepLog)) {
		t.Errorf("reading a step's log was audited:\n%s", out)
	}
}

// An exec pipeline's step log is read the same way, from the exec
// provider's own process: the step's output, each line once, its tabs
// shown as a terminal shows them.
func TestExecStepLogIsTheStepsOutput(t *testing.T) {
	dir := t.TempDir()
	path := writeConfigFile(t, dir, `project: shop
services:
  - name: api
    pipeline: { provider: exec, stages: [{name: build, steps: [{name: compile, run: "printf 'ok\\tshop/api\\n'; echo built v1"}]}] }
environments:
  - name: staging
    target: { provider: local, root: envs/staging, run: "./artifact", health: "tcp://127.0.0.1:1" }
`)
	f, err := config.Load(path, config.Options{Providers: config.BuiltinProviders})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopReleases(filepath.Join(dir, "envs")) }) // the staging target's proxy outlives the world
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	w, err := openWorld(ctx, f, worldOptions{Observe: true, CreateState: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	id, err := w.pipelines["api"].Trigger(ctx, "api", "v1", "")
	if err != nil {
		t.Fatal(err)
	}
	for {
		if run := w.eng.Snapshot().Pipelines["api"]; run.ID == id && run.State == core.RunSucceeded {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("run %s never succeeded: %+v", id, w.eng.Snapshot().Pipelines["api"])
		}
		time.Sleep(50 * time.Millisecond)
	}
	res, err := w.eng.Do(ctx, core.Command{Kind: core.CmdStepLog, Ref: core.Ref{Service: "api", Env: "staging"}, Actor: core.Actor{Name: "ana"}, Run: id, Steps: []string{"build/compile"}})
	if err != nil {
		t.Fatalf("step-log: %v", err)
	}
	var got []string
	for _, l := range res.Log {
		got = append(got, l.Source+": "+l.Text)
	}
	want := []string{id + "/build/compile: ok      shop/api", id + "/build/compile: built v1"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("step-log answered\n%q\nwant\n%q", got, want)
	}
}
