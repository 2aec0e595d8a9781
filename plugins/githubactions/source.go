package githubactions

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/go-github/v93/github"
	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/plugins/internal/cihttp"
	"github.com/ripcordhq/ripcord/plugins/internal/migrations"
	"github.com/ripcordhq/ripcord/plugins/internal/runbook"
)

// Source is a core.PipelineSource reading one GitHub Actions workflow.
type Source struct {
	cfg      Config
	owner    string
	repo     string
	artifact *regexp.Regexp
	http     *cihttp.Conditional
	gh       *github.Client
	// blob fetches logs and artifacts from the storage GitHub redirects
	// to, without the token: those URLs are signed and on other hosts.
	blob *http.Client

	// pollMu serialises polls (the loop, Runs before the first poll, a
	// webhook's wake-up).
	pollMu     sync.Mutex
	resolvedID int64 // the workflow's id once resolved by name
	listedAt   time.Time
	cycles     int

	mu       sync.Mutex
	book     *runbook.Book[string, *run] // by Ripcord run id
	polled   bool
	problem  string // the last poll's failure, for health
	download string // the last download's failure, for health
	webhooks webhookStats

	poller *cihttp.Poller
	// migrations reads a green run's migrations at its commit.
	migrations *migrations.AtCommit
	server     *http.Server
	addr       string
}

// run is one attempt of one workflow run, as last read.
type run struct {
	runbook.Run
	ghID    int64
	attempt int
	updated time.Time // the run's updated_at when last read
	jobs    []*github.WorkflowJob
	final   bool // completed and its release (if any) read
}

var _ core.PipelineSource = (*Source)(nil)

// New checks the config and starts polling (and the webhook receiver).
// Close stops both.
func New(cfg Config) (*Source, error) {
	if err := cfg.normalize(); err != nil {
		return nil, fmt.Errorf("github-actions: %w", err)
	}
	owner, repo, _ := strings.Cut(cfg.Repository, "/")
	pattern, _ := artifactPattern(cfg.Artifact)
	cond := cihttp.NewConditional(cfg.Transport, cfg.Now)
	opts := []github.ClientOptionsFunc{
		github.WithTransport(cond),
		github.WithURLs(&cfg.APIURL, &cfg.APIURL),
		github.WithUserAgent("ripcord-github-actions"),
		github.WithTimeout(30 * time.Second),
	}
	if cfg.Token != "" {
		opts = append(opts, github.WithAuthToken(cfg.Token))
	}
	gh, err := github.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("github-actions: %w", err)
	}
	blobTransport := cfg.Transport
	if blobTransport == nil {
		blobTransport = http.DefaultTransport
	}
	s := &Source{
		cfg: cfg, owner: owner, repo: repo, artifact: pattern, http: cond, gh: gh, migrations: &migrations.AtCommit{Dir: cfg.MigrationsDir},
		blob: &http.Client{Transport: blobTransport, Timeout: 5 * time.Minute},
		book: runbook.New[string, *run](sameRun), poller: cihttp.NewPoller(),
	}
	if id, ok := workflowID(cfg.Workflow); ok {
		s.resolvedID = id
	}
	if cfg.Webhook.Listen != "" {
		if err := s.listen(); err != nil {
			return nil, fmt.Errorf("github-actions: %w", err)
		}
	}
	s.poller.Start(cihttp.Polling{Poll: cfg.Poll, PollActive: cfg.PollActive, Round: s.poll, Active: s.active, Wait: s.http.Wait, Poked: s.relist})
	return s, nil
}

// Close stops polling and the webhook receiver.
func (s *Source) Close() error {
	s.poller.Stop()
	if s.server != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = s.server.Shutdown(ctx)
	}
	return nil
}

// Requests counts the API requests sent (a 304 included).
func (s *Source) Requests() int64 { return s.http.Requests() }

// Budget is the API rate limit as GitHub last reported it.
func (s *Source) Budget() cihttp.Budget { return s.http.Budget() }

