package rollout

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/ripcordhq/ripcord/core"
)

// rollback puts an environment back on the last good release (or the one
// named), skipping steps and analysis: in an incident, as fast as possible.
// The rolled-back release is held so automation cannot promote it again.
func (c *Controller) rollback(ctx context.Context, _ *core.Engine, cmd core.Command) (core.Result, error) {
	env, err := c.env(cmd.Ref)
	if err != nil {
		return core.Result{}, err
	}
	return c.withLock(ctx, cmd, func() (core.Result, error) {
		return c.doRollback(ctx, cmd, env, "")
	})
}

func (c *Controller) doRollback(ctx context.Context, cmd core.Command, env *Env, why string) (core.Result, error) {
	start := c.eng.Now()
	var bad core.Deployment
	if r := c.current(cmd.Ref); r != nil {
		c.stopRun(r)
		bad = r.dep
	} else if hist, err := c.eng.Store().Deployments(ctx, cmd.Ref, 1); err == nil && len(hist) > 0 {
		bad = hist[0]
	}
	to := cmd.Version
	if to == "" {
		var err error
		if to, err = c.lastGood(ctx, cmd.Ref, bad); err != nil {
			return core.Result{Outcome: "refused", Message: err.Error()}, err
		}
	}
	from := bad.Version
	op := core.Operation{ID: core.NewID(), Ref: cmd.Ref, Kind: "rollback", From: from, To: to, Actor: cmd.Actor, State: core.OpIntent, StartedAt: start}
	if err := c.journal(ctx, op); err != nil {
		return core.Result{}, err
	}
	op.State = core.OpRunning
	_ = c.journal(ctx, op)
	rerr := env.Target.Rollback(ctx, core.OpRequest{ID: op.ID, Ref: cmd.Ref, Actor: cmd.Actor}, to, c.opEvents(cmd.Ref))
	if rerr != nil {
		op.State, op.Message = core.OpFailed, rerr.Error()
		_ = c.journal(ctx, op)
		_, _ = c.eng.Audit(ctx, core.AuditEntry{Actor: cmd.Actor, Action: "rollback", Ref: cmd.Ref, From: from, To: to, Reason: cmd.Reason, Outcome: "failed: " + rerr.Error(), Duration: c.eng.Now().Sub(start)})
		return core.Result{OperationID: op.ID, Outcome: "failed", Message: rerr.Error()}, fmt.Errorf("rollback %s to %s: %w", cmd.Ref, to, rerr)
	}
	op.State = core.OpSucceeded
	_ = c.journal(ctx, op)
	if bad.ID != 0 && bad.Version != to {
		bad.State, bad.FinishedAt = core.DeployRolledBack, c.eng.Now()
		c.saveDeployment(ctx, bad)
		reason := fmt.Sprintf("rolled back by %s", cmd.Actor)
		if why != "" {
			reason += ": " + why
		}
		if err := c.eng.Store().SetHold(ctx, cmd.Ref.Service, bad.Version, true, reason); err != nil {
			return core.Result{}, fmt.Errorf("hold %s: %w", bad.Version, err)
		}
	}
	now := c.eng.Now()
	// No From: a restored release is not a rollout to be judged against the
	// release it replaced (the audit entry says where it came from).
	restored := core.Deployment{Ref: cmd.Ref, Version: to, State: core.DeployHealthy, Weight: 100, StartedAt: start, FinishedAt: now, Actor: cmd.Actor}
	if id, err := c.eng.Store().AddDeployment(ctx, restored); err == nil {
		restored.ID = id
	}
	c.eng.Publish(core.Event{Kind: core.EvDeployment, Ref: cmd.Ref, Final: true, Deployment: &restored})
	reason := cmd.Reason
	if why != "" {
		reason = why
	}
	if _, err := c.eng.Audit(ctx, core.AuditEntry{Actor: cmd.Actor, Action: "rollback", Ref: cmd.Ref, From: from, To: to, Reason: reason, Outcome: "rolled back to " + to, Duration: now.Sub(start)}); err != nil {
		return core.Result{}, err
	}
	msg := "rolled back to " + to
	c.eng.Publish(core.Event{Kind: core.EvNotice, Ref: cmd.Ref, Final: true, Severity: core.SeverityInfo, Notice: msg})
	return core.Result{OperationID: op.ID, Outcome: "rolled back", Message: msg}, nil
}

