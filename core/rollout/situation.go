package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ripcordhq/ripcord/core"
)

// The controller publishes, for every service and environment, the
// situation a screen decides from (core.Situation): where the rollout
// really stands, which commands it would accept now — by the same
// preconditions and the same gate evaluation its handlers apply — and
// which releases are held. Screens and CLI prompts render it; none of them
// restates a rule.

// situationEvery is how often situations are re-evaluated without an
// event: gates that depend on time (soak, a lock's expiry) change by
// themselves.
const situationEvery = time.Second

// situationGap is the least time between two evaluations, so a flood of
// progress events costs a few evaluations a second, not one per event.
const situationGap = 50 * time.Millisecond

// watchSituations keeps every situation current until the controller
// closes: on start, after each batch of events that could change one, and
// every situationEvery. Only changed situations are published.
func (c *Controller) watchSituations() {
	defer c.wg.Done()
	snap, sub := c.eng.Subscribe()
	defer sub.Close()
	sent := map[core.Ref][]byte{}
	var last time.Time
	var buf []core.Event
	// catchUp applies the events waiting on the subscription. An
	// evaluation reads the store, which is written before its event is
	// published: without catching up first, a tick could pair a store
	// that already says "degraded" with a snapshot still missing the
	// verdict that stopped the rollout, and publish a reason that was
	// never true.
	catchUp := func() (changed bool) {
		buf = sub.Drain(buf[:0])
		for _, ev := range buf {
			snap.Apply(ev)
			changed = changed || affectsSituation(ev.Kind)
		}
		clear(buf)
		return changed
	}
	evaluate := func() {
		catchUp()
		last = time.Now()
		for _, ref := range refs(snap) {
			s := c.situation(c.ctx, snap, ref)
			b, err := json.Marshal(s)
			if err != nil || string(b) == string(sent[ref]) {
				continue
			}
			sent[ref] = b
			c.eng.Publish(core.Event{Kind: core.EvSituation, Ref: ref, Final: true, Situation: &s})
		}
	}
	evaluate()
	tick := time.NewTicker(situationEvery)
	defer tick.Stop()
	gap := time.NewTimer(0)
	<-gap.C
	pending := false
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-tick.C:
			evaluate()
			continue
		case <-gap.C:
			if pending {
				pending = false
				evaluate()
			}
			continue
		case <-sub.Ready():
		}
		if changed := catchUp(); !changed || pending {
			continue
		}
		if wait := situationGap - time.Since(last); wait > 0 {
			pending = true
			gap.Reset(wait)
			continue
		}
		evaluate()
	}
}

// affectsSituation says whether an event of kind can change what is
// possible somewhere.
func affectsSituation(k core.EventKind) bool {
	switch k {
	case core.EvDeployment, core.EvTarget, core.EvVerdict, core.EvBackup, core.EvLock, core.EvPipeline,
		core.EvPlan, core.EvOperation, core.EvAudit, core.EvNotice, core.EvResync:
		return true
	}
	return false
}

func refs(s core.Snapshot) []core.Ref {
	out := make([]core.Ref, 0, len(s.Services)*len(s.Envs))
	for _, svc := range s.Services {
		for _, env := range s.Envs {
			out = append(out, core.Ref{Service: svc, Env: env})
		}
	}
	return out
}

// Situation evaluates ref's situation now, from the engine's state.
func (c *Controller) Situation(ctx context.Context, ref core.Ref) core.Situation {
	return c.situation(ctx, c.eng.Snapshot(), ref)
}

