package rollout

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/core/procid"
)

// rollback puts an environment back on the last good release (or the one
// named), skipping steps and analysis: in an incident, as fast as possible.
// The rolled-back release is held so automation cannot promote it again.
func (c *Controller) rollback(ctx context.Context, _ *core.Engine, cmd core.Command) (core.Result, error) {
	env, err := c.env(cmd.Ref)
	if err != nil {
		return core.Result{}, err
	}
	c.preempt(ctx, cmd)
	return c.withLock(ctx, cmd, func() (core.Result, error) {
		return c.doRollback(ctx, cmd, env, "")
	})
}

// doRollback journals its intent first and then, before any provider
// call, holds the release it leaves and stops that release's deployment:
// whatever point a crash interrupts it at, the next engine finds a
// rollback to finish, never a rollout to continue (see Recover).
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
	gates, err := c.rollbackGates(ctx, cmd, bad, to)
	if err != nil {
		return core.Result{Outcome: "blocked", Message: err.Error(), Gates: gates}, err
	}
	reason := cmd.Reason
	if why != "" {
		reason = why
	}
	op := core.Operation{ID: core.NewID(), Ref: cmd.Ref, Kind: "rollback", From: from, To: to, Actor: cmd.Actor, State: core.OpIntent, StartedAt: start, Message: reason}
	if err := c.journal(ctx, op); err != nil {
		return core.Result{}, err
	}
	if err := c.leave(ctx, op, bad); err != nil {
		return c.undoFailed(ctx, op, err)
	}
	op.State = core.OpRunning
	if err := c.journal(ctx, op); err != nil {
		return c.undoFailed(ctx, op, err)
	}
	if err := c.bounded(ctx, env, "rollback", c.opts.Deadlines.Rollback, func(ctx context.Context) error {
		return env.Target.Rollback(ctx, core.OpRequest{ID: op.ID, Ref: cmd.Ref, Actor: cmd.Actor}, to, c.journalRef(ctx, &op))
	}); err != nil {
		return c.undoFailed(ctx, op, err)
	}
	msg, err := c.finishRollback(ctx, op, bad, start, gates...)
	if err != nil {
		return core.Result{}, err
	}
	c.eng.Publish(core.Event{Kind: core.EvNotice, Ref: cmd.Ref, Final: true, Severity: core.SeverityInfo, Notice: msg})
	return core.Result{OperationID: op.ID, Outcome: "rolled back", Message: msg, Gates: gates}, nil
}

// rollbackGates checks what the rollback does to the schema: crossing a
// contract migration (the code goes back, the schema does not) is refused
// unless a person overrides the migrations gate with a reason; automation
// never may. A refusal is audited.
func (c *Controller) rollbackGates(ctx context.Context, cmd core.Command, bad core.Deployment, to string) ([]core.GateResult, error) {
	crossing := c.Crossing(ctx, cmd.Ref, bad, to)
	g := crossing.Gate()
	if g.Status == core.GatePass {
		return []core.GateResult{g}, nil
	}
	if slices.Contains(cmd.Overrides, core.GateMigrations) && !cmd.Actor.Automation {
		g.Overridden = true
		return []core.GateResult{g}, nil
	}
	gates := []core.GateResult{g}
	_, _ = c.eng.Audit(ctx, core.AuditEntry{Actor: cmd.Actor, Action: "rollback", Ref: cmd.Ref, From: bad.Version, To: to, Gates: gates, Reason: cmd.Reason, Outcome: "blocked"})
	return gates, fmt.Errorf("rollback %s from %s to %s blocked: %s\n  %s\n%w", cmd.Ref, bad.Version, to, g.Reason, strings.Join(crossing.Lines(), "\n  "), core.ErrBlocked)
}

// Crossing works out which migrations rolling ref back from the
// deployment bad to the release `to` leaves applied, with the backups a
// person would restore from.
func (c *Controller) Crossing(ctx context.Context, ref core.Ref, bad core.Deployment, to string) core.RollbackCrossing {
	var from, target *core.Release
	if r, err := c.eng.Store().Release(ctx, ref.Service, bad.Version); err == nil {
		from = &r
	}
	if r, err := c.eng.Store().Release(ctx, ref.Service, to); err == nil {
		target = &r
	}
	crossing := core.NewRollbackCrossing(ref, bad.Version, from, to, target, bad.StartedAt, c.backups(ref))
	crossing.Unread(envOf(c, ref).MigrationsUnread)
	return crossing
}

// overridden names the gates a person overrode.
func overridden(gates []core.GateResult) []string {
	var out []string
	for _, g := range gates {
		if g.Overridden {
			out = append(out, g.Gate)
		}
	}
	return out
}

