// Package rollout is the promote and rollback engine: it runs each
// environment's rollout steps, evaluates gates, takes locks, journals intent
// before any provider call and audits every outcome. It registers its
// handlers on a core.Engine, so the terminal, the SSH bastion and the CLI
// all drive the same code.
package rollout

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ripcordhq/ripcord/core"
)

// StepKind, Step and its kinds are core's, so the plan a controller runs
// is the plan a screen shows.
type (
	StepKind = core.StepKind
	Step     = core.RolloutStep
)

const (
	StepWeight   = core.StepWeight
	StepAnalysis = core.StepAnalysis
	StepPause    = core.StepPause
)

// Env is one service's rollout policy and target in one environment.
type Env struct {
	Ref    core.Ref
	From   string // previous environment of the same service; "" for the first
	Target core.Target
	Steps  []Step // empty: one step to 100%
	Gates  []core.GateSpec
	// AutoRollback rolls back (or aborts, when AutoAbort) by itself when an
	// analysis step sees a spike.
	AutoRollback bool
	AutoAbort    bool
	// Branches are the service's branches releases may come from.
	Branches []string
	// Provider names the target's provider in messages ("deploy did not
	// finish within 10m (provider fleet)").
	Provider string
	// OnInconclusive is what the errors gate and analysis steps do with an
	// INCONCLUSIVE verdict; empty means wait.
	OnInconclusive core.InconclusivePolicy
	// MigrationsUnread says why nothing reads the service's migrations
	// ("" when its pipeline does).
	MigrationsUnread string
}

// Options configure a Controller.
type Options struct {
	// Deadlines bound every call to a target (zero fields: the defaults).
	Deadlines core.Deadlines
	// Envs holds one Env per service and environment.
	Envs []Env
	// Backups returns an environment's backup freshness for the gates;
	// default: the engine snapshot.
	Backups func(core.Ref) []core.Freshness
}

// Controller runs rollouts on an engine.
type Controller struct {
	eng  *core.Engine
	envs map[core.Ref]*Env
	opts Options

	mu   sync.Mutex
	runs map[core.Ref]*run
	// promoting is the promote holding each environment's lock in this
	// engine: a rollback or abort stops it rather than wait for it.
	promoting map[core.Ref]*promoting
	wg        sync.WaitGroup
	ctx       context.Context
	stop      context.CancelFunc
}

// run is one rollout in flight. Its goroutine belongs to the controller,
// never to the command that started it: closing a terminal does not orphan
// a rollout.
type run struct {
	dep    core.Deployment
	rel    core.Release
	env    *Env
	ctl    control
	cancel context.CancelFunc
	done   chan struct{}
	// id is the deployment's, fixed at launch; ended is set once its end
	// (healthy, degraded) is recorded: from then on it is not in flight,
	// though its goroutine may not have returned yet.
	id    int64
	ended atomic.Bool
}

// New registers the controller's handlers on eng.
func New(eng *core.Engine, o Options) *Controller {
	ctx, cancel := context.WithCancel(context.Background())
	o.Deadlines = o.Deadlines.OrDefaults()
	c := &Controller{eng: eng, envs: map[core.Ref]*Env{}, opts: o, runs: map[core.Ref]*run{}, promoting: map[core.Ref]*promoting{}, ctx: ctx, stop: cancel}
	for i := range o.Envs {
		e := o.Envs[i]
		c.envs[e.Ref] = &e
	}
	for _, e := range c.envs {
		eng.Publish(core.Event{Kind: core.EvPlan, Ref: e.Ref, Final: true, Plan: &core.RolloutPlan{Ref: e.Ref, Steps: c.steps(e)}})
	}
	eng.Handle(core.CmdPromote, c.promote)
	eng.Handle(core.CmdFullPromote, c.promote)
	eng.Handle(core.CmdRollback, c.rollback)
	eng.Handle(core.CmdAbort, c.abort)
	eng.Handle(core.CmdPause, c.pause)
	eng.Handle(core.CmdResume, c.pause)
	c.wg.Add(1)
	go c.watchSituations()
	return c
}