// situation evaluates ref's situation from snap, the store and the
// rollouts this controller runs.
func (c *Controller) situation(ctx context.Context, snap core.Snapshot, ref core.Ref) core.Situation {
	s := core.Situation{Ref: ref, Acting: true, Gates: []core.GateResult{}, Holds: []core.Hold{}}
	st := c.eng.Store()
	env, envErr := c.env(ref)
	if envErr == nil {
		s.Steps = len(c.steps(env))
		s.MigrationsUnread = env.MigrationsUnread
	}
	if rels, err := st.Releases(ctx, ref.Service, 50); err == nil {
		for _, r := range rels {
			if r.Held {
				s.Holds = append(s.Holds, core.Hold{Version: r.Version, Reason: r.HeldReason})
			}
		}
	}
	hist, _ := st.Deployments(ctx, ref, 2)
	if len(hist) > 0 && hist[0].State == core.DeployDegraded {
		if d, ok := snap.Deployments[ref]; !ok || d.ID != hist[0].ID || d.State != hist[0].State {
			// The store already says the rollout stopped and snap has not
			// heard it yet: what stopped it (a verdict) was published
			// before the store was written, so the engine's own state has
			// it even where snap is behind.
			snap = c.eng.Snapshot()
		}
	}
	firstStep := false
	live := c.current(ref)
	if d, ok := snap.Deployments[ref]; ok && live != nil && (d.State.Terminal() || d.State == core.DeployDegraded) {
		live = nil // its goroutine is returning: the rollout has ended
	}
	c.phase(&s, snap, ref, hist, live)
	if live == nil && s.Phase == core.PhaseDegraded && c.deploying(ref) && len(hist) > 0 && hist[0].State == core.DeployProgressing {
		// A promote of this engine is deploying its first step: the
		// rollout has not started yet, it has not stopped.
		s.Phase, s.Since = core.PhaseDeploying, hist[0].StartedAt
		s.Why = fmt.Sprintf("deploying %s for its first step (%d%% of %s)", hist[0].Version, hist[0].Weight, ref.Env)
		firstStep = true
	}

	// A lock refuses what takes it (starting a rollout, rollback, abort)
	// for everyone but, where the engine lets them, its holder: a person's
	// own commands run under their lock, and a command held by this
	// engine (the CLI's Hold) runs under the lock it took first.
	lock, locked := snap.Locks[ref]
	locked = locked && !lock.Expired(c.eng.Now())
	var lk lockRule
	if locked {
		lk.why = fmt.Sprintf("%s is locked by %s since %s", ref.Env, lock.Holder, lock.Since.UTC().Format("15:04 UTC"))
		if lock.Reason != "" {
			lk.why += " (" + lock.Reason + ")"
		}
		if lock.IsPerson() || c.eng.Holds(ref) {
			h := lock.Holder
			lk.holder = &h
		}
	}
	refuse := func(k core.CommandKind, why string) core.Possible { return core.Possible{Kind: k, Why: why} }
	for _, k := range core.CommandOrder {
		var p core.Possible
		switch {
		case k == core.CmdBackupNow:
			p = c.backupPossible(snap, ref)
		case envErr != nil:
			p = refuse(k, fmt.Sprintf("no deploy target is configured for %s", ref.Env))
		case !c.eng.Handles(k):
			p = refuse(k, "not available here")
		default:
			switch k {
			case core.CmdPromote, core.CmdFullPromote:
				p = c.promotePossible(ctx, snap, &s, env, k, live)
				if live == nil {
					p = lk.apply(p)
				}
			case core.CmdRollback:
				p = lk.apply(c.rollbackPossible(ctx, snap, &s, ref, hist, live))
			case core.CmdAbort:
				p = lk.apply(c.abortPossible(&s, ref, live))
			case core.CmdPause, core.CmdResume:
				p = c.pausePossible(&s, ref, k, live)
			}
			if firstStep && (k == core.CmdAbort || k == core.CmdPause || k == core.CmdResume) {
				p = refuse(k, fmt.Sprintf("%s's first step is still being deployed: %s is offered once it takes its share", s.Candidate, k))
			}
		}
		s.Commands = append(s.Commands, p)
	}
	if p := s.Command(core.CmdPromote); p.Allowed && !s.Phase.Serving() && p.To != s.Stable {
		// Ready once it has settled where it comes from: not while its own
		// rollout there is still going.
		from := envOf(c, ref).From
		fromRef := core.Ref{Service: ref.Service, Env: from}
		prev, ok := snap.Deployments[fromRef]
		// The store is written before the event is published: a promote
		// there that has recorded its deployment but not yet announced it
		// (its first step still deploying) is not settled.
		if h, err := st.Deployments(ctx, fromRef, 1); err == nil && len(h) > 0 && (!ok || h[0].ID >= prev.ID) {
			prev, ok = h[0], true
		}
		settled := !ok || prev.State.Terminal()
		// ...and once everything this engine knows of it there has ended:
		// the deployment as published, the rollout's run and the
		// operation's lock. The store ends a rollout before its lock is
		// let go; ready meanwhile would send p to an environment still
		// shown in flight there, where the lock refuses it.
		if d, published := snap.Deployments[fromRef]; published && d.ID == prev.ID && !d.State.Terminal() {
			settled = false
		}
		if c.current(fromRef) != nil || c.deploying(fromRef) {
			settled = false
		}
		if l, locked := snap.Locks[fromRef]; locked && !l.IsPerson() && !l.Expired(c.eng.Now()) {
			settled = false
		}
		if _, held := s.Held(p.To); !held && from != "" && settled {
			s.Ready = p.To
		}
	}
	return s
}

