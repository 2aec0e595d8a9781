package observe

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/core/rollout"
)

var (
	staging = core.Ref{Service: "api", Env: "staging"}
	prod    = core.Ref{Service: "api", Env: "production"}
)

func TestTargetStatusReachesSnapshotAndFailingWatchIsRetried(t *testing.T) {
	eng := newEngine(t, nil, "staging")
	tg := newFakeTarget("v1")
	tg.failWatch = 2
	_, sub := eng.Subscribe()
	defer sub.Close()
	ob := Start(context.Background(), Options{Engine: eng, Targets: map[core.Ref]core.Target{staging: tg}, Retry: 5 * time.Millisecond})
	defer ob.Close()

	logged := waitFor(t, sub, "the failure logged", func(ev core.Event) bool { return ev.Kind == core.EvLog })
	if logged.Log.Source != "observe" || !strings.Contains(logged.Log.Text, "connection refused") {
		t.Fatalf("log line = %+v, want the watch error from source observe", logged.Log)
	}
	waitUntil(t, "the third watch", func() bool { n, _ := tg.calls(); return n == 3 })
	// Only a working watch can carry this change to the engine.
	tg.set(func(s *core.TargetStatus) { s.Current = "v9" })
	waitFor(t, sub, "v9 reported", func(ev core.Event) bool {
		return ev.Kind == core.EvTarget && ev.Target.Current == "v9"
	})
	if got := eng.Snapshot().Targets[staging]; got.Current != "v9" || got.Ref != staging || !got.Healthy {
		t.Fatalf("snapshot target = %+v", got)
	}
}

// autoWorld is staging (automatic on a green pipeline) and production
// (automatic once staging is healthy), each with a target and the real
// rollout controller behind the engine's commands.
type autoWorld struct {
	eng      *core.Engine
	ob       *Observer
	sub      *core.Subscription
	pipe     *fakePipeline
	stg, prd *fakeTarget
}

func newAutoWorld(t *testing.T, gates ...core.GateSpec) *autoWorld {
	t.Helper()
	return newAutoWorldFrom(t, "v1", nil, gates...)
}

// newAutoWorldFrom is an autoWorld whose staging runs stagingRuns and
// whose pipeline lists history when asked for its runs.
func newAutoWorldFrom(t *testing.T, stagingRuns string, history []core.PipelineRun, gates ...core.GateSpec) *autoWorld {
	t.Helper()
	ctx := context.Background()
	eng := newEngine(t, nil, "staging", "production")
	if err := eng.Store().PutRelease(ctx, core.Release{Service: "api", Version: "v1", ArtifactDigest: "sha256:v1"}); err != nil {
		t.Fatal(err)
	}
	w := &autoWorld{eng: eng, pipe: &fakePipeline{runs: make(chan core.PipelineRun), history: history}, stg: newFakeTarget(stagingRuns), prd: newFakeTarget("v1")}
	ctl := rollout.New(eng, rollout.Options{Envs: []rollout.Env{
		{Ref: staging, Target: w.stg, Gates: gates},
		{Ref: prod, From: "staging", Target: w.prd, Gates: gates},
	}})
	_, w.sub = eng.Subscribe()
	w.ob = Start(ctx, Options{
		Engine:    eng,
		Targets:   map[core.Ref]core.Target{staging: w.stg, prod: w.prd},
		Pipelines: map[string]core.PipelineSource{"api": w.pipe},
		From:      map[core.Ref]string{staging: "", prod: "staging"},
		Auto:      map[core.Ref]bool{staging: true, prod: true},
		Retry:     5 * time.Millisecond,
	})
	t.Cleanup(func() { w.ob.Close(); ctl.Close(); w.sub.Close() })
	// Both targets have said what they run before any run is green.
	for _, ref := range []core.Ref{staging, prod} {
		waitUntil(t, ref.String()+" status", func() bool { _, ok := eng.Snapshot().Targets[ref]; return ok })
	}
	return w
}

func greenRun(version string, finished time.Time) core.PipelineRun {
	return core.PipelineRun{ID: "run-" + version, Service: "api", Version: version, Commit: "c0ffee", State: core.RunSucceeded,
		Stages: []core.Stage{{Name: "build", State: core.RunSucceeded}}, ArtifactDigest: "sha256:" + version, FinishedAt: finished}
}

