package rollout

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/core/sqlitestore"
)

// memTarget is a deploy target held in memory: the state machine's tests
// need to see exactly which provider calls it makes, in order. The real
// local target is exercised end to end elsewhere.
type memTarget struct {
	mu        sync.Mutex
	current   string
	candidate string
	weight    int
	calls     []string
	failNext  error
	// done holds the request IDs of operations it finished: the ones
	// WatchOperation re-attaches to.
	done map[string]bool
	// deployGate, when set, holds every Deploy until it is closed (or
	// the call is cancelled).
	deployGate chan struct{}
}

func (m *memTarget) record(id, call string) error {
	m.calls = append(m.calls, call)
	if err := m.failNext; err != nil {
		m.failNext = nil
		return err
	}
	if m.done == nil {
		m.done = map[string]bool{}
	}
	m.done[id] = true
	return nil
}

func (m *memTarget) Status(context.Context, core.Ref) (core.TargetStatus, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return core.TargetStatus{Current: m.current, Candidate: m.candidate, Weight: m.weight}, nil
}
func (m *memTarget) WatchStatus(ctx context.Context, _ core.Ref, _ func(core.TargetStatus)) error {
	<-ctx.Done()
	return ctx.Err()
}
func (m *memTarget) Deploy(ctx context.Context, op core.OpRequest, rel core.Release, w int, fn func(core.OpEvent)) error {
	m.mu.Lock()
	gate := m.deployGate
	m.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.record(op.ID, fmt.Sprintf("deploy %s@%d", rel.Version, w)); err != nil {
		return err
	}
	fn(core.OpEvent{Seq: 1, Message: "started " + rel.Version, ExternalRef: "deployment/" + op.ID})
	m.candidate, m.weight = rel.Version, w
	if w == 100 {
		m.current, m.candidate = rel.Version, ""
	}
	return nil
}
func (m *memTarget) SetWeight(_ context.Context, op core.OpRequest, w int, _ func(core.OpEvent)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.record(op.ID, fmt.Sprintf("weight %d", w)); err != nil {
		return err
	}
	m.weight = w
	if w == 100 {
		m.current, m.candidate = m.candidate, ""
	}
	return nil
}
func (m *memTarget) Rollback(_ context.Context, op core.OpRequest, to string, _ func(core.OpEvent)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.record(op.ID, "rollback "+to); err != nil {
		return err
	}
	m.current, m.candidate, m.weight = to, "", 0
	return nil
}
func (m *memTarget) WatchOperation(_ context.Context, op core.OpRequest, externalRef string, _ func(core.OpEvent)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	id := op.ID
	if externalRef != "" {
		id = externalRef
	}
	if !m.done[id] {
		return fmt.Errorf("operation %s: %w", id, core.ErrNotFound)
	}
	return nil
}
func (m *memTarget) Calls() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.calls)
}

var prod = core.Ref{Service: "api", Env: "production"}
var ana = core.Actor{Name: "ana", Host: "bastion-1"}

type world struct {
	eng    *core.Engine
	ctl    *Controller
	target *memTarget
	sub    *core.Subscription
}

