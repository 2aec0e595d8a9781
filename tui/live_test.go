package tui

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/core/rollout"
	"github.com/ripcordhq/ripcord/core/sqlitestore"
)

// The console decides nothing: what it offers comes from the situation
// the engine publishes. So the states the console is tested in — a
// release ready to promote, a canary, the incident after a failed
// analysis, a paused rollout, the calm after a rollback — are reached by
// real commands through the real rollout controller, over a real store,
// with targets held in memory (as the controller's own tests do). The
// clock stands still at t0, so what is drawn is the same every run.

// memTarget is a deploy target in memory that reports its status to the
// engine after every change, as the target observer does.
type memTarget struct {
	mu                 sync.Mutex
	eng                *core.Engine
	ref                core.Ref
	current, candidate string
	weight             int
	failNext           error
	// hold, when set, keeps Deploy waiting until it is closed; held is
	// closed once Deploy waits.
	hold chan struct{}
	held chan struct{}
}

// waitHeld waits until a Deploy is being held.
func (m *memTarget) waitHeld(t testing.TB) {
	t.Helper()
	m.mu.Lock()
	if m.held == nil {
		m.held = make(chan struct{})
	}
	held := m.held
	m.mu.Unlock()
	select {
	case <-held:
	case <-time.After(10 * time.Second):
		t.Fatal("the deploy never reached the target")
	}
}

func (m *memTarget) status() core.TargetStatus {
	return core.TargetStatus{Ref: m.ref, Current: m.current, Candidate: m.candidate, Weight: m.weight, Healthy: true}
}

// report publishes what the target runs, as the observer would.
func (m *memTarget) report() {
	m.mu.Lock()
	ts := m.status()
	m.mu.Unlock()
	m.eng.Publish(core.Event{Kind: core.EvTarget, Ref: m.ref, Final: true, Target: &ts})
}

func (m *memTarget) change(fn func() error) error {
	m.mu.Lock()
	if err := m.failNext; err != nil {
		m.failNext = nil
		m.mu.Unlock()
		return err
	}
	err := fn()
	m.mu.Unlock()
	m.report()
	return err
}

func (m *memTarget) Status(context.Context, core.Ref) (core.TargetStatus, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.status(), nil
}

func (m *memTarget) WatchStatus(ctx context.Context, _ core.Ref, _ func(core.TargetStatus)) error {
	<-ctx.Done()
	return ctx.Err()
}

func (m *memTarget) Deploy(ctx context.Context, _ core.OpRequest, rel core.Release, w int, _ func(core.OpEvent)) error {
	m.mu.Lock()
	hold := m.hold
	if hold != nil {
		if m.held == nil {
			m.held = make(chan struct{})
		}
		close(m.held)
	}
	m.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return m.change(func() error {
		m.candidate, m.weight = rel.Version, w
		if w == 100 {
			m.current, m.candidate, m.weight = rel.Version, "", 0
		}
		return nil
	})
}

func (m *memTarget) SetWeight(_ context.Context, _ core.OpRequest, w int, _ func(core.OpEvent)) error {
	return m.change(func() error {
		m.weight = w
		if w == 100 {
			m.current, m.candidate, m.weight = m.candidate, "", 0
		}
		return nil
	})
}

func (m *memTarget) Rollback(_ context.Context, _ core.OpRequest, to string, _ func(core.OpEvent)) error {
	return m.change(func() error {
		m.current, m.candidate, m.weight = to, "", 0
		return nil
	})
}

func (m *memTarget) WatchOperation(context.Context, core.OpRequest, string, func(core.OpEvent)) error {
	return nil
}

// live is a project behind a real engine: service api in staging and
// production (production takes what staging runs, through a canary of
// 25%, a ten-minute analysis and 100%), and service web, which has no
// target.
type live struct {
	t          testing.TB
	eng        *core.Engine
	ctl        *rollout.Controller
	prod, stag *memTarget

	mu     sync.Mutex
	backup []string // the sets backed up now, in order
}

func (l *live) backedUp() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.backup...)
}

var (
	alice = core.Actor{Name: "alice", Host: "ops1"}
	bob   = core.Actor{Name: "bob", Host: "laptop"}
)

// productionPlan is the demo's: a canary, its analysis, everything.
var productionPlan = []core.RolloutStep{{Kind: core.StepWeight, Weight: 25}, {Kind: core.StepAnalysis, For: 10 * time.Minute}, {Kind: core.StepWeight, Weight: 100}}

// liveReleases are what the store holds: v1.43.0 adds an expand
// migration over v1.42.0, so rolling it back is free.
func liveReleases() []core.Release {
	rels := releases()
	rels[2].Migrations = rels[2].Migrations[:2]
	return rels
}

func newLive(t testing.TB) *live {
	t.Helper()
	return newLiveWith(t, liveReleases())
}

