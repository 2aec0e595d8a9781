package rollout

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/core/procid"
	"github.com/ripcordhq/ripcord/core/sqlitestore"
)

// Invariants that must hold whatever people and automation do, in any
// order: weights stay within 0–100, the audit chain verifies, no
// operation is left unfinished after its command returns, and a release
// that was rolled back is never promoted by automation until a person
// clears its hold.
func TestRolloutInvariantsOverRandomCommands(t *testing.T) {
	ctx := context.Background()
	rapid.Check(t, func(rt *rapid.T) {
		w := newWorld(t, Env{Steps: []Step{{Kind: StepWeight, Weight: 25}, {Kind: StepPause}, {Kind: StepWeight, Weight: 100}}})
		if err := w.eng.Store().PutRelease(ctx, core.Release{Service: "api", Version: "v3", Branch: "main", ArtifactDigest: "sha256:v3"}); err != nil {
			rt.Fatal(err)
		}
		kinds := []core.CommandKind{core.CmdPromote, core.CmdFullPromote, core.CmdPause, core.CmdResume, core.CmdAbort, core.CmdRollback, core.CmdClearHold}
		robot := core.Actor{Name: "ripcord", Automation: true}
		steps := rapid.IntRange(1, 12).Draw(rt, "steps")
		for i := 0; i < steps; i++ {
			cmd := core.Command{
				Kind:    rapid.SampledFrom(kinds).Draw(rt, "kind"),
				Ref:     prod,
				Version: rapid.SampledFrom([]string{"", "v1", "v2", "v3"}).Draw(rt, "version"),
				Actor:   rapid.SampledFrom([]core.Actor{ana, robot}).Draw(rt, "actor"),
				Reason:  "property",
			}
			if cmd.Kind == core.CmdClearHold && cmd.Actor.Automation {
				cmd.Actor = ana // clearing a hold is a person's decision
			}
			var heldBefore bool
			if cmd.Version != "" {
				if rel, err := w.eng.Store().Release(ctx, "api", cmd.Version); err == nil {
					heldBefore = rel.Held
				}
			}
			before := len(w.target.Calls())
			_, err := w.eng.Do(ctx, cmd)

			if (cmd.Kind == core.CmdPromote || cmd.Kind == core.CmdFullPromote) && cmd.Actor.Automation && heldBefore {
				_ = err // refused, or it advanced a rollout of another release
				for _, c := range w.target.Calls()[before:] {
					if c == "deploy "+cmd.Version+"@25" || c == "deploy "+cmd.Version+"@100" {
						rt.Fatalf("automation deployed held release %s: calls %v", cmd.Version, w.target.Calls())
					}
				}
			}
			st, _ := w.target.Status(ctx, prod)
			if st.Weight < 0 || st.Weight > 100 {
				rt.Fatalf("weight %d out of range after %s", st.Weight, cmd.Kind)
			}
			ops, uerr := w.eng.Store().Unfinished(ctx)
			if uerr != nil {
				rt.Fatal(uerr)
			}
			for _, op := range ops {
				if op.State != core.OpAttention {
					rt.Fatalf("operation left %s after %s returned: %+v", op.State, cmd.Kind, op)
				}
			}
			entries, aerr := w.eng.Store().Audit(ctx, 0, 10000)
			if aerr != nil {
				rt.Fatal(aerr)
			}
			if _, err := core.VerifyAudit(core.GenesisHash, entries); err != nil {
				rt.Fatalf("audit chain broken after %s: %v", cmd.Kind, err)
			}
		}
		w.ctl.Close()
	})
}

// life is one engine's process. It dies at its n-th step — a store write
// or a provider call — and from then on nothing it does reaches the store
// or the target, as after kill -9 between two journal writes.
type life struct {
	mu   sync.Mutex
	left int
	dead bool
	// completes says whether a provider call the process dies in still
	// happens at the provider (the kill came after the request left).
	completes bool
	steps     int
}

var errKilled = errors.New("killed")

// step is one step of the process's life: errKilled once it has died.
func (l *life) step() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dead {
		return errKilled
	}
	l.steps++
	if l.left == 0 {
		l.dead = true
		return errKilled
	}
	l.left--
	return nil
}

// call is a provider call as a crash point.
func (l *life) call(do func() error) error {
	if err := l.step(); err != nil {
		if l.completes {
			_ = do()
		}
		l.mu.Lock()
		l.completes = false // only the call it died in
		l.mu.Unlock()
		return err
	}
	return do()
}