// leave holds the release a rollback leaves and stops its deployment
// (degraded, so no engine resumes it) before the provider is called.
func (c *Controller) leave(ctx context.Context, op core.Operation, bad core.Deployment) error {
	if bad.ID == 0 || bad.Version == op.To {
		return nil
	}
	if err := c.eng.Store().SetHold(ctx, op.Ref.Service, bad.Version, true, holdReason(op)); err != nil {
		return fmt.Errorf("hold %s: %w", bad.Version, err)
	}
	if !bad.State.Terminal() && bad.State != core.DeployDegraded {
		bad.State = core.DeployDegraded
		if err := c.saveDeploymentErr(ctx, bad); err != nil {
			return fmt.Errorf("stop the rollout of %s: %w", bad.Version, err)
		}
	}
	return nil
}

func holdReason(op core.Operation) string {
	r := fmt.Sprintf("rolled back by %s", op.Actor)
	if op.Message != "" {
		r += ": " + op.Message
	}
	return r
}

// finishRollback records a rollback the target has done: the release it
// left is rolled back, the one it restored serves, the audit log says so,
// and only then is the operation marked done — so a crash before that
// leaves it for Recover to finish. Every step may run twice.
//
// gates are the rollback's checks when the person's command is finishing
// it (a rollback Recover finishes has none to add).
func (c *Controller) finishRollback(ctx context.Context, op core.Operation, bad core.Deployment, start time.Time, gates ...core.GateResult) (string, error) {
	if bad.ID != 0 && bad.Version != op.To && bad.State != core.DeployRolledBack {
		bad.State, bad.FinishedAt = core.DeployRolledBack, c.eng.Now()
		if err := c.saveDeploymentErr(ctx, bad); err != nil {
			return "", err
		}
	}
	now := c.eng.Now()
	// No From: a restored release is not a rollout to be judged against the
	// release it replaced (the audit entry says where it came from).
	restored := core.Deployment{Ref: op.Ref, Version: op.To, State: core.DeployHealthy, Weight: 100, StartedAt: start, FinishedAt: now, Actor: op.Actor}
	if hist, err := c.eng.Store().Deployments(ctx, op.Ref, 1); err == nil && len(hist) > 0 &&
		hist[0].Version == op.To && hist[0].State == core.DeployHealthy && !hist[0].StartedAt.Before(op.StartedAt.Truncate(time.Microsecond)) {
		restored = hist[0] // recorded before a crash
	} else {
		id, err := c.eng.Store().AddDeployment(ctx, restored)
		if err != nil {
			return "", fmt.Errorf("record the restored release %s: %w", op.To, err)
		}
		restored.ID = id
	}
	c.eng.Publish(core.Event{Kind: core.EvDeployment, Ref: op.Ref, Final: true, Deployment: &restored})
	if !c.audited(ctx, op) { // a crash may have come after the entry
		if _, err := c.eng.Audit(ctx, core.AuditEntry{Actor: op.Actor, Action: "rollback", Ref: op.Ref, From: op.From, To: op.To, Gates: gates, Overrides: overridden(gates), Reason: op.Message, Outcome: "rolled back to " + op.To, Duration: now.Sub(op.StartedAt)}); err != nil {
			return "", err
		}
	}
	op.State, op.Message = core.OpSucceeded, ""
	if err := c.journal(ctx, op); err != nil {
		return "", err
	}
	c.closeInterrupted(ctx, op)
	return "rolled back to " + op.To, nil
}

// undoFailed records a rollback or abort that failed: the release it was
// leaving stays held and its rollout stopped, for a person to decide.
func (c *Controller) undoFailed(ctx context.Context, op core.Operation, cause error) (core.Result, error) {
	reason := op.Message
	op.State, op.Message = core.OpFailed, cause.Error()
	_ = c.journal(ctx, op)
	_, _ = c.eng.Audit(ctx, core.AuditEntry{Actor: op.Actor, Action: op.Kind, Ref: op.Ref, From: op.From, To: op.To, Reason: reason, Outcome: "failed: " + cause.Error(), Duration: c.eng.Now().Sub(op.StartedAt)})
	c.closeInterrupted(ctx, op)
	return core.Result{OperationID: op.ID, Outcome: "failed", Message: cause.Error()}, fmt.Errorf("%s %s to %s: %w", op.Kind, op.Ref, dash(op.To), cause)
}

