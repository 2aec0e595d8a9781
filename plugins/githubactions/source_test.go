package githubactions

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/plugins/githubactions/githubtest"
	"github.com/ripcordhq/ripcord/plugins/internal/gitfacts/gittest"
)

const sha = "acb5820ced9479c074f688cc328bf03f341a511d"

var t0 = time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func newSource(t *testing.T, gh *githubtest.Server, edit func(*Config)) *Source {
	t.Helper()
	cfg := Config{Service: "api", Repository: gh.Owner + "/" + gh.Repo, Workflow: gh.Workflow, Token: "ghp_test",
		APIURL: gh.APIURL(), Poll: 30 * time.Millisecond, PollActive: 10 * time.Millisecond, Logf: t.Logf}
	if edit != nil {
		edit(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// watcher collects what WatchRuns sends.
type watcher struct {
	mu   sync.Mutex
	seen []core.PipelineRun
}

func watch(t *testing.T, s *Source) *watcher {
	w := &watcher{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.WatchRuns(ctx, "api", func(r core.PipelineRun) {
			w.mu.Lock()
			w.seen = append(w.seen, r)
			w.mu.Unlock()
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	return w
}

func (w *watcher) latest(id string) (core.PipelineRun, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := len(w.seen) - 1; i >= 0; i-- {
		if w.seen[i].ID == id {
			return w.seen[i], true
		}
	}
	return core.PipelineRun{}, false
}

func (w *watcher) states(id string) []core.RunState {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []core.RunState
	for _, r := range w.seen {
		if r.ID == id && (len(out) == 0 || out[len(out)-1] != r.State) {
			out = append(out, r.State)
		}
	}
	return out
}

func step(name, status, conclusion string, start, end time.Duration) githubtest.Step {
	st := githubtest.Step{Name: name, Status: status, Conclusion: conclusion}
	if status != "queued" {
		st.StartedAt = t0.Add(start)
	}
	if status == "completed" {
		st.CompletedAt = t0.Add(end)
	}
	return st
}

// A run goes queued → in progress → completed with a failed step; the
// watcher sees each state, the job as a stage with its steps and their
// times, and the run's own commit and branch.
func TestRunGoesQueuedRunningFailedStepByStep(t *testing.T) {
	gh := githubtest.New("octo-org", "octo-repo", "ci.yml")
	defer gh.Close()
	run := gh.Add(githubtest.Run{Status: "queued", HeadSHA: sha, Branch: "main", CreatedAt: t0, StartedAt: t0, UpdatedAt: t0,
		Jobs: []githubtest.Job{{ID: 399444496, Name: "build", Status: "queued"}}})
	s := newSource(t, gh, nil)
	w := watch(t, s)
	id := "30433642"
	waitFor(t, "the queued run", func() bool { r, ok := w.latest(id); return ok && r.State == core.RunQueued })

	gh.Update(func() {
		run.Status, run.UpdatedAt = "in_progress", t0.Add(time.Second)
		run.Jobs[0].Status, run.Jobs[0].StartedAt = "in_progress", t0.Add(time.Second)
		run.Jobs[0].Steps = []githubtest.Step{
			step("Set up job", "completed", "success", 1*time.Second, 2*time.Second),
			step("Run Tests", "in_progress", "", 2*time.Second, 0),
			step("Upload release", "queued", "", 0, 0),
		}
	})
	waitFor(t, "the step in progress", func() bool {
		r, _ := w.latest(id)
		return len(r.Stages) == 1 && len(r.Stages[0].Steps) == 3 && r.Stages[0].Steps[1].State == core.RunRunning
	})

	gh.Update(func() {
		run.Status, run.Conclusion, run.UpdatedAt = "completed", "failure", t0.Add(9*time.Second)
		run.Jobs[0].Status, run.Jobs[0].Conclusion, run.Jobs[0].CompletedAt = "completed", "failure", t0.Add(9*time.Second)
		run.Jobs[0].Steps[1] = step("Run Tests", "completed", "failure", 2*time.Second, 8*time.Second)
		run.Jobs[0].Steps[2] = step("Upload release", "completed", "skipped", 8*time.Second, 8*time.Second)
	})
	waitFor(t, "the failed run", func() bool { r, _ := w.latest(id); return r.State == core.RunFailed })

	if got := w.states(id); len(got) != 3 || got[0] != core.RunQueued || got[1] != core.RunRunning || got[2] != core.RunFailed {
		t.Errorf("states seen = %v, want queued, running, failed", got)
	}
	r, _ := w.latest(id)
	if r.Commit != sha || r.Branch != "main" || r.Version != "" || r.ArtifactDigest != "" {
		t.Errorf("run = commit %q branch %q version %q digest %q; want the run's own commit and branch, no release from a failed run", r.Commit, r.Branch, r.Version, r.ArtifactDigest)
	}
	st := r.Stages[0]
	if st.Name != "build" || st.State != core.RunFailed {
		t.Fatalf("stage = %s %s, want build failed", st.Name, st.State)
	}
	if st.Steps[1].Name != "Run Tests" || st.Steps[1].State != core.RunFailed || st.Steps[1].FinishedAt.Sub(st.Steps[1].StartedAt) != 6*time.Second {
		t.Errorf("step = %+v, want Run Tests failed after 6s", st.Steps[1])
	}
	if st.Steps[2].State != core.RunSkipped {
		t.Errorf("step after the failure = %s, want skipped", st.Steps[2].State)
	}
	gate := core.EvaluateGates([]core.GateSpec{{Name: core.GatePipeline}}, core.GateInput{Release: core.Release{Version: "v1.5.0"}, Pipeline: &r}, nil)
	if gate[0].Status != core.GateFail || !strings.Contains(gate[0].Reason, "build › Run Tests") {
		t.Errorf("pipeline gate = %s %q, want a failure naming build › Run Tests", gate[0].Status, gate[0].Reason)
	}
}

// A green run's release is its artifact: the version from the artifact's
// name, the digest GitHub reports, and the bytes downloaded and checked.
func TestGreenRunIsAReleaseWithTheArtifactsVersionAndDigest(t *testing.T) {
	gh := githubtest.New("octo-org", "octo-repo", "ci.yml")
	defer gh.Close()
	body := []byte("#!/bin/sh\necho the build\n")
	gh.Add(githubtest.Run{Status: "completed", Conclusion: "success", HeadSHA: sha, Branch: "main", CreatedAt: t0, StartedAt: t0, UpdatedAt: t0.Add(time.Minute),
		Jobs: []githubtest.Job{{ID: 1, Name: "build", Status: "completed", Conclusion: "success", StartedAt: t0, CompletedAt: t0.Add(time.Minute),
			Steps: []githubtest.Step{step("Build", "completed", "success", 0, time.Minute)}}},
		Artifacts: []githubtest.Artifact{{ID: 11, Name: "coverage", Body: []byte("x")}, {ID: 12, Name: "release-v1.5.0", Body: body}}})
	dir := t.TempDir()
	s := newSource(t, gh, func(c *Config) { c.DownloadDir = dir })
	runs, err := s.Runs(context.Background(), "api", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 1 {
		t.Fatalf("runs = %d, want 1", len(runs))
	}
	r := runs[0]
	sum := sha256.Sum256(body)
	want := "sha256:" + hex.EncodeToString(sum[:])
	if r.Version != "v1.5.0" || r.ArtifactDigest != want || !r.Green() {
		t.Fatalf("run = version %q digest %q green %v; want v1.5.0, %s, green", r.Version, r.ArtifactDigest, r.Green(), want)
	}
	got, err := os.ReadFile(filepath.Join(dir, hex.EncodeToString(sum[:])))
	if err != nil || string(got) != string(body) {
		t.Fatalf("downloaded artifact = %q, %v; want the artifact's bytes under its sha256", got, err)
	}
}

// A run of a branch in a fork is not a branch of this repository: its
// branch stays unknown, and the branch gate refuses it.
func TestForkBranchIsLeftUnknown(t *testing.T) {
	gh := githubtest.New("octo-org", "octo-repo", "ci.yml")
	defer gh.Close()
	gh.Add(githubtest.Run{Status: "completed", Conclusion: "success", HeadSHA: sha, Branch: "main", HeadRepo: "someone/octo-repo", Event: "pull_request",
		CreatedAt: t0, StartedAt: t0, UpdatedAt: t0})
	s := newSource(t, gh, func(c *Config) { c.Branch = "*" })
	runs, err := s.Runs(context.Background(), "api", 10)
	if err != nil || len(runs) != 1 {
		t.Fatalf("runs = %v, %v", runs, err)
	}
	if runs[0].Branch != "" {
		t.Errorf("branch of a fork's run = %q, want unknown", runs[0].Branch)
	}
}

// A re-run is attempt 2: a run of its own beside the failed attempt 1,
// asked for through "re-run failed jobs".
func TestRerunIsAttemptTwoBesideTheFailedAttempt(t *testing.T) {
	gh := githubtest.New("octo-org", "octo-repo", "ci.yml")
	defer gh.Close()
	run := gh.Add(githubtest.Run{Status: "completed", Conclusion: "failure", HeadSHA: sha, Branch: "main", CreatedAt: t0, StartedAt: t0, UpdatedAt: t0.Add(time.Minute),
		Jobs: []githubtest.Job{{ID: 1, Name: "test", Status: "completed", Conclusion: "failure", StartedAt: t0, CompletedAt: t0.Add(time.Minute)}}})
	s := newSource(t, gh, func(c *Config) { c.Artifact = "release" }) // version = the commit
	w := watch(t, s)
	waitFor(t, "attempt 1 failed", func() bool { r, ok := w.latest("30433642"); return ok && r.State == core.RunFailed })

	id, err := s.Trigger(context.Background(), "api", sha[:12], "test")
	if err != nil {
		t.Fatal(err)
	}
	if id != "30433642.2" {
		t.Errorf("Trigger = %q, want the next attempt 30433642.2", id)
	}
	if got := gh.Reruns(); len(got) != 1 || got[0] != 30433642 {
		t.Errorf("re-runs asked = %v, want run 30433642", got)
	}
	gh.Update(func() {
		run.Attempt, run.Status, run.Conclusion = 2, "in_progress", ""
		run.StartedAt, run.UpdatedAt = t0.Add(2*time.Minute), t0.Add(2*time.Minute)
		run.Jobs[0] = githubtest.Job{ID: 2, Name: "test", Status: "in_progress", StartedAt: t0.Add(2 * time.Minute)}
	})
	waitFor(t, "attempt 2 running", func() bool { r, ok := w.latest("30433642.2"); return ok && r.State == core.RunRunning })
	gh.Update(func() {
		run.Status, run.Conclusion, run.UpdatedAt = "completed", "success", t0.Add(3*time.Minute)
		run.Jobs[0].Status, run.Jobs[0].Conclusion, run.Jobs[0].CompletedAt = "completed", "success", t0.Add(3*time.Minute)
		run.Artifacts = []githubtest.Artifact{{ID: 5, Name: "release", Body: []byte("bin")}}
	})
	waitFor(t, "attempt 2 green", func() bool { r, _ := w.latest("30433642.2"); return r.State == core.RunSucceeded })
	first, _ := w.latest("30433642")
	second, _ := w.latest("30433642.2")
	if first.State != core.RunFailed || !second.StartedAt.After(first.StartedAt) {
		t.Errorf("attempt 1 = %s started %s, attempt 2 started %s; want attempt 1 still failed, attempt 2 later", first.State, first.StartedAt, second.StartedAt)
	}
	if second.Version != sha[:12] || second.Commit != sha || second.ArtifactDigest == "" {
		t.Errorf("attempt 2 = version %q commit %q digest %q", second.Version, second.Commit, second.ArtifactDigest)
	}
	if _, err := s.Trigger(context.Background(), "api", sha[:12], "test"); err == nil || !strings.Contains(err.Error(), "nothing to re-run") {
		t.Errorf("re-running a green run: %v, want refused", err)
	}
}

// Retry without a stage dispatches the workflow on the configured branch.
func TestRetryDispatchesTheWorkflow(t *testing.T) {
	gh := githubtest.New("octo-org", "octo-repo", "ci.yml")
	defer gh.Close()
	s := newSource(t, gh, func(c *Config) { c.Poll = time.Hour })
	id, err := s.Trigger(context.Background(), "api", "", "")
	if err != nil {
		t.Fatal(err)
	}
	if got := gh.Dispatched(); len(got) != 1 || got[0] != "main" || id != "30433642" {
		t.Errorf("dispatched %v, run %q; want main, the run GitHub created", got, id)
	}
}

// While nothing changes every poll is a conditional request answered 304,
// which GitHub does not charge; the budget it reports is kept.
func TestIdlePollsAreNotModifiedAndFree(t *testing.T) {
	gh := githubtest.New("octo-org", "octo-repo", "ci.yml")
	defer gh.Close()
	gh.Add(githubtest.Run{Status: "completed", Conclusion: "success", HeadSHA: sha, Branch: "main", CreatedAt: t0, StartedAt: t0, UpdatedAt: t0})
	s := newSource(t, gh, nil)
	waitFor(t, "five polls of the run list", func() bool { return countPath(gh.Requests(), "/runs", 0) >= 5 })
	lists := filterPath(gh.Requests(), "/workflows/ci.yml/runs")
	for _, r := range lists[1:] {
		if r.Status != 304 {
			t.Fatalf("idle poll answered %d, want 304 Not Modified (requests %v)", r.Status, lists)
		}
	}
	b := s.Budget()
	if !b.Known || b.Limit != 5000 || b.Remaining >= 5000 {
		t.Errorf("budget = %+v, want GitHub's 5000 limit with what was charged", b)
	}
	charged := 5000 - b.Remaining
	waitFor(t, "three more polls", func() bool { return countPath(gh.Requests(), "/workflows/ci.yml/runs", 0) >= len(lists)+3 })
	if now := 5000 - s.Budget().Remaining; now != charged {
		t.Errorf("idle polls charged %d requests, want none", now-charged)
	}
	if degraded, msg := s.Health(); degraded || !strings.Contains(msg, "API requests left") {
		t.Errorf("health = %v %q, want healthy with the budget left", degraded, msg)
	}
}

func filterPath(reqs []githubtest.Request, suffix string) []githubtest.Request {
	var out []githubtest.Request
	for _, r := range reqs {
		if strings.HasSuffix(r.Path, suffix) {
			out = append(out, r)
		}
	}
	return out
}

func countPath(reqs []githubtest.Request, suffix string, status int) int {
	n := 0
	for _, r := range filterPath(reqs, suffix) {
		if status == 0 || r.Status == status {
			n++
		}
	}
	return n
}

// Lists longer than a page are read page by page (GitHub's Link header).
func TestRunsAndJobsArePaged(t *testing.T) {
	gh := githubtest.New("octo-org", "octo-repo", "ci.yml")
	defer gh.Close()
	gh.SetPageSize(2)
	for i := range 5 {
		start := t0.Add(time.Duration(i) * time.Minute)
		gh.Add(githubtest.Run{Status: "completed", Conclusion: "failure", HeadSHA: sha, Branch: "main", CreatedAt: start, StartedAt: start, UpdatedAt: start,
			Jobs: []githubtest.Job{{ID: int64(10*i + 1), Name: "lint", Status: "completed", Conclusion: "success"},
				{ID: int64(10*i + 2), Name: "test", Status: "completed", Conclusion: "failure"},
				{ID: int64(10*i + 3), Name: "build", Status: "completed", Conclusion: "skipped"}}})
	}
	s := newSource(t, gh, func(c *Config) { c.History = 5 })
	runs, err := s.Runs(context.Background(), "api", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 5 {
		t.Fatalf("runs = %d, want all 5 across 3 pages", len(runs))
	}
	if !runs[0].StartedAt.After(runs[4].StartedAt) {
		t.Error("runs are not newest first")
	}
	for _, r := range runs {
		if len(r.Stages) != 3 {
			t.Fatalf("run %s has %d stages, want its 3 jobs across 2 pages", r.ID, len(r.Stages))
		}
	}
}

// A secondary rate limit (403 or 429 with retry-after) is waited out: no
// request is sent before it ends, health says so, and polling resumes.
func TestSecondaryRateLimitIsWaitedOut(t *testing.T) {
	for _, status := range []int{403, 429} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			gh := githubtest.New("octo-org", "octo-repo", "ci.yml")
			defer gh.Close()
			gh.Add(githubtest.Run{Status: "completed", Conclusion: "success", HeadSHA: sha, Branch: "main", CreatedAt: t0, StartedAt: t0, UpdatedAt: t0})
			gh.FailNext(status, 1, 1)
			s := newSource(t, gh, nil)
			waitFor(t, "health to say it waits", func() bool {
				degraded, msg := s.Health()
				return degraded && strings.Contains(msg, "rate limited by GitHub: waiting")
			})
			waitFor(t, "polling to resume", func() bool { return len(gh.Requests()) >= 2 })
			reqs := gh.Requests()
			if reqs[0].Status != status {
				t.Fatalf("first request = %+v, want refused with %d", reqs[0], status)
			}
			if waited := reqs[1].At.Sub(reqs[0].At); waited < 900*time.Millisecond {
				t.Errorf("next request %s after the limit, want after the 1s retry-after", waited)
			}
			if reqs[1].Status != 200 {
				t.Errorf("request after the wait = %+v, want answered", reqs[1])
			}
			waitFor(t, "health to recover", func() bool { d, _ := s.Health(); return !d })
		})
	}
}

// A webhook whose signature does not match the secret is refused and
// changes nothing; a signed one wakes the poller at once.
func TestWebhookWithABadSignatureIsRefused(t *testing.T) {
	gh := githubtest.New("octo-org", "octo-repo", "ci.yml")
	defer gh.Close()
	run := gh.Add(githubtest.Run{Status: "completed", Conclusion: "success", HeadSHA: sha, Branch: "main", CreatedAt: t0, StartedAt: t0, UpdatedAt: t0})
	s := newSource(t, gh, func(c *Config) {
		c.Poll, c.PollActive = time.Hour, time.Hour
		c.Webhook = Webhook{Listen: "127.0.0.1:0", Secret: "It's a Secret to Everybody"}
	})
	if _, err := s.Runs(context.Background(), "api", 10); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first poll", func() bool { return countPath(gh.Requests(), "/runs", 0) >= 1 })
	before := len(gh.Requests())
	url := "http://" + s.WebhookAddr() + "/github"
	code, err := githubtest.Deliver(url, "workflow_run", "not the secret", gh.RunEvent("requested", run))
	if err != nil {
		t.Fatal(err)
	}
	if code != 401 {
		t.Errorf("badly signed delivery answered %d, want 401", code)
	}
	if _, msg := s.Health(); !strings.Contains(msg, "1 refused (bad signature)") {
		t.Errorf("health = %q, want the refused delivery counted", msg)
	}
	if got := len(gh.Requests()); got != before {
		t.Errorf("a refused delivery caused %d requests, want none", got-before)
	}
	code, err = githubtest.Deliver(url, "workflow_run", "It's a Secret to Everybody", gh.RunEvent("requested", run))
	if err != nil || code != 204 {
		t.Fatalf("signed delivery: %d %v, want 204", code, err)
	}
	waitFor(t, "the poll a signed delivery wakes", func() bool { return len(gh.Requests()) > before })
}

// The logs pane gets the tail of one step: the job's log lines stamped
// within the step's time.
func TestLogsAreTheStepsLinesOfTheJobLog(t *testing.T) {
	gh := githubtest.New("octo-org", "octo-repo", "ci.yml")
	defer gh.Close()
	logStart := time.Date(2020, 1, 20, 17, 42, 40, 0, time.UTC)
	gh.Add(githubtest.Run{Status: "completed", Conclusion: "failure", HeadSHA: sha, Branch: "main", CreatedAt: logStart, StartedAt: logStart, UpdatedAt: logStart,
		Jobs: []githubtest.Job{{ID: 399444496, Name: "build", Status: "completed", Conclusion: "failure", Log: githubtest.JobLog(),
			StartedAt: logStart, CompletedAt: logStart.Add(2 * time.Minute),
			Steps: []githubtest.Step{
				{Name: "Set up job", Status: "completed", Conclusion: "success", StartedAt: logStart, CompletedAt: logStart.Add(time.Second)},
				{Name: "Run Tests", Status: "completed", Conclusion: "failure", StartedAt: logStart.Add(13 * time.Second), CompletedAt: logStart.Add(18 * time.Second)},
			}}}})
	s := newSource(t, gh, nil)
	if _, err := s.Runs(context.Background(), "api", 1); err != nil {
		t.Fatal(err)
	}
	var lines []string
	if err := s.Logs(context.Background(), "30433642", "build/Run Tests", true, func(l core.LogLine) { lines = append(lines, l.Text) }); err != nil {
		t.Fatal(err)
	}
	want := []string{"##[group]Run bundle exec rake test", "bundle exec rake test", "112 runs, 356 assertions, 1 failures, 0 errors, 0 skips", "##[error]Process completed with exit code 1."}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("step log =\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	lines = nil
	if err := s.Logs(context.Background(), "30433642", "build", false, func(l core.LogLine) { lines = append(lines, l.Text) }); err != nil {
		t.Fatal(err)
	}
	if len(lines) != 10 {
		t.Errorf("job log has %d lines, want all 10", len(lines))
	}
}

// A repository or workflow GitHub does not know is reported with what to
// check, in health and from Runs.
func TestUnknownWorkflowSaysWhatToCheck(t *testing.T) {
	gh := githubtest.New("octo-org", "octo-repo", "ci.yml")
	defer gh.Close()
	s := newSource(t, gh, func(c *Config) { c.Workflow = "deploy.yml" })
	_, err := s.Runs(context.Background(), "api", 1)
	if err == nil || !strings.Contains(err.Error(), "check repository octo-org/octo-repo and workflow deploy.yml") {
		t.Fatalf("Runs = %v, want a 404 naming what to check", err)
	}
	if degraded, msg := s.Health(); !degraded || !strings.Contains(msg, "404") {
		t.Errorf("health = %v %q, want degraded with the 404", degraded, msg)
	}
}

func TestConfigIsChecked(t *testing.T) {
	_, err := New(Config{Repository: "no-slash", Webhook: Webhook{Listen: "127.0.0.1:0"}})
	for _, want := range []string{"repository: expected owner/name", "workflow:", "webhook.secret"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New = %v, want it to say %q", err, want)
		}
	}
}

// A green run carries the migrations of its commit, read in the local
// clone migrations.dir is in; a commit the clone has not fetched leaves
// them unknown, saying so.
func TestGreenRunCarriesItsCommitsMigrations(t *testing.T) {
	repo := gittest.New(t)
	commit := repo.Commit("db/migrations/0001_orders.up.sql", "CREATE TABLE orders (id bigint PRIMARY KEY);\n", "orders")
	gh := githubtest.New("octo-org", "octo-repo", "ci.yml")
	defer gh.Close()
	add := func(head string, at time.Time) *githubtest.Run {
		return gh.Add(githubtest.Run{Status: "completed", Conclusion: "success", HeadSHA: head, Branch: "main", CreatedAt: at, StartedAt: at, UpdatedAt: at.Add(time.Minute),
			Jobs: []githubtest.Job{{ID: at.Unix(), Name: "build", Status: "completed", Conclusion: "success", StartedAt: at, CompletedAt: at.Add(time.Minute),
				Steps: []githubtest.Step{step("Build", "completed", "success", 0, time.Minute)}}}})
	}
	known, unfetched := add(commit, t0), add(sha, t0.Add(time.Hour))
	s := newSource(t, gh, func(c *Config) { c.MigrationsDir = filepath.Join(repo.Dir, "db", "migrations") })
	runs, err := s.Runs(context.Background(), "api", 10)
	if err != nil || len(runs) != 2 {
		t.Fatalf("runs = %v, %v", runs, err)
	}
	for _, r := range runs {
		switch r.ID {
		case runID(known.ID, 1):
			if r.MigrationsUnknown != "" || len(r.Migrations) != 1 || r.Migrations[0].ID != "0001_orders" || r.Migrations[0].Kind != core.MigrationExpand {
				t.Errorf("the run of %s: %+v, unknown %q; want 0001_orders, expand", commit[:12], r.Migrations, r.MigrationsUnknown)
			}
		case runID(unfetched.ID, 1):
			if len(r.Migrations) != 0 || !strings.Contains(r.MigrationsUnknown, "commit "+sha[:12]+" is not in the repository") {
				t.Errorf("the run of a commit the clone lacks: %+v, unknown %q", r.Migrations, r.MigrationsUnknown)
			}
		default:
			t.Errorf("unexpected run %s", r.ID)
		}
	}
}
