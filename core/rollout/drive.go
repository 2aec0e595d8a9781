package rollout

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ripcordhq/ripcord/core"
)

// outcome is how a rollout's goroutine ended.
type outcome struct {
	spike *core.SpikeVerdict // an analysis step saw a spike
	err   error
}

// launch hands the rollout's remaining steps to a goroutine owned by the
// controller.
func (c *Controller) launch(r *run, from int) {
	ctx, cancel := context.WithCancel(c.ctx)
	r.cancel = cancel
	c.mu.Lock()
	r.id = r.dep.ID
	c.runs[r.dep.Ref] = r
	c.mu.Unlock()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		out := c.drive(ctx, r, from)
		close(r.done)
		if out.spike != nil && r.env.AutoRollback {
			c.auto(r, out.spike)
		}
	}()
}

// control carries a person's commands into a running rollout.
type control struct {
	mu     sync.Mutex
	full   bool
	held   chan struct{} // non-nil while paused by a person
	nudged chan struct{}
	// judging is non-nil while the rollout waits for judgment, and closed
	// once it has taken a promote and recorded that it moved on.
	judging chan struct{}
	// pausedBy and pausedAt are who paused the rollout, and when.
	pausedBy core.Actor
	pausedAt time.Time
}

func (c *Controller) drive(ctx context.Context, r *run, i int) outcome {
	steps := c.steps(r.env)
	for ; i < len(steps); i++ {
		if err := c.waitResume(ctx, r); err != nil {
			return outcome{err: err}
		}
		if r.ctl.isFull() {
			break
		}
		s := steps[i]
		if r.dep.Step != i || r.dep.StepStartedAt.IsZero() {
			r.dep.StepStartedAt = c.eng.Now()
		}
		r.dep.Step = i
		switch s.Kind {
		case StepWeight:
			if err := c.setWeight(ctx, r, s.Weight); err != nil {
				return c.degrade(ctx, r, err)
			}
		case StepAnalysis:
			r.dep.State = core.DeployProgressing
			c.saveDeployment(ctx, r.dep)
			if v, err := c.analyse(ctx, r, s.For); err != nil {
				return outcome{err: err}
			} else if v != nil {
				r.dep.State = core.DeployDegraded
				c.saveDeployment(ctx, r.dep)
				if v.Kind != core.VerdictSpike {
					// on_inconclusive: fail. A person decides: automatic
					// rollback acts on a spike only.
					c.eng.Publish(core.Event{Kind: core.EvNotice, Ref: r.dep.Ref, Final: true, Severity: core.SeverityCritical, Notice: fmt.Sprintf("analysis of %s in %s ended inconclusive (on_inconclusive: fail): %s", r.rel.Version, r.dep.Ref, v.Evidence.Note)})
					return outcome{err: errInconclusive}
				}
				c.eng.Publish(core.Event{Kind: core.EvNotice, Ref: r.dep.Ref, Final: true, Severity: core.SeverityCritical, Notice: fmt.Sprintf("error spike in %s: %s failed analysis", r.dep.Ref, r.rel.Version)})
				return outcome{spike: v}
			}
		case StepPause:
			if err := c.pauseStep(ctx, r, s); err != nil {
				return outcome{err: err}
			}
		}
	}
	if r.dep.Weight != 100 {
		if err := c.setWeight(ctx, r, 100); err != nil {
			return c.degrade(ctx, r, err)
		}
	}
	r.dep.State, r.dep.FinishedAt, r.dep.Step = core.DeployHealthy, c.eng.Now(), len(steps)
	// Audit before announcing: whoever sees "healthy" finds it recorded.
	_, _ = c.eng.Audit(ctx, core.AuditEntry{Actor: r.dep.Actor, Action: "rollout-complete", Ref: r.dep.Ref, From: r.dep.From, To: r.rel.Version, Outcome: "healthy at 100%", Duration: r.dep.FinishedAt.Sub(r.dep.StartedAt)})
	c.saveDeployment(ctx, r.dep)
	c.eng.Publish(core.Event{Kind: core.EvNotice, Ref: r.dep.Ref, Final: true, Severity: core.SeverityInfo, Notice: fmt.Sprintf("%s is live in %s", r.rel.Version, r.dep.Ref.Env)})
	return outcome{}
}

func (c *Controller) degrade(ctx context.Context, r *run, err error) outcome {
	if ctx.Err() != nil {
		return outcome{err: ctx.Err()}
	}
	r.dep.State = core.DeployDegraded
	c.saveDeployment(ctx, r.dep)
	c.eng.Publish(core.Event{Kind: core.EvNotice, Ref: r.dep.Ref, Final: true, Severity: core.SeverityCritical, Notice: fmt.Sprintf("%s rollout of %s degraded: %v", r.dep.Ref, r.rel.Version, err)})
	return outcome{err: err}
}

