package exec

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
)

func newSource(t *testing.T, stages []StageConfig) (*Source, Config) {
	t.Helper()
	base := t.TempDir()
	cfg := Config{StateDir: filepath.Join(base, "state"), WorkDir: filepath.Join(base, "work"), Stages: stages}
	if err := os.MkdirAll(cfg.WorkDir, 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, cfg
}

// waitRun waits for a run to reach a final state, watching it.
func waitRun(t *testing.T, s *Source, service, id string) core.PipelineRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var final core.PipelineRun
	err := s.WatchRuns(ctx, service, func(r core.PipelineRun) {
		if r.ID == id && r.State.Terminal() {
			final = r
			cancel()
		}
	})
	if final.ID == "" {
		t.Fatalf("run %s did not finish: %v", id, err)
	}
	return final
}

func logText(t *testing.T, s *Source, id, step string) string {
	t.Helper()
	var b strings.Builder
	if err := s.Logs(context.Background(), id, step, false, func(l core.LogLine) { b.WriteString(l.Text + "\n") }); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestRunStagesStreamsOutputAndStoresArtifact(t *testing.T) {
	s, cfg := newSource(t, []StageConfig{
		{Name: "build", Steps: []StepConfig{
			{Name: "compile", Run: `echo "building $RIPCORD_VERSION"; echo warn >&2; printf 'binary %s' "$FLAVOUR" > app.bin`,
				Env: map[string]string{"FLAVOUR": "fast"}, Artifact: "app.bin"},
		}},
		{Name: "test", Needs: []string{"build"}, Run: `echo "testing $GREETING"; exit 0`, Env: map[string]string{"GREETING": "hi"}},
	})
	var live []core.LogLine
	s.logf = func(l core.LogLine) { live = append(live, l) }
	id, err := s.Trigger(context.Background(), "api", "1.2.3", "")
	if err != nil {
		t.Fatal(err)
	}
	r := waitRun(t, s, "api", id)
	if !r.Green() {
		t.Fatalf("run not green: %+v", r)
	}
	for _, st := range r.Stages {
		for _, sp := range st.Steps {
			if sp.ExitCode != 0 || sp.FinishedAt.Before(sp.StartedAt) || sp.StartedAt.IsZero() {
				t.Fatalf("step %s/%s: %+v", st.Name, sp.Name, sp)
			}
		}
	}
	if got := logText(t, s, id, "build/compile"); !strings.Contains(got, "building 1.2.3\n") || !strings.Contains(got, "warn\n") {
		t.Fatalf("build log: %q", got)
	}
	if got := logText(t, s, id, "test"); !strings.Contains(got, "testing hi\n") {
		t.Fatalf("test log (simple form, stage env): %q", got)
	}
	if len(live) < 3 {
		t.Fatalf("logf saw %d lines", len(live))
	}
	sum := sha256.Sum256([]byte("binary fast"))
	want := "sha256:" + hex.EncodeToString(sum[:])
	if r.ArtifactDigest != want {
		t.Fatalf("digest %s, want %s", r.ArtifactDigest, want)
	}
	stored, err := os.ReadFile(filepath.Join(cfg.StateDir, "artifacts", strings.TrimPrefix(want, "sha256:")))
	if err != nil || string(stored) != "binary fast" {
		t.Fatalf("artifact store: %q %v", stored, err)
	}
}

func TestFailedStepStopsStageAndRerunFromIt(t *testing.T) {
	s, cfg := newSource(t, []StageConfig{
		{Name: "build", Run: "echo built > app.bin", Artifact: "app.bin"},
		{Name: "test", Steps: []StepConfig{
			{Name: "unit", Run: "test -f fixed || { echo 'unit tests failed'; exit 3; }"},
			{Name: "lint", Run: "echo lint"},
		}},
		{Name: "package", Run: "echo packaged"},
	})
	id, err := s.Trigger(context.Background(), "api", "v1", "")
	if err != nil {
		t.Fatal(err)
	}
	r := waitRun(t, s, "api", id)
	if r.State != core.RunFailed {
		t.Fatalf("run state %s", r.State)
	}
	test := r.Stages[1]
	if test.State != core.RunFailed || test.Steps[0].State != core.RunFailed || test.Steps[0].ExitCode != 3 || test.Steps[1].State != core.RunSkipped {
		t.Fatalf("test stage: %+v", test)
	}
	if r.Stages[2].State != core.RunSkipped {
		t.Fatalf("stage after the failure ran: %+v", r.Stages[2])
	}
	if _, err := s.Trigger(context.Background(), "api", "v1", "package"); err == nil {
		t.Fatal("re-run from a stage after a failed one was accepted")
	}

	if err := os.WriteFile(filepath.Join(cfg.WorkDir, "fixed"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(cfg.WorkDir, "app.bin")) // the build is not run again
	id2, err := s.Trigger(context.Background(), "api", "v1", "test")
	if err != nil {
		t.Fatal(err)
	}
	r2 := waitRun(t, s, "api", id2)
	if !r2.Green() || r2.ArtifactDigest != r.ArtifactDigest || r2.ArtifactDigest == "" {
		t.Fatalf("re-run: %+v (first run's digest %s)", r2, r.ArtifactDigest)
	}
	if r2.Stages[0].Steps[0].StartedAt != r.Stages[0].Steps[0].StartedAt {
		t.Fatal("the re-run ran the build stage again")
	}
	if got := logText(t, s, id2, "build"); !strings.Contains(got, "artifact app.bin is sha256:") {
		t.Fatalf("re-run lost the build log: %q", got)
	}
}

func TestCancelLeavesNoProcessBehind(t *testing.T) {
	s, _ := newSource(t, []StageConfig{
		{Name: "test", Run: "echo $$; sleep 1000 & sleep 1000 & (sleep 1000; echo never) & wait"},
		{Name: "after", Run: "echo should not run"},
	})
	id, err := s.Trigger(context.Background(), "api", "v1", "")
	if err != nil {
		t.Fatal(err)
	}
	pgid := make(chan int, 1)
	ctx, stop := context.WithTimeout(context.Background(), 30*time.Second)
	defer stop()
	go s.Logs(ctx, id, "test", true, func(l core.LogLine) {
		if n, err := strconv.Atoi(l.Text); err == nil {
			select {
			case pgid <- n:
			default:
			}
		}
	})
	var group int
	select {
	case group = <-pgid:
	case <-ctx.Done():
		t.Fatal("the step never printed its pid")
	}
	if err := syscall.Kill(-group, 0); err != nil {
		t.Fatalf("the step's group should be alive: %v", err)
	}
	if err := s.Cancel(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(-group, 0); err != syscall.ESRCH {
		t.Fatalf("kill(-%d, 0) after cancel = %v, want ESRCH", group, err)
	}
	r := waitRun(t, s, "api", id)
	if r.State != core.RunCanceled || r.Stages[0].State != core.RunCanceled || r.Stages[1].State != core.RunSkipped {
		t.Fatalf("after cancel: %+v", r)
	}
}

func TestStepTimeout(t *testing.T) {
	s, _ := newSource(t, []StageConfig{{Name: "slow", Run: "sleep 30", Timeout: 200 * time.Millisecond}})
	id, err := s.Trigger(context.Background(), "api", "v1", "")
	if err != nil {
		t.Fatal(err)
	}
	r := waitRun(t, s, "api", id)
	if r.State != core.RunFailed || r.Stages[0].Steps[0].State != core.RunFailed {
		t.Fatalf("timed-out run: %+v", r)
	}
	if got := logText(t, s, id, "slow"); !strings.Contains(got, "timed out after 200ms") {
		t.Fatalf("log: %q", got)
	}
}

func TestRunsSurviveRestartAndAreBounded(t *testing.T) {
	s, cfg := newSource(t, []StageConfig{{Name: "build", Run: `echo "run of $RIPCORD_VERSION"`}})
	var ids []string
	for i := range keepRuns + 2 {
		id, err := s.Trigger(context.Background(), "api", "v"+strconv.Itoa(i), "")
		if err != nil {
			t.Fatal(err)
		}
		waitRun(t, s, "api", id)
		ids = append(ids, id)
	}
	again, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	runs, err := again.Runs(context.Background(), "api", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != keepRuns || runs[0].ID != ids[len(ids)-1] || runs[len(runs)-1].ID != ids[2] {
		t.Fatalf("after restart %d runs, newest %s", len(runs), runs[0].ID)
	}
	if got := logText(t, again, ids[len(ids)-1], "build"); got != "run of v"+strconv.Itoa(keepRuns+1)+"\n" {
		t.Fatalf("log after restart: %q", got)
	}
	if _, err := os.Stat(filepath.Join(cfg.StateDir, "runs", ids[0])); !os.IsNotExist(err) {
		t.Fatalf("oldest run still on disk: %v", err)
	}
}

func TestHugeOutputKeepsMemoryBounded(t *testing.T) {
	s, cfg := newSource(t, []StageConfig{{Name: "noisy", Steps: []StepConfig{
		// 100 MB as 100,000 lines of 1,000 bytes, then 10 MB without a newline.
		{Name: "lines", Run: `yes "$(head -c 999 /dev/zero | tr '\0' x)" | head -c 100000000`},
		{Name: "blob", Run: `head -c 10000000 /dev/zero`},
	}}})
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	id, err := s.Trigger(context.Background(), "api", "v1", "")
	if err != nil {
		t.Fatal(err)
	}
	r := waitRun(t, s, "api", id)
	if !r.Green() {
		t.Fatalf("run: %+v", r)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	growth := int64(after.HeapInuse) - int64(before.HeapInuse)
	t.Logf("heap in use grew %d MB", growth>>20)
	if growth > 64<<20 {
		t.Fatalf("heap grew %d MB for 110 MB of output", growth>>20)
	}
	var n int
	var last string
	s.Logs(context.Background(), id, "lines", false, func(l core.LogLine) { n++; last = l.Text })
	if n != ringLines || len(last) != 999 {
		t.Fatalf("kept %d lines (last %d bytes), want the last %d whole lines", n, len(last), ringLines)
	}
	st, err := os.Stat(filepath.Join(cfg.StateDir, "runs", id, "noisy.lines.jsonl"))
	if err != nil || st.Size() > 2*ringLines*1100 {
		t.Fatalf("log file on disk: %v, %v", st.Size(), err)
	}
	blob := logText(t, s, id, "blob")
	if len(blob) > maxLine+100 || !strings.Contains(blob, "line cut") {
		t.Fatalf("a 10 MB line was kept as %d bytes", len(blob))
	}
}