func envOf(c *Controller, ref core.Ref) Env {
	if e, err := c.env(ref); err == nil {
		return *e
	}
	return Env{}
}

// lockRule is a live lock's say on the commands that take it.
type lockRule struct {
	why    string      // "" when nothing holds the lock
	holder *core.Actor // who may still run them, if anyone
}

// apply refuses an otherwise allowed p with the lock's reason, keeping
// what it would do for the holder.
func (lk lockRule) apply(p core.Possible) core.Possible {
	if !p.Allowed || lk.why == "" {
		return p
	}
	p.Allowed = false
	if lk.holder != nil {
		p.Holder, p.HolderWhy = lk.holder, p.Why
	}
	p.Why = lk.why
	return p
}

// phase fills in where the rollout stands: the live run first, else what
// the newest deployments record.
func (c *Controller) phase(s *core.Situation, snap core.Snapshot, ref core.Ref, hist []core.Deployment, live *run) {
	ts := snap.Targets[ref]
	var dep core.Deployment
	if d, ok := snap.Deployments[ref]; ok {
		dep = d
	}
	// The store is written before the event is published: where they
	// disagree, the store is the newer word.
	if len(hist) > 0 && (dep.ID == 0 || hist[0].ID >= dep.ID) {
		dep = hist[0]
	}
	s.Stable = ts.Current
	weight := func(d core.Deployment) int {
		if ts.Candidate == d.Version && ts.Candidate != "" {
			return ts.Weight
		}
		return d.Weight
	}
	if live != nil {
		s.Candidate, s.Stable, s.Weight, s.Step = live.rel.Version, dep.From, weight(dep), dep.Step
		s.By, s.Since = dep.Actor, dep.StartedAt
		switch by, at, held := live.ctl.heldBy(); {
		case held:
			s.Phase, s.By, s.Since = core.PhasePaused, by, at
			s.Why = fmt.Sprintf("paused by %s: %s holds at %d%% before its next step until someone resumes it", by.Name, s.Candidate, s.Weight)
		case dep.State == core.DeployJudgment:
			s.Phase, s.Since = core.PhaseJudgment, dep.StepStartedAt
			s.Why = fmt.Sprintf("%s at %d%% waits for judgment: promote it on or roll it back", s.Candidate, s.Weight)
		default:
			s.Phase = core.PhaseRolling
		}
		return
	}
	if dep.ID == 0 && dep.Version == "" {
		s.Phase = core.PhaseIdle
		return
	}
	switch dep.State {
	case core.DeployDegraded, core.DeployProgressing, core.DeployPaused, core.DeployJudgment, core.DeployPending:
		s.Phase, s.Candidate, s.Stable, s.Weight, s.Step = core.PhaseDegraded, dep.Version, dep.From, weight(dep), dep.Step
		s.By, s.Since = dep.Actor, dep.StepStartedAt
		if dep.State == core.DeployDegraded && !dep.FinishedAt.IsZero() {
			s.Since = dep.FinishedAt
		}
		why := "the rollout stopped"
		if dep.State != core.DeployDegraded {
			why = "the rollout is not running in this engine"
		}
		if v, ok := snap.Verdicts[ref]; ok && v.Kind == core.VerdictSpike && v.Candidate == dep.Version {
			why = fmt.Sprintf("its analysis failed: an error spike, %s the errors of %s", v.Evidence.Ratio(), v.Baseline)
		}
		s.Why = fmt.Sprintf("%s: %d%% of traffic still goes to %s; abort (traffic back to %s) or roll back", why, s.Weight, dep.Version, dep.From)
	case core.DeployAborted:
		s.Phase, s.Candidate, s.Stable, s.Since = core.PhaseAborted, dep.Version, dep.From, dep.FinishedAt
		s.By = actedBy(snap, ref, "abort", dep.Actor)
		s.Why = fmt.Sprintf("aborted by %s: %s serves all traffic; %s is kept for inspection", s.By.Name, dep.From, dep.Version)
	case core.DeployFailed:
		s.Phase, s.Candidate, s.Stable, s.By, s.Since = core.PhaseFailed, dep.Version, dep.From, dep.Actor, dep.FinishedAt
		s.Why = fmt.Sprintf("deploying %s failed; %s serves", dep.Version, orNothing(dep.From))
	case core.DeployHealthy:
		s.Phase = core.PhaseIdle
		if s.Stable == "" {
			s.Stable = dep.Version
		}
		// A rollback records the bad release as rolled back and the one it
		// restored, without a From, right after it.
		if len(hist) > 1 && hist[0].ID == dep.ID && dep.From == "" && hist[1].State == core.DeployRolledBack {
			s.Phase, s.Candidate, s.Stable, s.By, s.Since = core.PhaseRolledBack, hist[1].Version, dep.Version, dep.Actor, dep.FinishedAt
			s.Why = fmt.Sprintf("rolled back to %s by %s", dep.Version, dep.Actor.Name)
			if _, held := s.Held(hist[1].Version); held {
				s.Why += fmt.Sprintf("; %s is held: automation will not promote it again until a person clears it", hist[1].Version)
			}
		}
	default:
		s.Phase = core.PhaseIdle
		if s.Stable == "" {
			s.Stable = dep.Version
		}
	}
}

