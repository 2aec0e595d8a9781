// Package gitlabci is a pipeline source reading one GitLab project's CI
// pipelines on one ref: each pipeline a Ripcord run, its jobs grouped by
// stage (in the order the stages first appear), each job a step with its
// state and times. A run's commit is the pipeline's SHA (CI_COMMIT_SHA)
// and its branch the pipeline's ref, unless the ref is a tag or a merge
// request's, which is no branch: then it stays unknown. The release is a
// file in a named job's artifacts (`artifact: {job: build, path:
// dist/api}`): its sha256 is the artifact digest, its bytes are kept
// under `<download dir>/<hex>` where a deploy target picks them up, and
// the version is the content of another file of that job's artifacts
// (`version_path`) or else the commit's short SHA (CI_COMMIT_SHORT_SHA).
//
// Polling is conditional (If-None-Match) and adaptive like the GitHub
// source: the pipeline list every Poll while nothing runs, the jobs of a
// pipeline in flight every PollActive. GitLab's RateLimit headers are
// kept and a 429's Retry-After is obeyed.
package gitlabci

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/plugins/internal/cihttp"
	"github.com/ripcordhq/ripcord/plugins/internal/migrations"
	"github.com/ripcordhq/ripcord/plugins/internal/runbook"
	gitlab "gitlab.com/gitlab-org/api/client-go/v2"
)

// Config is one watched project and ref.
type Config struct {
	Service string
	// Project is the project's path ("group/api") or numeric id.
	Project string
	// Ref filters pipelines by ref (default "main"); "*" reads every ref.
	Ref string
	// Token is a personal, project or group access token (read_api; api
	// to play, retry and cancel).
	Token string
	// APIURL is the REST root (default https://gitlab.com/api/v4).
	APIURL string
	// ArtifactJob and ArtifactPath name the release: a file in a job's
	// artifacts. VersionPath, when set, is a file of the same job's
	// artifacts holding the version.
	ArtifactJob  string
	ArtifactPath string
	VersionPath  string
	// DownloadDir, when set, keeps each release's file as <dir>/<hex>.
	DownloadDir string
	// MigrationsDir, when set, is the service's migrations directory in a
	// local clone of the repository: each green pipeline's migrations are
	// read there at its commit.
	MigrationsDir string
	Poll          time.Duration // default 30s
	PollActive    time.Duration // default 10s
	History       int           // default 10
	LogTail       int           // default 200

	Transport http.RoundTripper
	Now       func() time.Time
	Logf      func(format string, args ...any)
}

