package rollout

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/core/sqlitestore"
)

// BenchmarkRecoverInterruptedRollback measures an engine's start after a
// process died rolling back a canary (v2 at 25% back to v1): restoring
// the engine from the store, then Recover finishing the rollback on the
// target and writing its records. The state file keeps every earlier
// iteration's history, as a long-lived project's does.
func BenchmarkRecoverInterruptedRollback(b *testing.B) {
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(b.TempDir(), "state.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	for _, v := range []string{"v1", "v2"} {
		if err := st.PutRelease(ctx, core.Release{Service: "api", Version: v}); err != nil {
			b.Fatal(err)
		}
	}
	at := time.Now().Add(-time.Hour)
	if _, err := st.AddDeployment(ctx, core.Deployment{Ref: prod, Version: "v1", State: core.DeployHealthy, Weight: 100, StartedAt: at, FinishedAt: at}); err != nil {
		b.Fatal(err)
	}
	tg := &memTarget{}
	b.StopTimer()
	for i := 0; i < b.N; i++ {
		// What the killed process left: the canary, its rollback's
		// intent, the release it was leaving held.
		tg.mu.Lock()
		tg.current, tg.candidate, tg.weight = "v1", "v2", 25
		tg.mu.Unlock()
		now := time.Now()
		if _, err := st.AddDeployment(ctx, core.Deployment{Ref: prod, Version: "v2", From: "v1", State: core.DeployDegraded, Weight: 25, StartedAt: now}); err != nil {
			b.Fatal(err)
		}
		if err := st.SetHold(ctx, "api", "v2", true, "rolled back"); err != nil {
			b.Fatal(err)
		}
		op := core.Operation{ID: core.NewID(), Ref: prod, Kind: "rollback", From: "v2", To: "v1", Actor: ana, State: core.OpRunning, StartedAt: now, UpdatedAt: now}
		if err := st.Journal(ctx, op); err != nil {
			b.Fatal(err)
		}

		b.StartTimer()
		eng := core.NewEngine(core.EngineOptions{Project: "shop", Services: []string{"api"}, Envs: []string{"production"}, Store: st})
		if err := eng.Restore(ctx); err != nil {
			b.Fatal(err)
		}
		ctl := New(eng, Options{Envs: []Env{{Ref: prod, Target: tg}}})
		left, err := ctl.Recover(ctx)
		b.StopTimer()

		if err != nil || len(left) != 0 {
			b.Fatalf("Recover = %+v, %v; want the rollback finished", left, err)
		}
		if got, _ := st.Operation(ctx, op.ID); got.State != core.OpSucceeded {
			b.Fatalf("the rollback is %s after recovery", got.State)
		}
		if s, _ := tg.Status(ctx, prod); s.Current != "v1" || s.Candidate != "" {
			b.Fatalf("after recovery the target runs %+v", s)
		}
		ctl.Close()
		_ = st.SetHold(ctx, "api", "v2", false, "")
	}
}