// lastGood is the newest release that was healthy in ref before the bad
// one and was not itself rolled back.
func (c *Controller) lastGood(ctx context.Context, ref core.Ref, bad core.Deployment) (string, error) {
	if bad.From != "" && bad.State != core.DeployHealthy {
		return bad.From, nil
	}
	hist, err := c.eng.Store().Deployments(ctx, ref, 50)
	if err != nil {
		return "", fmt.Errorf("rollback %s: reading history: %w", ref, err)
	}
	for _, d := range hist {
		if d.ID == bad.ID || d.Version == bad.Version || d.State != core.DeployHealthy {
			continue
		}
		if rel, err := c.eng.Store().Release(ctx, ref.Service, d.Version); err == nil && rel.Held {
			continue
		}
		return d.Version, nil
	}
	if bad.From != "" {
		return bad.From, nil
	}
	return "", fmt.Errorf("rollback %s: no earlier good release in its history; name one with --to", ref)
}

// abort sends all traffic back to stable and keeps the candidate running
// for inspection.
func (c *Controller) abort(ctx context.Context, _ *core.Engine, cmd core.Command) (core.Result, error) {
	env, err := c.env(cmd.Ref)
	if err != nil {
		return core.Result{}, err
	}
	return c.withLock(ctx, cmd, func() (core.Result, error) {
		r, dep, err := c.abortable(ctx, cmd.Ref)
		if err != nil {
			return core.Result{Outcome: "refused", Message: err.Error()}, fmt.Errorf("%s: %w", cmd.Ref, err)
		}
		return c.doAbort(ctx, cmd, env, r, dep, "")
	})
}

// doAbort sends all traffic back to stable: of the rollout r runs, or
// (r nil) of dep, a rollout that stopped with its candidate taking
// traffic.
func (c *Controller) doAbort(ctx context.Context, cmd core.Command, env *Env, r *run, dep core.Deployment, why string) (core.Result, error) {
	start := c.eng.Now()
	if r != nil {
		c.stopRun(r)
		dep = r.dep
	}
	op := core.OpRequest{ID: core.NewID(), Ref: cmd.Ref, Actor: cmd.Actor}
	if err := env.Target.SetWeight(ctx, op, 0, c.opEvents(cmd.Ref)); err != nil {
		return core.Result{Outcome: "failed", Message: err.Error()}, fmt.Errorf("abort %s: %w", cmd.Ref, err)
	}
	dep.State, dep.Weight, dep.FinishedAt = core.DeployAborted, 0, c.eng.Now()
	c.saveDeployment(ctx, dep)
	reason := cmd.Reason
	if why != "" {
		reason = why
	}
	if _, err := c.eng.Audit(ctx, core.AuditEntry{Actor: cmd.Actor, Action: "abort", Ref: cmd.Ref, From: dep.Version, To: dep.From, Reason: reason, Outcome: "traffic back on " + dep.From + "; " + dep.Version + " kept for inspection", Duration: c.eng.Now().Sub(start)}); err != nil {
		return core.Result{}, err
	}
	return core.Result{Outcome: "aborted", Message: fmt.Sprintf("aborted: %s serves all traffic; %s kept for inspection", dep.From, dep.Version)}, nil
}

// auto reacts to a failed analysis on its own, as policy says, and says
// so on the event stream and in the audit log.
func (c *Controller) auto(r *run, v *core.SpikeVerdict) {
	ctx := c.ctx
	actor := core.Actor{Name: "ripcord", Automation: true}
	ev := v.Evidence
	why := fmt.Sprintf("analysis saw an error spike: %d vs %d errors at %.0f%% share, p=%.1g", ev.CandidateCount, ev.BaselineCount, ev.Share*100, ev.PValue)
	cmd := core.Command{Ref: r.dep.Ref, Actor: actor, Reason: why, Force: true}
	lock, err := c.eng.AcquireLock(ctx, cmd.Ref, actor, "auto-rollback", true)
	if err != nil {
		c.eng.Publish(core.Event{Kind: core.EvNotice, Ref: cmd.Ref, Final: true, Severity: core.SeverityCritical, Notice: "auto-rollback could not take the lock: " + err.Error()})
		return
	}
	defer func() { _ = c.eng.ReleaseLock(context.WithoutCancel(ctx), lock) }()
	if r.env.AutoAbort {
		cmd.Kind = core.CmdAbort
		_, err = c.doAbort(ctx, cmd, r.env, r, core.Deployment{}, why)
	} else {
		// The run has ended; its degraded deployment is the newest in the
		// history, which is what doRollback rolls back from.
		cmd.Kind = core.CmdRollback
		cmd.Version = r.dep.From
		_, err = c.doRollback(ctx, cmd, r.env, why)
	}
	if err != nil {
		c.eng.Publish(core.Event{Kind: core.EvNotice, Ref: cmd.Ref, Final: true, Severity: core.SeverityCritical, Notice: "auto-rollback failed: " + err.Error()})
	}
}