// closeInterrupted marks the operations a crash left on op's environment
// as settled by op: a person's rollback or abort after the crash is the
// decision the needs-attention note asked for.
func (c *Controller) closeInterrupted(ctx context.Context, op core.Operation) {
	ops, err := c.eng.Store().Unfinished(ctx)
	if err != nil {
		return
	}
	for _, o := range ops {
		if o.Ref != op.Ref || o.ID == op.ID || o.State != core.OpAttention {
			continue
		}
		o.State = core.OpFailed
		o.Message = fmt.Sprintf("interrupted; settled by the %s of %s by %s at %s", op.Kind, dash(op.To), op.Actor, c.eng.Now().UTC().Format("15:04 UTC"))
		_ = c.journal(ctx, o)
	}
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
	c.preempt(ctx, cmd)
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
// traffic. Like a rollback it journals its intent and stops the rollout
// before the provider is called.
func (c *Controller) doAbort(ctx context.Context, cmd core.Command, env *Env, r *run, dep core.Deployment, why string) (core.Result, error) {
	start := c.eng.Now()
	if r != nil {
		c.stopRun(r)
		dep = r.dep
	}
	reason := cmd.Reason
	if why != "" {
		reason = why
	}
	op := core.Operation{ID: core.NewID(), Ref: cmd.Ref, Kind: "abort", From: dep.Version, To: dep.From, Actor: cmd.Actor, State: core.OpIntent, StartedAt: start, Message: reason}
	if err := c.journal(ctx, op); err != nil {
		return core.Result{}, err
	}
	// Stopped before the provider is called: an abort a crash interrupts
	// is finished by the next engine, never turned back into the rollout.
	if dep.State != core.DeployDegraded {
		dep.State = core.DeployDegraded
		if err := c.saveDeploymentErr(ctx, dep); err != nil {
			return c.undoFailed(ctx, op, err)
		}
	}
	op.State = core.OpRunning
	if err := c.journal(ctx, op); err != nil {
		return c.undoFailed(ctx, op, err)
	}
	if err := c.bounded(ctx, env, "abort", c.opts.Deadlines.Rollback, func(ctx context.Context) error {
		return env.Target.SetWeight(ctx, core.OpRequest{ID: op.ID, Ref: cmd.Ref, Actor: cmd.Actor}, 0, c.journalRef(ctx, &op))
	}); err != nil {
		return c.undoFailed(ctx, op, err)
	}
	msg, err := c.finishAbort(ctx, op, dep)
	if err != nil {
		return core.Result{}, err
	}
	return core.Result{OperationID: op.ID, Outcome: "aborted", Message: msg}, nil
}

// finishAbort records an abort the target has done, the operation last.
func (c *Controller) finishAbort(ctx context.Context, op core.Operation, dep core.Deployment) (string, error) {
	if dep.ID != 0 && dep.State != core.DeployAborted {
		dep.State, dep.Weight, dep.FinishedAt = core.DeployAborted, 0, c.eng.Now()
		if err := c.saveDeploymentErr(ctx, dep); err != nil {
			return "", err
		}
	}
	if !c.audited(ctx, op) {
		if _, err := c.eng.Audit(ctx, core.AuditEntry{Actor: op.Actor, Action: "abort", Ref: op.Ref, From: op.From, To: op.To, Reason: op.Message, Outcome: "traffic back on " + op.To + "; " + op.From + " kept for inspection", Duration: c.eng.Now().Sub(op.StartedAt)}); err != nil {
			return "", err
		}
	}
	op.State, op.Message = core.OpSucceeded, ""
	if err := c.journal(ctx, op); err != nil {
		return "", err
	}
	c.closeInterrupted(ctx, op)
	return fmt.Sprintf("aborted: %s serves all traffic; %s kept for inspection", op.To, op.From), nil
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

// Recover runs when an engine starts and applies the recovery rules
// (docs/architecture.md, "Recovery"). An operation a live process still
// runs (it holds the environment's lock) is left to it. Otherwise an
// interrupted rollback or abort wins over the rollout it interrupted: it
// is finished — re-attached, or done again, since the target's rollback
// is idempotent — or left for a person, and in both cases the release it
// was leaving stays held and its rollout stopped. Any other interrupted
// operation is re-attached or shown as needing attention with the person
// who started it. Rollouts resume only in environments with nothing left
// unfinished.
func (c *Controller) Recover(ctx context.Context) ([]core.Operation, error) {
	ops, err := c.eng.Store().Unfinished(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading unfinished operations: %w", err)
	}
	var out []core.Operation
	busy := map[core.Ref]bool{}
	for _, op := range ops {
		if c.ownedElsewhere(ctx, op.Ref) {
			busy[op.Ref] = true
			c.eng.Publish(core.Event{Kind: core.EvOperation, Ref: op.Ref, Final: true, Operation: &op})
			continue
		}
		if isUndo(op.Kind) {
			busy[op.Ref] = true
			left, err := c.finishUndo(ctx, op)
			if err != nil {
				return out, err
			}
			if left != nil {
				out = append(out, *left)
			}
			continue
		}
		if op.State == core.OpAttention {
			busy[op.Ref] = true
			out = append(out, op)
			c.eng.Publish(core.Event{Kind: core.EvOperation, Ref: op.Ref, Final: true, Operation: &op})
			continue
		}
		env, envErr := c.env(op.Ref)
		if envErr == nil && op.State == core.OpRunning {
			req := core.OpRequest{ID: op.ID, Ref: op.Ref, Actor: op.Actor}
			werr := c.bounded(ctx, env, "re-attach to the "+op.Kind, c.opts.Deadlines.Deploy, func(ctx context.Context) error {
				return env.Target.WatchOperation(ctx, req, op.ExternalRef, c.opEvents(op.Ref))
			})
			if werr == nil {
				op.State, op.Message = core.OpSucceeded, "re-attached after restart and finished"
				if err := c.journal(ctx, op); err != nil {
					return out, err
				}
				continue
			}
		}
		busy[op.Ref] = true
		op, err = c.attention(ctx, op, "the console stopped mid-operation; check the target and roll forward or back")
		if err != nil {
			return out, err
		}
		out = append(out, op)
	}
	return out, c.resume(ctx, busy)
}

func isUndo(kind string) bool { return kind == "rollback" || kind == "abort" }

// ownedElsewhere reports whether a live process other than this one holds
// ref's operation lock: what it journaled is still its own.
func (c *Controller) ownedElsewhere(ctx context.Context, ref core.Ref) bool {
	locks, err := c.eng.Store().Locks(ctx)
	if err != nil {
		return true // cannot tell: touch nothing
	}
	for _, l := range locks {
		if l.Ref != ref || l.IsPerson() || c.eng.Owns(l.Token) || l.Expired(c.eng.Now()) {
			continue
		}
		if l.Owner.Check() != procid.Gone {
			return true
		}
	}
	return false
}

// attention marks op as needing a person, with why.
func (c *Controller) attention(ctx context.Context, op core.Operation, why string) (core.Operation, error) {
	op.State = core.OpAttention
	op.Message = fmt.Sprintf("%s of %s (%s → %s) started by %s at %s did not finish: %s",
		op.Kind, op.Ref, dash(op.From), dash(op.To), op.Actor, op.StartedAt.UTC().Format("15:04 UTC"), why)
	if err := c.journal(ctx, op); err != nil {
		return op, err
	}
	c.eng.Publish(core.Event{Kind: core.EvNotice, Ref: op.Ref, Final: true, Severity: core.SeverityCritical, Notice: op.Message})
	return op, nil
}

// finishUndo finishes a rollback or abort a previous engine left: under
// the environment's lock (taken over from a dead process, audited), the
// release it leaves is held and its rollout stopped first, then the
// target is asked again with the same operation ID (the idempotency key)
// and the bookkeeping completed. It returns the operation when it is left
// for a person.
func (c *Controller) finishUndo(ctx context.Context, op core.Operation) (*core.Operation, error) {
	leaveFor := func(why string) (*core.Operation, error) {
		op, err := c.attention(ctx, op, why)
		return &op, err
	}
	env, err := c.env(op.Ref)
	if err != nil {
		return leaveFor("no deploy target here to finish it with (" + err.Error() + ")")
	}
	if !c.eng.Holds(op.Ref) {
		l, err := c.eng.RecoverLock(ctx, op.Ref, "finish the interrupted "+op.Kind)
		if err != nil {
			return leaveFor("cannot take the lock to finish it: " + err.Error())
		}
		defer func() { _ = c.eng.ReleaseLock(context.WithoutCancel(ctx), l) }()
	}
	bad, err := c.deploymentOf(ctx, op.Ref, op.From)
	if err != nil {
		return nil, err
	}
	c.eng.Publish(core.Event{Kind: core.EvNotice, Ref: op.Ref, Final: true, Severity: core.SeverityWarn, Notice: fmt.Sprintf("finishing the %s of %s (%s → %s) that %s started at %s: the process running it stopped",
		op.Kind, op.Ref, dash(op.From), dash(op.To), op.Actor, op.StartedAt.UTC().Format("15:04 UTC"))})
	req := core.OpRequest{ID: op.ID, Ref: op.Ref, Actor: op.Actor}
	if op.Kind == "rollback" {
		if err := c.leave(ctx, op, bad); err != nil {
			return leaveFor(err.Error())
		}
	} else if bad.ID != 0 && !bad.State.Terminal() && bad.State != core.DeployDegraded {
		bad.State = core.DeployDegraded
		if err := c.saveDeploymentErr(ctx, bad); err != nil {
			return leaveFor(err.Error())
		}
	}
	if op.State == core.OpIntent {
		op.State = core.OpRunning
		if err := c.journal(ctx, op); err != nil {
			return nil, err
		}
	}
	// Re-attach first: the target may have finished it, or still run it.
	// Where there is nothing to re-attach to (the provider restarted, or
	// the call never reached it), do it again under a new request ID: a
	// rollback to the release that already serves changes nothing.
	within := c.opts.Deadlines.Rollback
	perr := c.bounded(ctx, env, "re-attach to the "+op.Kind, within, func(ctx context.Context) error {
		return env.Target.WatchOperation(ctx, req, op.ExternalRef, c.opEvents(op.Ref))
	})
	if perr != nil {
		redo := core.OpRequest{ID: core.NewID(), Ref: op.Ref, Actor: op.Actor}
		perr = c.bounded(ctx, env, op.Kind, within, func(ctx context.Context) error {
			if op.Kind == "rollback" {
				return env.Target.Rollback(ctx, redo, op.To, c.opEvents(op.Ref))
			}
			return env.Target.SetWeight(ctx, redo, 0, c.opEvents(op.Ref))
		})
	}
	if perr != nil {
		held := ""
		if op.Kind == "rollback" && op.From != "" {
			held = "; " + op.From + " stays held and its rollout stopped"
		}
		return leaveFor(fmt.Sprintf("finishing it after a restart failed: %v%s; run the %s again", perr, held, op.Kind))
	}
	if op.Message == "" {
		op.Message = "finished after a restart"
	} else {
		op.Message += " (finished after a restart)"
	}
	var msg string
	if op.Kind == "rollback" {
		msg, err = c.finishRollback(ctx, op, bad, op.StartedAt)
	} else {
		msg, err = c.finishAbort(ctx, op, bad)
	}
	if err != nil {
		return nil, err
	}
	c.eng.Publish(core.Event{Kind: core.EvNotice, Ref: op.Ref, Final: true, Severity: core.SeverityInfo, Notice: msg + " (an interrupted " + op.Kind + ", finished)"})
	return nil, nil
}

// deploymentOf is the newest deployment of version in ref (zero when
// there is none).
func (c *Controller) deploymentOf(ctx context.Context, ref core.Ref, version string) (core.Deployment, error) {
	if version == "" {
		return core.Deployment{}, nil
	}
	hist, err := c.eng.Store().Deployments(ctx, ref, 50)
	if err != nil {
		return core.Deployment{}, fmt.Errorf("reading the history of %s: %w", ref, err)
	}
	for _, d := range hist {
		if d.Version == version {
			return d, nil
		}
	}
	return core.Deployment{}, nil
}

// audited reports whether op's outcome is already in the audit log (a
// crash after the entry and before the journal's last write).
func (c *Controller) audited(ctx context.Context, op core.Operation) bool {
	snap := c.eng.Snapshot()
	entries := snap.Audit
	for i := len(entries) - 1; i >= 0; i-- {
		a := entries[i]
		if a.At.Before(op.StartedAt) {
			break
		}
		if a.Action == op.Kind && a.Ref == op.Ref && a.From == op.From && a.To == op.To && !strings.HasPrefix(a.Outcome, "failed") {
			return true
		}
	}
	return false
}

// interruptedUndo is an unfinished rollback or abort of ref left for a
// person, if any: until it is settled, nothing is promoted there.
func (c *Controller) interruptedUndo(ctx context.Context, ref core.Ref) (*core.Operation, error) {
	ops, err := c.eng.Store().Unfinished(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading unfinished operations: %w", err)
	}
	for _, op := range ops {
		if op.Ref == ref && isUndo(op.Kind) {
			return &op, nil
		}
	}
	return nil, nil
}

// resume continues the rollouts a previous engine left in flight from the
// step they were at: a weight step is idempotent, an analysis starts its
// window again, a pause waits again. A rollout someone paused stays paused.
// Environments in busy have an operation unfinished (or just finished by
// recovery): their rollouts stay where they are.
func (c *Controller) resume(ctx context.Context, busy map[core.Ref]bool) error {
	refs := slices.SortedFunc(maps.Keys(c.envs), func(a, b core.Ref) int { return strings.Compare(a.String(), b.String()) })
	for _, ref := range refs {
		env := c.envs[ref]
		if env.Target == nil || busy[ref] {
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