// Close stops every rollout goroutine (their state stays journaled).
func (c *Controller) Close() {
	c.stop()
	c.wg.Wait()
}

func (c *Controller) env(ref core.Ref) (*Env, error) {
	e, ok := c.envs[ref]
	if !ok || e.Target == nil {
		return nil, fmt.Errorf("%s: no deploy target configured: %w", ref, core.ErrUnavailable)
	}
	return e, nil
}

// withLock runs fn holding ref's lock on behalf of cmd's actor.
func (c *Controller) withLock(ctx context.Context, cmd core.Command, fn func() (core.Result, error)) (core.Result, error) {
	l, err := c.eng.AcquireLock(ctx, cmd.Ref, cmd.Actor, string(cmd.Kind), cmd.Force)
	if err != nil {
		return core.Result{Outcome: "refused", Message: err.Error()}, err
	}
	defer func() { _ = c.eng.ReleaseLock(context.WithoutCancel(ctx), l) }()
	return fn()
}

func (c *Controller) current(ref core.Ref) *run {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.runs[ref]
	if r == nil || r.ended.Load() {
		return nil
	}
	select {
	case <-r.done:
		return nil
	default:
		return r
	}
}

// promote starts a rollout of a release into cmd.Ref's environment, or
// advances the one in flight by a step (full: to 100%).
func (c *Controller) promote(ctx context.Context, _ *core.Engine, cmd core.Command) (core.Result, error) {
	env, err := c.env(cmd.Ref)
	if err != nil {
		return core.Result{}, err
	}
	if r := c.current(cmd.Ref); r != nil {
		if cmd.Version != "" && cmd.Version != r.rel.Version {
			err := fmt.Errorf("promote %s to %s: the rollout of %s is still in flight there: promote it on (without a version) or roll it back first", cmd.Version, cmd.Ref, r.rel.Version)
			return core.Result{Outcome: "refused", Message: err.Error()}, err
		}
		return c.advance(ctx, cmd, r)
	}
	ctx, done := c.startPromoting(ctx, cmd.Ref)
	defer done()
	return c.withLock(ctx, cmd, func() (core.Result, error) {
		if op, err := c.interruptedUndo(ctx, cmd.Ref); err != nil {
			return core.Result{}, err
		} else if op != nil {
			err := fmt.Errorf("promote %s refused: the %s of %s (%s → %s) by %s at %s was interrupted and is unfinished; run the %s again to finish it first",
				cmd.Ref, op.Kind, cmd.Ref, dash(op.From), dash(op.To), op.Actor, op.StartedAt.UTC().Format("15:04 UTC"), op.Kind)
			return core.Result{Outcome: "refused", Message: err.Error()}, err
		}
		rel, err := c.candidate(ctx, cmd, env)
		if err != nil {
			return core.Result{Outcome: "refused", Message: err.Error()}, err
		}
		if rel.Held && cmd.Actor.Automation {
			err := fmt.Errorf("%s %s was rolled back (%s): a person must clear the hold before automation promotes it", rel.Service, rel.Version, rel.HeldReason)
			return core.Result{Outcome: "refused", Message: err.Error()}, err
		}
		gates := core.EvaluateGates(env.Gates, c.gateInput(ctx, cmd, env, rel), cmd.Overrides)
		if blocking := core.Blocking(gates); len(blocking) > 0 {
			var why []string
			for _, g := range blocking {
				why = append(why, g.Gate+": "+g.Reason)
			}
			msg := fmt.Sprintf("promote %s to %s blocked: %s", rel.Version, cmd.Ref.Env, strings.Join(why, "; "))
			_, _ = c.eng.Audit(ctx, core.AuditEntry{Actor: cmd.Actor, Action: "promote", Ref: cmd.Ref, To: rel.Version, Gates: gates, Outcome: "blocked"})
			return core.Result{Outcome: "blocked", Message: msg, Gates: gates}, fmt.Errorf("%s: %w", msg, core.ErrBlocked)
		}
		return c.start(ctx, cmd, env, rel, gates)
	})
}