// actedBy is who last did action on ref as the audit tail records it,
// else fallback.
func actedBy(snap core.Snapshot, ref core.Ref, action string, fallback core.Actor) core.Actor {
	for i := len(snap.Audit) - 1; i >= 0; i-- {
		if a := snap.Audit[i]; a.Ref == ref && a.Action == action {
			return a.Actor
		}
	}
	return fallback
}

func orNothing(v string) string {
	if v == "" {
		return "nothing"
	}
	return v
}

// promotePossible is what promote (or full promote) would do: advance the
// rollout in flight, or start one of the candidate through the gates.
func (c *Controller) promotePossible(ctx context.Context, snap core.Snapshot, s *core.Situation, env *Env, k core.CommandKind, live *run) core.Possible {
	p := core.Possible{Kind: k}
	if live != nil {
		p.From, p.To = s.Stable, live.rel.Version
		switch {
		case s.Phase == core.PhasePaused:
			p.Why = fmt.Sprintf("the rollout of %s is paused by %s: resume it first", live.rel.Version, s.By.Name)
		case k == core.CmdFullPromote:
			p.Allowed, p.Why = true, fmt.Sprintf("%s goes to 100%% of traffic now, skipping the remaining steps and analysis (audited)", live.rel.Version)
		default:
			p.Allowed, p.Why = true, fmt.Sprintf("%s now has %d%% of traffic; promote ends the current step and moves to the next", live.rel.Version, s.Weight)
		}
		return p
	}
	version := ""
	if env.From != "" {
		version = snap.Targets[core.Ref{Service: s.Ref.Service, Env: env.From}].Current
		if version == "" {
			p.Why = fmt.Sprintf("nothing to promote: %s runs no release yet", env.From)
			return p
		}
	} else {
		run, ok := snap.Pipelines[s.Ref.Service]
		switch {
		case !ok || run.Version == "":
			p.Why = "nothing to promote: no pipeline run yet"
			return p
		case !run.Green():
			p.Why = fmt.Sprintf("nothing to promote: the pipeline for %s is %s", run.Version, run.State)
			return p
		}
		version = run.Version
	}
	p.From, p.To = s.Stable, version
	if version == s.Stable && s.Phase != core.PhaseDegraded {
		if env.From != "" {
			p.Why = fmt.Sprintf("nothing to promote: %s already runs %s, as %s does", s.Ref.Env, version, env.From)
		} else {
			p.Why = fmt.Sprintf("nothing to promote: %s already runs %s, the latest build", s.Ref.Env, version)
		}
		return p
	}
	rel, err := c.eng.Store().Release(ctx, s.Ref.Service, version)
	if err != nil {
		if errors.Is(err, core.ErrNotFound) {
			p.Why = fmt.Sprintf("release %s is not known (no pipeline recorded it)", version)
		} else {
			p.Why = fmt.Sprintf("reading release %s: %v", version, err)
		}
		return p
	}
	s.Gates = core.EvaluateGates(env.Gates, c.gateInput(ctx, core.Command{Kind: k, Ref: s.Ref}, env, rel), nil)
	if s.Gates == nil {
		s.Gates = []core.GateResult{}
	}
	if blocking := core.Blocking(s.Gates); len(blocking) > 0 {
		var why []string
		for _, g := range blocking {
			why = append(why, g.Gate+": "+g.Reason)
			p.Overridable = append(p.Overridable, g.Gate)
		}
		p.Why = "blocked by " + strings.Join(why, "; ")
		return p
	}
	p.Allowed = true
	if k == core.CmdFullPromote {
		p.Why = fmt.Sprintf("%s goes to 100%% of %s at once, skipping every step and analysis (audited)", version, s.Ref.Env)
	} else {
		p.Why = fmt.Sprintf("starts the rollout of %s in %s", version, s.Ref.Env)
	}
	if rel.Held {
		p.Note = fmt.Sprintf("%s is held (%s): promoting it again is a person's decision", version, rel.HeldReason)
	}
	return p
}

