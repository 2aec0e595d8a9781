package rollout

import (
	"context"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/ripcordhq/ripcord/core"
)

// situationOf waits until the engine has published a situation for prod
// that pred accepts, and returns it; on timeout it fails with the last
// one published.
func (w *world) situationOf(t testing.TB, what string, pred func(core.Situation) bool) core.Situation {
	t.Helper()
	snap, sub := w.eng.Subscribe()
	defer sub.Close()
	last, ok := snap.Situations[prod]
	if ok && pred(last) {
		return last
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		ev, err := sub.Next(ctx)
		if err != nil {
			t.Fatalf("the engine never published a situation where %s; the last: %+v", what, last)
		}
		if ev.Kind == core.EvSituation && ev.Ref == prod {
			last = *ev.Situation
			if pred(last) {
				return last
			}
		}
	}
}

func phase(p core.Phase) func(core.Situation) bool {
	return func(s core.Situation) bool { return s.Phase == p }
}

// greenBuild records a green pipeline run of version: the first
// environment's promote candidate.
func (w *world) greenBuild(version string) {
	w.eng.Publish(core.Event{Kind: core.EvPipeline, Final: true, Pipeline: &core.PipelineRun{
		ID: "run-" + version, Service: "api", Version: version, State: core.RunSucceeded}})
}

func spikeOf(candidate string) core.Event {
	return core.Event{Kind: core.EvVerdict, Ref: prod, Final: true, Verdict: &core.SpikeVerdict{Ref: prod, Candidate: candidate, Baseline: "v1", Kind: core.VerdictSpike,
		Evidence: core.Evidence{CandidateCount: 40, BaselineCount: 12, Share: 0.25, RateRatio: 6.8, PValue: 2e-9}}}
}

// After a failed analysis the rollout has stopped with the candidate
// still at its canary weight. The situation says so, offers abort, and
// abort sends the traffic back to stable.
func TestAbortAfterAFailedAnalysisRestoresStable(t *testing.T) {
	w := newWorld(t, Env{Steps: []Step{{Kind: StepWeight, Weight: 25}, {Kind: StepAnalysis, For: time.Hour}, {Kind: StepWeight, Weight: 100}}})
	w.greenBuild("v2")
	w.situationOf(t, "v2 is ready", func(s core.Situation) bool { return s.Command(core.CmdPromote).To == "v2" })
	w.do(t, core.Command{Kind: core.CmdPromote, Version: "v2"})
	w.situationOf(t, "the canary runs", phase(core.PhaseRolling))
	w.waitFor(t, "analysis", func(ev core.Event) bool { return ev.Kind == core.EvDeployment && ev.Deployment.Step == 1 })
	w.eng.Publish(spikeOf("v2"))

	s := w.situationOf(t, "the rollout stopped degraded", phase(core.PhaseDegraded))
	if s.Candidate != "v2" || s.Stable != "v1" || s.Weight != 25 || !strings.Contains(s.Why, "analysis failed") {
		t.Fatalf("degraded situation = %+v", s)
	}
	abort := s.Command(core.CmdAbort)
	if !abort.Allowed || abort.To != "v1" || abort.From != "v2" {
		t.Fatalf("abort after the failed analysis = %+v; want allowed, v2 → v1", abort)
	}
	for _, k := range []core.CommandKind{core.CmdPause, core.CmdResume} {
		if p := s.Command(k); p.Allowed || !strings.Contains(p.Why, "has stopped") {
			t.Fatalf("%s on a stopped rollout = %+v", k, p)
		}
	}
	res := w.do(t, core.Command{Kind: core.CmdAbort})
	if !strings.Contains(res.Message, "v1 serves all traffic") {
		t.Fatalf("abort said %q", res.Message)
	}
	if st, _ := w.target.Status(context.Background(), prod); st.Current != "v1" || st.Weight != 0 {
		t.Fatalf("target after abort = %+v; want all traffic on v1", st)
	}
	s = w.situationOf(t, "aborted", phase(core.PhaseAborted))
	if s.By.Name != "ana" || s.Stable != "v1" || s.Candidate != "v2" {
		t.Fatalf("aborted situation = %+v", s)
	}
	if p := s.Command(core.CmdAbort); p.Allowed {
		t.Fatalf("abort offered again after the abort: %+v", p)
	}
}