// candidate is the release to promote: the one named, else what runs in
// the previous environment.
func (c *Controller) candidate(ctx context.Context, cmd core.Command, env *Env) (core.Release, error) {
	version := cmd.Version
	if version == "" && env.From != "" {
		snap := c.eng.Snapshot()
		version = snap.Targets[core.Ref{Service: cmd.Ref.Service, Env: env.From}].Current
	}
	if version == "" {
		return core.Release{}, fmt.Errorf("promote %s: name a version (nothing runs in the previous environment)", cmd.Ref)
	}
	rel, err := c.eng.Store().Release(ctx, cmd.Ref.Service, version)
	if errors.Is(err, core.ErrNotFound) {
		return core.Release{}, fmt.Errorf("promote %s: release %s is not known (no pipeline recorded it)", cmd.Ref, version)
	}
	return rel, err
}

func (c *Controller) gateInput(ctx context.Context, cmd core.Command, env *Env, rel core.Release) core.GateInput {
	snap := c.eng.Snapshot()
	in := core.GateInput{Ref: cmd.Ref, Release: rel, Branches: env.Branches, Actor: cmd.Actor, Now: c.eng.Now(), OnInconclusive: env.OnInconclusive,
		MigrationsUnread: env.MigrationsUnread}
	if run, ok := snap.Pipelines[cmd.Ref.Service]; ok && run.Version == rel.Version {
		in.Pipeline = &run
	}
	// The migrations gate judges what the candidate adds over the release
	// it replaces here.
	if stable := snap.Targets[cmd.Ref].Current; stable != "" {
		in.StableVersion = stable
		if srel, err := c.eng.Store().Release(ctx, cmd.Ref.Service, stable); err == nil {
			in.Stable = &srel
		}
	}
	if env.From != "" {
		from := core.Ref{Service: cmd.Ref.Service, Env: env.From}
		ts := snap.Targets[from]
		p := &core.Predecessor{Env: env.From, Version: ts.Current, Healthy: ts.Healthy && ts.Candidate == ""}
		if d, ok := snap.Deployments[from]; ok && d.Version == ts.Current {
			p.Since = d.FinishedAt
			if p.Since.IsZero() {
				p.Since = d.StartedAt
			}
			if prel, err := c.eng.Store().Release(ctx, cmd.Ref.Service, d.Version); err == nil {
				p.Digest = prel.ArtifactDigest
			}
		}
		if v, ok := snap.Verdicts[from]; ok && v.Candidate == rel.Version {
			p.Verdict = &v
		}
		in.Prev = p
	}
	if v, ok := snap.Verdicts[cmd.Ref]; ok && v.Candidate == rel.Version {
		in.Verdict = &v
	}
	in.Backups = c.backups(cmd.Ref)
	if l, ok := snap.Locks[cmd.Ref]; ok {
		in.Lock = &l
	}
	return in
}

// backups is ref's backup freshness, as the gates see it.
func (c *Controller) backups(ref core.Ref) []core.Freshness {
	if c.opts.Backups != nil {
		return c.opts.Backups(ref)
	}
	var out []core.Freshness
	for _, f := range c.eng.Snapshot().Backups[ref] {
		out = append(out, f)
	}
	return out
}

func (c *Controller) steps(env *Env) []Step {
	if len(env.Steps) == 0 {
		return []Step{{Kind: StepWeight, Weight: 100}}
	}
	return env.Steps
}