func (c *Controller) setWeight(ctx context.Context, r *run, w int) error {
	op := core.OpRequest{ID: core.NewID(), Ref: r.dep.Ref, Actor: r.dep.Actor}
	if err := c.bounded(ctx, r.env, fmt.Sprintf("traffic shift to %d%%", w), c.opts.Deadlines.Deploy, func(ctx context.Context) error {
		return r.env.Target.SetWeight(ctx, op, w, c.opEvents(r.dep.Ref))
	}); err != nil {
		return fmt.Errorf("set %s weight to %d%%: %w", r.rel.Version, w, err)
	}
	r.dep.Weight, r.dep.State = w, core.DeployProgressing
	if w > 0 && r.dep.ExposedAt.IsZero() {
		r.dep.ExposedAt = c.eng.Now() // traffic shifted: the canary's evidence starts
	}
	c.saveDeployment(ctx, r.dep)
	return nil
}

var errInconclusive = errors.New("analysis ended inconclusive")

// analyse watches the candidate's error verdict for d. A SPIKE at any
// moment fails the step at once. When d is over the step passes on
// HEALTHY; on INCONCLUSIVE (or no verdict) the environment's
// OnInconclusive decides: pass, fail, or wait — keep watching until the
// verdict is HEALTHY or SPIKE. A person promoting ends the step. It
// returns the verdict that failed the step, nil when it passed.
func (c *Controller) analyse(ctx context.Context, r *run, d time.Duration) (*core.SpikeVerdict, error) {
	snap, sub := c.eng.Subscribe()
	defer sub.Close()
	var last *core.SpikeVerdict
	see := func(v core.SpikeVerdict) {
		if v.Ref == r.dep.Ref && v.Candidate == r.rel.Version {
			last = &v
		}
	}
	if v, ok := snap.Verdicts[r.dep.Ref]; ok {
		see(v)
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	over, waiting := false, false
	var buf []core.Event
	for {
		switch {
		case last != nil && last.Kind == core.VerdictSpike:
			return last, nil
		case over && last != nil && last.Kind == core.VerdictHealthy:
			return nil, nil
		case over:
			switch r.env.OnInconclusive {
			case core.InconclusivePass:
				return nil, nil
			case core.InconclusiveFail:
				if last == nil {
					last = &core.SpikeVerdict{Ref: r.dep.Ref, Candidate: r.rel.Version, Kind: core.VerdictInconclusive,
						Evidence: core.Evidence{Note: "no error verdict was made"}}
				}
				return last, nil
			}
			if !waiting {
				waiting = true
				why := "no error verdict yet"
				if last != nil {
					why = last.Evidence.Note
				}
				c.eng.Publish(core.Event{Kind: core.EvNotice, Ref: r.dep.Ref, Final: true, Notice: fmt.Sprintf(
					"analysis of %s at %d%% in %s keeps watching until the verdict is HEALTHY or SPIKE (on_inconclusive: wait): %s",
					r.rel.Version, r.dep.Weight, r.dep.Ref.Env, why)})
			}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-timer.C:
			over = true
		case <-r.ctl.nudge():
			return nil, nil
		case <-sub.Ready():
			buf = sub.Drain(buf[:0])
			for _, ev := range buf {
				if ev.Kind == core.EvVerdict && ev.Verdict != nil {
					see(*ev.Verdict)
				}
				if ev.Kind == core.EvResync && ev.Snapshot != nil {
					if v, ok := ev.Snapshot.Verdicts[r.dep.Ref]; ok {
						see(v)
					}
				}
			}
		}
	}
}

func (c *Controller) pauseStep(ctx context.Context, r *run, s Step) error {
	if s.For == 0 {
		r.ctl.judge()
		defer r.ctl.judged()
		r.dep.State = core.DeployJudgment
		c.saveDeployment(ctx, r.dep)
		c.eng.Publish(core.Event{Kind: core.EvNotice, Ref: r.dep.Ref, Final: true, Severity: core.SeverityWarn, Notice: fmt.Sprintf("%s at %d%% in %s waits for judgment: promote or roll back", r.rel.Version, r.dep.Weight, r.dep.Ref.Env)})
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.ctl.nudge():
			// The judgment is over: recorded (the next step due) before
			// the promote is answered, so nothing goes on showing — and
			// offering what only a waiting rollout accepts — a judgment
			// already taken, and a restarted engine goes on from here.
			r.dep.State, r.dep.Step, r.dep.StepStartedAt = core.DeployProgressing, r.dep.Step+1, c.eng.Now()
			c.saveDeployment(ctx, r.dep)
			return nil
		}
	}
	// A timed pause is the rollout going on by itself, as an analysis
	// is: paused is a person's hold alone, which a restart keeps.
	r.dep.State = core.DeployProgressing
	c.saveDeployment(ctx, r.dep)
	t := time.NewTimer(s.For)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
	case <-r.ctl.nudge():
	}
	return nil
}

func (ctl *control) nudge() <-chan struct{} { return ctl.nudges() }

