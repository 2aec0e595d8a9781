package exec

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/plugins/internal/runbook"
)

// Source is a core.PipelineSource running stages on this machine.
type Source struct {
	cfg    Config
	stages []StageConfig
	logf   func(core.LogLine)
	logfMu sync.Mutex

	mu    sync.Mutex
	runs  map[string]*run
	order []string // run IDs, oldest first
	seq   int
	feed  runbook.Feed // numbers every run change
}

type run struct {
	info   core.PipelineRun
	rev    int64 // of its last change; 0 for runs loaded from disk
	cancel context.CancelFunc
	done   chan struct{}
	logs   map[string]*stepLog // "stage/step"; nil for runs loaded from disk
}

var _ core.PipelineSource = (*Source)(nil)

// New opens the state dir, loading the runs kept there. logf, when not
// nil, receives every output line as it is produced.
//
// New makes this process a child subreaper, so processes a step leaves
// behind are re-parented here and reaped when the step ends.
func New(cfg Config, logf func(core.LogLine)) (*Source, error) {
	if cfg.StateDir == "" {
		return nil, errors.New("exec pipeline: a state dir is required")
	}
	if cfg.WorkDir == "" {
		cfg.WorkDir = "."
	}
	if cfg.Grace <= 0 {
		cfg.Grace = 2 * time.Second
	}
	stages, err := normalize(cfg.Stages)
	if err != nil {
		return nil, fmt.Errorf("exec pipeline: %w", err)
	}
	for _, d := range []string{filepath.Join(cfg.StateDir, "runs"), filepath.Join(cfg.StateDir, "artifacts")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("exec pipeline: create %s: %w", d, err)
		}
	}
	if err := becomeSubreaper(); err != nil {
		return nil, fmt.Errorf("exec pipeline: become child subreaper: %w", err)
	}
	s := &Source{cfg: cfg, stages: stages, logf: logf, runs: map[string]*run{}}
	loaded, err := s.loadRuns()
	if err != nil {
		return nil, fmt.Errorf("exec pipeline: load runs: %w", err)
	}
	for _, info := range loaded {
		done := make(chan struct{})
		close(done)
		s.runs[info.ID] = &run{info: info, done: done}
		s.order = append(s.order, info.ID)
		if n, err := strconv.Atoi(info.ID); err == nil && n > s.seq {
			s.seq = n
		}
	}
	s.mu.Lock()
	s.pruneRunsLocked()
	s.mu.Unlock()
	return s, nil
}

// ArtifactStore is the directory holding artifacts by sha256 hex, for a
// deploy target's configuration.
func (s *Source) ArtifactStore() string { return filepath.Join(s.cfg.StateDir, "artifacts") }

// update changes a run under the lock, saves it and wakes watchers.
func (s *Source) update(r *run, change func(*core.PipelineRun)) {
	s.mu.Lock()
	change(&r.info)
	// Saved before anyone hears of the change, so what a watcher saw is
	// what a restarted console reads.
	_ = s.saveRun(r.info)
	r.rev = s.feed.Publish()
	s.mu.Unlock()
}

// Close cancels the runs still going and waits for them to end.
func (s *Source) Close() error {
	s.mu.Lock()
	var live []*run
	for _, r := range s.runs {
		live = append(live, r)
	}
	s.mu.Unlock()
	for _, r := range live {
		if r.cancel != nil {
			r.cancel()
		}
		<-r.done
	}
	return nil
}