// rollbackPossible is what rollback would restore, or why there is
// nothing to roll back to.
func (c *Controller) rollbackPossible(ctx context.Context, snap core.Snapshot, s *core.Situation, ref core.Ref, hist []core.Deployment, live *run) core.Possible {
	p := core.Possible{Kind: core.CmdRollback}
	var bad core.Deployment
	switch {
	case live != nil:
		bad = snap.Deployments[ref]
		bad.Version = live.rel.Version
	case len(hist) > 0:
		bad = hist[0]
	}
	from := bad.Version
	if s.Phase.Serving() && s.Candidate != "" {
		from = s.Candidate
	}
	if from == "" && s.Stable == "" {
		p.Why = "nothing to roll back: no release runs in " + ref.Env
		return p
	}
	if from == "" {
		from = s.Stable
	}
	p.From = from
	to, err := c.lastGood(ctx, ref, bad)
	kept := slices.DeleteFunc(slices.Clone(snap.Targets[ref].Kept), func(v string) bool {
		_, held := s.Held(v)
		return v == from || held
	})
	if err != nil || to == from {
		to = ""
	}
	if to == "" && len(kept) == 0 {
		p.Why = fmt.Sprintf("nothing to roll back to: no release ran in %s before %s", ref.Env, from)
		return p
	}
	p.Allowed, p.To, p.Options = true, to, kept
	target := to
	if target == "" {
		target = "a kept release"
	}
	p.Why = fmt.Sprintf("%s serves all of %s at once (no steps, no analysis)", target, ref.Env)
	if from != to {
		p.Note = fmt.Sprintf("%s will be held: automation will not promote it again until a person clears it", from)
	}
	if to != "" {
		// The code goes back, the schema does not: a rollback across a
		// contract migration is refused unless a person overrides the
		// migrations gate with a reason, which only the CLI takes.
		bad.Version = from
		if g := c.Crossing(ctx, ref, bad, to).Gate(); g.Status != core.GatePass {
			p.Allowed, p.Overridable = false, []string{core.GateMigrations}
			p.Why = g.Reason + fmt.Sprintf(`; to go ahead anyway: ripcord rollback %s --env %s --to %s --override migrations --reason "why"`, ref.Service, ref.Env, to)
		}
	}
	return p
}

