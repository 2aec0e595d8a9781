package rollout

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/core/sqlitestore"
)

// hangingTarget's Deploy never finishes by itself: it waits until its
// context ends and reports that it saw the cancellation.
type hangingTarget struct {
	memTarget
	started   chan struct{}
	cancelled chan error
}

func (h *hangingTarget) Deploy(ctx context.Context, _ core.OpRequest, _ core.Release, _ int, _ func(core.OpEvent)) error {
	h.started <- struct{}{}
	<-ctx.Done()
	h.cancelled <- context.Cause(ctx)
	return ctx.Err()
}

func hangingWorld(t *testing.T, deadlines core.Deadlines) (*core.Engine, *hangingTarget) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	eng := core.NewEngine(core.EngineOptions{Project: "shop", Services: []string{"api"}, Envs: []string{"production"}, Store: st})
	tg := &hangingTarget{memTarget: memTarget{current: "v1"}, started: make(chan struct{}, 1), cancelled: make(chan error, 1)}
	ctl := New(eng, Options{Deadlines: deadlines, Envs: []Env{{Ref: prod, Target: tg, Provider: "fleet"}}})
	t.Cleanup(func() { ctl.Close(); st.Close() })
	for _, v := range []string{"v1", "v2"} {
		if err := st.PutRelease(ctx, core.Release{Service: "api", Version: v}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.AddDeployment(ctx, core.Deployment{Ref: prod, Version: "v1", State: core.DeployHealthy, Weight: 100, StartedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	return eng, tg
}

// A deploy that does not finish within its deadline is cancelled (the
// target sees its context end), fails saying so, and lets go of the lock.
func TestDeployPastItsDeadlineFailsAndReleasesTheLock(t *testing.T) {
	eng, tg := hangingWorld(t, core.Deadlines{Deploy: 50 * time.Millisecond})
	ctx := context.Background()
	_, err := eng.Do(ctx, core.Command{Kind: core.CmdPromote, Ref: prod, Version: "v2", Actor: ana})
	if err == nil || !strings.Contains(err.Error(), "deploy did not finish within 50ms (provider fleet)") {
		t.Fatalf("promote = %v; want the deadline named", err)
	}
	if cause := <-tg.cancelled; !errors.Is(cause, context.DeadlineExceeded) {
		t.Fatalf("the target saw %v, want its deadline", cause)
	}
	if locks, _ := eng.Store().Locks(ctx); len(locks) != 0 {
		t.Fatalf("locks after the failed deploy = %+v", locks)
	}
	if ops, _ := eng.Store().Unfinished(ctx); len(ops) != 0 {
		t.Fatalf("unfinished operations after the failed deploy = %+v", ops)
	}
	entries, _ := eng.Store().Audit(ctx, 0, 10)
	if n := len(entries); n == 0 || !strings.Contains(entries[n-1].Outcome, "did not finish within 50ms") {
		t.Fatalf("audit = %+v; want the failure with its reason", entries)
	}
}

// A rollback pressed while a deploy hangs does not wait out the deploy's
// deadline: the deploy is cancelled, and the rollback goes ahead.
func TestRollbackStopsAHangingDeploy(t *testing.T) {
	eng, tg := hangingWorld(t, core.Deadlines{Deploy: time.Hour})
	ctx := context.Background()
	promoted := make(chan error, 1)
	go func() {
		_, err := eng.Do(ctx, core.Command{Kind: core.CmdPromote, Ref: prod, Version: "v2", Actor: core.Actor{Name: "bo"}})
		promoted <- err
	}()
	<-tg.started
	res, err := eng.Do(ctx, core.Command{Kind: core.CmdRollback, Ref: prod, Version: "v1", Actor: ana, Reason: "deploy hangs"})
	if err != nil {
		t.Fatalf("rollback during a hanging deploy: %v", err)
	}
	if res.Outcome != "rolled back" {
		t.Fatalf("rollback = %+v", res)
	}
	if cause := <-tg.cancelled; cause == nil || !strings.Contains(cause.Error(), "rollback by ana") {
		t.Fatalf("the target saw %v, want the rollback named", cause)
	}
	if err := <-promoted; err == nil || !strings.Contains(err.Error(), "the rollback by ana") {
		t.Fatalf("the promote = %v; want it stopped by the rollback", err)
	}
}

// hangingRollbackTarget's Rollback never finishes by itself.
type hangingRollbackTarget struct {
	memTarget
	answers   atomic.Bool // once set, Rollback works
	cancelled chan error
}

func (h *hangingRollbackTarget) Rollback(ctx context.Context, op core.OpRequest, to string, ev func(core.OpEvent)) error {
	if h.answers.Load() {
		return h.memTarget.Rollback(ctx, op, to, ev)
	}
	<-ctx.Done()
	h.cancelled <- context.Cause(ctx)
	return ctx.Err()
}

// A rollback whose provider never answers fails at the rollback deadline
// naming it and the provider, lets go of the lock, leaves nothing
// unfinished, keeps the release it was leaving held, and can be retried.
func TestRollbackPastItsDeadlineFailsReleasesTheLockAndKeepsTheHold(t *testing.T) {
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	eng := core.NewEngine(core.EngineOptions{Project: "shop", Services: []string{"api"}, Envs: []string{"production"}, Store: st})
	tg := &hangingRollbackTarget{memTarget: memTarget{current: "v2"}, cancelled: make(chan error, 1)}
	ctl := New(eng, Options{Deadlines: core.Deadlines{Rollback: 50 * time.Millisecond}, Envs: []Env{{Ref: prod, Target: tg, Provider: "fleet"}}})
	t.Cleanup(func() { ctl.Close(); st.Close() })
	for _, v := range []string{"v1", "v2"} {
		if err := st.PutRelease(ctx, core.Release{Service: "api", Version: v}); err != nil {
			t.Fatal(err)
		}
	}
	at := time.Now().Add(-time.Hour)
	if _, err := st.AddDeployment(ctx, core.Deployment{Ref: prod, Version: "v1", State: core.DeployHealthy, Weight: 100, StartedAt: at, FinishedAt: at}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.AddDeployment(ctx, core.Deployment{Ref: prod, Version: "v2", From: "v1", State: core.DeployHealthy, Weight: 100, StartedAt: at.Add(time.Minute), FinishedAt: at.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if err := eng.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = eng.Do(ctx, core.Command{Kind: core.CmdRollback, Ref: prod, Version: "v1", Actor: ana, Reason: "bad"})
	if err == nil || !strings.Contains(err.Error(), "rollback did not finish within 50ms (provider fleet)") {
		t.Fatalf("rollback = %v; want the deadline named", err)
	}
	if cause := <-tg.cancelled; !errors.Is(cause, context.DeadlineExceeded) {
		t.Fatalf("the target saw %v, want its deadline", cause)
	}
	if locks, _ := st.Locks(ctx); len(locks) != 0 {
		t.Fatalf("locks after the failed rollback = %+v", locks)
	}
	if ops, _ := st.Unfinished(ctx); len(ops) != 0 {
		t.Fatalf("unfinished operations after the failed rollback = %+v", ops)
	}
	if rel, err := st.Release(ctx, "api", "v2"); err != nil || !rel.Held {
		t.Fatalf("v2 after its failed rollback: %+v, %v; want it held", rel, err)
	}
	// The provider answers again; the person's retry runs.
	tg.answers.Store(true)
	if res, err := eng.Do(ctx, core.Command{Kind: core.CmdRollback, Ref: prod, Version: "v1", Actor: ana, Reason: "retry"}); err != nil || res.Outcome != "rolled back" {
		t.Fatalf("the retry = %+v, %v", res, err)
	}
}