// crashStore is a store whose writes stop when its process dies. It
// remembers the operations journaled, in order.
type crashStore struct {
	core.Store
	life *life
	mu   sync.Mutex
	ops  []string
}

func (s *crashStore) PutRelease(ctx context.Context, r core.Release) error {
	if err := s.life.step(); err != nil {
		return err
	}
	return s.Store.PutRelease(ctx, r)
}
func (s *crashStore) SetHold(ctx context.Context, svc, v string, held bool, reason string) error {
	if err := s.life.step(); err != nil {
		return err
	}
	return s.Store.SetHold(ctx, svc, v, held, reason)
}
func (s *crashStore) AddDeployment(ctx context.Context, d core.Deployment) (int64, error) {
	if err := s.life.step(); err != nil {
		return 0, err
	}
	return s.Store.AddDeployment(ctx, d)
}
func (s *crashStore) UpdateDeployment(ctx context.Context, d core.Deployment) error {
	if err := s.life.step(); err != nil {
		return err
	}
	return s.Store.UpdateDeployment(ctx, d)
}
func (s *crashStore) AppendAudit(ctx context.Context, e core.AuditEntry) (core.AuditEntry, error) {
	if err := s.life.step(); err != nil {
		return e, err
	}
	return s.Store.AppendAudit(ctx, e)
}
func (s *crashStore) AcquireLock(ctx context.Context, l core.Lock) (core.Lock, []core.Lock, error) {
	if err := s.life.step(); err != nil {
		return core.Lock{}, nil, err
	}
	return s.Store.AcquireLock(ctx, l)
}
func (s *crashStore) ForceLock(ctx context.Context, l core.Lock) (*core.Lock, error) {
	if err := s.life.step(); err != nil {
		return nil, err
	}
	return s.Store.ForceLock(ctx, l)
}
func (s *crashStore) Heartbeat(ctx context.Context, ref core.Ref, token string, until time.Time) error {
	if err := s.life.step(); err != nil {
		return err
	}
	return s.Store.Heartbeat(ctx, ref, token, until)
}
func (s *crashStore) ReleaseLock(ctx context.Context, ref core.Ref, token string) error {
	if err := s.life.step(); err != nil {
		return err
	}
	return s.Store.ReleaseLock(ctx, ref, token)
}
func (s *crashStore) Journal(ctx context.Context, op core.Operation) error {
	if err := s.life.step(); err != nil {
		return err
	}
	if err := s.Store.Journal(ctx, op); err != nil {
		return err
	}
	s.mu.Lock()
	if !slices.Contains(s.ops, op.ID) {
		s.ops = append(s.ops, op.ID)
	}
	s.mu.Unlock()
	return nil
}

// crashTarget is the deploy target as the dying process reaches it.
type crashTarget struct {
	*memTarget
	life *life
}

func (t *crashTarget) Deploy(ctx context.Context, op core.OpRequest, rel core.Release, w int, fn func(core.OpEvent)) error {
	return t.life.call(func() error { return t.memTarget.Deploy(ctx, op, rel, w, fn) })
}
func (t *crashTarget) SetWeight(ctx context.Context, op core.OpRequest, w int, fn func(core.OpEvent)) error {
	return t.life.call(func() error { return t.memTarget.SetWeight(ctx, op, w, fn) })
}
func (t *crashTarget) Rollback(ctx context.Context, op core.OpRequest, to string, fn func(core.OpEvent)) error {
	return t.life.call(func() error { return t.memTarget.Rollback(ctx, op, to, fn) })
}

// watchedTarget records which release each call moves forward, so a test
// can tell whether a release was taken further.
type watchedTarget struct {
	*memTarget
	mu       sync.Mutex
	forwards []string // "deploy v2@25", "weight v2@100"
}

func (t *watchedTarget) Deploy(ctx context.Context, op core.OpRequest, rel core.Release, w int, fn func(core.OpEvent)) error {
	t.note(fmt.Sprintf("deploy %s@%d", rel.Version, w))
	return t.memTarget.Deploy(ctx, op, rel, w, fn)
}
func (t *watchedTarget) SetWeight(ctx context.Context, op core.OpRequest, w int, fn func(core.OpEvent)) error {
	st, _ := t.memTarget.Status(ctx, op.Ref)
	if w > 0 && st.Candidate != "" {
		t.note(fmt.Sprintf("weight %s@%d", st.Candidate, w))
	}
	return t.memTarget.SetWeight(ctx, op, w, fn)
}
func (t *watchedTarget) note(s string) {
	t.mu.Lock()
	t.forwards = append(t.forwards, s)
	t.mu.Unlock()
}