// abortPossible: traffic back to stable, candidate kept, while a candidate
// takes traffic: during the rollout, or after it stopped degraded.
func (c *Controller) abortPossible(s *core.Situation, ref core.Ref, live *run) core.Possible {
	p := core.Possible{Kind: core.CmdAbort, From: s.Candidate, To: s.Stable}
	switch {
	case live == nil && s.Phase != core.PhaseDegraded:
		p.Why = "nothing to abort: no rollout in flight in " + ref.Env
		switch s.Phase {
		case core.PhaseRolledBack:
			p.Why += fmt.Sprintf(" (rolled back to %s)", s.Stable)
		case core.PhaseAborted:
			p.Why += " (already aborted)"
		}
	case s.Stable == "":
		p.Why = fmt.Sprintf("nothing to abort to: %s is the first release in %s; roll back or promote instead", s.Candidate, ref.Env)
	default:
		p.Allowed = true
		p.Why = fmt.Sprintf("traffic goes back to %s; %s is kept for inspection", s.Stable, s.Candidate)
	}
	return p
}

// pausePossible: a rollout in flight can be paused, a paused one resumed.
func (c *Controller) pausePossible(s *core.Situation, ref core.Ref, k core.CommandKind, live *run) core.Possible {
	p := core.Possible{Kind: k, To: s.Candidate}
	paused := s.Phase == core.PhasePaused
	switch {
	case live == nil && s.Phase == core.PhaseDegraded:
		p.Why = fmt.Sprintf("nothing to %s: the rollout of %s has stopped; abort or roll back", k, s.Candidate)
	case live == nil:
		p.Why = fmt.Sprintf("nothing to %s: no rollout in flight in %s", k, ref.Env)
	case k == core.CmdPause && paused:
		p.Why = fmt.Sprintf("already paused by %s", s.By.Name)
	case k == core.CmdResume && !paused:
		p.Why = fmt.Sprintf("the rollout of %s is not paused", s.Candidate)
	case k == core.CmdPause:
		p.Allowed, p.Why = true, fmt.Sprintf("the rollout of %s at %d%% holds before its next step until someone resumes it", s.Candidate, s.Weight)
	default:
		p.Allowed, p.Why = true, fmt.Sprintf("the rollout of %s goes on from %d%%", s.Candidate, s.Weight)
	}
	return p
}

// backupPossible: back up now runs where a set's provider says it can.
func (c *Controller) backupPossible(snap core.Snapshot, ref core.Ref) core.Possible {
	p := core.Possible{Kind: core.CmdBackupNow}
	sets := snap.Backups[ref]
	if !c.eng.Handles(core.CmdBackupNow) {
		p.Why = "backing up now is not available here"
		return p
	}
	if len(sets) == 0 {
		p.Why = "nothing to back up: no backup sets reported in " + ref.Env
		return p
	}
	for name, f := range sets {
		if f.Facts.CanRunNow {
			p.Options = append(p.Options, name)
		}
	}
	if len(p.Options) == 0 {
		p.Why = fmt.Sprintf("no backup set in %s can be run from here: their providers only report (the backups are made by their own jobs)", ref.Env)
		return p
	}
	slices.Sort(p.Options)
	p.Allowed, p.Why = true, "runs the backup now through its provider (audited)"
	return p
}

