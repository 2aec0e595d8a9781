package gitlabci

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/plugins/gitlabci/gitlabtest"
	"github.com/ripcordhq/ripcord/plugins/internal/gitfacts/gittest"
)

const sha = "50f0acb76a40e34a4ff304f7347dcc6587da8a14"

var t0 = time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)

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

func newSource(t *testing.T, gl *gitlabtest.Server, edit func(*Config)) *Source {
	t.Helper()
	cfg := Config{Service: "api", Project: gl.Project, Token: "glpat-test", APIURL: gl.APIURL(),
		ArtifactJob: "build", ArtifactPath: "dist/api", Poll: 30 * time.Millisecond, PollActive: 10 * time.Millisecond, Logf: t.Logf}
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

func (w *watcher) latest(id string) core.PipelineRun {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := len(w.seen) - 1; i >= 0; i-- {
		if w.seen[i].ID == id {
			return w.seen[i]
		}
	}
	return core.PipelineRun{}
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

// A pipeline goes pending → running → failed: its jobs, grouped by stage,
// show each state with their times; the run carries CI_COMMIT_SHA and its
// ref as its branch.
func TestPipelineGoesPendingRunningFailedJobByJob(t *testing.T) {
	gl := gitlabtest.New("shop/api")
	defer gl.Close()
	p := gl.Add(gitlabtest.Pipeline{Status: "pending", Ref: "main", SHA: sha, CreatedAt: t0, UpdatedAt: t0, Jobs: []gitlabtest.Job{
		{ID: 1, Name: "build", Stage: "build", Status: "pending"},
		{ID: 2, Name: "unit", Stage: "test", Status: "created"},
		{ID: 3, Name: "lint", Stage: "test", Status: "created"},
	}})
	s := newSource(t, gl, nil)
	w := watch(t, s)
	waitFor(t, "the pending pipeline", func() bool { return w.latest("287").State == core.RunQueued })
	gl.Update(func() {
		p.Status, p.UpdatedAt = "running", t0.Add(time.Second)
		p.Jobs[0].Status, p.Jobs[0].StartedAt, p.Jobs[0].FinishedAt = "success", t0.Add(time.Second), t0.Add(5*time.Second)
		p.Jobs[1].Status, p.Jobs[1].StartedAt = "running", t0.Add(5*time.Second)
	})
	waitFor(t, "unit running", func() bool {
		r := w.latest("287")
		return len(r.Stages) == 2 && len(r.Stages[1].Steps) == 2 && r.Stages[1].Steps[0].State == core.RunRunning
	})
	gl.Update(func() {
		p.Status, p.UpdatedAt = "failed", t0.Add(20*time.Second)
		p.Jobs[1].Status, p.Jobs[1].FinishedAt = "failed", t0.Add(20*time.Second)
		p.Jobs[2].Status = "skipped"
	})
	waitFor(t, "the failed pipeline", func() bool { return w.latest("287").State == core.RunFailed })
	if got := w.states("287"); len(got) != 3 || got[0] != core.RunQueued || got[1] != core.RunRunning || got[2] != core.RunFailed {
		t.Errorf("states = %v, want queued, running, failed", got)
	}
	r := w.latest("287")
	if r.Commit != sha || r.Branch != "main" || r.Version != sha[:8] || r.ArtifactDigest != "" {
		t.Errorf("run = commit %q branch %q version %q digest %q", r.Commit, r.Branch, r.Version, r.ArtifactDigest)
	}
	if r.Stages[0].Name != "build" || r.Stages[0].State != core.RunSucceeded || r.Stages[0].Steps[0].FinishedAt.Sub(r.Stages[0].Steps[0].StartedAt) != 4*time.Second {
		t.Errorf("build stage = %+v", r.Stages[0])
	}
	if r.Stages[1].Name != "test" || r.Stages[1].State != core.RunFailed || r.Stages[1].Steps[0].Name != "unit" || r.Stages[1].Steps[1].State != core.RunSkipped {
		t.Errorf("test stage = %+v", r.Stages[1])
	}
	gate := core.EvaluateGates([]core.GateSpec{{Name: core.GatePipeline}}, core.GateInput{Release: core.Release{Version: r.Version}, Pipeline: &r}, nil)
	if gate[0].Status != core.GateFail || !strings.Contains(gate[0].Reason, "test › unit") {
		t.Errorf("pipeline gate = %s %q", gate[0].Status, gate[0].Reason)
	}
}

// A green pipeline's release is the artifact file of the named job: its
// sha256, its bytes kept, its version from the version file.
func TestGreenPipelineIsAReleaseFromTheJobsArtifact(t *testing.T) {
	gl := gitlabtest.New("shop/api")
	defer gl.Close()
	bin := []byte("\x7fELF the build")
	gl.Add(gitlabtest.Pipeline{Status: "success", Ref: "main", SHA: sha, CreatedAt: t0, UpdatedAt: t0.Add(time.Minute), Jobs: []gitlabtest.Job{
		{ID: 1, Name: "build", Stage: "build", Status: "success", StartedAt: t0, FinishedAt: t0.Add(time.Minute),
			Files: map[string][]byte{"dist/api": bin, "VERSION": []byte("v2.1.0\n")}},
	}})
	dir := t.TempDir()
	s := newSource(t, gl, func(c *Config) { c.VersionPath, c.DownloadDir = "VERSION", dir })
	runs, err := s.Runs(context.Background(), "api", 5)
	if err != nil || len(runs) != 1 {
		t.Fatalf("runs = %v, %v", runs, err)
	}
	sum := sha256.Sum256(bin)
	if runs[0].Version != "v2.1.0" || runs[0].ArtifactDigest != "sha256:"+hex.EncodeToString(sum[:]) || !runs[0].Green() {
		t.Fatalf("run = %+v", runs[0])
	}
	if got, err := os.ReadFile(filepath.Join(dir, hex.EncodeToString(sum[:]))); err != nil || string(got) != string(bin) {
		t.Errorf("kept artifact = %q, %v", got, err)
	}
}

// A tag's pipeline is built from no branch: the branch stays unknown.
func TestTagPipelineHasNoBranch(t *testing.T) {
	gl := gitlabtest.New("shop/api")
	defer gl.Close()
	gl.Add(gitlabtest.Pipeline{Status: "success", Ref: "v2.1.0", SHA: sha, CreatedAt: t0, UpdatedAt: t0, Jobs: []gitlabtest.Job{
		{ID: 1, Name: "build", Stage: "build", Status: "success", Tag: true}}})
	s := newSource(t, gl, func(c *Config) { c.Ref = "*" })
	runs, err := s.Runs(context.Background(), "api", 5)
	if err != nil || len(runs) != 1 {
		t.Fatalf("runs = %v, %v", runs, err)
	}
	if runs[0].Branch != "" {
		t.Errorf("a tag pipeline's branch = %q, want unknown", runs[0].Branch)
	}
}

// Play runs a stage's manual job; retry re-runs a failed pipeline's failed
// jobs; a plain retry creates a pipeline on the ref; cancel cancels.
func TestPlayRetryAndNewPipeline(t *testing.T) {
	gl := gitlabtest.New("shop/api")
	defer gl.Close()
	gl.Add(gitlabtest.Pipeline{ID: 10, Status: "failed", Ref: "main", SHA: sha, CreatedAt: t0, UpdatedAt: t0, Jobs: []gitlabtest.Job{
		{ID: 1, Name: "unit", Stage: "test", Status: "failed"}}})
	gl.Add(gitlabtest.Pipeline{ID: 11, Status: "manual", Ref: "main", SHA: "1111111111111111111111111111111111111111", CreatedAt: t0.Add(time.Minute), UpdatedAt: t0.Add(time.Minute), Jobs: []gitlabtest.Job{
		{ID: 5, Name: "build", Stage: "build", Status: "success"}, {ID: 6, Name: "publish", Stage: "release", Status: "manual"}}})
	s := newSource(t, gl, func(c *Config) { c.Poll = time.Hour })
	ctx := context.Background()
	if _, err := s.Runs(ctx, "api", 5); err != nil {
		t.Fatal(err)
	}
	if id, err := s.Trigger(ctx, "api", "11111111", "release"); err != nil || id != "11" {
		t.Fatalf("play: %q %v", id, err)
	}
	if got := gl.Played(); len(got) != 1 || got[0] != 6 {
		t.Errorf("played = %v, want the manual job 6", got)
	}
	if id, err := s.Trigger(ctx, "api", sha[:8], "test"); err != nil || id != "10" {
		t.Fatalf("retry: %q %v", id, err)
	}
	if got := gl.Retried(); len(got) != 1 || got[0] != 10 {
		t.Errorf("retried = %v, want pipeline 10", got)
	}
	if _, err := s.Trigger(ctx, "api", "", ""); err != nil {
		t.Fatal(err)
	}
	if got := gl.Created(); len(got) != 1 || got[0] != "main" {
		t.Errorf("created = %v, want a pipeline on main", got)
	}
	if err := s.Cancel(ctx, "11"); err != nil {
		t.Fatal(err)
	}
	if got := gl.Canceled(); len(got) != 1 || got[0] != 11 {
		t.Errorf("canceled = %v, want pipeline 11", got)
	}
}

// Long lists are paged; idle polls are conditional and answered 304.
func TestPagedListsAndNotModifiedPolls(t *testing.T) {
	gl := gitlabtest.New("shop/api")
	defer gl.Close()
	gl.SetPageSize(2)
	for i := range 5 {
		at := t0.Add(time.Duration(i) * time.Minute)
		gl.Add(gitlabtest.Pipeline{Status: "failed", Ref: "main", SHA: sha, CreatedAt: at, UpdatedAt: at, Jobs: []gitlabtest.Job{
			{ID: int64(10*i + 1), Name: "a", Stage: "build", Status: "success"},
			{ID: int64(10*i + 2), Name: "b", Stage: "test", Status: "failed"},
			{ID: int64(10*i + 3), Name: "c", Stage: "test", Status: "skipped"}}})
	}
	s := newSource(t, gl, func(c *Config) { c.History = 5 })
	runs, err := s.Runs(context.Background(), "api", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 5 {
		t.Fatalf("runs = %d, want 5 across 3 pages", len(runs))
	}
	for _, r := range runs {
		if n := len(r.Stages[0].Steps) + len(r.Stages[1].Steps); n != 3 {
			t.Fatalf("pipeline %s has %d jobs, want 3 across 2 pages", r.ID, n)
		}
	}
	before := len(gl.Requests())
	waitFor(t, "more idle polls", func() bool { return len(gl.Requests()) >= before+6 })
	for _, r := range gl.Requests()[before:] {
		if r.Status != 304 {
			t.Fatalf("idle poll %s answered %d, want 304", r.Path, r.Status)
		}
	}
}

// A 429 with Retry-After is waited out before the next request.
func TestRateLimitRetryAfterIsObeyed(t *testing.T) {
	gl := gitlabtest.New("shop/api")
	defer gl.Close()
	gl.Add(gitlabtest.Pipeline{Status: "success", Ref: "main", SHA: sha, CreatedAt: t0, UpdatedAt: t0, Jobs: []gitlabtest.Job{
		{ID: 1, Name: "build", Stage: "build", Status: "success", Files: map[string][]byte{"dist/api": []byte("bin")}}}})
	gl.Fail429(1, 1)
	s := newSource(t, gl, nil)
	waitFor(t, "health to say it waits", func() bool { d, msg := s.Health(); return d && strings.Contains(msg, "rate limited by GitLab") })
	waitFor(t, "polling to resume", func() bool { return len(gl.Requests()) >= 2 })
	reqs := gl.Requests()
	if reqs[0].Status != 429 || reqs[1].At.Sub(reqs[0].At) < 900*time.Millisecond {
		t.Errorf("requests = %+v, want the second a second after the 429", reqs[:2])
	}
	waitFor(t, "health to recover", func() bool { d, msg := s.Health(); return !d && strings.Contains(msg, "API requests left") })
}

// A job's trace tail without colours and section markers.
func TestLogsAreTheJobsTrace(t *testing.T) {
	gl := gitlabtest.New("shop/api")
	defer gl.Close()
	gl.Add(gitlabtest.Pipeline{Status: "failed", Ref: "main", SHA: sha, CreatedAt: t0, UpdatedAt: t0, Jobs: []gitlabtest.Job{
		{ID: 7, Name: "unit", Stage: "test", Status: "failed", Trace: gitlabtest.Trace()}}})
	s := newSource(t, gl, func(c *Config) { c.LogTail = 4 })
	if _, err := s.Runs(context.Background(), "api", 1); err != nil {
		t.Fatal(err)
	}
	var lines []string
	if err := s.Logs(context.Background(), "287", "test/unit", false, func(l core.LogLine) { lines = append(lines, l.Text) }); err != nil {
		t.Fatal(err)
	}
	want := "--- FAIL: TestCheckout (0.02s)\n    checkout_test.go:42: cart is undefined\nFAIL\nERROR: Job failed: exit code 1"
	if got := strings.Join(lines, "\n"); got != want {
		t.Errorf("trace tail =\n%q\nwant\n%q", got, want)
	}
}

func TestUnknownProjectSaysWhatToCheck(t *testing.T) {
	gl := gitlabtest.New("shop/api")
	defer gl.Close()
	s := newSource(t, gl, func(c *Config) { c.Project = "shop/nope" })
	if _, err := s.Runs(context.Background(), "api", 1); err == nil || !strings.Contains(err.Error(), "check project shop/nope") {
		t.Fatalf("Runs = %v", err)
	}
}

// Retrying a failed pipeline runs its failed jobs again in the same
// pipeline (GitLab lists only the newest try of each job): the run goes
// back in flight, is polled fast again, and turns green with its release.
func TestRetriedPipelineRunsAgainAndTurnsGreen(t *testing.T) {
	gl := gitlabtest.New("shop/api")
	defer gl.Close()
	bin := []byte("\x7fELF the build")
	p := gl.Add(gitlabtest.Pipeline{Status: "failed", Ref: "main", SHA: sha, CreatedAt: t0, UpdatedAt: t0.Add(time.Minute), Jobs: []gitlabtest.Job{
		{ID: 1, Name: "build", Stage: "build", Status: "success", StartedAt: t0, FinishedAt: t0.Add(20 * time.Second), Files: map[string][]byte{"dist/api": bin}},
		{ID: 2, Name: "unit", Stage: "test", Status: "failed", StartedAt: t0.Add(20 * time.Second), FinishedAt: t0.Add(time.Minute)},
	}})
	s := newSource(t, gl, func(c *Config) { c.Poll = time.Hour; c.PollActive = 10 * time.Millisecond })
	w := watch(t, s)
	waitFor(t, "the failed pipeline", func() bool { return w.latest("287").State == core.RunFailed })

	if id, err := s.Trigger(context.Background(), "api", sha[:8], "test"); err != nil || id != "287" {
		t.Fatalf("retry = %q, %v", id, err)
	}
	if got := gl.Retried(); len(got) != 1 || got[0] != 287 {
		t.Fatalf("retried = %v, want pipeline 287", got)
	}
	// Poll is an hour: only the retry's own wake-up and the fast polling of
	// a run in flight can show what follows.
	waitFor(t, "the new try of unit pending", func() bool { return w.latest("287").State == core.RunQueued })
	gl.Update(func() {
		p.Status, p.UpdatedAt = "running", t0.Add(2*time.Minute)
		p.Jobs[1].Status, p.Jobs[1].StartedAt = "running", t0.Add(2*time.Minute)
	})
	waitFor(t, "the retried job running", func() bool { return w.latest("287").State == core.RunRunning })
	gl.Update(func() {
		p.Status, p.UpdatedAt = "success", t0.Add(3*time.Minute)
		p.Jobs[1].Status, p.Jobs[1].FinishedAt = "success", t0.Add(3*time.Minute)
	})
	waitFor(t, "the green pipeline", func() bool { return w.latest("287").State == core.RunSucceeded })
	r := w.latest("287")
	if got := w.states("287"); len(got) != 4 || got[0] != core.RunFailed || got[1] != core.RunQueued || got[2] != core.RunRunning || got[3] != core.RunSucceeded {
		t.Errorf("states = %v, want failed, queued, running, succeeded", got)
	}
	if len(r.Stages) != 2 || len(r.Stages[1].Steps) != 1 || r.Stages[1].Steps[0].State != core.RunSucceeded {
		t.Errorf("test stage = %+v, want the newest try of unit only", r.Stages)
	}
	sum := sha256.Sum256(bin)
	if !r.Green() || r.ArtifactDigest != "sha256:"+hex.EncodeToString(sum[:]) {
		t.Errorf("retried run = %+v, want green with the build's digest", r)
	}
}

// A token GitLab refuses is reported as refused, in Runs and in health,
// and the token itself appears nowhere: not in messages, not in a URL
// (it travels in the PRIVATE-TOKEN header only).
func TestRefusedTokenIsNamedButNeverShown(t *testing.T) {
	const secret = "glpat-Zk3vQ9sP0wXbT7yR2mLc"
	gl := gitlabtest.New("shop/api")
	defer gl.Close()
	gl.RequireToken("glpat-the-right-one")
	gl.Add(gitlabtest.Pipeline{Status: "success", Ref: "main", SHA: sha, CreatedAt: t0, UpdatedAt: t0})
	var logged []string
	var mu sync.Mutex
	s := newSource(t, gl, func(c *Config) {
		c.Token = secret
		c.Logf = func(format string, args ...any) {
			mu.Lock()
			logged = append(logged, fmt.Sprintf(format, args...))
			mu.Unlock()
		}
	})
	_, err := s.Runs(context.Background(), "api", 1)
	if err == nil || !strings.Contains(err.Error(), "the token was refused (401)") {
		t.Fatalf("Runs = %v, want the token refused", err)
	}
	degraded, msg := s.Health()
	if !degraded || !strings.Contains(msg, "the token was refused (401)") {
		t.Errorf("health = %v %q, want degraded naming the refused token", degraded, msg)
	}
	mu.Lock()
	texts := append([]string{err.Error(), msg}, logged...)
	mu.Unlock()
	for _, r := range gl.Requests() {
		texts = append(texts, r.Path+"?"+r.Query)
	}
	for _, text := range texts {
		if strings.Contains(text, secret) {
			t.Errorf("the token appears in %q", text)
		}
	}
	for _, tok := range gl.Tokens() {
		if tok != secret {
			t.Errorf("a request carried PRIVATE-TOKEN %q, want the configured token", tok)
		}
	}
}

// A green pipeline without the release file (a job or path misnamed in
// artifact:) is a setting to fix: health says which pipeline and why
// until a green pipeline gives a release.
func TestGreenPipelineWithoutTheReleaseFileSaysSoInHealth(t *testing.T) {
	gl := gitlabtest.New("shop/api")
	defer gl.Close()
	gl.Add(gitlabtest.Pipeline{Status: "success", Ref: "main", SHA: sha, CreatedAt: t0, UpdatedAt: t0, Jobs: []gitlabtest.Job{
		{ID: 1, Name: "compile", Stage: "build", Status: "success", Files: map[string][]byte{"dist/api": []byte("bin")}}}})
	s := newSource(t, gl, nil) // artifact job "build": no such job
	runs, err := s.Runs(context.Background(), "api", 1)
	if err != nil || len(runs) != 1 || runs[0].ArtifactDigest != "" {
		t.Fatalf("runs = %+v, %v; want one green run without a release", runs, err)
	}
	if degraded, msg := s.Health(); !degraded || !strings.Contains(msg, "pipeline 287 succeeded without a successful job build: no release (check artifact: in the settings)") {
		t.Errorf("health = %v %q", degraded, msg)
	}
	gl.Add(gitlabtest.Pipeline{Status: "success", Ref: "main", SHA: sha, CreatedAt: t0.Add(time.Minute), UpdatedAt: t0.Add(time.Minute), Jobs: []gitlabtest.Job{
		{ID: 2, Name: "build", Stage: "build", Status: "success", Files: map[string][]byte{"dist/api": []byte("bin")}}}})
	waitFor(t, "health to clear", func() bool { d, msg := s.Health(); return !d && !strings.Contains(msg, "no release") })
}

// A pipeline waiting for a person (a manual job) can wait for days: it is
// read with the list, by its updated_at, not polled fast like a pipeline
// in flight; playing its job polls it fast again.
func TestPipelineWaitingForAPersonIsNotPolledFast(t *testing.T) {
	gl := gitlabtest.New("shop/api")
	defer gl.Close()
	gl.Add(gitlabtest.Pipeline{Status: "manual", Ref: "main", SHA: sha, CreatedAt: t0, UpdatedAt: t0, Jobs: []gitlabtest.Job{
		{ID: 1, Name: "build", Stage: "build", Status: "success"},
		{ID: 2, Name: "publish", Stage: "release", Status: "manual"}}})
	s := newSource(t, gl, func(c *Config) { c.Poll, c.PollActive = 100*time.Millisecond, 5*time.Millisecond })
	runs, err := s.Runs(context.Background(), "api", 1)
	if err != nil || len(runs) != 1 || runs[0].State != core.RunWaiting {
		t.Fatalf("runs = %+v, %v; want one waiting", runs, err)
	}
	lists := func(from int) (lists, jobs int) {
		for _, r := range gl.Requests()[from:] {
			switch {
			case strings.HasSuffix(r.Path, "/pipelines"):
				lists++
			case strings.HasSuffix(r.Path, "/jobs"):
				jobs++
			}
		}
		return lists, jobs
	}
	before := len(gl.Requests())
	waitFor(t, "three list polls", func() bool { n, _ := lists(before); return n >= 3 })
	if _, jobs := lists(before); jobs != 0 {
		t.Errorf("a waiting pipeline's jobs were read %d times in three idle polls, want none", jobs)
	}
	if _, err := s.Trigger(context.Background(), "api", sha[:8], "release"); err != nil {
		t.Fatal(err)
	}
	before = len(gl.Requests())
	waitFor(t, "the played pipeline polled fast", func() bool { _, jobs := lists(before); return jobs >= 5 })
}

// A green pipeline carries the migrations of its commit, read in the
// local clone migrations.dir is in; a failed one carries none.
func TestGreenPipelineCarriesItsCommitsMigrations(t *testing.T) {
	repo := gittest.New(t)
	commit := repo.Commit("db/migrations/0001_orders.up.sql", "CREATE TABLE orders (id bigint PRIMARY KEY);\n", "orders")
	gl := gitlabtest.New("shop/api")
	defer gl.Close()
	job := func(status string) []gitlabtest.Job {
		return []gitlabtest.Job{{ID: 1, Name: "build", Stage: "build", Status: status, StartedAt: t0, FinishedAt: t0.Add(time.Minute),
			Files: map[string][]byte{"dist/api": []byte("\x7fELF"), "VERSION": []byte("v2.1.0\n")}}}
	}
	green := gl.Add(gitlabtest.Pipeline{Status: "success", Ref: "main", SHA: commit, CreatedAt: t0, UpdatedAt: t0.Add(time.Minute), Jobs: job("success")})
	red := gl.Add(gitlabtest.Pipeline{Status: "failed", Ref: "main", SHA: commit, CreatedAt: t0.Add(time.Hour), UpdatedAt: t0.Add(time.Hour), Jobs: job("failed")})
	s := newSource(t, gl, func(c *Config) {
		c.VersionPath, c.DownloadDir, c.MigrationsDir = "VERSION", t.TempDir(), filepath.Join(repo.Dir, "db", "migrations")
	})
	runs, err := s.Runs(context.Background(), "api", 5)
	if err != nil || len(runs) != 2 {
		t.Fatalf("runs = %v, %v", runs, err)
	}
	for _, r := range runs {
		switch r.ID {
		case strconv.FormatInt(green.ID, 10):
			if r.MigrationsUnknown != "" || len(r.Migrations) != 1 || r.Migrations[0].ID != "0001_orders" || r.Migrations[0].Kind != core.MigrationExpand {
				t.Errorf("the green pipeline's migrations: %+v, unknown %q; want 0001_orders, expand", r.Migrations, r.MigrationsUnknown)
			}
		case strconv.FormatInt(red.ID, 10):
			if len(r.Migrations) != 0 || r.MigrationsUnknown != "" {
				t.Errorf("a failed pipeline carries migrations: %+v %q", r.Migrations, r.MigrationsUnknown)
			}
		}
	}
}