// An interrupted rollback or abort wins over the rollout it interrupted.
// Whatever people and automation did, and wherever between two steps
// (store writes and provider calls) the process running them was killed,
// the next engine's recovery never takes the release that was being
// rolled back or aborted any further: it is held (rollback), its rollout
// is stopped, the operation is finished or left for a person, and the
// audit chain still verifies.
func TestInterruptedUndoIsNeverTurnedIntoAPromotion(t *testing.T) {
	ctx := context.Background()
	gone := exitedProcess(t)
	rapid.Check(t, func(rt *rapid.T) {
		steps := []Step{{Kind: StepWeight, Weight: 25}, {Kind: StepAnalysis, For: time.Hour}, {Kind: StepPause}, {Kind: StepWeight, Weight: 100}}
		autoRollback := rapid.Bool().Draw(rt, "auto-rollback")
		autoAbort := autoRollback && rapid.Bool().Draw(rt, "auto-abort")
		lf := &life{left: -1}
		st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "state.db"))
		if err != nil {
			rt.Fatal(err)
		}
		defer st.Close()
		for _, v := range []string{"v1", "v2", "v3"} {
			if err := st.PutRelease(ctx, core.Release{Service: "api", Version: v, Branch: "main", ArtifactDigest: "sha256:" + v}); err != nil {
				rt.Fatal(err)
			}
		}
		if _, err := st.AddDeployment(ctx, core.Deployment{Ref: prod, Version: "v1", State: core.DeployHealthy, Weight: 100, StartedAt: time.Now().Add(-time.Hour), FinishedAt: time.Now().Add(-time.Hour)}); err != nil {
			rt.Fatal(err)
		}
		mem := &memTarget{current: "v1"}
		cs := &crashStore{Store: st, life: lf}
		open := func(s core.Store, tg core.Target, p procid.ID) (*core.Engine, *Controller) {
			eng := core.NewEngine(core.EngineOptions{Project: "shop", Services: []string{"api"}, Envs: []string{"staging", "production"}, Store: s, Process: p})
			if err := eng.Restore(ctx); err != nil {
				rt.Fatal(err)
			}
			ts, _ := mem.Status(ctx, prod)
			ts.Ref, ts.Healthy = prod, true
			eng.Publish(core.Event{Kind: core.EvTarget, Ref: prod, Target: &ts})
			ctl := New(eng, Options{Envs: []Env{{Ref: prod, Target: tg, Steps: steps, AutoRollback: autoRollback, AutoAbort: autoAbort}}})
			return eng, ctl
		}
		// The process that will die: it believes it is a process that has
		// already ended, as its lock will look to the next one.
		eng, ctl := open(cs, &crashTarget{memTarget: mem, life: lf}, gone)
		robot := core.Actor{Name: "ripcord", Automation: true}
		kinds := []core.CommandKind{core.CmdPromote, core.CmdPromote, core.CmdFullPromote, core.CmdPause, core.CmdResume, core.CmdAbort, core.CmdRollback, core.CmdClearHold, "spike"}
		lf.mu.Lock()
		lf.left = rapid.IntRange(0, 40).Draw(rt, "crash after steps")
		lf.completes = rapid.Bool().Draw(rt, "a provider call it dies in completes")
		lf.mu.Unlock()
		n := rapid.IntRange(1, 8).Draw(rt, "commands")
		for i := 0; i < n; i++ {
			kind := rapid.SampledFrom(kinds).Draw(rt, "kind")
			if kind == "spike" {
				if d := eng.Snapshot().Deployments[prod]; d.Version != "" && !d.State.Terminal() {
					eng.Publish(core.Event{Kind: core.EvVerdict, Ref: prod, Final: true, Verdict: &core.SpikeVerdict{Ref: prod, Candidate: d.Version, Baseline: d.From, Kind: core.VerdictSpike,
						Evidence: core.Evidence{CandidateCount: 40, BaselineCount: 2, Share: 0.25, PValue: 1e-9}}})
				}
				continue
			}
			cmd := core.Command{Kind: kind, Ref: prod, Reason: "property",
				Version: rapid.SampledFrom([]string{"", "v2", "v3"}).Draw(rt, "version"),
				Actor:   rapid.SampledFrom([]core.Actor{ana, robot}).Draw(rt, "actor")}
			if kind == core.CmdClearHold {
				cmd.Actor = ana
			}
			if kind == core.CmdRollback && cmd.Version != "" {
				cmd.Version = "v1" // back to the release that was good
			}
			_, _ = eng.Do(ctx, cmd)
		}
		// kill -9: whatever the process was doing stops here.
		lf.mu.Lock()
		lf.left, lf.dead = 0, true
		lf.mu.Unlock()
		ctl.Close()

		// The last operation the dead process journaled.
		cs.mu.Lock()
		ids := slices.Clone(cs.ops)
		cs.mu.Unlock()
		var last core.Operation
		if len(ids) > 0 {
			if last, err = st.Operation(ctx, ids[len(ids)-1]); err != nil {
				rt.Fatal(err)
			}
		}

		watched := &watchedTarget{memTarget: mem}
		eng2, ctl2 := open(st, watched, procid.ID{})
		defer ctl2.Close()
		if _, err := ctl2.Recover(ctx); err != nil {
			rt.Fatalf("recover: %v", err)
		}

		// Only an undo the kill interrupted: one that finished before it
		// may have been followed by a person's decision (a cleared hold).
		interrupted := last.State != core.OpSucceeded && last.State != core.OpFailed
		if isUndo(last.Kind) && interrupted && last.From != "" && last.From != last.To {
			x := last.From
			watched.mu.Lock()
			for _, f := range watched.forwards {
				if strings.HasPrefix(f, "deploy "+x+"@") || strings.HasPrefix(f, "weight "+x+"@") {
					rt.Fatalf("recovery took %s further (%s) after its interrupted %s %+v", x, f, last.Kind, last)
				}
			}
			watched.mu.Unlock()
			if r := ctl2.current(prod); r != nil && r.rel.Version == x {
				rt.Fatalf("recovery resumed the rollout of %s, which was being %s", x, map[string]string{"rollback": "rolled back", "abort": "aborted"}[last.Kind])
			}
			if d, err := ctl2.deploymentOf(ctx, prod, x); err != nil {
				rt.Fatal(err)
			} else if d.ID != 0 && (d.State == core.DeployProgressing || d.State == core.DeployPaused || d.State == core.DeployJudgment) {
				rt.Fatalf("after recovery %s's deployment is %s; want it stopped", x, d.State)
			}
			if last.Kind == "rollback" {
				if rel, err := st.Release(ctx, "api", x); err != nil || !rel.Held {
					rt.Fatalf("after an interrupted rollback %s is not held (%v)", x, err)
				}
			}
			op, err := st.Operation(ctx, last.ID)
			if err != nil {
				rt.Fatal(err)
			}
			switch op.State {
			case core.OpSucceeded:
				if s, _ := mem.Status(ctx, prod); last.Kind == "rollback" && (s.Current != last.To || s.Candidate != "") {
					rt.Fatalf("rollback to %s finished but the target runs %+v", last.To, s)
				}
			case core.OpFailed, core.OpAttention:
			default:
				rt.Fatalf("after recovery the %s is still %s", op.Kind, op.State)
			}
			// A promotion by automation is refused while it is held.
			if last.Kind == "rollback" {
				before := len(watched.forwards)
				_, _ = eng2.Do(ctx, core.Command{Kind: core.CmdPromote, Ref: prod, Version: x, Actor: robot})
				if len(watched.forwards) != before {
					rt.Fatalf("automation promoted %s after its interrupted rollback: %v", x, watched.forwards[before:])
				}
			}
		}
		ops, err := st.Unfinished(ctx)
		if err != nil {
			rt.Fatal(err)
		}
		for _, op := range ops {
			if op.State != core.OpAttention {
				rt.Fatalf("after recovery an operation is still %s: %+v", op.State, op)
			}
		}
		entries, err := st.Audit(ctx, 0, 10000)
		if err != nil {
			rt.Fatal(err)
		}
		if _, err := core.VerifyAudit(core.GenesisHash, entries); err != nil {
			rt.Fatalf("audit chain broken after the crash and recovery: %v", err)
		}
	})
}

// exitedProcess is the ID of a process that ran here and has ended.
func exitedProcess(t *testing.T) procid.ID {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	id, err := procid.Of(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	return id
}