// start deploys the candidate at the first step's weight and hands the
// rest of the rollout to a controller goroutine.
func (c *Controller) start(ctx context.Context, cmd core.Command, env *Env, rel core.Release, gates []core.GateResult) (core.Result, error) {
	snap := c.eng.Snapshot()
	stable := snap.Targets[cmd.Ref].Current
	steps := c.steps(env)
	weight := 100
	if cmd.Kind != core.CmdFullPromote && steps[0].Kind == StepWeight {
		weight = steps[0].Weight
	}
	now := c.eng.Now()
	op := core.Operation{ID: core.NewID(), Ref: cmd.Ref, Kind: "promote", From: stable, To: rel.Version, Actor: cmd.Actor, State: core.OpIntent, StartedAt: now, UpdatedAt: now}
	if err := c.journal(ctx, op); err != nil {
		return core.Result{}, err
	}
	dep := core.Deployment{Ref: cmd.Ref, Version: rel.Version, From: stable, State: core.DeployProgressing, Weight: weight, StartedAt: now, StepStartedAt: now, Actor: cmd.Actor}
	id, err := c.eng.Store().AddDeployment(ctx, dep)
	if err != nil {
		return core.Result{}, fmt.Errorf("record deployment: %w", err)
	}
	dep.ID = id
	op.State = core.OpRunning
	_ = c.journal(ctx, op)
	derr := c.bounded(ctx, env, "deploy", c.opts.Deadlines.Deploy, func(ctx context.Context) error {
		return env.Target.Deploy(ctx, core.OpRequest{ID: op.ID, Ref: cmd.Ref, Actor: cmd.Actor}, rel, weight, c.journalRef(ctx, &op))
	})
	if derr != nil && ctx.Err() != nil && context.Cause(ctx) != ctx.Err() {
		derr = fmt.Errorf("deploy stopped: %w", context.Cause(ctx)) // a rollback or abort took over
	}
	if derr != nil {
		dep.State, dep.FinishedAt = core.DeployFailed, c.eng.Now()
		c.saveDeployment(ctx, dep)
		op.State, op.Message = core.OpFailed, derr.Error()
		_ = c.journal(ctx, op)
		_, _ = c.eng.Audit(ctx, core.AuditEntry{Actor: cmd.Actor, Action: string(cmd.Kind), Ref: cmd.Ref, From: stable, To: rel.Version, Gates: gates, Overrides: cmd.Overrides, Reason: cmd.Reason, Outcome: "failed: " + derr.Error(), Duration: c.eng.Now().Sub(now)})
		return core.Result{OperationID: op.ID, Outcome: "failed", Message: derr.Error(), Gates: gates}, fmt.Errorf("deploy %s to %s: %w", rel.Version, cmd.Ref, derr)
	}
	if weight > 0 {
		// Deploy returns once the candidate is healthy and taking its
		// share: only from now on are its errors evidence.
		dep.ExposedAt = c.eng.Now()
	}
	op.State = core.OpSucceeded
	_ = c.journal(ctx, op)
	action := string(cmd.Kind)
	if _, err := c.eng.Audit(ctx, core.AuditEntry{Actor: cmd.Actor, Action: action, Ref: cmd.Ref, From: stable, To: rel.Version, Gates: gates, Overrides: cmd.Overrides, Reason: cmd.Reason, Outcome: fmt.Sprintf("deployed at %d%%", weight), Duration: c.eng.Now().Sub(now)}); err != nil {
		return core.Result{}, err
	}
	r := &run{dep: dep, rel: rel, env: env, done: make(chan struct{})}
	first := 1
	if weight == 100 {
		first = len(steps) // nothing left to do
	}
	c.register(r) // a screen sees the rollout in flight as soon as it is recorded
	c.saveDeployment(ctx, r.dep)
	c.launch(r, first) // from here on the goroutine owns r.dep
	return core.Result{OperationID: op.ID, Outcome: "promoted", Message: fmt.Sprintf("%s is taking %d%% of %s", rel.Version, weight, cmd.Ref), Gates: gates}, nil
}