func (ctl *control) nudges() chan struct{} {
	ctl.mu.Lock()
	defer ctl.mu.Unlock()
	if ctl.nudged == nil {
		ctl.nudged = make(chan struct{}, 1)
	}
	return ctl.nudged
}

// poke ends the current pause or analysis early (and with full, skips the
// remaining steps). When the rollout waits for judgment it returns a
// channel closed once the rollout has recorded that it moved on.
func (ctl *control) poke(full bool) <-chan struct{} {
	ch := ctl.nudges()
	ctl.mu.Lock()
	if full {
		ctl.full = true
	}
	judging := ctl.judging
	ctl.mu.Unlock()
	select {
	case ch <- struct{}{}:
	default:
	}
	return judging
}

// judge marks the rollout as waiting for judgment; judged ends that.
func (ctl *control) judge() {
	ctl.mu.Lock()
	defer ctl.mu.Unlock()
	ctl.judging = make(chan struct{})
}

func (ctl *control) judged() {
	ctl.mu.Lock()
	defer ctl.mu.Unlock()
	if ctl.judging != nil {
		close(ctl.judging)
		ctl.judging = nil
	}
}

func (ctl *control) isFull() bool {
	ctl.mu.Lock()
	defer ctl.mu.Unlock()
	return ctl.full
}

// hold pauses the rollout at the next step boundary; release resumes it.
func (ctl *control) hold(on bool) bool {
	ctl.mu.Lock()
	defer ctl.mu.Unlock()
	switch {
	case on && ctl.held == nil:
		ctl.held = make(chan struct{})
		return true
	case !on && ctl.held != nil:
		close(ctl.held)
		ctl.held = nil
		return true
	}
	return false
}

func (ctl *control) waitResume(ctx context.Context) error {
	ctl.mu.Lock()
	h := ctl.held
	ctl.mu.Unlock()
	if h == nil {
		return nil
	}
	select {
	case <-h:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// advance moves a rollout in flight on by one step (or to the end).
func (c *Controller) advance(ctx context.Context, cmd core.Command, r *run) (core.Result, error) {
	if by, _, held := r.ctl.heldBy(); held {
		err := fmt.Errorf("%s: the rollout of %s is paused by %s: resume it first", cmd.Ref, r.rel.Version, by.Name)
		return core.Result{Outcome: "refused", Message: err.Error()}, err
	}
	full := cmd.Kind == core.CmdFullPromote
	if judging := r.ctl.poke(full); judging != nil {
		// Answered once the record says the rollout moved on, so what
		// the person sees next is the rollout going on, not the judgment
		// they just gave.
		select {
		case <-judging:
		case <-r.done:
		case <-ctx.Done():
			return core.Result{}, fmt.Errorf("%s: promote: %w", cmd.Ref, ctx.Err())
		}
	}
	what := "advanced one step"
	if full {
		what = "promoted fully: remaining steps skipped"
	}
	if _, err := c.eng.Audit(ctx, core.AuditEntry{Actor: cmd.Actor, Action: string(cmd.Kind), Ref: cmd.Ref, From: r.dep.From, To: r.rel.Version, Reason: cmd.Reason, Outcome: what}); err != nil {
		return core.Result{}, err
	}
	return core.Result{Outcome: "promoted", Message: fmt.Sprintf("%s in %s: %s", r.rel.Version, cmd.Ref.Env, what)}, nil
}

// pause and resume hold a rollout at its next step boundary.
func (c *Controller) pause(ctx context.Context, _ *core.Engine, cmd core.Command) (core.Result, error) {
	r := c.current(cmd.Ref)
	if r == nil {
		err := fmt.Errorf("%s: no rollout in progress to %s", cmd.Ref, cmd.Kind)
		return core.Result{Outcome: "refused", Message: err.Error()}, err
	}
	on := cmd.Kind == core.CmdPause
	if !r.ctl.holdBy(on, cmd.Actor, c.eng.Now()) {
		return core.Result{Outcome: "unchanged", Message: fmt.Sprintf("%s is already %s", cmd.Ref, map[bool]string{true: "paused", false: "running"}[on])}, nil
	}
	if _, err := c.eng.Audit(ctx, core.AuditEntry{Actor: cmd.Actor, Action: string(cmd.Kind), Ref: cmd.Ref, To: r.rel.Version, Reason: cmd.Reason, Outcome: string(cmd.Kind) + "d"}); err != nil {
		return core.Result{}, err
	}
	return core.Result{Outcome: string(cmd.Kind) + "d", Message: fmt.Sprintf("%s %sd", cmd.Ref, cmd.Kind)}, nil
}

// stopRun stops a rollout's goroutine and waits for it, so the caller owns
// the deployment from then on.
func (c *Controller) stopRun(r *run) {
	r.cancel()
	<-r.done
	c.mu.Lock()
	if c.runs[r.dep.Ref] == r {
		delete(c.runs, r.dep.Ref)
	}
	c.mu.Unlock()
}