// Health says how the source is doing in a line a person can read: the
// API budget left, a rate limit being waited out, the last failure.
// degraded is set when something needs attention.
func (s *Source) Health() (degraded bool, message string) {
	b := s.http.Budget()
	now := s.cfg.Now()
	s.mu.Lock()
	problem, download, polled, hooks := s.problem, s.download, s.polled, s.webhooks
	s.mu.Unlock()
	var parts []string
	if wait := b.Until.Sub(now); wait > 0 {
		degraded = true
		parts = append(parts, fmt.Sprintf("rate limited by GitHub: waiting %s (until %s)", core.ShortDuration(wait), b.Until.UTC().Format("15:04:05")))
	}
	if problem != "" {
		degraded = true
		parts = append(parts, problem)
	}
	if download != "" {
		degraded = true
		parts = append(parts, download)
	}
	if b.Known {
		p := fmt.Sprintf("%d of %d API requests left", b.Remaining, b.Limit)
		if !b.Reset.IsZero() {
			p += " until " + b.Reset.UTC().Format("15:04")
		}
		if b.Limit > 0 && b.Remaining*10 < b.Limit {
			degraded = true
		}
		parts = append(parts, p)
	} else if !polled {
		parts = append(parts, "not polled yet")
	}
	if s.cfg.Webhook.Listen != "" {
		p := fmt.Sprintf("webhook on %s: %d received", s.addr, hooks.accepted)
		if hooks.refused > 0 {
			p += fmt.Sprintf(", %d refused (bad signature)", hooks.refused)
		}
		parts = append(parts, p)
	}
	return degraded, s.cfg.Repository + " " + s.cfg.Workflow + ": " + strings.Join(parts, "; ")
}

// relist has the poll a poke brings read the list (a webhook said
// something changed, or Ripcord just asked for a run).
func (s *Source) relist() {
	s.pollMu.Lock()
	s.listedAt = time.Time{}
	s.pollMu.Unlock()
}

func (s *Source) active() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for r := range s.book.All() {
		if !r.final {
			return true
		}
	}
	return false
}

// poll reads what changed: the run list when it is due, the jobs of every
// run in flight, and the release of every run that finished green.
func (s *Source) poll(ctx context.Context) {
	s.pollMu.Lock()
	defer s.pollMu.Unlock()
	err := s.pollLocked(ctx)
	s.mu.Lock()
	s.polled = true
	s.problem = ""
	if err != nil && ctx.Err() == nil {
		s.problem = err.Error()
		s.cfg.Logf("%v", err)
	}
	s.mu.Unlock()
}