func newWorld(t *testing.T, env Env) *world {
	t.Helper()
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	eng := core.NewEngine(core.EngineOptions{Project: "shop", Services: []string{"api"}, Envs: []string{"staging", "production"}, Store: st})
	tg := &memTarget{current: "v1"}
	env.Ref, env.Target = prod, tg
	ctl := New(eng, Options{Envs: []Env{env}})
	_, sub := eng.Subscribe()
	t.Cleanup(func() { sub.Close(); ctl.Close(); st.Close() })
	for _, v := range []string{"v1", "v2"} {
		if err := st.PutRelease(ctx, core.Release{Service: "api", Version: v, Branch: "main", ArtifactDigest: "sha256:" + v}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.AddDeployment(ctx, core.Deployment{Ref: prod, Version: "v1", State: core.DeployHealthy, Weight: 100, StartedAt: time.Now().Add(-time.Hour), FinishedAt: time.Now().Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	eng.Publish(core.Event{Kind: core.EvTarget, Ref: prod, Target: &core.TargetStatus{Ref: prod, Current: "v1", Healthy: true}})
	return &world{eng: eng, ctl: ctl, target: tg, sub: sub}
}

// waitFor reads events until pred holds, failing after a deadline.
func (w *world) waitFor(t *testing.T, what string, pred func(core.Event) bool) core.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		ev, err := w.sub.Next(ctx)
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if pred(ev) {
			return ev
		}
	}
}

func deployState(s core.DeployState) func(core.Event) bool {
	return func(ev core.Event) bool { return ev.Kind == core.EvDeployment && ev.Deployment.State == s }
}

func notice(text string) func(core.Event) bool {
	return func(ev core.Event) bool { return ev.Kind == core.EvNotice && strings.Contains(ev.Notice, text) }
}

func (w *world) do(t *testing.T, cmd core.Command) core.Result {
	t.Helper()
	if cmd.Ref == (core.Ref{}) {
		cmd.Ref = prod
	}
	if cmd.Actor.Name == "" {
		cmd.Actor = ana
	}
	res, err := w.eng.Do(context.Background(), cmd)
	if err != nil {
		t.Fatalf("%s: %v", cmd.Kind, err)
	}
	return res
}

func (w *world) auditActions(t *testing.T) []string {
	t.Helper()
	entries, err := w.eng.Store().Audit(context.Background(), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := core.VerifyAudit(core.GenesisHash, entries); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Action+":"+e.Actor.Name)
	}
	return out
}

var canary = []Step{{Kind: StepWeight, Weight: 10}, {Kind: StepPause}, {Kind: StepWeight, Weight: 50}, {Kind: StepAnalysis, For: time.Hour}}

func TestPromoteWalksTheStepsAndWaitsForPeople(t *testing.T) {
	w := newWorld(t, Env{Steps: canary})
	res := w.do(t, core.Command{Kind: core.CmdPromote, Version: "v2"})
	if !strings.Contains(res.Message, "v2 is taking 10%") {
		t.Fatalf("promote said %q", res.Message)
	}
	w.waitFor(t, "judgment", deployState(core.DeployJudgment))
	w.do(t, core.Command{Kind: core.CmdPromote})
	w.waitFor(t, "weight 50", func(ev core.Event) bool { return ev.Kind == core.EvDeployment && ev.Deployment.Weight == 50 })
	// The analysis would run an hour; a person promotes past it.
	w.waitFor(t, "analysis", func(ev core.Event) bool { return ev.Kind == core.EvDeployment && ev.Deployment.Step == 3 })
	w.do(t, core.Command{Kind: core.CmdPromote})
	w.waitFor(t, "healthy", deployState(core.DeployHealthy))

	if got, want := w.target.Calls(), []string{"deploy v2@10", "weight 50", "weight 100"}; !slices.Equal(got, want) {
		t.Fatalf("target calls = %v, want %v", got, want)
	}
	if got, want := w.auditActions(t), []string{"promote:ana", "promote:ana", "promote:ana", "rollout-complete:ana"}; !slices.Equal(got, want) {
		t.Fatalf("audit = %v, want %v", got, want)
	}
}

// A promote that names another release while a rollout is in flight is
// refused: it must not move the other release on a step.
func TestPromoteOfAnotherReleaseWhileOneIsInFlightIsRefused(t *testing.T) {
	w := newWorld(t, Env{Steps: canary})
	w.do(t, core.Command{Kind: core.CmdPromote, Version: "v2"})
	w.waitFor(t, "judgment", deployState(core.DeployJudgment))
	_, err := w.eng.Do(context.Background(), core.Command{Kind: core.CmdPromote, Ref: prod, Version: "v1", Actor: ana})
	if err == nil || !strings.Contains(err.Error(), "the rollout of v2 is still in flight") {
		t.Fatalf("promote v1 during v2's rollout: %v", err)
	}
	if d := w.eng.Snapshot().Deployments[prod]; d.Version != "v2" || d.State != core.DeployJudgment || d.Step != 1 {
		t.Fatalf("the rollout in flight moved: %+v", d)
	}
}

func TestFullPromoteSkipsRemainingSteps(t *testing.T) {
	w := newWorld(t, Env{Steps: canary})
	w.do(t, core.Command{Kind: core.CmdPromote, Version: "v2"})
	w.waitFor(t, "judgment", deployState(core.DeployJudgment))
	res := w.do(t, core.Command{Kind: core.CmdFullPromote})
	if !strings.Contains(res.Message, "remaining steps skipped") {
		t.Fatalf("full promote said %q", res.Message)
	}
	w.waitFor(t, "healthy", deployState(core.DeployHealthy))
	if got, want := w.target.Calls(), []string{"deploy v2@10", "weight 100"}; !slices.Equal(got, want) {
		t.Fatalf("target calls = %v, want %v", got, want)
	}
}

func TestSpikeDuringAnalysisRollsBackByItselfAndHoldsTheRelease(t *testing.T) {
	w := newWorld(t, Env{Steps: []Step{{Kind: StepWeight, Weight: 25}, {Kind: StepAnalysis, For: time.Hour}, {Kind: StepWeight, Weight: 100}}, AutoRollback: true})
	w.do(t, core.Command{Kind: core.CmdPromote, Version: "v2"})
	w.waitFor(t, "analysis", func(ev core.Event) bool { return ev.Kind == core.EvDeployment && ev.Deployment.Step == 1 })
	w.eng.Publish(core.Event{Kind: core.EvVerdict, Ref: prod, Final: true, Verdict: &core.SpikeVerdict{Ref: prod, Candidate: "v2", Baseline: "v1", Kind: core.VerdictSpike,
		Evidence: core.Evidence{CandidateCount: 40, BaselineCount: 12, Share: 0.25, PValue: 2e-9}}})
	w.waitFor(t, "rolled back", notice("rolled back to v1"))

	if got := w.target.Calls(); got[len(got)-1] != "rollback v1" {
		t.Fatalf("target calls = %v, want a rollback to v1 last", got)
	}
	entries, _ := w.eng.Store().Audit(context.Background(), 0, 100)
	last := entries[len(entries)-1]
	if last.Action != "rollback" || !last.Actor.Automation || last.From != "v2" || last.To != "v1" || !strings.Contains(last.Reason, "p=2e-09") {
		t.Fatalf("last audit entry = %+v; want an automated rollback v2→v1 with the evidence", last)
	}
	rel, err := w.eng.Store().Release(context.Background(), "api", "v2")
	if err != nil || !rel.Held {
		t.Fatalf("v2 after rollback: held=%v err=%v; want held", rel.Held, err)
	}
	// The rollback's lock goes once the rollback has ended (its notice
	// may come first); nothing is left holding the environment.
	for w.eng.Snapshot().Locks[prod].Holder.Name != "" {
		w.waitFor(t, "the rollback's lock to be released", func(ev core.Event) bool { return ev.Kind == core.EvLock && ev.Lock == nil })
	}
	// Automation may not promote it again; a person who clears the hold may.
	_, err = w.eng.Do(context.Background(), core.Command{Kind: core.CmdPromote, Ref: prod, Version: "v2", Actor: core.Actor{Name: "ci", Automation: true}})
	if err == nil || !strings.Contains(err.Error(), "a person must clear the hold") {
		t.Fatalf("automation re-promoting a held release = %v", err)
	}
}

func TestManualRollbackMidRolloutSkipsStepsToLastGood(t *testing.T) {
	w := newWorld(t, Env{Steps: canary})
	w.do(t, core.Command{Kind: core.CmdPromote, Version: "v2"})
	w.waitFor(t, "judgment", deployState(core.DeployJudgment))
	res := w.do(t, core.Command{Kind: core.CmdRollback, Reason: "checkout errors"})
	if res.Message != "rolled back to v1" {
		t.Fatalf("rollback said %q", res.Message)
	}
	if got, want := w.target.Calls(), []string{"deploy v2@10", "rollback v1"}; !slices.Equal(got, want) {
		t.Fatalf("target calls = %v, want %v", got, want)
	}
	hist, _ := w.eng.Store().Deployments(context.Background(), prod, 10)
	if hist[0].Version != "v1" || hist[0].State != core.DeployHealthy || hist[1].Version != "v2" || hist[1].State != core.DeployRolledBack {
		t.Fatalf("history = %+v", hist[:2])
	}
	ops, _ := w.eng.Store().Unfinished(context.Background())
	if len(ops) != 0 {
		t.Fatalf("unfinished operations after rollback: %+v", ops)
	}
}

func TestAbortKeepsCandidateForInspection(t *testing.T) {
	w := newWorld(t, Env{Steps: canary})
	w.do(t, core.Command{Kind: core.CmdPromote, Version: "v2"})
	w.waitFor(t, "judgment", deployState(core.DeployJudgment))
	res := w.do(t, core.Command{Kind: core.CmdAbort})
	if !strings.Contains(res.Message, "v1 serves all traffic; v2 kept for inspection") {
		t.Fatalf("abort said %q", res.Message)
	}
	st, _ := w.target.Status(context.Background(), prod)
	if st.Current != "v1" || st.Candidate != "v2" || st.Weight != 0 {
		t.Fatalf("target after abort = %+v", st)
	}
	if _, err := w.eng.Do(context.Background(), core.Command{Kind: core.CmdAbort, Ref: prod, Actor: ana}); err == nil || !strings.Contains(err.Error(), "nothing to abort") {
		t.Fatalf("second abort = %v, want nothing to abort", err)
	}
}

func TestGatesBlockUnlessOverriddenWithAReason(t *testing.T) {
	w := newWorld(t, Env{Gates: []core.GateSpec{{Name: core.GatePipeline}, {Name: core.GateBranch}}})
	_, err := w.eng.Do(context.Background(), core.Command{Kind: core.CmdPromote, Ref: prod, Version: "v2", Actor: ana})
	if !errors.Is(err, core.ErrBlocked) || !strings.Contains(err.Error(), "pipeline: no pipeline run found for v2") {
		t.Fatalf("promote without a pipeline run = %v", err)
	}
	if len(w.target.Calls()) != 0 {
		t.Fatalf("a blocked promote called the target: %v", w.target.Calls())
	}
	res := w.do(t, core.Command{Kind: core.CmdPromote, Version: "v2", Overrides: []string{"pipeline"}, Reason: "CI is down; tested by hand"})
	if res.Outcome != "promoted" {
		t.Fatalf("override: %+v", res)
	}
	// The answer lists the gates it judged, as a blocked one does.
	if len(res.Gates) != 2 || res.Gates[0].Gate != core.GatePipeline || !res.Gates[0].Overridden {
		t.Fatalf("the promote answered gates %+v; want both, the pipeline's overridden", res.Gates)
	}
	entries, _ := w.eng.Store().Audit(context.Background(), 0, 10)
	i := slices.IndexFunc(entries, func(e core.AuditEntry) bool { return e.Action == "promote" && e.Outcome != "blocked" })
	if i < 0 {
		t.Fatalf("no audited promote in %+v", entries)
	}
	last := entries[i]
	if !slices.Equal(last.Overrides, []string{"pipeline"}) || last.Reason != "CI is down; tested by hand" || len(last.Gates) != 2 || !last.Gates[0].Overridden {
		t.Fatalf("audited promote = %+v; want the override, its reason and the gates", last)
	}
}

func TestRollbackRefusedWhileSomeoneElseHoldsTheLock(t *testing.T) {
	w := newWorld(t, Env{})
	w.do(t, core.Command{Kind: core.CmdLock, Actor: core.Actor{Name: "bo"}, Reason: "migrating db"})
	_, err := w.eng.Do(context.Background(), core.Command{Kind: core.CmdRollback, Ref: prod, Actor: ana})
	var held *core.LockHeldError
	if !errors.As(err, &held) || held.Lock.Holder.Name != "bo" {
		t.Fatalf("rollback under bo's lock = %v", err)
	}
	if len(w.target.Calls()) != 0 {
		t.Fatalf("target was called: %v", w.target.Calls())
	}
}

func TestFailedDeployIsRecordedAndAudited(t *testing.T) {
	w := newWorld(t, Env{})
	w.target.failNext = errors.New("health check failed: GET /healthz: 503")
	_, err := w.eng.Do(context.Background(), core.Command{Kind: core.CmdPromote, Ref: prod, Version: "v2", Actor: ana})
	if err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("promote = %v", err)
	}
	hist, _ := w.eng.Store().Deployments(context.Background(), prod, 1)
	if hist[0].State != core.DeployFailed {
		t.Fatalf("deployment state = %s", hist[0].State)
	}
	entries, _ := w.eng.Store().Audit(context.Background(), 0, 10)
	if !strings.HasPrefix(entries[len(entries)-1].Outcome, "failed: health check failed") {
		t.Fatalf("audit outcome = %q", entries[len(entries)-1].Outcome)
	}
	if l := w.eng.Snapshot().Locks[prod]; l.Holder.Name != "" {
		t.Fatalf("lock left behind: %+v", l)
	}
}