// A build from a feature branch is recorded with its branch, and the
// branch gate keeps automation from deploying it anywhere.
func TestFeatureBranchBuildFailsTheBranchGate(t *testing.T) {
	w := newAutoWorld(t, core.GateSpec{Name: core.GateBranch})
	run := greenRun("v2", time.Now())
	run.Branch = "feature/cart"
	w.emit(t, run)
	ev := waitFor(t, w.sub, "the blocked promote", func(ev core.Event) bool {
		return ev.Kind == core.EvAudit && ev.Audit.Action == "promote" && ev.Audit.Outcome == "blocked"
	})
	if g := ev.Audit.Gates; len(g) != 1 || g[0].Status != core.GateFail || g[0].Reason != "v2 was built from feature/cart; only main may be promoted" {
		t.Fatalf("blocked promote gates = %+v", g)
	}
	if st, _ := w.stg.Status(context.Background(), staging); st.Current != "v1" || st.Candidate != "" {
		t.Fatalf("staging after a feature-branch build = %+v; want v1 alone", st)
	}
}

// emit sends a run and returns the Seq of its pipeline event.
func (w *autoWorld) emit(t *testing.T, r core.PipelineRun) uint64 {
	t.Helper()
	w.pipe.runs <- r
	return waitFor(t, w.sub, "run "+r.ID, func(ev core.Event) bool {
		return ev.Kind == core.EvPipeline && ev.Pipeline.ID == r.ID
	}).Seq
}