// An evaluation can start from a snapshot that has not yet heard the
// verdict which stopped the rollout while the store (written before any
// event) already says it stopped. The reason on screen is still the
// verdict, never a bare "the rollout stopped".
func TestDegradedSituationFromABehindSnapshotNamesTheVerdict(t *testing.T) {
	w := newWorld(t, Env{Steps: []Step{{Kind: StepWeight, Weight: 25}, {Kind: StepAnalysis, For: time.Hour}, {Kind: StepWeight, Weight: 100}}})
	w.do(t, core.Command{Kind: core.CmdPromote, Version: "v2"})
	w.waitFor(t, "analysis", func(ev core.Event) bool { return ev.Kind == core.EvDeployment && ev.Deployment.Step == 1 })
	behind := w.eng.Snapshot()
	w.eng.Publish(spikeOf("v2"))
	w.situationOf(t, "the rollout stopped degraded", phase(core.PhaseDegraded))

	s := w.ctl.situation(context.Background(), behind, prod)
	if s.Phase != core.PhaseDegraded || !strings.Contains(s.Why, "analysis failed") {
		t.Fatalf("situation from a snapshot taken before the verdict = %s: %q; want degraded because its analysis failed", s.Phase, s.Why)
	}
}

// A person's pause shows at once; the rollout holds at its next step
// boundary (recorded as paused there), promote waits for a resume, and
// resume lets it go on.
func TestPauseIsVisibleAndHolds(t *testing.T) {
	// No verdict comes: the analysis passes on that only with on_inconclusive: pass.
	w := newWorld(t, Env{Steps: []Step{{Kind: StepWeight, Weight: 25}, {Kind: StepAnalysis, For: 50 * time.Millisecond}, {Kind: StepWeight, Weight: 50}},
		OnInconclusive: core.InconclusivePass})
	w.do(t, core.Command{Kind: core.CmdPromote, Version: "v2"})
	w.do(t, core.Command{Kind: core.CmdPause})
	s := w.situationOf(t, "paused", phase(core.PhasePaused))
	if s.By.Name != "ana" || !strings.Contains(s.Why, "paused by ana") {
		t.Fatalf("paused situation = %+v", s)
	}
	if p := s.Command(core.CmdPromote); p.Allowed || !strings.Contains(p.Why, "resume it first") {
		t.Fatalf("promote while paused = %+v", p)
	}
	if p := s.Command(core.CmdResume); !p.Allowed {
		t.Fatalf("resume while paused = %+v", p)
	}
	if _, err := w.eng.Do(context.Background(), core.Command{Kind: core.CmdPromote, Ref: prod, Actor: ana}); err == nil || !strings.Contains(err.Error(), "resume it first") {
		t.Fatalf("the engine advanced a paused rollout: %v", err)
	}
	// The short analysis ends; the rollout stops at the boundary.
	w.waitFor(t, "held at the boundary", deployState(core.DeployPaused))
	if st, _ := w.target.Status(context.Background(), prod); st.Weight != 25 {
		t.Fatalf("a paused rollout moved on: %+v", st)
	}
	w.do(t, core.Command{Kind: core.CmdResume})
	w.waitFor(t, "healthy after resume", deployState(core.DeployHealthy))
	if st, _ := w.target.Status(context.Background(), prod); st.Current != "v2" {
		t.Fatalf("target after resume = %+v", st)
	}
}

// After a rollback the situation is calm and says what happened: rolled
// back, by whom, the release held; abort has nothing left to do.
func TestSituationAfterRollback(t *testing.T) {
	w := newWorld(t, Env{Steps: canary})
	w.do(t, core.Command{Kind: core.CmdPromote, Version: "v2"})
	w.waitFor(t, "judgment", deployState(core.DeployJudgment))
	// The promote's lock may still be held in the first situation of the
	// judgment; once it is released, rollback is offered.
	s := w.situationOf(t, "waiting for judgment, the promote's lock released", func(s core.Situation) bool {
		return s.Phase == core.PhaseJudgment && s.Command(core.CmdRollback).Allowed
	})
	if rb := s.Command(core.CmdRollback); rb.From != "v2" || rb.To != "v1" || !strings.Contains(rb.Note, "v2 will be held") {
		t.Fatalf("rollback at judgment = %+v", rb)
	}
	w.do(t, core.Command{Kind: core.CmdRollback})
	s = w.situationOf(t, "rolled back", phase(core.PhaseRolledBack))
	if s.Stable != "v1" || s.Candidate != "v2" || s.By.Name != "ana" || s.Phase.Serving() {
		t.Fatalf("rolled-back situation = %+v", s)
	}
	if h, held := s.Held("v2"); !held || !strings.Contains(h.Reason, "rolled back by ana") {
		t.Fatalf("holds = %+v", s.Holds)
	}
	if p := s.Command(core.CmdAbort); p.Allowed || !strings.Contains(p.Why, "rolled back to v1") {
		t.Fatalf("abort after rollback = %+v", p)
	}
}

