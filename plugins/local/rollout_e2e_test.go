package local

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/core/rollout"
	"github.com/ripcordhq/ripcord/core/sqlitestore"
)

// The rollout engine driving this real target: a canary takes real
// traffic through the proxy, an error spike arrives during analysis, the
// engine rolls back by itself, and the audit log says who and why.
func TestRolloutEngineCanaryThenAutoRollbackOnRealTarget(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, 5)
	if err := e.deploy("v1", 100); err != nil {
		t.Fatal(err)
	}
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, v := range []string{"v1", "v2"} {
		if err := st.PutRelease(ctx, core.Release{Service: "api", Version: v, Branch: "main", ArtifactDigest: e.digests[v]}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.AddDeployment(ctx, core.Deployment{Ref: ref, Version: "v1", State: core.DeployHealthy, Weight: 100}); err != nil {
		t.Fatal(err)
	}
	eng := core.NewEngine(core.EngineOptions{Project: "shop", Services: []string{"api"}, Envs: []string{"staging"}, Store: st})
	eng.Publish(core.Event{Kind: core.EvTarget, Ref: ref, Target: &core.TargetStatus{Ref: ref, Current: "v1", Healthy: true}})
	ctl := rollout.New(eng, rollout.Options{Envs: []rollout.Env{{
		Ref: ref, Target: e.tgt, AutoRollback: true,
		Steps: []rollout.Step{{Kind: rollout.StepWeight, Weight: 25}, {Kind: rollout.StepAnalysis, For: time.Hour}, {Kind: rollout.StepWeight, Weight: 100}},
	}}})
	defer ctl.Close()
	_, sub := eng.Subscribe()
	defer sub.Close()
	wait := func(what string, pred func(core.Event) bool) {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		for {
			ev, err := sub.Next(wctx)
			if err != nil {
				t.Fatalf("waiting for %s: %v", what, err)
			}
			if pred(ev) {
				return
			}
		}
	}

	ana := core.Actor{Name: "ana", Host: "bastion-1"}
	if _, err := eng.Do(ctx, core.Command{Kind: core.CmdPromote, Ref: ref, Version: "v2", Actor: ana}); err != nil {
		t.Fatal(err)
	}
	wait("analysis step", func(ev core.Event) bool { return ev.Kind == core.EvDeployment && ev.Deployment.Step == 1 })

	// The canary takes its share of real requests.
	v2 := 0
	const n = 400
	for range n {
		if e.serving() == "v2" {
			v2++
		}
	}
	if share := v2 * 100 / n; share < 20 || share > 30 {
		t.Fatalf("canary took %d%% of requests, want 25%% ± 5", share)
	}

	eng.Publish(core.Event{Kind: core.EvVerdict, Ref: ref, Final: true, Verdict: &core.SpikeVerdict{Ref: ref, Candidate: "v2", Baseline: "v1", Kind: core.VerdictSpike,
		Evidence: core.Evidence{CandidateCount: 31, BaselineCount: 9, Share: 0.25, PValue: 4e-9}}})
	wait("rollback", func(ev core.Event) bool { return ev.Kind == core.EvNotice && ev.Notice == "rolled back to v1" })

	for range 50 {
		if got := e.serving(); got != "v1" {
			t.Fatalf("after rollback a request was answered by %s", got)
		}
	}
	entries, err := st.Audit(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := core.VerifyAudit(core.GenesisHash, entries); err != nil {
		t.Fatal(err)
	}
	var trail []string
	for _, a := range entries {
		trail = append(trail, a.Action+" by "+a.Actor.String())
	}
	last := entries[len(entries)-1]
	if entries[0].Action != "promote" || entries[0].Actor.Name != "ana" || last.Action != "rollback" || !last.Actor.Automation || !strings.Contains(last.Reason, "p=4e-09") {
		t.Fatalf("audit trail = %v; want ana's promote, then an automated rollback citing the evidence", trail)
	}
}
