package githubactions

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-github/v93/github"
	"github.com/ripcordhq/ripcord/core"
)

// Logs sends the tail of a job's log: the lines of one step ("job/step",
// told apart by the step's start and end times, since every line of a
// GitHub log carries its time), or of the whole job ("job"). The log is
// read once, when asked — follow is not honoured: GitHub serves a job's
// log as a finished file, and the logs pane asks again when a person
// opens it again.
func (s *Source) Logs(ctx context.Context, id, step string, _ bool, fn func(core.LogLine)) error {
	ghID, attempt, err := parseRunID(id)
	if err != nil {
		return err
	}
	s.mu.Lock()
	r, _ := s.book.Get(id)
	s.mu.Unlock()
	if r == nil {
		return fmt.Errorf("no run %s of %s", id, s.cfg.Workflow)
	}
	jobName, stepName, _ := strings.Cut(step, "/")
	s.pollMu.Lock()
	jobs := r.jobs
	s.pollMu.Unlock()
	var job *github.WorkflowJob
	for _, j := range jobs {
		if j.GetName() == jobName {
			job = j
		}
	}
	if job == nil {
		// A step name alone, unique in the run.
		for _, j := range jobs {
			for _, st := range j.Steps {
				if st.GetName() == step && stepName == "" {
					if job != nil {
						return fmt.Errorf("run %s has several steps named %q: name the job too (job/step)", id, step)
					}
					job, stepName = j, step
				}
			}
		}
	}
	if job == nil {
		return fmt.Errorf("run %s has no job %q", id, jobName)
	}
	var from, to time.Time
	if stepName != "" && stepName != job.GetName() {
		found := false
		for _, st := range job.Steps {
			if st.GetName() == stepName {
				from, to, found = st.GetStartedAt().Time, st.GetCompletedAt().Time, true
			}
		}
		if !found {
			return fmt.Errorf("job %s of run %s has no step %q", job.GetName(), id, stepName)
		}
	}
	where, _, err := s.gh.Actions.GetWorkflowJobLogs(ctx, s.owner, s.repo, job.GetID(), 2)
	if err != nil {
		return s.apiError(fmt.Sprintf("read the log of job %s (run %d attempt %d)", job.GetName(), ghID, attempt), err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, where.String(), nil)
	if err != nil {
		return err
	}
	resp, err := s.blob.Do(req)
	if err != nil {
		return fmt.Errorf("github-actions: download the log of job %s: %w", job.GetName(), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("github-actions: download the log of job %s: %s", job.GetName(), resp.Status)
	}
	source := id + "/" + job.GetName()
	if stepName != "" {
		source += "/" + stepName
	}
	for _, l := range tail(resp.Body, s.cfg.LogTail, from, to) {
		fn(core.LogLine{Time: l.t, Source: source, Text: l.text})
	}
	return nil
}

type logLine struct {
	t    time.Time
	text string
}

// tail keeps the last n lines of a GitHub job log, only those stamped
// within [from, to] when from is set (to rounded up to the next second:
// step times have second precision, line stamps more).
func tail(r io.Reader, n int, from, to time.Time) []logLine {
	if !to.IsZero() {
		to = to.Truncate(time.Second).Add(time.Second)
	}
	ring := make([]logLine, 0, n)
	next := 0
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimPrefix(sc.Text(), "\ufeff")
		stamp, text, ok := strings.Cut(line, " ")
		t, err := time.Parse(time.RFC3339Nano, stamp)
		if !ok || err != nil {
			t, text = time.Time{}, line
		}
		if !from.IsZero() && (t.IsZero() || t.Before(from.Truncate(time.Second)) || (!to.IsZero() && !t.Before(to))) {
			continue
		}
		l := logLine{t: t, text: text}
		if len(ring) < n {
			ring = append(ring, l)
			continue
		}
		ring[next] = l
		next = (next + 1) % n
	}
	return append(ring[next:], ring[:next]...)
}

// fetchArtifact downloads an artifact's archive into the download
// directory as <hex>, refusing bytes whose sha256 is not the digest GitHub
// reported. An artifact already there is not fetched again.
func (s *Source) fetchArtifact(ctx context.Context, a *github.Artifact) error {
	hexDigest, ok := strings.CutPrefix(a.GetDigest(), "sha256:")
	if !ok || len(hexDigest) != 64 {
		return fmt.Errorf("github-actions: artifact %s has digest %q, not sha256:<64 hex>", a.GetName(), a.GetDigest())
	}
	dst := filepath.Join(s.cfg.DownloadDir, hexDigest)
	if _, err := os.Stat(dst); err == nil {
		return nil
	}
	where, _, err := s.gh.Actions.DownloadArtifact(ctx, s.owner, s.repo, a.GetID(), 2)
	if err != nil {
		return s.apiError("download artifact "+a.GetName(), err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, where.String(), nil)
	if err != nil {
		return err
	}
	resp, err := s.blob.Do(req)
	if err != nil {
		return fmt.Errorf("github-actions: download artifact %s: %w", a.GetName(), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("github-actions: download artifact %s: %s", a.GetName(), resp.Status)
	}
	if err := os.MkdirAll(s.cfg.DownloadDir, 0o755); err != nil {
		return fmt.Errorf("github-actions: %w", err)
	}
	tmp, err := os.CreateTemp(s.cfg.DownloadDir, ".download-*")
	if err != nil {
		return fmt.Errorf("github-actions: %w", err)
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(tmp, h), resp.Body); err != nil {
		tmp.Close()
		return fmt.Errorf("github-actions: download artifact %s: %w", a.GetName(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("github-actions: %w", err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != hexDigest {
		return fmt.Errorf("github-actions: artifact %s downloaded as sha256:%s, GitHub says %s: refusing it", a.GetName(), got, a.GetDigest())
	}
	if err := os.Chmod(tmp.Name(), 0o755); err != nil {
		return fmt.Errorf("github-actions: %w", err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("github-actions: %w", err)
	}
	return nil
}