// Trigger starts a run of the pipeline for a version. With fromStage set
// it re-runs the latest failed run of that version from that stage: the
// stages before it, which succeeded, are kept as they were, with the
// artifact they recorded.
func (s *Source) Trigger(ctx context.Context, service, version, fromStage string) (string, error) {
	from := 0
	var prev *core.PipelineRun
	if fromStage != "" {
		from = -1
		for i, st := range s.stages {
			if st.Name == fromStage {
				from = i
			}
		}
		if from < 0 {
			return "", fmt.Errorf("pipeline has no stage %q", fromStage)
		}
		s.mu.Lock()
		for i := len(s.order) - 1; i >= 0; i-- {
			r := s.runs[s.order[i]]
			if r.info.Service == service && r.info.Version == version && r.info.State.Terminal() {
				info := runbook.Clone(r.info)
				prev = &info
				break
			}
		}
		s.mu.Unlock()
		if prev == nil {
			return "", fmt.Errorf("no finished run of %s %s to re-run from %q", service, version, fromStage)
		}
		if prev.State == core.RunSucceeded {
			return "", fmt.Errorf("run %s of %s %s succeeded: nothing to re-run", prev.ID, service, version)
		}
		for i := 0; i < from; i++ {
			if i >= len(prev.Stages) || prev.Stages[i].Name != s.stages[i].Name || prev.Stages[i].State != core.RunSucceeded {
				return "", fmt.Errorf("cannot re-run from %q: stage %q did not succeed in run %s", fromStage, s.stages[i].Name, prev.ID)
			}
		}
	}

	s.mu.Lock()
	s.seq++
	id := fmt.Sprintf("%06d", s.seq)
	s.mu.Unlock()
	if err := os.MkdirAll(s.runDir(id), 0o755); err != nil {
		return "", fmt.Errorf("create run %s: %w", id, err)
	}
	info := core.PipelineRun{ID: id, Service: service, Version: version, State: core.RunRunning, StartedAt: time.Now().UTC()}
	runCtx, cancel := context.WithCancel(context.Background())
	r := &run{cancel: cancel, done: make(chan struct{}), logs: map[string]*stepLog{}}
	for i, sc := range s.stages {
		if i < from {
			info.Stages = append(info.Stages, prev.Stages[i])
			continue
		}
		st := core.Stage{Name: sc.Name, State: core.RunQueued}
		for _, step := range sc.Steps {
			st.Steps = append(st.Steps, core.Step{Name: step.Name, State: core.RunQueued})
			l, err := newStepLog(s.logFile(id, sc.Name, step.Name))
			if err != nil {
				cancel()
				for _, l := range r.logs {
					l.finish()
				}
				return "", err
			}
			r.logs[sc.Name+"/"+step.Name] = l
		}
		info.Stages = append(info.Stages, st)
	}
	if prev != nil {
		// The stages kept were built from the earlier run's tree.
		info.Commit, info.Branch = prev.Commit, prev.Branch
		info.Migrations, info.MigrationsUnknown = prev.Migrations, prev.MigrationsUnknown
		info.ArtifactDigest = prev.ArtifactDigest
		for i := 0; i < from; i++ {
			// Keep the earlier run's logs of the stages it ran for us.
			for _, step := range s.stages[i].Steps {
				copyFile(s.logFile(prev.ID, s.stages[i].Name, step.Name), s.logFile(id, s.stages[i].Name, step.Name))
			}
		}
	}
	var facts <-chan sourceFacts
	if prev == nil {
		facts = s.readFacts(id)
	}
	r.info = info
	s.mu.Lock()
	s.runs[id] = r
	s.order = append(s.order, id)
	s.pruneRunsLocked()
	s.mu.Unlock()
	s.update(r, func(*core.PipelineRun) {})
	go s.execute(runCtx, r, from, facts)
	return id, nil
}

func copyFile(src, dst string) {
	if b, err := os.ReadFile(src); err == nil {
		_ = os.WriteFile(dst, b, 0o644)
	}
}

// Cancel stops a run, killing its running step's whole process group, and
// returns once the run has ended (or ctx does).
func (s *Source) Cancel(ctx context.Context, runID string) error {
	s.mu.Lock()
	r := s.runs[runID]
	s.mu.Unlock()
	if r == nil {
		return fmt.Errorf("no run %q", runID)
	}
	if r.cancel != nil {
		r.cancel()
	}
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("cancel run %s: %w", runID, ctx.Err())
	}
}

// Runs returns the service's kept runs, newest first.
func (s *Source) Runs(ctx context.Context, service string, limit int) ([]core.PipelineRun, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []core.PipelineRun
	for i := len(s.order) - 1; i >= 0; i-- {
		r := s.runs[s.order[i]]
		if r.info.Service != service {
			continue
		}
		out = append(out, runbook.Clone(r.info))
		if limit > 0 && len(out) == limit {
			break
		}
	}
	return out, nil
}

// WatchRuns sends the service's runs now and every run again when it
// changes, until ctx ends, in the order they changed.
func (s *Source) WatchRuns(ctx context.Context, service string, fn func(core.PipelineRun)) error {
	return s.feed.Watch(ctx, &s.mu, func(seen int64) []core.PipelineRun {
		var send []*run
		for _, id := range s.order {
			if r := s.runs[id]; r.rev > seen && r.info.Service == service {
				send = append(send, r)
			}
		}
		sort.Slice(send, func(i, j int) bool { return send[i].rev < send[j].rev })
		infos := make([]core.PipelineRun, len(send))
		for i, r := range send {
			infos[i] = runbook.Clone(r.info)
		}
		return infos
	}, fn)
}

// Logs sends a step's kept lines; with follow it keeps sending until the
// step ends. step is "stage/step", or a step name unique in the run.
func (s *Source) Logs(ctx context.Context, runID, step string, follow bool, fn func(core.LogLine)) error {
	s.mu.Lock()
	r := s.runs[runID]
	var key string
	var l *stepLog
	if r != nil {
		key = resolveStep(r.info, step)
		if r.logs != nil {
			l = r.logs[key]
		}
	}
	s.mu.Unlock()
	if r == nil {
		return fmt.Errorf("no run %q", runID)
	}
	if key == "" {
		return fmt.Errorf("run %s has no step %q", runID, step)
	}
	if l == nil {
		stage, name, _ := strings.Cut(key, "/")
		var err error
		if l, err = loadStepLog(s.logFile(runID, stage, name)); err != nil {
			return err
		}
	}
	var next int64
	for {
		lines, n, finished, changed := l.since(next)
		for _, line := range lines {
			fn(line)
		}
		next = n
		if !follow || finished {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func resolveStep(info core.PipelineRun, step string) string {
	var found []string
	for _, st := range info.Stages {
		for _, sp := range st.Steps {
			key := st.Name + "/" + sp.Name
			if key == step {
				return key
			}
			if sp.Name == step {
				found = append(found, key)
			}
		}
	}
	if len(found) == 1 {
		return found[0]
	}
	return ""
}