// bounded runs one call to env's target under its deadline.
func (c *Controller) bounded(ctx context.Context, env *Env, what string, within time.Duration, fn func(context.Context) error) error {
	return core.WithDeadline(ctx, what, env.Provider, within, fn)
}

// promoting is a promote holding an environment's lock in this engine.
type promoting struct {
	stop func(cause error)
	done chan struct{}
}

// startPromoting registers a promote of ref; the context it returns ends
// when a rollback or abort takes over (preempt), and done must be called
// once the promote has let go of the lock.
func (c *Controller) startPromoting(ctx context.Context, ref core.Ref) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	p := &promoting{stop: cancel, done: make(chan struct{})}
	c.mu.Lock()
	prev := c.promoting[ref]
	if prev == nil {
		c.promoting[ref] = p
	}
	c.mu.Unlock()
	return ctx, func() {
		cancel(nil)
		if prev == nil {
			c.mu.Lock()
			delete(c.promoting, ref)
			c.mu.Unlock()
			close(p.done)
		}
	}
}

// preempt stops a promote this engine runs on ref — its provider call is
// cancelled through the protocol — and waits until it has released the
// lock: in an incident a rollback or abort must not wait out a deploy
// (or a provider that hangs) first.
func (c *Controller) preempt(ctx context.Context, cmd core.Command) {
	c.mu.Lock()
	p := c.promoting[cmd.Ref]
	c.mu.Unlock()
	if p == nil {
		return
	}
	p.stop(fmt.Errorf("the %s by %s took over", cmd.Kind, cmd.Actor))
	select {
	case <-p.done:
	case <-ctx.Done():
	}
}

func (c *Controller) journal(ctx context.Context, op core.Operation) error {
	op.UpdatedAt = c.eng.Now()
	if err := c.eng.Store().Journal(ctx, op); err != nil {
		return fmt.Errorf("journal %s %s: %w", op.Kind, op.Ref, err)
	}
	c.eng.Publish(core.Event{Kind: core.EvOperation, Ref: op.Ref, Final: op.State != core.OpRunning, Operation: &op})
	return nil
}

func (c *Controller) saveDeployment(ctx context.Context, d core.Deployment) {
	_ = c.saveDeploymentErr(ctx, d)
}

// saveDeploymentErr records and publishes d, saying when the store failed:
// where the record decides what the next engine does (a stopped rollout
// must not be resumed), the caller must know.
func (c *Controller) saveDeploymentErr(ctx context.Context, d core.Deployment) error {
	if err := c.eng.Store().UpdateDeployment(context.WithoutCancel(ctx), d); err != nil {
		return fmt.Errorf("record the deployment of %s in %s: %w", d.Version, d.Ref, err)
	}
	c.noteEnd(d) // before anyone hears of it
	c.eng.Publish(core.Event{Kind: core.EvDeployment, Ref: d.Ref, Final: true, Deployment: &d})
	return nil
}

// journalRef relays op's events (opEvents) and journals the provider's
// external ref the first time one arrives: a restarted engine re-attaches
// by it, which is how a provider that restarted too (or a remote system's
// own operation id) is found again.
func (c *Controller) journalRef(ctx context.Context, op *core.Operation) func(core.OpEvent) {
	relay := c.opEvents(op.Ref)
	return func(ev core.OpEvent) {
		if ev.ExternalRef != "" && op.ExternalRef == "" {
			op.ExternalRef = ev.ExternalRef
			_ = c.journal(context.WithoutCancel(ctx), *op)
		}
		relay(ev)
	}
}

// opEvents turns a provider's operation stream into log events.
func (c *Controller) opEvents(ref core.Ref) func(core.OpEvent) {
	return func(ev core.OpEvent) {
		text := ev.Message
		if ev.Log != "" {
			text = ev.Log
		}
		if text == "" {
			return
		}
		c.eng.Publish(core.Event{Kind: core.EvLog, Ref: ref, Log: &core.LogLine{Time: ev.Time, Source: ref.String(), Text: text}})
	}
}