func (w *autoWorld) promotes(t *testing.T) map[core.Ref][]string {
	t.Helper()
	entries, err := w.eng.Store().Audit(context.Background(), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	out := map[core.Ref][]string{}
	for _, e := range entries {
		if e.Action == "promote" {
			out[e.Ref] = append(out[e.Ref], e.To+" by "+e.Actor.String()+" ("+e.Reason+")")
		}
	}
	return out
}

func TestGreenRunBecomesReleaseAndIsPromotedThroughTheEnvironmentsOnce(t *testing.T) {
	w := newAutoWorld(t)
	ctx := context.Background()
	run := greenRun("v2", time.Now().Truncate(time.Second)) // the store keeps microseconds
	run.Branch = ""                                         // the pipeline could not tell: recorded as unknown, never guessed from the config
	run.Migrations = []core.Migration{{ID: "001_add_note", Kind: core.MigrationExpand, Changes: []core.SchemaChange{{Kind: core.MigrationExpand, Action: "add column", Table: "orders", Column: "note"}}}}
	w.emit(t, run)

	waitFor(t, w.sub, "staging healthy on v2", func(ev core.Event) bool {
		return ev.Kind == core.EvDeployment && ev.Ref == staging && ev.Deployment.Version == "v2" && ev.Deployment.State == core.DeployHealthy
	})
	rel, err := w.eng.Store().Release(ctx, "api", "v2")
	if err != nil {
		t.Fatal(err)
	}
	if rel.ArtifactDigest != "sha256:v2" || rel.Branch != "" || rel.Commit != "c0ffee" || !rel.BuiltAt.Equal(run.FinishedAt) ||
		len(rel.Migrations) != 1 || rel.Migrations[0].Affects() != "add column orders.note" {
		t.Fatalf("release = %+v, want the run's digest, commit, build time and migrations, and no branch", rel)
	}
	// Production follows once staging's target reports v2 healthy.
	waitFor(t, w.sub, "production healthy on v2", func(ev core.Event) bool {
		return ev.Kind == core.EvDeployment && ev.Ref == prod && ev.Deployment.Version == "v2" && ev.Deployment.State == core.DeployHealthy
	})
	if d := w.eng.Snapshot().Deployments[prod]; !d.Actor.Automation || d.From != "v1" {
		t.Fatalf("production deployment = %+v, want automation replacing v1", d)
	}

	// The pipeline reports the same run again (a restart, a re-delivery).
	quiesce(t, w.ob, w.emit(t, run))
	if _, d := w.stg.calls(); len(d) != 1 {
		t.Fatalf("staging deploys = %v, want v2 once", d)
	}
	if _, d := w.prd.calls(); len(d) != 1 {
		t.Fatalf("production deploys = %v, want v2 once", d)
	}
	got := w.promotes(t)
	if len(got[staging]) != 1 || got[staging][0] != "v2 by automation:ripcord (pipeline green)" ||
		len(got[prod]) != 1 || !strings.HasPrefix(got[prod][0], "v2 by automation:ripcord") {
		t.Fatalf("promote audit = %v, want one automated promote per environment", got)
	}
}

func TestOlderGreenRunNeverBringsBackAnOlderRelease(t *testing.T) {
	w := newAutoWorld(t)
	w.emit(t, greenRun("v3", time.Now()))
	waitFor(t, w.sub, "staging healthy on v3", func(ev core.Event) bool {
		return ev.Kind == core.EvDeployment && ev.Ref == staging && ev.Deployment.Version == "v3" && ev.Deployment.State == core.DeployHealthy
	})
	waitFor(t, w.sub, "production healthy on v3", func(ev core.Event) bool {
		return ev.Kind == core.EvDeployment && ev.Ref == prod && ev.Deployment.State == core.DeployHealthy
	})
	// A run that finished earlier, reported late.
	quiesce(t, w.ob, w.emit(t, greenRun("v2", time.Now().Add(-time.Hour))))
	if _, d := w.stg.calls(); len(d) != 1 || d[0] != "v3" {
		t.Fatalf("staging deploys = %v, want only v3", d)
	}
	if _, err := w.eng.Store().Release(context.Background(), "api", "v2"); err != nil {
		t.Fatalf("the late green run's release was not recorded: %v", err)
	}
}

// Runs arrive in any order — the history listed at start, sorted by when
// runs finished, then replays of kept runs — but the newest run is the one
// that started last: v1's run started first and merely finished last, so
// its green never promotes v1 over the v2 staging runs, whatever order the
// runs are applied in.
func TestRunsReplayedOutOfOrderNeverPromoteAnOlderRelease(t *testing.T) {
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	older := greenRun("v1", t0.Add(30*time.Minute)) // a slow run: started first, finished last
	older.StartedAt = t0
	newer := greenRun("v2", t0.Add(10*time.Minute))
	newer.StartedAt = t0.Add(5 * time.Minute)
	w := newAutoWorldFrom(t, "v2", []core.PipelineRun{newer, older}) // newest first, as a CI lists them
	// The kept runs are replayed after the history, oldest first, and the
	// slow run is reported once more, late.
	w.emit(t, older)
	w.emit(t, newer)
	quiesce(t, w.ob, w.emit(t, older))
	if got := w.promotes(t)[staging]; len(got) != 0 {
		t.Fatalf("staging promotes = %v; v2 runs there and v1's run started before v2's", got)
	}
	if _, d := w.stg.calls(); len(d) != 0 {
		t.Fatalf("staging deploys = %v, want none", d)
	}
	// What the pipeline pane shows is the newest run, too.
	if run := w.eng.Snapshot().Pipelines["api"]; run.Version != "v2" {
		t.Fatalf("the pipeline shows %s's run; the newest is v2's", run.Version)
	}
}

func TestHeldReleaseIsNotPromotedAndNotRetried(t *testing.T) {
	w := newAutoWorld(t)
	ctx := context.Background()
	st := w.eng.Store()
	if err := st.PutRelease(ctx, core.Release{Service: "api", Version: "v2", ArtifactDigest: "sha256:v2"}); err != nil {
		t.Fatal(err)
	}
	if err := st.SetHold(ctx, "api", "v2", true, "error spike in production"); err != nil {
		t.Fatal(err)
	}
	run := greenRun("v2", time.Now().Truncate(time.Second)) // the store keeps microseconds
	w.emit(t, run)
	n := waitFor(t, w.sub, "a notice", func(ev core.Event) bool { return ev.Kind == core.EvNotice })
	if !strings.Contains(n.Notice, "v2") || !strings.Contains(n.Notice, "hold") {
		t.Fatalf("notice = %q, want it to say v2 is held", n.Notice)
	}
	// More reasons to look again: the run re-reported, the target
	// re-reporting. Automation must not try again.
	w.emit(t, run)
	w.stg.set(func(s *core.TargetStatus) { s.Kept = []string{"v0"} })
	seq := waitFor(t, w.sub, "staging re-reported", func(ev core.Event) bool {
		return ev.Kind == core.EvTarget && ev.Ref == staging && len(ev.Target.Kept) == 1
	}).Seq
	quiesce(t, w.ob, seq)
	if _, d := w.stg.calls(); len(d) != 0 {
		t.Fatalf("staging deploys = %v, want none", d)
	}
	notices := 0
	for _, s := range w.eng.Snapshot().Notices {
		if strings.Contains(s, "automatic promote") {
			notices++
		}
	}
	if notices != 1 {
		t.Fatalf("%d notices about the automatic promote, want 1: %q", notices, w.eng.Snapshot().Notices)
	}
	if rel, _ := st.Release(ctx, "api", "v2"); !rel.Held {
		t.Fatal("recording the green run cleared the hold")
	}
}
