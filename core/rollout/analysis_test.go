package rollout

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
)

// slowTarget takes a while to deploy, as a real target does while it
// installs the release and waits for its health check.
type slowTarget struct {
	*memTarget
	delay    time.Duration
	returned chan time.Time
}

func (s *slowTarget) Deploy(ctx context.Context, op core.OpRequest, rel core.Release, w int, fn func(core.OpEvent)) error {
	time.Sleep(s.delay) // the target's own work, not a wait for the test
	err := s.memTarget.Deploy(ctx, op, rel, w, fn)
	s.returned <- time.Now()
	return err
}

// The canary's evidence starts when the target has deployed the candidate
// and shifted its share of traffic, not when the rollout began: deploy and
// health-check time are never evidence.
func TestExposureIsStampedWhenTheTargetHasShiftedTraffic(t *testing.T) {
	w := newWorld(t, Env{Steps: []Step{{Kind: StepWeight, Weight: 25}, {Kind: StepPause}}})
	slow := &slowTarget{memTarget: w.target, delay: 200 * time.Millisecond, returned: make(chan time.Time, 1)}
	w.ctl.envs[prod].Target = slow
	w.do(t, core.Command{Kind: core.CmdPromote, Version: "v2"})
	returned := <-slow.returned
	d := w.waitFor(t, "the canary at 25%", func(ev core.Event) bool {
		return ev.Kind == core.EvDeployment && ev.Deployment.Weight == 25
	}).Deployment
	if d.ExposedAt.Before(returned) || d.ExposedAt.Sub(d.StartedAt) < slow.delay {
		t.Fatalf("exposed at %v, started %v, Deploy returned %v: exposure must be stamped after Deploy", d.ExposedAt, d.StartedAt, returned)
	}
	// The store keeps it, so a restarted engine knows where evidence began.
	hist, err := w.eng.Store().Deployments(context.Background(), prod, 1)
	if err != nil || !hist[0].ExposedAt.Equal(d.ExposedAt.Truncate(time.Microsecond)) {
		t.Fatalf("stored deployment %+v (%v), want exposed at %v", hist, err, d.ExposedAt)
	}
}

// A canary that starts with no traffic is exposed when a weight step
// first gives it some.
func TestExposureStartsAtTheFirstWeightAboveZero(t *testing.T) {
	w := newWorld(t, Env{Steps: []Step{{Kind: StepWeight, Weight: 0}, {Kind: StepPause}, {Kind: StepWeight, Weight: 10}, {Kind: StepPause}}})
	w.do(t, core.Command{Kind: core.CmdPromote, Version: "v2"})
	d := w.waitFor(t, "judgment at 0%", deployState(core.DeployJudgment)).Deployment
	if !d.ExposedAt.IsZero() {
		t.Fatalf("a candidate at 0%% was stamped exposed at %v", d.ExposedAt)
	}
	before := time.Now()
	w.do(t, core.Command{Kind: core.CmdPromote})
	d = w.waitFor(t, "10%", func(ev core.Event) bool { return ev.Kind == core.EvDeployment && ev.Deployment.Weight == 10 }).Deployment
	if d.ExposedAt.Before(before) {
		t.Fatalf("exposed at %v, before the weight step began at %v", d.ExposedAt, before)
	}
}

func verdict(kind core.VerdictKind, note string) core.Event {
	return core.Event{Kind: core.EvVerdict, Ref: prod, Final: true, Verdict: &core.SpikeVerdict{
		Ref: prod, Candidate: "v2", Baseline: "v1", Kind: kind, Evidence: core.Evidence{Note: note, Threshold: 100, Tolerance: 1.5}}}
}

func analysisWorld(t *testing.T, policy core.InconclusivePolicy) *world {
	w := newWorld(t, Env{Steps: []Step{{Kind: StepWeight, Weight: 25}, {Kind: StepAnalysis, For: 50 * time.Millisecond}, {Kind: StepWeight, Weight: 100}},
		AutoRollback: true, OnInconclusive: policy})
	w.do(t, core.Command{Kind: core.CmdPromote, Version: "v2"})
	w.waitFor(t, "analysis", func(ev core.Event) bool { return ev.Kind == core.EvDeployment && ev.Deployment.Step == 1 })
	return w
}

func TestAnalysisPassesOnHealthy(t *testing.T) {
	w := analysisWorld(t, "")
	w.eng.Publish(verdict(core.VerdictHealthy, "no worse than 1.5×"))
	w.waitFor(t, "the rollout to finish", deployState(core.DeployHealthy))
}

// By default an analysis that ends inconclusive keeps watching: the
// rollout goes on only once the verdict is HEALTHY.
func TestInconclusiveAnalysisWaitsForHealthy(t *testing.T) {
	w := analysisWorld(t, "")
	w.eng.Publish(verdict(core.VerdictInconclusive, "needs ~12m more"))
	w.waitFor(t, "the wait notice", notice("keeps watching until the verdict is HEALTHY or SPIKE (on_inconclusive: wait): needs ~12m more"))
	if got := w.eng.Snapshot().Deployments[prod]; got.Step != 1 || got.State.Terminal() {
		t.Fatalf("rollout moved on while inconclusive: %+v", got)
	}
	w.eng.Publish(verdict(core.VerdictHealthy, "no worse than 1.5×"))
	w.waitFor(t, "the rollout to finish", deployState(core.DeployHealthy))
}

// With no verdict at all the analysis cannot pass by default either.
func TestAnalysisWithoutAVerdictWaits(t *testing.T) {
	w := analysisWorld(t, "")
	w.waitFor(t, "the wait notice", notice("on_inconclusive: wait): no error verdict yet"))
	w.eng.Publish(verdict(core.VerdictSpike, "spike"))
	w.waitFor(t, "rolled back", notice("rolled back to v1"))
}

func TestInconclusiveAnalysisPassesWhenConfigured(t *testing.T) {
	w := analysisWorld(t, core.InconclusivePass)
	w.eng.Publish(verdict(core.VerdictInconclusive, "needs ~12m more"))
	w.waitFor(t, "the rollout to finish", deployState(core.DeployHealthy))
}

// on_inconclusive: fail stops the rollout for a person; automatic
// rollback is for spikes only.
func TestInconclusiveAnalysisFailsWithoutRollingBack(t *testing.T) {
	w := analysisWorld(t, core.InconclusiveFail)
	w.eng.Publish(verdict(core.VerdictInconclusive, "needs ~12m more"))
	w.waitFor(t, "the failed analysis", notice("analysis of v2 in api/production ended inconclusive (on_inconclusive: fail): needs ~12m more"))
	if got := w.eng.Snapshot().Deployments[prod]; got.State != core.DeployDegraded {
		t.Fatalf("deployment after an inconclusive analysis = %s, want degraded", got.State)
	}
	if calls := w.target.Calls(); slices.Contains(calls, "rollback v1") || slices.Contains(calls, "weight 100") {
		t.Fatalf("target calls = %v: neither rollback nor full rollout was due", calls)
	}
}