func (s *Source) pollLocked(ctx context.Context) error {
	if s.http.Wait() > 0 {
		return nil
	}
	s.cycles++
	now := s.cfg.Now()
	// While runs are in flight their jobs are read every cycle and the
	// list every third, enough to see new runs and conclusions.
	listDue := s.listedAt.IsZero() || !s.active() || s.cycles%3 == 0 || now.Sub(s.listedAt) >= s.cfg.Poll
	if listDue {
		ghRuns, err := s.listRuns(ctx, s.cfg.History)
		if err != nil {
			return err
		}
		s.listedAt = now
		for _, gr := range ghRuns {
			if err := s.observeRun(ctx, gr); err != nil {
				return err
			}
		}
	}
	// Runs in flight the list did not just refresh.
	for _, r := range s.inFlight() {
		if listDue {
			continue
		}
		if err := s.refreshJobs(ctx, r); err != nil {
			return err
		}
		if r.allJobsDone() {
			// The jobs are done: the run's conclusion is one read away.
			gr, _, err := s.gh.Actions.GetWorkflowRunByID(ctx, s.owner, s.repo, r.ghID)
			if err != nil {
				return s.apiError("read run", err)
			}
			if err := s.observeRun(ctx, gr); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Source) inFlight() []*run {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*run
	for r := range s.book.All() {
		if !r.final {
			out = append(out, r)
		}
	}
	return out
}

// listRuns reads the newest runs of the workflow, page by page.
func (s *Source) listRuns(ctx context.Context, limit int) ([]*github.WorkflowRun, error) {
	branch := s.cfg.Branch
	if branch == "*" {
		branch = ""
	}
	opts := &github.ListWorkflowRunsOptions{Branch: branch, ListOptions: github.ListOptions{PerPage: min(limit, 100)}}
	var out []*github.WorkflowRun
	for {
		var (
			page *github.WorkflowRuns
			resp *github.Response
			err  error
		)
		switch {
		case s.resolvedID > 0:
			page, resp, err = s.gh.Actions.ListWorkflowRunsByID(ctx, s.owner, s.repo, s.resolvedID, opts)
		case isWorkflowFile(s.cfg.Workflow):
			page, resp, err = s.gh.Actions.ListWorkflowRunsByFileName(ctx, s.owner, s.repo, s.cfg.Workflow, opts)
		default:
			if err := s.resolveByName(ctx); err != nil {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, s.apiError("list runs", err)
		}
		out = append(out, page.WorkflowRuns...)
		if resp.NextPage == 0 || len(out) >= limit {
			break
		}
		opts.Page = resp.NextPage
	}
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// resolveByName finds the workflow's id from its name.
func (s *Source) resolveByName(ctx context.Context) error {
	opts := &github.ListOptions{PerPage: 100}
	var names []string
	for {
		page, resp, err := s.gh.Actions.ListWorkflows(ctx, s.owner, s.repo, opts)
		if err != nil {
			return s.apiError("list workflows", err)
		}
		for _, w := range page.Workflows {
			if w.GetName() == s.cfg.Workflow || strings.TrimPrefix(w.GetPath(), ".github/workflows/") == s.cfg.Workflow {
				s.resolvedID = w.GetID()
				return nil
			}
			names = append(names, w.GetName())
		}
		if resp.NextPage == 0 {
			break
		}
		opts.Page = resp.NextPage
	}
	return fmt.Errorf("github-actions: %s has no workflow named %q (it has: %s)", s.cfg.Repository, s.cfg.Workflow, strings.Join(names, ", "))
}

// observeRun brings one listed run up to date: its jobs while it runs or
// when it changed, its release once it finished green.
func (s *Source) observeRun(ctx context.Context, gr *github.WorkflowRun) error {
	id := runID(gr.GetID(), gr.GetRunAttempt())
	s.mu.Lock()
	r, known := s.book.Get(id)
	if !known {
		r = &run{ghID: gr.GetID(), attempt: max(gr.GetRunAttempt(), 1)}
	}
	unchanged := known && r.final && gr.GetUpdatedAt().Time.Equal(r.updated)
	s.mu.Unlock()
	if unchanged {
		return nil
	}
	if gr.GetStatus() != "completed" || !known || !r.final || !gr.GetUpdatedAt().Time.Equal(r.updated) {
		if err := s.readJobs(ctx, r); err != nil {
			return err
		}
	}
	info := s.mapRun(gr, r.jobs)
	final := gr.GetStatus() == "completed"
	if final && info.State == core.RunSucceeded {
		version, digest, err := s.release(ctx, gr)
		if err != nil {
			return err
		}
		info.Version, info.ArtifactDigest = version, digest
	}
	s.mu.Lock()
	r.updated = gr.GetUpdatedAt().Time
	r.final = final
	s.book.Put(id, r)
	s.book.Update(r, info)
	s.mu.Unlock()
	return nil
}

// refreshJobs re-reads a run's jobs and publishes the run if they changed.
func (s *Source) refreshJobs(ctx context.Context, r *run) error {
	before := len(r.jobs)
	changed, err := s.readJobsChanged(ctx, r)
	if err != nil || (!changed && before == len(r.jobs)) {
		return err
	}
	s.mu.Lock()
	info := r.Info
	info.Stages = stages(r.jobs)
	if info.State == core.RunQueued && anyJobStarted(r.jobs) {
		info.State = core.RunRunning
	}
	s.book.Update(r, info)
	s.mu.Unlock()
	return nil
}

func (s *Source) readJobs(ctx context.Context, r *run) error {
	_, err := s.readJobsChanged(ctx, r)
	return err
}

// readJobsChanged reads every page of a run's jobs (its latest attempt)
// and reports whether GitHub said anything new.
func (s *Source) readJobsChanged(ctx context.Context, r *run) (bool, error) {
	opts := &github.ListWorkflowJobsOptions{Filter: "latest", ListOptions: github.ListOptions{PerPage: 100}}
	var jobs []*github.WorkflowJob
	changed := false
	for {
		page, resp, err := s.gh.Actions.ListWorkflowJobs(ctx, s.owner, s.repo, r.ghID, opts)
		if err != nil {
			return false, s.apiError("list jobs", err)
		}
		if resp.Header.Get(cihttp.NotModifiedHeader) == "" {
			changed = true
		}
		for _, j := range page.Jobs {
			// "latest" may still list an earlier attempt's jobs that the
			// re-run did not repeat; they belong to this attempt's result.
			jobs = append(jobs, j)
		}
		if resp.NextPage == 0 {
			break
		}
		opts.Page = resp.NextPage
	}
	r.jobs = jobs
	return changed, nil
}

func (r *run) allJobsDone() bool {
	if len(r.jobs) == 0 {
		return false
	}
	for _, j := range r.jobs {
		if j.GetStatus() != "completed" {
			return false
		}
	}
	return true
}

func anyJobStarted(jobs []*github.WorkflowJob) bool {
	for _, j := range jobs {
		if j.GetStatus() == "in_progress" || j.GetStatus() == "completed" {
			return true
		}
	}
	return false
}

// sameRun says whether a new view of a run changes nothing worth
// telling. A run's finish is its updated_at, which can move while its
// jobs stay as they were, so it counts too.
func sameRun(a, b core.PipelineRun) bool {
	return a.FinishedAt.Equal(b.FinishedAt) && runbook.Same(a, b)
}

// runID is the Ripcord id of one attempt of a run: GitHub's id, with the
// attempt after a dot from the second attempt on, so a re-run is a run of
// its own beside the attempt it repeats.
func runID(id int64, attempt int) string {
	if attempt <= 1 {
		return strconv.FormatInt(id, 10)
	}
	return fmt.Sprintf("%d.%d", id, attempt)
}

func parseRunID(s string) (id int64, attempt int, err error) {
	num, att, hasAttempt := strings.Cut(s, ".")
	id, err = strconv.ParseInt(num, 10, 64)
	if err != nil || id <= 0 {
		return 0, 0, fmt.Errorf("%q is not a GitHub Actions run id", s)
	}
	attempt = 1
	if hasAttempt {
		attempt, err = strconv.Atoi(att)
		if err != nil || attempt < 1 {
			return 0, 0, fmt.Errorf("%q is not a GitHub Actions run id", s)
		}
	}
	return id, attempt, nil
}

// mapRun turns a run and its jobs into a Ripcord run. The commit and the
// branch are GitHub's own; a run of a fork's branch has no branch of
// this repository, so it is left unknown.
func (s *Source) mapRun(gr *github.WorkflowRun, jobs []*github.WorkflowJob) core.PipelineRun {
	info := core.PipelineRun{
		ID:      runID(gr.GetID(), gr.GetRunAttempt()),
		Service: s.cfg.Service,
		Commit:  gr.GetHeadSHA(),
		State:   runState(gr.GetStatus(), gr.GetConclusion()),
		Stages:  stages(jobs),
	}
	if head, base := gr.GetHeadRepository().GetFullName(), gr.GetRepository().GetFullName(); head == "" || base == "" || strings.EqualFold(head, base) {
		info.Branch = gr.GetHeadBranch()
	}
	info.StartedAt = cmp.Or(gr.GetRunStartedAt().Time, gr.GetCreatedAt().Time).UTC()
	if gr.GetStatus() == "completed" {
		info.FinishedAt = gr.GetUpdatedAt().UTC()
		for _, j := range jobs {
			if t := j.GetCompletedAt().Time; t.After(info.FinishedAt) {
				info.FinishedAt = t.UTC()
			}
		}
	}
	if info.State == core.RunQueued && anyJobStarted(jobs) {
		info.State = core.RunRunning
	}
	if !s.artifactHasVersion() && info.Commit != "" {
		info.Version = info.Commit[:min(12, len(info.Commit))]
	}
	if info.State == core.RunSucceeded {
		info.Migrations, info.MigrationsUnknown = s.migrations.Read(info.Commit)
	}
	return info
}

func (s *Source) artifactHasVersion() bool { return strings.Contains(s.cfg.Artifact, "{version}") }

// stages maps jobs to stages in the order they were created, each job's
// steps to steps.
func stages(jobs []*github.WorkflowJob) []core.Stage {
	sorted := slices.Clone(jobs)
	slices.SortStableFunc(sorted, func(a, b *github.WorkflowJob) int {
		return cmp.Or(a.GetCreatedAt().Time.Compare(b.GetCreatedAt().Time), cmp.Compare(a.GetID(), b.GetID()))
	})
	out := make([]core.Stage, 0, len(sorted))
	for _, j := range sorted {
		st := core.Stage{Name: j.GetName(), State: runState(j.GetStatus(), j.GetConclusion())}
		steps := slices.Clone(j.Steps)
		slices.SortStableFunc(steps, func(a, b *github.TaskStep) int { return cmp.Compare(a.GetNumber(), b.GetNumber()) })
		for _, step := range steps {
			st.Steps = append(st.Steps, core.Step{
				Name:       step.GetName(),
				State:      runState(step.GetStatus(), step.GetConclusion()),
				StartedAt:  step.GetStartedAt().UTC(),
				FinishedAt: step.GetCompletedAt().UTC(),
			})
		}
		if len(st.Steps) == 0 {
			// A job not yet picked up by a runner has no steps: it is
			// its own one step, so the pane shows it waiting.
			st.Steps = []core.Step{{Name: j.GetName(), State: st.State, StartedAt: j.GetStartedAt().UTC(), FinishedAt: j.GetCompletedAt().UTC()}}
		}
		out = append(out, st)
	}
	return out
}

// runState maps GitHub's status and conclusion (of a run, job or step).
func runState(status, conclusion string) core.RunState {
	switch status {
	case "completed":
		switch conclusion {
		case "success", "neutral":
			return core.RunSucceeded
		case "skipped":
			return core.RunSkipped
		case "cancelled", "stale":
			return core.RunCanceled
		case "action_required":
			return core.RunWaiting
		default: // failure, timed_out, startup_failure
			return core.RunFailed
		}
	case "in_progress":
		return core.RunRunning
	case "waiting", "action_required":
		return core.RunWaiting
	default: // queued, requested, pending
		return core.RunQueued
	}
}

// release finds the run's release artifact: the version its name carries,
// its digest, and (with a download directory) its bytes. A green run
// without the artifact builds no release: Version stays empty.
func (s *Source) release(ctx context.Context, gr *github.WorkflowRun) (version, digest string, err error) {
	opts := &github.ListOptions{PerPage: 100}
	var found *github.Artifact
	var names []string
	for {
		page, resp, err := s.gh.Actions.ListWorkflowRunArtifacts(ctx, s.owner, s.repo, gr.GetID(), opts)
		if err != nil {
			return "", "", s.apiError("list artifacts", err)
		}
		for _, a := range page.Artifacts {
			names = append(names, a.GetName())
			if !s.artifact.MatchString(a.GetName()) {
				continue
			}
			if found == nil || a.GetCreatedAt().After(found.GetCreatedAt().Time) {
				found = a
			}
		}
		if resp.NextPage == 0 {
			break
		}
		opts.Page = resp.NextPage
	}
	if found == nil {
		s.cfg.Logf("run %d of %s succeeded without an artifact named %s (it has: %s): no release", gr.GetID(), s.cfg.Workflow, s.cfg.Artifact, strings.Join(names, ", "))
		return "", "", nil
	}
	if m := s.artifact.FindStringSubmatch(found.GetName()); len(m) == 2 {
		version = m[1]
	} else if sha := gr.GetHeadSHA(); sha != "" {
		version = sha[:min(12, len(sha))]
	}
	digest = found.GetDigest()
	if digest == "" {
		s.cfg.Logf("artifact %s of run %d has no digest (uploaded before upload-artifact v4): no release", found.GetName(), gr.GetID())
		return "", "", nil
	}
	if s.cfg.DownloadDir != "" {
		err := s.fetchArtifact(ctx, found)
		s.mu.Lock()
		s.download = ""
		if err != nil {
			s.download = err.Error()
		}
		s.mu.Unlock()
		if err != nil {
			s.cfg.Logf("%v", err)
		}
	}
	return version, digest, nil
}

// Runs returns the newest runs, newest first, once the first poll has
// read them; its failure when it found none.
func (s *Source) Runs(ctx context.Context, service string, limit int) ([]core.PipelineRun, error) {
	if err := s.poller.FirstPoll(ctx); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.problem != "" && s.book.Len() == 0 {
		return nil, errors.New(s.problem)
	}
	return s.book.List(service, limit), nil
}

// WatchRuns sends every run it knows, in the order they started, then
// every run again when it changes, until ctx ends.
func (s *Source) WatchRuns(ctx context.Context, service string, fn func(core.PipelineRun)) error {
	return s.book.Watch(ctx, &s.mu, service, fn)
}

// Trigger is Ripcord's retry. With fromStage, the newest finished attempt
// of version's run has its failed jobs re-run (a new attempt, GitHub's
// "re-run failed jobs"); otherwise the workflow is dispatched
// (workflow_dispatch) on DispatchRef, and the new run's id is returned
// when GitHub reports it.
func (s *Source) Trigger(ctx context.Context, service, version, fromStage string) (string, error) {
	if fromStage != "" {
		r, info := s.newestRunOf(version)
		if r == nil {
			return "", fmt.Errorf("no finished run of %s %s to re-run", service, version)
		}
		if info.State == core.RunSucceeded {
			return "", fmt.Errorf("run %s of %s %s succeeded: nothing to re-run", info.ID, service, version)
		}
		if _, err := s.gh.Actions.RerunFailedJobsByID(ctx, s.owner, s.repo, r.ghID); err != nil {
			return "", s.apiError("re-run failed jobs", err)
		}
		s.poller.Poke()
		return runID(r.ghID, r.attempt+1), nil
	}
	req := github.CreateWorkflowDispatchEventRequest{Ref: s.cfg.DispatchRef, ReturnRunDetails: github.Ptr(true)}
	var (
		details *github.WorkflowDispatchRunDetails
		err     error
	)
	if s.resolvedID > 0 {
		details, _, err = s.gh.Actions.CreateWorkflowDispatchEventByID(ctx, s.owner, s.repo, s.resolvedID, req)
	} else {
		details, _, err = s.gh.Actions.CreateWorkflowDispatchEventByFileName(ctx, s.owner, s.repo, s.cfg.Workflow, req)
	}
	if err != nil {
		return "", s.apiError("dispatch the workflow", err)
	}
	s.poller.Poke()
	if details.GetWorkflowRunID() == 0 {
		return "", nil
	}
	return runID(details.GetWorkflowRunID(), 1), nil
}

// newestRunOf finds version's newest finished run, with its view as of
// now: the poll goroutine rewrites a run's view under s.mu, so it is read
// here, never through the run afterwards (its GitHub id and attempt never
// change).
func (s *Source) newestRunOf(version string) (*run, core.PipelineRun) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var best *run
	for r := range s.book.All() {
		if !r.final || (version != "" && r.Info.Version != version && r.Info.Commit != version) {
			continue
		}
		if best == nil || r.Info.StartedAt.After(best.Info.StartedAt) {
			best = r
		}
	}
	if best == nil {
		return nil, core.PipelineRun{}
	}
	return best, best.Info
}

// Cancel asks GitHub to cancel a run.
func (s *Source) Cancel(ctx context.Context, id string) error {
	ghID, _, err := parseRunID(id)
	if err != nil {
		return err
	}
	if _, err := s.gh.Actions.CancelWorkflowRunByID(ctx, s.owner, s.repo, ghID); err != nil {
		var accepted *github.AcceptedError
		if errors.As(err, &accepted) {
			s.poller.Poke()
			return nil
		}
		return s.apiError("cancel run", err)
	}
	s.poller.Poke()
	return nil
}

// apiError says what failed, with GitHub's status and message, and for a
// rate limit until when.
func (s *Source) apiError(doing string, err error) error {
	var rl *github.RateLimitError
	var abuse *github.AbuseRateLimitError
	switch {
	case errors.As(err, &rl):
		return fmt.Errorf("github-actions: %s of %s: rate limit of %d requests used up until %s", doing, s.cfg.Repository, rl.Rate.Limit, rl.Rate.Reset.UTC().Format("15:04:05"))
	case errors.As(err, &abuse):
		return fmt.Errorf("github-actions: %s of %s: secondary rate limit, retrying after %s", doing, s.cfg.Repository, core.ShortDuration(abuse.GetRetryAfter()))
	}
	var er *github.ErrorResponse
	if errors.As(err, &er) && er.Response != nil {
		msg := er.Message
		switch er.Response.StatusCode {
		case http.StatusUnauthorized:
			msg = "the token was refused (401): check the token setting"
		case http.StatusNotFound:
			msg = fmt.Sprintf("not found (404): check repository %s and workflow %s, and that the token can read Actions there", s.cfg.Repository, s.cfg.Workflow)
		case http.StatusForbidden:
			msg = "forbidden (403): " + msg
		}
		return fmt.Errorf("github-actions: %s of %s: %s", doing, s.cfg.Repository, msg)
	}
	return fmt.Errorf("github-actions: %s of %s: %w", doing, s.cfg.Repository, err)
}