// register makes r the rollout in flight in its environment before its
// goroutine starts, so the moment its deployment is published it is seen
// as running, never as stopped.
func (c *Controller) register(r *run) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r.id = r.dep.ID
	c.runs[r.dep.Ref] = r
}

// noteEnd marks the rollout d belongs to as ended when d records its end,
// so a command that arrives once the end is published (a promote right
// after "healthy") meets no rollout in flight, as the screen shows.
func (c *Controller) noteEnd(d core.Deployment) {
	if !d.State.Terminal() && d.State != core.DeployDegraded {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if r := c.runs[d.Ref]; r != nil && r.id == d.ID {
		r.ended.Store(true)
	}
}

// heldBy says whether a person paused the rollout, who, and when.
func (ctl *control) heldBy() (core.Actor, time.Time, bool) {
	ctl.mu.Lock()
	defer ctl.mu.Unlock()
	return ctl.pausedBy, ctl.pausedAt, ctl.held != nil
}

// holdBy pauses (on) or resumes the rollout on behalf of by, and reports
// whether that changed anything.
func (ctl *control) holdBy(on bool, by core.Actor, at time.Time) bool {
	if !ctl.hold(on) {
		return false
	}
	ctl.mu.Lock()
	defer ctl.mu.Unlock()
	if on {
		ctl.pausedBy, ctl.pausedAt = by, at
	} else {
		ctl.pausedBy, ctl.pausedAt = core.Actor{}, time.Time{}
	}
	return true
}

// waitResume holds the rollout at a step boundary while a person has it
// paused, and records it as paused meanwhile: the history, another
// console and the next engine all see it (a paused rollout stays paused
// across a restart).
func (c *Controller) waitResume(ctx context.Context, r *run) error {
	if _, _, held := r.ctl.heldBy(); !held {
		return nil
	}
	r.dep.State = core.DeployPaused
	c.saveDeployment(ctx, r.dep)
	if err := r.ctl.waitResume(ctx); err != nil {
		return err
	}
	r.dep.State = core.DeployProgressing
	c.saveDeployment(ctx, r.dep)
	return nil
}

// errNothingToAbort is abort's refusal when no candidate takes traffic.
var errNothingToAbort = errors.New("no rollout in progress: nothing to abort")

// deploying says whether a promote of this engine is deploying ref's
// first step (its rollout goroutine starts once that is done).
func (c *Controller) deploying(ref core.Ref) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.promoting[ref] != nil
}

// abortable is what abort would stop in ref: the rollout in flight (r),
// or the newest deployment when its rollout stopped with the candidate
// still taking traffic (a failed analysis leaves it degraded at its
// canary weight, and abort is exactly what a person wants then).
func (c *Controller) abortable(ctx context.Context, ref core.Ref) (*run, core.Deployment, error) {
	if r := c.current(ref); r != nil {
		return r, core.Deployment{}, nil
	}
	hist, err := c.eng.Store().Deployments(ctx, ref, 1)
	if err != nil {
		return nil, core.Deployment{}, fmt.Errorf("reading the rollout of %s: %w", ref, err)
	}
	if len(hist) == 0 || hist[0].State.Terminal() {
		return nil, core.Deployment{}, errNothingToAbort
	}
	d := hist[0]
	if d.From == "" {
		return nil, core.Deployment{}, fmt.Errorf("nothing to abort to: %s is the first release in %s", d.Version, ref.Env)
	}
	return nil, d, nil
}