// Someone else's lock refuses what takes the lock, naming the holder.
func TestSituationNamesTheLockHolder(t *testing.T) {
	w := newWorld(t, Env{})
	w.greenBuild("v2")
	w.do(t, core.Command{Kind: core.CmdLock, Actor: core.Actor{Name: "bo"}, Reason: "migrating db"})
	s := w.situationOf(t, "locked", func(s core.Situation) bool { return strings.Contains(s.Command(core.CmdPromote).Why, "locked") })
	if p := s.Command(core.CmdPromote); p.Allowed || !strings.Contains(p.Why, "locked by bo") || !strings.Contains(p.Why, "migrating db") {
		t.Fatalf("promote under bo's lock = %+v", p)
	}
	if p := s.CommandFor(core.CmdPromote, ana); p.Allowed {
		t.Fatalf("ana may promote under bo's lock: %+v", p)
	}
	// bo's own commands run under his lock, and the engine agrees.
	p := s.CommandFor(core.CmdPromote, core.Actor{Name: "bo"})
	if !p.Allowed || p.To != "v2" {
		t.Fatalf("bo's promote under his own lock = %+v", p)
	}
	w.do(t, core.Command{Kind: core.CmdPromote, Version: p.To, Actor: core.Actor{Name: "bo"}})
}

// Whatever people do, in any order: every command the situation offers is
// one the engine accepts when a person sends it the way a screen would
// (with the situation's To as the version).
func TestOfferedCommandsAreAccepted(t *testing.T) {
	ctx := context.Background()
	rapid.Check(t, func(rt *rapid.T) {
		w := newWorld(t, Env{Steps: []Step{{Kind: StepWeight, Weight: 25}, {Kind: StepPause}, {Kind: StepWeight, Weight: 100}}})
		defer w.ctl.Close()
		for _, v := range []string{"v2", "v3"} {
			if err := w.eng.Store().PutRelease(ctx, core.Release{Service: "api", Version: v, Branch: "main", ArtifactDigest: "sha256:" + v}); err != nil {
				rt.Fatal(err)
			}
		}
		for i := range rapid.IntRange(1, 10).Draw(rt, "steps") {
			if rapid.Bool().Draw(rt, "new build") {
				w.greenBuild(rapid.SampledFrom([]string{"v2", "v3"}).Draw(rt, "build"))
			}
			settle(rt, w)
			s := w.ctl.Situation(ctx, prod)
			var offered []core.Possible
			for _, p := range s.Commands {
				if p.Allowed && p.Kind != core.CmdBackupNow {
					offered = append(offered, p)
				}
			}
			if len(offered) == 0 {
				continue
			}
			p := rapid.SampledFrom(offered).Draw(rt, "command")
			cmd := core.Command{Kind: p.Kind, Ref: prod, Version: p.To, Actor: ana, Reason: "property"}
			if p.Kind == core.CmdRollback && p.To == "" {
				cmd.Version = p.Options[0]
			}
			if _, err := w.eng.Do(ctx, cmd); err != nil {
				rt.Fatalf("step %d: the situation offered %s (%s) in phase %s, the engine refused it: %v", i, p.Kind, p.Why, s.Phase, err)
			}
		}
	})
}

// settle waits, on what the engine publishes alone, until no rollout is
// between steps: it waits for judgment, or has ended (or stopped). A
// person's command then meets the state the situation was evaluated on:
// the rollout moves on only when someone tells it to.
func settle(t interface{ Fatalf(string, ...any) }, w *world) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		d, ok := w.eng.Snapshot().Deployments[prod]
		switch {
		case !ok, d.State == core.DeployJudgment, d.State == core.DeployPaused, d.State == core.DeployDegraded, d.State.Terminal():
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the rollout never settled: %+v", d)
		}
		time.Sleep(time.Millisecond)
	}
}

// While a promote deploys its first step the rollout has not started and
// has not stopped: the situation says it is deploying, and offers
// neither abort nor pause (the engine has no rollout to apply them to
// until that step is done); once the canary takes its share both are
// offered, and the abort offered is accepted.
func TestTheFirstStepBeingDeployedOffersOnlyWhatTheEngineAccepts(t *testing.T) {
	w := newWorld(t, Env{Steps: canary})
	gate := make(chan struct{})
	w.target.mu.Lock()
	w.target.deployGate = gate
	w.target.mu.Unlock()
	w.greenBuild("v2")
	promoted := make(chan error, 1)
	go func() {
		_, err := w.eng.Do(context.Background(), core.Command{Kind: core.CmdPromote, Ref: prod, Version: "v2", Actor: ana})
		promoted <- err
	}()
	s := w.situationOf(t, "v2's first step is being deployed", func(s core.Situation) bool {
		return strings.Contains(s.Why, "deploying v2 for its first step")
	})
	if s.Phase != core.PhaseDeploying || s.Candidate != "v2" || s.Stable != "v1" {
		t.Fatalf("situation while the first step deploys = %+v; want v1 → v2 deploying", s)
	}
	for _, k := range []core.CommandKind{core.CmdAbort, core.CmdPause, core.CmdResume} {
		if p := s.Command(k); p.Allowed || !strings.Contains(p.Why, "first step is still being deployed") {
			t.Fatalf("%s while the first step deploys = %+v; want refused with the reason", k, p)
		}
	}
	close(gate)
	if err := <-promoted; err != nil {
		t.Fatalf("promote: %v", err)
	}
	s = w.situationOf(t, "the canary takes its share", func(s core.Situation) bool { return s.Command(core.CmdAbort).Allowed })
	if !s.Command(core.CmdPause).Allowed {
		t.Fatalf("pause once the canary runs = %+v; want allowed", s.Command(core.CmdPause))
	}
	if res := w.do(t, core.Command{Kind: core.CmdAbort}); res.Outcome != "aborted" {
		t.Fatalf("the abort offered: %+v", res)
	}
}