func (c *Config) normalize() error {
	var errs []error
	if strings.TrimSpace(c.Project) == "" {
		errs = append(errs, errors.New("project: name the project (group/name) or its id"))
	}
	if c.ArtifactJob == "" || c.ArtifactPath == "" {
		errs = append(errs, errors.New("artifact: name the job and the path of the file that is the release (artifact: {job: build, path: dist/api})"))
	}
	if c.Ref == "" {
		c.Ref = "main"
	}
	if c.APIURL == "" {
		c.APIURL = "https://gitlab.com/api/v4"
	}
	if c.Poll <= 0 {
		c.Poll = 30 * time.Second
	}
	if c.PollActive <= 0 {
		c.PollActive = 10 * time.Second
	}
	if c.History <= 0 {
		c.History = 10
	}
	if c.LogTail <= 0 {
		c.LogTail = 200
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
	return errors.Join(errs...)
}

// Source is a core.PipelineSource reading GitLab CI.
type Source struct {
	cfg  Config
	pid  any
	http *cihttp.Conditional
	gl   *gitlab.Client

	pollMu   sync.Mutex
	listedAt time.Time
	cycles   int

	mu       sync.Mutex
	book     *runbook.Book[int64, *run] // by pipeline id
	problem  string
	download string

	poller *cihttp.Poller
	// migrations reads a green pipeline's migrations at its commit.
	migrations *migrations.AtCommit
}

type run struct {
	runbook.Run
	id      int64
	updated time.Time
	jobs    []*gitlab.Job
	final   bool
	// rel is the release read from the artifact job's files, kept while
	// that job stays the newest successful try.
	rel release
	// kicked is when Ripcord played or retried it: until GitLab's
	// updated_at moves (or Poll passes) it is polled as in flight, even
	// while GitLab still reports it finished or waiting.
	kicked time.Time
	// missing says why this green pipeline gave no release.
	missing string
}

// fast says whether the pipeline is polled at PollActive: queued or
// running, or just played or retried. A pipeline waiting for a person
// (a manual job) is polled with the list, by its updated_at.
func (r *run) fast(now time.Time, poll time.Duration) bool {
	if !r.kicked.IsZero() && now.Sub(r.kicked) < poll {
		return true
	}
	return !r.final && r.Info.State != core.RunWaiting
}

var _ core.PipelineSource = (*Source)(nil)

// New checks the config and starts polling; Close stops it.
func New(cfg Config) (*Source, error) {
	if err := cfg.normalize(); err != nil {
		return nil, fmt.Errorf("gitlab-ci: %w", err)
	}
	cond := cihttp.NewConditional(cfg.Transport, cfg.Now)
	gl, err := gitlab.NewClient(cfg.Token,
		gitlab.WithBaseURL(cfg.APIURL),
		gitlab.WithHTTPClient(&http.Client{Transport: cond, Timeout: 5 * time.Minute}),
		gitlab.WithoutRetries(), // rate limits are waited out by the poller
		gitlab.WithUserAgent("ripcord-gitlab-ci"),
	)
	if err != nil {
		return nil, fmt.Errorf("gitlab-ci: %w", err)
	}
	var pid any = cfg.Project
	if id, err := strconv.ParseInt(cfg.Project, 10, 64); err == nil {
		pid = id
	}
	s := &Source{cfg: cfg, pid: pid, http: cond, gl: gl, book: runbook.New[int64, *run](runbook.Same),
		poller: cihttp.NewPoller(), migrations: &migrations.AtCommit{Dir: cfg.MigrationsDir}}
	s.poller.Start(cihttp.Polling{Poll: cfg.Poll, PollActive: cfg.PollActive, Round: s.poll, Active: s.active, Wait: s.http.Wait, Poked: s.relist})
	return s, nil
}

// Close stops polling.
func (s *Source) Close() error {
	s.poller.Stop()
	return nil
}

// Requests counts the API requests sent (a 304 included).
func (s *Source) Requests() int64 { return s.http.Requests() }

// Health says how the source is doing: the budget left, a rate limit
// waited out, the last failure.
func (s *Source) Health() (degraded bool, message string) {
	b := s.http.Budget()
	s.mu.Lock()
	problem, download := s.problem, s.download
	var newestGreen *run
	for r := range s.book.All() {
		if r.Info.State == core.RunSucceeded && (newestGreen == nil || r.id > newestGreen.id) {
			newestGreen = r
		}
	}
	missing := ""
	if newestGreen != nil {
		missing = newestGreen.missing
	}
	s.mu.Unlock()
	var parts []string
	if wait := b.Until.Sub(s.cfg.Now()); wait > 0 {
		degraded = true
		parts = append(parts, fmt.Sprintf("rate limited by GitLab: waiting %s (until %s)", core.ShortDuration(wait), b.Until.UTC().Format("15:04:05")))
	}
	for _, p := range []string{problem, download, missing} {
		if p != "" {
			degraded = true
			parts = append(parts, p)
		}
	}
	if b.Known {
		parts = append(parts, fmt.Sprintf("%d of %d API requests left this minute", b.Remaining, b.Limit))
		if b.Limit > 0 && b.Remaining*10 < b.Limit {
			degraded = true
		}
	}
	if len(parts) == 0 {
		parts = append(parts, "polling")
	}
	return degraded, s.cfg.Project + "@" + s.cfg.Ref + ": " + strings.Join(parts, "; ")
}

// relist has the poll a poke brings read the list (Ripcord just
// played, retried or cancelled one, or asked for a new one).
func (s *Source) relist() {
	s.pollMu.Lock()
	s.listedAt = time.Time{}
	s.pollMu.Unlock()
}

func (s *Source) active() bool {
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for r := range s.book.All() {
		if r.fast(now, s.cfg.Poll) {
			return true
		}
	}
	return false
}

func (s *Source) poll(ctx context.Context) {
	s.pollMu.Lock()
	defer s.pollMu.Unlock()
	err := s.pollLocked(ctx)
	s.mu.Lock()
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
	listDue := s.listedAt.IsZero() || !s.active() || s.cycles%3 == 0 || now.Sub(s.listedAt) >= s.cfg.Poll
	if listDue {
		pipes, err := s.listPipelines(ctx)
		if err != nil {
			return err
		}
		s.listedAt = now
		for _, p := range pipes {
			if err := s.observe(ctx, p.ID, p.Status, p.Ref, p.SHA, p.CreatedAt, p.UpdatedAt, false); err != nil {
				return err
			}
		}
		return nil
	}
	for _, r := range s.inFlight() {
		changed, err := s.readJobs(ctx, r)
		if err != nil {
			return err
		}
		if !changed {
			continue
		}
		p, _, err := s.gl.Pipelines.GetPipeline(s.pid, r.id, gitlab.WithContext(ctx))
		if err != nil {
			return s.apiError("read pipeline", err)
		}
		if err := s.observe(ctx, p.ID, p.Status, p.Ref, p.SHA, p.CreatedAt, p.UpdatedAt, true); err != nil {
			return err
		}
	}
	return nil
}

func (s *Source) inFlight() []*run {
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*run
	for r := range s.book.All() {
		if r.fast(now, s.cfg.Poll) {
			out = append(out, r)
		}
	}
	return out
}

func (s *Source) listPipelines(ctx context.Context) ([]*gitlab.PipelineInfo, error) {
	opts := &gitlab.ListProjectPipelinesOptions{
		ListOptions: gitlab.ListOptions{PerPage: int64(min(s.cfg.History, 100))},
		OrderBy:     gitlab.Ptr("id"), Sort: gitlab.Ptr("desc"),
	}
	if s.cfg.Ref != "*" {
		opts.Ref = gitlab.Ptr(s.cfg.Ref)
	}
	var out []*gitlab.PipelineInfo
	for {
		page, resp, err := s.gl.Pipelines.ListProjectPipelines(s.pid, opts, gitlab.WithContext(ctx))
		if err != nil {
			return nil, s.apiError("list pipelines", err)
		}
		out = append(out, page...)
		if resp.NextPage == 0 || len(out) >= s.cfg.History {
			break
		}
		opts.Page = resp.NextPage
	}
	if len(out) > s.cfg.History {
		out = out[:s.cfg.History]
	}
	return out, nil
}

// observe brings one pipeline up to date; jobsRead says its jobs were
// just read.
func (s *Source) observe(ctx context.Context, id int64, status, ref, sha string, created, updated *time.Time, jobsRead bool) error {
	now := s.cfg.Now()
	s.mu.Lock()
	r, known := s.book.Get(id)
	if !known {
		r = &run{id: id}
	}
	same := known && updated != nil && updated.Equal(r.updated)
	if !same {
		r.kicked = time.Time{} // GitLab took up the play or retry
	}
	// A finished pipeline, or one waiting for a person, changes its
	// updated_at when anything happens to it.
	unchanged := same && (r.final || r.Info.State == core.RunWaiting) && !r.fast(now, s.cfg.Poll)
	s.mu.Unlock()
	if unchanged {
		return nil
	}
	if !jobsRead {
		if _, err := s.readJobs(ctx, r); err != nil {
			return err
		}
	}
	info := s.mapPipeline(id, status, ref, sha, created, r.jobs)
	final := info.State.Terminal()
	if final && info.State == core.RunSucceeded {
		rel, err := s.release(ctx, r, sha)
		if err != nil {
			return err
		}
		info.Version, info.ArtifactDigest = rel.version, rel.digest
	}
	s.mu.Lock()
	if updated != nil {
		r.updated = *updated
	}
	r.final = final
	s.book.Put(id, r)
	s.book.Update(r, info)
	s.mu.Unlock()
	return nil
}

// readJobs reads every page of a pipeline's jobs (retried ones left out:
// the latest try of each job counts) and reports whether GitLab said
// anything new.
func (s *Source) readJobs(ctx context.Context, r *run) (bool, error) {
	opts := &gitlab.ListJobsOptions{ListOptions: gitlab.ListOptions{PerPage: 100}}
	var jobs []*gitlab.Job
	changed := false
	for {
		page, resp, err := s.gl.Jobs.ListPipelineJobs(s.pid, r.id, opts, gitlab.WithContext(ctx))
		if err != nil {
			return false, s.apiError("list jobs", err)
		}
		if resp.Header.Get(cihttp.NotModifiedHeader) == "" {
			changed = true
		}
		jobs = append(jobs, page...)
		if resp.NextPage == 0 {
			break
		}
		opts.Page = resp.NextPage
	}
	r.jobs = jobs
	return changed, nil
}

func (s *Source) mapPipeline(id int64, status, ref, sha string, created *time.Time, jobs []*gitlab.Job) core.PipelineRun {
	info := core.PipelineRun{ID: strconv.FormatInt(id, 10), Service: s.cfg.Service, Commit: sha, State: state(status), Stages: stages(jobs)}
	// A tag's or a merge request's pipeline is no branch's.
	isTag := slices.ContainsFunc(jobs, func(j *gitlab.Job) bool { return j.Tag })
	if !isTag && !strings.HasPrefix(ref, "refs/") {
		info.Branch = ref
	}
	if created != nil {
		info.StartedAt = created.UTC()
	}
	if info.State.Terminal() {
		for _, j := range jobs {
			if j.FinishedAt != nil && j.FinishedAt.After(info.FinishedAt) {
				info.FinishedAt = j.FinishedAt.UTC()
			}
		}
		if info.FinishedAt.IsZero() {
			info.FinishedAt = info.StartedAt
		}
	}
	if s.cfg.VersionPath == "" && len(sha) >= 8 {
		info.Version = sha[:8]
	}
	if info.State == core.RunSucceeded {
		info.Migrations, info.MigrationsUnknown = s.migrations.Read(sha)
	}
	return info
}

// stages groups jobs by stage, stages in the order their first job was
// created, jobs in id order.
func stages(jobs []*gitlab.Job) []core.Stage {
	sorted := slices.Clone(jobs)
	slices.SortStableFunc(sorted, func(a, b *gitlab.Job) int { return cmp.Compare(a.ID, b.ID) })
	var out []core.Stage
	index := map[string]int{}
	for _, j := range sorted {
		i, ok := index[j.Stage]
		if !ok {
			i = len(out)
			index[j.Stage] = i
			out = append(out, core.Stage{Name: j.Stage})
		}
		st := core.Step{Name: j.Name, State: state(j.Status)}
		if j.StartedAt != nil {
			st.StartedAt = j.StartedAt.UTC()
		}
		if j.FinishedAt != nil {
			st.FinishedAt = j.FinishedAt.UTC()
		}
		if st.State == core.RunFailed && j.AllowFailure {
			// A job allowed to fail does not fail its pipeline.
			st.State = core.RunSkipped
		}
		out[i].Steps = append(out[i].Steps, st)
	}
	for i := range out {
		out[i].State = stageState(out[i].Steps)
	}
	return out
}

func stageState(steps []core.Step) core.RunState {
	all := func(s core.RunState) bool {
		return !slices.ContainsFunc(steps, func(x core.Step) bool { return x.State != s })
	}
	switch {
	case slices.ContainsFunc(steps, func(x core.Step) bool { return x.State == core.RunFailed }):
		return core.RunFailed
	case slices.ContainsFunc(steps, func(x core.Step) bool { return x.State == core.RunRunning }):
		return core.RunRunning
	case slices.ContainsFunc(steps, func(x core.Step) bool { return x.State == core.RunWaiting }):
		return core.RunWaiting
	case slices.ContainsFunc(steps, func(x core.Step) bool { return x.State == core.RunCanceled }):
		return core.RunCanceled
	case all(core.RunSkipped):
		return core.RunSkipped
	case !slices.ContainsFunc(steps, func(x core.Step) bool { return !x.State.Terminal() }):
		return core.RunSucceeded
	}
	return core.RunQueued
}

// state maps a GitLab pipeline or job status.
func state(status string) core.RunState {
	switch status {
	case "success":
		return core.RunSucceeded
	case "failed":
		return core.RunFailed
	case "canceled", "canceling":
		return core.RunCanceled
	case "skipped":
		return core.RunSkipped
	case "running":
		return core.RunRunning
	case "manual":
		return core.RunWaiting
	default: // created, waiting_for_resource, preparing, pending, scheduled
		return core.RunQueued
	}
}

// release is what a green pipeline built: the file's digest, the
// version, and the job they were read from.
type release struct {
	job             int64
	version, digest string
}

// release reads the release file from the artifact job's artifacts: its
// sha256 is the digest (its bytes kept under the download directory as
// <hex>); the version file (if configured) holds the version. A pipeline
// whose artifact job is unchanged is not read again.
func (s *Source) release(ctx context.Context, r *run, sha string) (release, error) {
	var job *gitlab.Job
	for _, j := range r.jobs {
		if j.Name == s.cfg.ArtifactJob && j.Status == "success" && (job == nil || j.ID > job.ID) {
			job = j
		}
	}
	if job == nil {
		s.noRelease(r, "succeeded without a successful job %s", s.cfg.ArtifactJob)
		return release{}, nil
	}
	if r.rel.job == job.ID && r.rel.digest != "" {
		return r.rel, nil
	}
	hexDigest, err := s.fetch(ctx, r, job)
	if err != nil || hexDigest == "" {
		return release{}, err
	}
	rel := release{job: job.ID, digest: "sha256:" + hexDigest, version: sha[:min(8, len(sha))]}
	if s.cfg.VersionPath != "" {
		vr, _, err := s.gl.Jobs.DownloadSingleArtifactsFile(s.pid, job.ID, s.cfg.VersionPath, gitlab.WithContext(ctx))
		if errors.Is(err, gitlab.ErrNotFound) {
			s.noRelease(r, "job %s (%d) has no version file %s", job.Name, job.ID, s.cfg.VersionPath)
			return release{}, nil
		}
		if err != nil {
			return release{}, s.apiError("download "+s.cfg.VersionPath, err)
		}
		var vb bytes.Buffer
		if _, err := vb.ReadFrom(io.LimitReader(vr, 4096)); err != nil {
			return release{}, fmt.Errorf("gitlab-ci: read %s: %w", s.cfg.VersionPath, err)
		}
		rel.version = strings.TrimSpace(vb.String())
		if rel.version == "" || strings.ContainsAny(rel.version, " \t\n/") || len(rel.version) > 128 {
			s.noRelease(r, "job %s (%d): %s does not hold a version (one word)", job.Name, job.ID, s.cfg.VersionPath)
			return release{}, nil
		}
	}
	r.rel = rel
	s.mu.Lock()
	r.missing = ""
	s.mu.Unlock()
	return rel, nil
}

// noRelease says why a green pipeline gave no release, in the log and in
// health until a green pipeline gives one: a job or path misnamed in
// artifact: is a setting to fix, not a quiet pipeline.
func (s *Source) noRelease(r *run, format string, args ...any) {
	msg := fmt.Sprintf("pipeline %d ", r.id) + fmt.Sprintf(format, args...) + ": no release (check artifact: in the settings)"
	s.cfg.Logf("%s", msg)
	s.mu.Lock()
	r.missing = msg
	s.mu.Unlock()
}

// fetch streams the release file of job through sha256, into the
// download directory as <hex> when there is one, and returns the hex; ""
// when the job has no such file.
func (s *Source) fetch(ctx context.Context, r *run, job *gitlab.Job) (string, error) {
	body, _, err := s.gl.Jobs.DownloadSingleArtifactsFile(s.pid, job.ID, s.cfg.ArtifactPath, gitlab.WithContext(ctx))
	if errors.Is(err, gitlab.ErrNotFound) {
		s.noRelease(r, "job %s (%d) has no artifact file %s", job.Name, job.ID, s.cfg.ArtifactPath)
		return "", nil
	}
	if err != nil {
		return "", s.apiError("download "+s.cfg.ArtifactPath, err)
	}
	h := sha256.New()
	if s.cfg.DownloadDir == "" {
		if _, err := io.Copy(h, body); err != nil {
			return "", fmt.Errorf("gitlab-ci: read %s: %w", s.cfg.ArtifactPath, err)
		}
		return hex.EncodeToString(h.Sum(nil)), nil
	}
	hexDigest, err := keep(s.cfg.DownloadDir, body, h)
	s.mu.Lock()
	s.download = ""
	if err != nil {
		s.download = err.Error()
	}
	s.mu.Unlock()
	if err != nil {
		return "", err
	}
	return hexDigest, nil
}

// keep writes body to dir/<hex of its sha256>, through a temporary file
// renamed into place, so a deploy never picks up half a file.
func keep(dir string, body io.Reader, h hash.Hash) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("gitlab-ci: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".download-*")
	if err != nil {
		return "", fmt.Errorf("gitlab-ci: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(io.MultiWriter(tmp, h), body); err != nil {
		tmp.Close()
		return "", fmt.Errorf("gitlab-ci: download the release file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("gitlab-ci: %w", err)
	}
	hexDigest := hex.EncodeToString(h.Sum(nil))
	if err := os.Chmod(tmp.Name(), 0o755); err != nil {
		return "", fmt.Errorf("gitlab-ci: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, hexDigest)); err != nil {
		return "", fmt.Errorf("gitlab-ci: %w", err)
	}
	return hexDigest, nil
}

// Runs returns the newest pipelines, newest first, once the first poll
// has read them.
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

// WatchRuns sends every known pipeline in the order they started, then
// each again when it changes.
func (s *Source) WatchRuns(ctx context.Context, service string, fn func(core.PipelineRun)) error {
	return s.book.Watch(ctx, &s.mu, service, fn)
}

// Trigger is Ripcord's retry and play. With fromStage: a manual job of
// that stage in version's newest pipeline is played; without one, that
// pipeline's failed jobs are retried. Without fromStage a new pipeline
// runs on Ref.
func (s *Source) Trigger(ctx context.Context, service, version, fromStage string) (string, error) {
	if fromStage == "" {
		ref := s.cfg.Ref
		if ref == "*" {
			ref = "main"
		}
		p, _, err := s.gl.Pipelines.CreatePipeline(s.pid, &gitlab.CreatePipelineOptions{Ref: gitlab.Ptr(ref)}, gitlab.WithContext(ctx))
		if err != nil {
			return "", s.apiError("create a pipeline", err)
		}
		s.poller.Poke()
		return strconv.FormatInt(p.ID, 10), nil
	}
	r, info := s.newestRunOf(version)
	if r == nil {
		return "", fmt.Errorf("no pipeline of %s %s to play or retry", service, version)
	}
	s.pollMu.Lock()
	jobs := r.jobs
	s.pollMu.Unlock()
	for _, j := range jobs {
		if j.Stage == fromStage && j.Status == "manual" {
			if _, _, err := s.gl.Jobs.PlayJob(s.pid, j.ID, nil, gitlab.WithContext(ctx)); err != nil {
				return "", s.apiError("play job "+j.Name, err)
			}
			s.kick(r)
			return info.ID, nil
		}
	}
	if info.State == core.RunSucceeded {
		return "", fmt.Errorf("pipeline %s of %s %s succeeded and stage %s has no manual job: nothing to play or retry", info.ID, service, version, fromStage)
	}
	if _, _, err := s.gl.Pipelines.RetryPipelineBuild(s.pid, r.id, gitlab.WithContext(ctx)); err != nil {
		return "", s.apiError("retry pipeline", err)
	}
	s.kick(r)
	return info.ID, nil
}

// kick polls a played or retried pipeline fast, starting now.
func (s *Source) kick(r *run) {
	s.mu.Lock()
	r.kicked = s.cfg.Now()
	s.mu.Unlock()
	s.poller.Poke()
}

// newestRunOf finds version's newest pipeline, with its view as of now:
// the poll goroutine rewrites a run's view under s.mu, so it is read
// here, never through the run afterwards.
func (s *Source) newestRunOf(version string) (*run, core.PipelineRun) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var best *run
	for r := range s.book.All() {
		if version != "" && r.Info.Version != version && r.Info.Commit != version {
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

// Cancel cancels a pipeline.
func (s *Source) Cancel(ctx context.Context, id string) error {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		return fmt.Errorf("%q is not a GitLab pipeline id", id)
	}
	if _, _, err := s.gl.Pipelines.CancelPipelineBuild(s.pid, n, gitlab.WithContext(ctx)); err != nil {
		return s.apiError("cancel pipeline", err)
	}
	s.poller.Poke()
	return nil
}

// Logs sends the tail of a job's trace ("stage/job", or a job name
// unique in the pipeline), read once when asked; colours and section
// markers are taken out.
func (s *Source) Logs(ctx context.Context, id, step string, _ bool, fn func(core.LogLine)) error {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		return fmt.Errorf("%q is not a GitLab pipeline id", id)
	}
	s.mu.Lock()
	r, _ := s.book.Get(n)
	s.mu.Unlock()
	if r == nil {
		return fmt.Errorf("no pipeline %s of %s", id, s.cfg.Project)
	}
	stage, name, hasStage := strings.Cut(step, "/")
	if !hasStage {
		stage, name = "", step
	}
	s.pollMu.Lock()
	jobs := r.jobs
	s.pollMu.Unlock()
	var job *gitlab.Job
	for _, j := range jobs {
		if j.Name == name && (stage == "" || j.Stage == stage) && (job == nil || j.ID > job.ID) {
			job = j
		}
	}
	if job == nil {
		return fmt.Errorf("pipeline %s has no job %q", id, step)
	}
	trace, _, err := s.gl.Jobs.GetTraceFile(s.pid, job.ID, gitlab.WithContext(ctx))
	if err != nil {
		return s.apiError("read the trace of job "+job.Name, err)
	}
	var lines []string
	sc := bufio.NewScanner(trace)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		for _, part := range strings.Split(sc.Text(), "\r") {
			text := ansi.ReplaceAllString(sectionMarker.ReplaceAllString(part, ""), "")
			if strings.TrimSpace(text) == "" {
				continue
			}
			lines = append(lines, text)
		}
		if len(lines) > 2*s.cfg.LogTail {
			lines = slices.Clone(lines[len(lines)-s.cfg.LogTail:])
		}
	}
	if len(lines) > s.cfg.LogTail {
		lines = lines[len(lines)-s.cfg.LogTail:]
	}
	source := id + "/" + job.Stage + "/" + job.Name
	for _, l := range lines {
		fn(core.LogLine{Source: source, Text: l})
	}
	return nil
}

var (
	ansi          = regexp.MustCompile(`\x1b\[[0-9;]*[A-Za-z]`)
	sectionMarker = regexp.MustCompile(`section_(start|end):[0-9]+:[A-Za-z0-9_.-]+(\[[^\]]*\])?`)
)

func (s *Source) apiError(doing string, err error) error {
	if errors.Is(err, gitlab.ErrNotFound) {
		return fmt.Errorf("gitlab-ci: %s of %s: not found (404): check project %s and that the token can read its pipelines", doing, s.cfg.Project, s.cfg.Project)
	}
	var er *gitlab.ErrorResponse
	if errors.As(err, &er) {
		switch er.StatusCode {
		case http.StatusUnauthorized:
			return fmt.Errorf("gitlab-ci: %s of %s: the token was refused (401): check the token setting", doing, s.cfg.Project)
		case http.StatusTooManyRequests:
			return fmt.Errorf("gitlab-ci: %s of %s: rate limited (429), waiting as GitLab asks", doing, s.cfg.Project)
		}
		return fmt.Errorf("gitlab-ci: %s of %s: %d %s", doing, s.cfg.Project, er.StatusCode, er.Message)
	}
	return fmt.Errorf("gitlab-ci: %s of %s: %w", doing, s.cfg.Project, err)
}