func newLiveWith(t testing.TB, rels []core.Release) *live {
	t.Helper()
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "state.db"), sqlitestore.WithClock(fixedClock))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rels {
		r.Branch, r.ArtifactDigest, r.BuiltAt = "main", "sha256:"+r.Version, t0.Add(-time.Hour)
		if err := st.PutRelease(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range history()[:2] {
		if _, err := st.AddDeployment(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.AddDeployment(ctx, core.Deployment{Ref: staging, Version: "v1.42.0", State: core.DeployHealthy, Weight: 100,
		StartedAt: t0.Add(-4 * time.Hour), FinishedAt: t0.Add(-4 * time.Hour), Actor: alice}); err != nil {
		t.Fatal(err)
	}
	eng := core.NewEngine(core.EngineOptions{Project: "shop", Services: []string{"api", "web"}, Envs: []string{"staging", "production"}, Store: st, Clock: fixedClock})
	if err := eng.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Audit(ctx, core.AuditEntry{At: t0.Add(-2 * time.Hour), Actor: alice, Action: "promote", Ref: production, From: "v1.41.2", To: "v1.42.0", Outcome: "healthy"}); err != nil {
		t.Fatal(err)
	}
	l := &live{t: t, eng: eng}
	l.stag = &memTarget{eng: eng, ref: staging, current: "v1.42.0"}
	l.prod = &memTarget{eng: eng, ref: production, current: "v1.42.0"}
	l.stag.report()
	l.prod.report()
	run := pipeline("v1.43.0", core.RunSucceeded, 1)
	eng.Publish(core.Event{Kind: core.EvPipeline, Final: true, Pipeline: &run})
	for _, f := range []core.Freshness{
		verified(fresh("postgres", "pgbackrest", core.FreshOK, 3*time.Hour, 24*time.Hour, "postgres: newest backup 3h old (expected every 24h)"), 26*time.Hour),
		fresh("uploads", "dir", core.FreshWarn, 30*time.Hour, 24*time.Hour, "uploads: newest backup 30h old (expected every 24h)"),
	} {
		f.Facts.Unreadable, f.Facts.CanRunNow = "", f.Facts.Set == "postgres"
		eng.Publish(core.Event{Kind: core.EvBackup, Ref: production, Final: true, Backup: &f})
	}
	orders := fresh("orders", "restic", core.FreshOK, 20*time.Minute, 24*time.Hour, "orders: newest backup 20m old (expected every 24h)")
	orders.Ref, orders.Facts.Unreadable, orders.Facts.CanRunNow = staging, "", true
	eng.Publish(core.Event{Kind: core.EvBackup, Ref: staging, Final: true, Backup: &orders})
	for _, w := range []core.ErrorWindow{
		window(production, "v1.42.0", []int64{6, 6, 5, 7, 6, 6, 5, 6, 7, 6, 6, 6}),
	} {
		eng.Publish(core.Event{Kind: core.EvErrors, Ref: production, Final: true, Errors: &w})
	}
	eng.Publish(core.Event{Kind: core.EvWatchers, Watchers: []core.Watcher{{ID: "w-carol", Actor: core.Actor{Name: "carol", Host: "bastion-2"}, Since: t0.Add(-12 * time.Minute), SeenAt: t0}}})
	// Backing up now runs through the backup provider in the real world;
	// here the set is recorded as backed up.
	eng.Handle(core.CmdBackupNow, func(_ context.Context, _ *core.Engine, cmd core.Command) (core.Result, error) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.backup = append(l.backup, cmd.Version)
		return core.Result{Outcome: "done", Message: "backed up " + cmd.Version}, nil
	})
	l.ctl = rollout.New(eng, rollout.Options{Envs: []rollout.Env{
		{Ref: staging, Target: l.stag},
		{Ref: production, From: "staging", Target: l.prod, Steps: productionPlan,
			Gates: []core.GateSpec{{Name: core.GatePipeline}, {Name: core.GateErrors}, {Name: core.GateBackups}, {Name: core.GateLock}}},
	}})
	t.Cleanup(func() { l.ctl.Close(); _ = st.Close() })
	for _, svc := range []string{"api", "web"} {
		for _, env := range []string{"staging", "production"} {
			l.awaitIn(core.Ref{Service: svc, Env: env}, "anything", func(s core.Situation) bool { return s.Acting })
		}
	}
	return l
}

// await waits until the engine's situation for production satisfies
// pred, and returns it.
func (l *live) await(what string, pred func(core.Situation) bool) core.Situation {
	l.t.Helper()
	return l.awaitIn(production, what, pred)
}

func (l *live) awaitIn(ref core.Ref, what string, pred func(core.Situation) bool) core.Situation {
	l.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		snap := l.eng.Snapshot()
		s, ok := snap.Situations[ref]
		// A command just run holds the lock until it returns; the state
		// is reached once the engine has said so without the lock.
		_, locked := snap.Locks[ref]
		if ok && pred(s) && !locked && !mentionsLock(s) {
			return s
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("the engine never said %s in %s; it says %+v", what, ref, s)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func mentionsLock(s core.Situation) bool {
	for _, p := range s.Commands {
		if strings.Contains(p.Why, " is locked by ") {
			return true
		}
	}
	return false
}

func inPhase(p core.Phase) func(core.Situation) bool {
	return func(s core.Situation) bool { return s.Phase == p }
}

func (l *live) do(cmd core.Command) core.Result {
	l.t.Helper()
	if cmd.Ref == (core.Ref{}) {
		cmd.Ref = production
	}
	if cmd.Actor.Name == "" {
		cmd.Actor = alice
	}
	res, err := l.eng.Do(context.Background(), cmd)
	if err != nil {
		l.t.Fatalf("%s: %v", cmd.Kind, err)
	}
	return res
}

// ready: staging runs v1.43.0, which production does not.
func (l *live) ready() *live {
	l.t.Helper()
	l.stag.mu.Lock()
	l.stag.current = "v1.43.0"
	l.stag.mu.Unlock()
	l.stag.report()
	// Staging's observer judged v1.43.0 healthy: the errors gate wants
	// that word from where the release comes from.
	l.eng.Publish(healthyVerdict(staging))
	l.await("v1.43.0 is ready", func(s core.Situation) bool { return s.Ready == "v1.43.0" })
	return l
}

// canary: alice promoted v1.43.0; it takes 25% while its analysis runs.
func (l *live) canary() *live {
	l.t.Helper()
	l.ready()
	l.do(core.Command{Kind: core.CmdPromote, Version: "v1.43.0"})
	l.await("the canary's analysis runs", func(s core.Situation) bool { return s.Phase == core.PhaseRolling && s.Step == 1 })
	return l
}

// incident: the analysis saw an error spike; the rollout stopped with
// v1.43.0 still taking 25%.
func (l *live) incident() *live {
	l.t.Helper()
	l.canary()
	w := window(production, "v1.43.0", []int64{2, 3, 5, 8, 12, 20, 30, 38, 40, 41, 44, 46})
	l.eng.Publish(core.Event{Kind: core.EvErrors, Ref: production, Final: true, Errors: &w})
	l.eng.Publish(spikeVerdict(production))
	l.await("the rollout stopped", inPhase(core.PhaseDegraded))
	return l
}

// paused: alice paused the canary.
func (l *live) paused() *live {
	l.t.Helper()
	l.canary()
	l.do(core.Command{Kind: core.CmdPause})
	l.await("paused", inPhase(core.PhasePaused))
	return l
}

// rolledBack: ana rolled production back to v1.42.0 after the incident.
func (l *live) rolledBack() *live {
	l.t.Helper()
	l.incident()
	l.do(core.Command{Kind: core.CmdRollback, Actor: core.Actor{Name: "ana", Host: "bastion-1"}})
	l.await("rolled back", inPhase(core.PhaseRolledBack))
	return l
}

// console opens a console on the engine as bob would, w×h.
func (l *live) console(w, h int) *Model {
	l.t.Helper()
	o := testOptions()
	o.Width, o.Height = w, h
	o.Production = map[string]bool{"production": true}
	m := newModel(l.eng, o)
	l.t.Cleanup(m.sub.Close)
	return m
}

// settle applies every event published so far, after waiting for the
// engine's word on production to satisfy pred.
func (l *live) settle(m *Model, what string, pred func(core.Situation) bool) {
	l.t.Helper()
	l.await(what, pred)
	update(m, flushMsg{})
}

// healthyVerdict: v1.43.0's error rate is bounded below the tolerance in
// ref.
func healthyVerdict(ref core.Ref) core.Event {
	v := core.SpikeVerdict{Ref: ref, Candidate: "v1.43.0", Baseline: "v1.42.0", Kind: core.VerdictHealthy, At: t0,
		Evidence: core.Evidence{CandidateCount: 30, BaselineCount: 88, Share: 0.25, RateRatio: 1.0, RateRatioHigh: 1.3,
			Tolerance: 1.5, Elapsed: 10 * time.Minute, Threshold: 100}}
	return core.Event{Kind: core.EvVerdict, Ref: ref, Final: true, Verdict: &v}
}

func spikeVerdict(ref core.Ref) core.Event {
	v := core.SpikeVerdict{Ref: ref, Candidate: "v1.43.0", Baseline: "v1.42.0", Kind: core.VerdictSpike, At: t0,
		Evidence: core.Evidence{CandidateCount: 112, BaselineCount: 18, Share: 0.25, RateRatio: 6.2, RateRatioLow: 3.1,
			RateRatioHigh: 12.4, PValue: 3e-9, Elapsed: 5 * time.Minute, EvidenceRatio: 240, Threshold: 100,
			NewIssues: []core.ErrorIssue{{Fingerprint: "f1", Title: "TypeError: cart is undefined", Count: 97}}}}
	return core.Event{Kind: core.EvVerdict, Ref: ref, Final: true, Verdict: &v}
}