// Recover runs when an engine starts: every operation a previous engine
// journaled but never finished (it was killed mid-call) is re-attached
// through the target where it can be, and otherwise shown as needing
// attention with the person who started it, never silently dropped.
func (c *Controller) Recover(ctx context.Context) ([]core.Operation, error) {
	ops, err := c.eng.Store().Unfinished(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading unfinished operations: %w", err)
	}
	var out []core.Operation
	for _, op := range ops {
		if op.State == core.OpAttention {
			out = append(out, op)
			c.eng.Publish(core.Event{Kind: core.EvOperation, Ref: op.Ref, Final: true, Operation: &op})
			continue
		}
		env, envErr := c.env(op.Ref)
		if envErr == nil && op.State == core.OpRunning {
			req := core.OpRequest{ID: op.ID, Ref: op.Ref, Actor: op.Actor}
			if werr := env.Target.WatchOperation(ctx, req, op.ExternalRef, c.opEvents(op.Ref)); werr == nil {
				op.State, op.Message = core.OpSucceeded, "re-attached after restart and finished"
				if err := c.journal(ctx, op); err != nil {
					return out, err
				}
				continue
			}
		}
		op.State = core.OpAttention
		op.Message = fmt.Sprintf("%s of %s (%s → %s) started by %s at %s did not finish: the console stopped mid-operation; check the target and roll forward or back",
			op.Kind, op.Ref, dash(op.From), dash(op.To), op.Actor, op.StartedAt.UTC().Format("15:04 UTC"))
		if err := c.journal(ctx, op); err != nil {
			return out, err
		}
		c.eng.Publish(core.Event{Kind: core.EvNotice, Ref: op.Ref, Final: true, Severity: core.SeverityCritical, Notice: op.Message})
		out = append(out, op)
	}
	return out, c.resume(ctx)
}

// resume continues the rollouts a previous engine left in flight from the
// step they were at: a weight step is idempotent, an analysis starts its
// window again, a pause waits again. A rollout someone paused stays paused.
func (c *Controller) resume(ctx context.Context) error {
	refs := slices.SortedFunc(maps.Keys(c.envs), func(a, b core.Ref) int { return strings.Compare(a.String(), b.String()) })
	for _, ref := range refs {
		env := c.envs[ref]
		if env.Target == nil {
			continue
		}
		deps, err := c.eng.Store().Deployments(ctx, ref, 1)
		if err != nil {
			return fmt.Errorf("reading the rollout of %s: %w", ref, err)
		}
		if len(deps) == 0 || c.current(ref) != nil {
			continue
		}
		d := deps[0]
		switch d.State {
		case core.DeployProgressing, core.DeployPaused, core.DeployJudgment:
		default:
			continue
		}
		rel, err := c.eng.Store().Release(ctx, ref.Service, d.Version)
		if err != nil {
			return fmt.Errorf("resuming the rollout of %s %s: %w", ref, d.Version, err)
		}
		r := &run{dep: d, rel: rel, env: env, done: make(chan struct{})}
		if d.State == core.DeployPaused {
			r.ctl.hold(true)
		}
		c.eng.Publish(core.Event{Kind: core.EvDeployment, Ref: ref, Final: true, Deployment: &d})
		c.eng.Publish(core.Event{Kind: core.EvNotice, Ref: ref, Final: true, Severity: core.SeverityInfo, Notice: fmt.Sprintf("resumed the rollout of %s in %s at step %d", d.Version, ref, d.Step+1)})
		c.launch(r, d.Step)
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