// The environment a release comes from is settled only when its newest
// deployment has ended. The store is written before the event is
// published: a promote there whose deployment is recorded but not yet
// announced keeps "ready to promote" off, so p is never offered for an
// environment whose source is still rolling out.
func TestReadyWaitsForTheSourceEnvironmentsNewestDeployment(t *testing.T) {
	w := newWorld(t, Env{From: "staging", Steps: []Step{{Kind: StepWeight, Weight: 100}}})
	ctx := context.Background()
	staging := core.Ref{Service: "api", Env: "staging"}
	w.greenBuild("v2")
	w.eng.Publish(core.Event{Kind: core.EvTarget, Ref: staging, Target: &core.TargetStatus{Ref: staging, Current: "v2", Healthy: true}})
	done := core.Deployment{Ref: staging, Version: "v2", From: "v1", State: core.DeployHealthy, Weight: 100, StartedAt: time.Now().Add(-time.Minute), FinishedAt: time.Now()}
	id, err := w.eng.Store().AddDeployment(ctx, done)
	if err != nil {
		t.Fatal(err)
	}
	done.ID = id
	w.eng.Publish(core.Event{Kind: core.EvDeployment, Ref: staging, Deployment: &done})
	// The rollout there has ended and its operation still holds the lock:
	// not settled yet.
	lock := core.Lock{Ref: staging, Holder: core.Actor{Name: "ripcord", Automation: true}, Reason: "promote", Since: time.Now(), ExpiresAt: time.Now().Add(time.Minute)}
	w.eng.Publish(core.Event{Kind: core.EvLock, Ref: staging, Final: true, Lock: &lock})
	if s := w.ctl.Situation(ctx, prod); s.Ready != "" {
		t.Fatalf("while staging's promote still holds its lock, ready = %q; want none", s.Ready)
	}
	// A person's lock there is no rollout of staging's: it does not hold
	// production back.
	person := lock
	person.Kind = core.LockPerson
	w.eng.Publish(core.Event{Kind: core.EvLock, Ref: staging, Final: true, Lock: &person})
	if s := w.ctl.Situation(ctx, prod); s.Ready != "v2" {
		t.Fatalf("with a person's lock on staging, ready = %q; want v2", s.Ready)
	}
	w.eng.Publish(core.Event{Kind: core.EvLock, Ref: staging, Final: true})
	if s := w.ctl.Situation(ctx, prod); s.Ready != "v2" {
		t.Fatalf("with staging's rollout of v2 finished, ready = %q; want v2 (promote: %+v)", s.Ready, s.Command(core.CmdPromote))
	}

	// A new promote in staging has recorded its deployment and not yet
	// published it.
	if _, err := w.eng.Store().AddDeployment(ctx, core.Deployment{Ref: staging, Version: "v2", From: "v2", State: core.DeployProgressing, Weight: 25, StartedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if s := w.ctl.Situation(ctx, prod); s.Ready != "" {
		t.Fatalf("while staging's newest deployment is still progressing, ready = %q; want none", s.Ready)
	}
}

// Where nothing reads a service's migrations, a rollback's migrations
// check says it did not check, never "carries no migrations", and does
// not block.
func TestRollbackCrossingOfUnreadMigrationsSaysNotChecked(t *testing.T) {
	w := newWorld(t, Env{MigrationsUnread: "api sets no migrations.dir"})
	g := w.ctl.Crossing(context.Background(), prod, core.Deployment{Ref: prod, Version: "v2"}, "v1").Gate()
	if g.Status != core.GatePass || !strings.Contains(g.Reason, "not checked: api sets no migrations.dir") || strings.Contains(g.Reason, "carries no migrations") {
		t.Fatalf("rollback migrations check where none are read = %+v", g)
	}
	w2 := newWorld(t, Env{})
	if g := w2.ctl.Crossing(context.Background(), prod, core.Deployment{Ref: prod, Version: "v2"}, "v1").Gate(); !strings.Contains(g.Reason, "carries no migrations") {
		t.Fatalf("rollback migrations check where they are read = %+v", g)
	}
}