// timedTarget notes when Rollback reaches the provider.
type timedTarget struct {
	memTarget
	called chan time.Time
}

func (m *timedTarget) Rollback(ctx context.Context, op core.OpRequest, to string, fn func(core.OpEvent)) error {
	m.called <- time.Now()
	return m.memTarget.Rollback(ctx, op, to, fn)
}

// BenchmarkConfirmToRollbackCall measures a confirmed rollback command
// until the provider's Rollback is called: lock, history, journal.
func BenchmarkConfirmToRollbackCall(b *testing.B) {
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(b.TempDir(), "state.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	eng := core.NewEngine(core.EngineOptions{Project: "shop", Services: []string{"api"}, Envs: []string{"production"}, Store: st})
	tg := &timedTarget{memTarget: memTarget{current: "v1"}, called: make(chan time.Time, 1)}
	ctl := New(eng, Options{Envs: []Env{{Ref: prod, Target: tg}}})
	defer ctl.Close()
	for _, v := range []string{"v1", "v2"} {
		_ = st.PutRelease(ctx, core.Release{Service: "api", Version: v})
	}
	var lat []time.Duration
	for b.Loop() {
		if _, err := eng.Do(ctx, core.Command{Kind: core.CmdPromote, Ref: prod, Version: "v2", Actor: ana}); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if _, err := eng.Do(ctx, core.Command{Kind: core.CmdRollback, Ref: prod, Version: "v1", Actor: ana}); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, (<-tg.called).Sub(start))
		_ = st.SetHold(ctx, "api", "v2", false, "")
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
}

func TestRecoverShowsAnInterruptedOperationWithItsOwner(t *testing.T) {
	w := newWorld(t, Env{})
	ctx := context.Background()
	// A previous console journaled its intent to promote and was killed
	// before the provider call.
	started := time.Date(2026, 11, 25, 21, 4, 0, 0, time.UTC)
	op := core.Operation{ID: "op-killed", Ref: prod, Kind: "promote", From: "v1", To: "v2", Actor: ana, State: core.OpIntent, StartedAt: started}
	if err := w.eng.Store().Journal(ctx, op); err != nil {
		t.Fatal(err)
	}
	got, err := w.ctl.Recover(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].State != core.OpAttention || !strings.Contains(got[0].Message, "started by ana@bastion-1 at 21:04 UTC did not finish") {
		t.Fatalf("recovered = %+v", got)
	}
	stored, _ := w.eng.Store().Operation(ctx, "op-killed")
	if stored.State != core.OpAttention {
		t.Fatalf("journal says %s, want needs-attention", stored.State)
	}
	if snapOp, ok := w.eng.Snapshot().Operations["op-killed"]; !ok || snapOp.Actor.Name != "ana" {
		t.Fatalf("the screen's snapshot does not show the operation with its owner: %+v", w.eng.Snapshot().Operations)
	}
	if len(w.target.Calls()) != 0 {
		t.Fatalf("recovery called the target for an operation that never reached it: %v", w.target.Calls())
	}
}

func TestRecoverReattachesARunningOperation(t *testing.T) {
	w := newWorld(t, Env{})
	ctx := context.Background()
	w.target.done = map[string]bool{"rollback-1": true} // it finished while nobody watched
	op := core.Operation{ID: "op-running", Ref: prod, Kind: "rollback", From: "v2", To: "v1", Actor: ana, State: core.OpRunning, ExternalRef: "rollback-1", StartedAt: time.Now()}
	if err := w.eng.Store().Journal(ctx, op); err != nil {
		t.Fatal(err)
	}
	got, err := w.ctl.Recover(ctx)
	if err != nil || len(got) != 0 {
		t.Fatalf("recover = %+v, %v; want the operation re-attached and finished", got, err)
	}
	if left, _ := w.eng.Store().Unfinished(ctx); len(left) != 0 {
		t.Fatalf("still unfinished: %+v", left)
	}
}

// A rollout outlives the engine that started it: a new engine on the same
// store continues it from the step it was at, and a person's promote then
// finishes it.
func TestRolloutContinuesInTheNextEngine(t *testing.T) {
	w := newWorld(t, Env{Steps: []Step{{Kind: StepWeight, Weight: 25}, {Kind: StepPause}, {Kind: StepWeight, Weight: 100}}})
	w.do(t, core.Command{Kind: core.CmdPromote, Version: "v2"})
	w.waitFor(t, "pause for judgment", deployState(core.DeployJudgment))
	w.ctl.Close() // the CLI or console that started it exits

	eng2 := core.NewEngine(core.EngineOptions{Project: "shop", Services: []string{"api"}, Envs: []string{"staging", "production"}, Store: w.eng.Store()})
	ctl2 := New(eng2, Options{Envs: []Env{{Ref: prod, Target: w.target, Steps: []Step{{Kind: StepWeight, Weight: 25}, {Kind: StepPause}, {Kind: StepWeight, Weight: 100}}}}})
	defer ctl2.Close()
	_, sub := eng2.Subscribe()
	defer sub.Close()
	if _, err := ctl2.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	w2 := &world{eng: eng2, ctl: ctl2, target: w.target, sub: sub}
	w2.waitFor(t, "the resumed pause", deployState(core.DeployJudgment))
	w2.do(t, core.Command{Kind: core.CmdPromote})
	w2.waitFor(t, "healthy", deployState(core.DeployHealthy))
	if st, _ := w.target.Status(context.Background(), prod); st.Current != "v2" || st.Weight != 100 {
		t.Fatalf("target after the resumed rollout = %+v, want v2 at 100%%", st)
	}
}

// A rollout stopped in a timed pause (its engine went away) is taken on by
// the next engine: the pause runs out and the rollout finishes, with
// nobody acting. Only a person's pause holds it.
func TestTimedPauseContinuesInTheNextEngine(t *testing.T) {
	steps := []Step{{Kind: StepWeight, Weight: 25}, {Kind: StepPause, For: 200 * time.Millisecond}, {Kind: StepWeight, Weight: 100}}
	w := newWorld(t, Env{Steps: steps})
	w.do(t, core.Command{Kind: core.CmdPromote, Version: "v2"})
	w.waitFor(t, "the timed pause", func(ev core.Event) bool { return ev.Kind == core.EvDeployment && ev.Deployment.Step == 1 })
	w.ctl.Close() // the server dies in the pause

	eng2 := core.NewEngine(core.EngineOptions{Project: "shop", Services: []string{"api"}, Envs: []string{"staging", "production"}, Store: w.eng.Store()})
	ctl2 := New(eng2, Options{Envs: []Env{{Ref: prod, Target: w.target, Steps: steps}}})
	defer ctl2.Close()
	_, sub := eng2.Subscribe()
	defer sub.Close()
	if _, err := ctl2.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	w2 := &world{eng: eng2, ctl: ctl2, target: w.target, sub: sub}
	w2.waitFor(t, "healthy", deployState(core.DeployHealthy))
	if st, _ := w.target.Status(context.Background(), prod); st.Current != "v2" || st.Weight != 100 {
		t.Fatalf("target after the resumed rollout = %+v, want v2 at 100%%", st)
	}
}

// The controller publishes each environment's plan, and a deployment
// says when its current step began, so a screen can show the steps ahead
// and how long the current one has run.
func TestPlanIsPublishedAndStepsAreTimed(t *testing.T) {
	w := newWorld(t, Env{Steps: canary})
	if got := w.eng.Snapshot().Plans[prod]; !slices.Equal(got, canary) {
		t.Fatalf("published plan = %v, want %v", got, canary)
	}
	before := time.Now()
	w.do(t, core.Command{Kind: core.CmdPromote, Version: "v2"})
	first := w.waitFor(t, "judgment", deployState(core.DeployJudgment)).Deployment
	if first.Step != 1 || first.StepStartedAt.Before(before) {
		t.Fatalf("at the pause: step %d started %s, want step 1 started after %s", first.Step, first.StepStartedAt, before)
	}
	w.do(t, core.Command{Kind: core.CmdPromote})
	at50 := w.waitFor(t, "weight 50", func(ev core.Event) bool { return ev.Kind == core.EvDeployment && ev.Deployment.Step == 2 }).Deployment
	if !at50.StepStartedAt.After(first.StepStartedAt) {
		t.Fatalf("step 2 started %s, not after step 1 (%s)", at50.StepStartedAt, first.StepStartedAt)
	}
}

// web is the second service's production in the two-service worlds.
var web = core.Ref{Service: "web", Env: "production"}

// twoServices is an engine of api and web in production, each on its own
// target (web with webSteps), web running w1 and w2 built, api's
// versions built.
func twoServices(t *testing.T, apiTarget, webTarget *memTarget, webSteps []Step, apiVersions ...string) (*core.Engine, *sqlitestore.Store) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	eng := core.NewEngine(core.EngineOptions{Project: "shop", Services: []string{"api", "web"}, Envs: []string{"production"}, Store: st})
	ctl := New(eng, Options{Envs: []Env{{Ref: prod, Target: apiTarget}, {Ref: web, Target: webTarget, Steps: webSteps}}})
	t.Cleanup(func() { ctl.Close(); st.Close() })
	rels := []core.Release{{Service: "web", Version: "w1"}, {Service: "web", Version: "w2"}}
	for _, v := range apiVersions {
		rels = append(rels, core.Release{Service: "api", Version: v})
	}
	for _, r := range rels {
		if err := st.PutRelease(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	at := time.Now().Add(-time.Hour)
	if _, err := st.AddDeployment(ctx, core.Deployment{Ref: web, Version: "w1", State: core.DeployHealthy, Weight: 100, StartedAt: at, FinishedAt: at}); err != nil {
		t.Fatal(err)
	}
	return eng, st
}

// Two services in one environment each have their own target and plan:
// promoting and rolling back one never calls the other's target.
func TestEachServiceRollsOutOnItsOwnTarget(t *testing.T) {
	ctx := context.Background()
	apiTarget, webTarget := &memTarget{current: "v1"}, &memTarget{current: "w1"}
	webSteps := []Step{{Kind: StepWeight, Weight: 10}, {Kind: StepPause}, {Kind: StepWeight, Weight: 100}}
	eng, _ := twoServices(t, apiTarget, webTarget, webSteps, "v2")
	if got := eng.Snapshot().Plans; !slices.Equal(got[web], webSteps) || len(got[prod]) != 1 {
		t.Fatalf("plans = %v; want web's canary and api's single step", got)
	}
	do := func(cmd core.Command) {
		t.Helper()
		cmd.Actor = ana
		if _, err := eng.Do(ctx, cmd); err != nil {
			t.Fatalf("%s %s: %v", cmd.Kind, cmd.Ref, err)
		}
	}
	do(core.Command{Kind: core.CmdPromote, Ref: web, Version: "w2"})
	if calls := apiTarget.Calls(); len(calls) != 0 {
		t.Fatalf("promoting web called api's target: %v", calls)
	}
	if calls := webTarget.Calls(); !slices.Equal(calls, []string{"deploy w2@10"}) {
		t.Fatalf("web's target calls = %v", calls)
	}
	do(core.Command{Kind: core.CmdFullPromote, Ref: prod, Version: "v2"})
	do(core.Command{Kind: core.CmdRollback, Ref: web, Reason: "web only"})
	if calls := webTarget.Calls(); calls[len(calls)-1] != "rollback w1" {
		t.Fatalf("web's target calls = %v; want a rollback to w1 last", calls)
	}
	if calls := apiTarget.Calls(); !slices.Equal(calls, []string{"deploy v2@100"}) {
		t.Fatalf("api's target calls = %v; rolling back web must not touch it", calls)
	}
}

// The provider's external ref is journaled as soon as it arrives, so a
// restarted engine re-attaches by it.
func TestTheProvidersExternalRefIsJournaled(t *testing.T) {
	w := newWorld(t, Env{})
	res := w.do(t, core.Command{Kind: core.CmdPromote, Version: "v2"})
	op, err := w.eng.Store().Operation(context.Background(), res.OperationID)
	if err != nil || op.ExternalRef != "deployment/"+res.OperationID {
		t.Fatalf("journaled operation = %+v, %v; want the provider's external ref", op, err)
	}
}

// Locks are per service and environment: while api's deploy to production
// is under way (its target holds it), web is promoted and rolled back in
// production at the same moment, and a second promote of api is refused
// by api's lock.
func TestServicesOfOneEnvironmentActAtTheSameMoment(t *testing.T) {
	ctx := context.Background()
	gate := make(chan struct{})
	apiTarget, webTarget := &memTarget{current: "v1", deployGate: gate}, &memTarget{current: "w1"}
	eng, st := twoServices(t, apiTarget, webTarget, nil, "v2", "v3")
	promoted := make(chan error, 1)
	go func() {
		_, err := eng.Do(ctx, core.Command{Kind: core.CmdFullPromote, Ref: prod, Version: "v2", Actor: ana})
		promoted <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if locks, _ := st.Locks(ctx); len(locks) == 1 && locks[0].Ref == prod {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("api's promote never took its lock")
		}
		time.Sleep(5 * time.Millisecond)
	}
	bo := core.Actor{Name: "bo"}
	if _, err := eng.Do(ctx, core.Command{Kind: core.CmdFullPromote, Ref: web, Version: "w2", Actor: bo}); err != nil {
		t.Fatalf("web's promote beside api's: %v", err)
	}
	if _, err := eng.Do(ctx, core.Command{Kind: core.CmdRollback, Ref: web, Version: "w1", Actor: bo, Reason: "web only"}); err != nil {
		t.Fatalf("web's rollback beside api's promote: %v", err)
	}
	if _, err := eng.Do(ctx, core.Command{Kind: core.CmdFullPromote, Ref: prod, Version: "v3", Actor: bo}); err == nil {
		t.Fatal("a second promote of api ran beside the first")
	}
	if calls := apiTarget.Calls(); len(calls) != 0 {
		t.Fatalf("api's target calls while its deploy is held = %v", calls)
	}
	close(gate)
	if err := <-promoted; err != nil {
		t.Fatalf("api's promote: %v", err)
	}
	if s, _ := apiTarget.Status(ctx, prod); s.Current != "v2" {
		t.Fatalf("api runs %+v; want v2", s)
	}
	if s, _ := webTarget.Status(ctx, web); s.Current != "w1" {
		t.Fatalf("web runs %+v; want w1 after its rollback", s)
	}
}
