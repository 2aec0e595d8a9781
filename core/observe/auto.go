package observe

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ripcordhq/ripcord/core"
)

// autoState is what the automatic promotions remember.
type autoState struct {
	wake chan struct{}
	// handled is the Seq of the last engine event the reactor acted on.
	handled atomic.Uint64

	mu     sync.Mutex
	newest map[string]core.PipelineRun // newest green run per service, by start
	// began is when each version's newest green run started, per service:
	// what a release's age is judged by.
	began    map[string]map[string]time.Time
	tried    map[tried]bool // each (ref, version) is promoted once
	inflight map[core.Ref]bool
}

type tried struct {
	ref     core.Ref
	version string
}

func newAutoState() *autoState {
	return &autoState{wake: make(chan struct{}, 1), newest: map[string]core.PipelineRun{}, began: map[string]map[string]time.Time{},
		tried: map[tried]bool{}, inflight: map[core.Ref]bool{}}
}

// green remembers green runs, all at once: a run counts as the newest
// only when none known started later, so an old run reported late (or the
// history listed at start) never brings an older release back.
func (a *autoState) green(runs ...core.PipelineRun) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range runs {
		a.greenLocked(r)
	}
}

func (a *autoState) greenLocked(r core.PipelineRun) {
	if a.began[r.Service] == nil {
		a.began[r.Service] = map[string]time.Time{}
	}
	if b, ok := a.began[r.Service][r.Version]; !ok || r.Began().After(b) {
		a.began[r.Service][r.Version] = r.Began()
	}
	if cur, ok := a.newest[r.Service]; ok && r.Began().Before(cur.Began()) {
		return
	}
	a.newest[r.Service] = r
}

// older reports whether version v was built by a run that started before
// the run that built version than, both known green runs of svc.
func (a *autoState) older(svc, v, than string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	bv, okv := a.began[svc][v]
	bt, okt := a.began[svc][than]
	return okv && okt && bv.Before(bt)
}

func (a *autoState) newestGreen(svc string) (core.PipelineRun, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	r, ok := a.newest[svc]
	return r, ok
}

func (a *autoState) poke() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// claim reports whether version may be promoted into ref now, and if so
// marks it tried and ref busy.
func (a *autoState) claim(ref core.Ref, version string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	k := tried{ref, version}
	if a.tried[k] || a.inflight[ref] {
		return false
	}
	a.tried[k], a.inflight[ref] = true, true
	return true
}

func (a *autoState) finish(ref core.Ref) {
	a.mu.Lock()
	delete(a.inflight, ref)
	a.mu.Unlock()
	a.poke()
}

func (a *autoState) busy() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.inflight)
}

// react follows the engine: deployments start and end canaries for the
// verdicts, and target, deployment and pipeline changes may call for an
// automatic promotion.
func (ob *Observer) react(ctx context.Context, snap core.Snapshot, sub *core.Subscription) {
	defer sub.Close()
	deployments := func() {
		for ref, d := range snap.Deployments {
			if s := ob.errs[ref]; s != nil {
				s.deployment(d, snap.Targets[ref])
			}
		}
	}
	deployments()
	ob.reconcile(ctx, &snap)
	var buf []core.Event
	for {
		select {
		case <-ctx.Done():
			return
		case <-sub.Ready():
			buf = sub.Drain(buf[:0])
			for _, ev := range buf {
				snap.Apply(ev)
				switch ev.Kind {
				case core.EvDeployment:
					if ev.Deployment == nil {
						continue
					}
					if s := ob.errs[ev.Deployment.Ref]; s != nil {
						s.deployment(*ev.Deployment, snap.Targets[ev.Deployment.Ref])
					}
				case core.EvTarget:
					// A target that moves whole hosts reports the share it
					// really gave the candidate, which the verdict needs.
					if s := ob.errs[ev.Ref]; s != nil && ev.Target != nil {
						if d, ok := snap.Deployments[ev.Ref]; ok {
							s.deployment(d, *ev.Target)
						}
					}
				case core.EvResync:
					deployments()
				}
			}
		case <-ob.auto.wake:
		}
		ob.reconcile(ctx, &snap)
		ob.auto.handled.Store(snap.Seq)
	}
}

// reconcile starts the automatic promotions the current state calls for.
func (ob *Observer) reconcile(ctx context.Context, snap *core.Snapshot) {
	for _, svc := range snap.Services {
		for _, env := range snap.Envs {
			ref := core.Ref{Service: svc, Env: env}
			if !ob.o.Auto[ref] {
				continue
			}
			version, why := ob.wanted(snap, ref)
			if version == "" || !ob.auto.claim(ref, version) {
				continue
			}
			ob.spawn(func() { ob.promote(ctx, ref, version, why) })
		}
	}
}

// wanted is the version automation should promote into ref now, if any,
// and why.
func (ob *Observer) wanted(snap *core.Snapshot, ref core.Ref) (version, why string) {
	if from := ob.o.From[ref]; from == "" {
		run, ok := ob.auto.newestGreen(ref.Service)
		if !ok {
			return "", ""
		}
		version, why = run.Version, "pipeline green"
	} else {
		ts, ok := snap.Targets[core.Ref{Service: ref.Service, Env: from}]
		if !ok || ts.Current == "" || ts.Candidate != "" || !ts.Healthy {
			return "", ""
		}
		version, why = ts.Current, "healthy in "+from
	}
	if _, watched := ob.o.Targets[ref]; watched {
		ts, ok := snap.Targets[ref]
		if !ok || ts.Current == version || ts.Candidate == version {
			// Not before the target said what it runs, and not again.
			return "", ""
		}
		if ob.auto.older(ref.Service, version, ts.Current) || ob.auto.older(ref.Service, version, ts.Candidate) {
			// Never over a release built by a run that started later.
			return "", ""
		}
	}
	if d, ok := snap.Deployments[ref]; ok {
		// A promote during a rollout would advance that rollout a step;
		// and a version whose latest deployment here ended (aborted, rolled
		// back, failed) was a person's decision automation must not undo.
		if !d.State.Terminal() || d.Version == version {
			return "", ""
		}
	}
	return version, why
}

// promote asks the engine to promote version into ref, once. A refusal
// (a gate, a hold, a lock) becomes a notice and is not retried: the next
// release, or a person, moves things on.
func (ob *Observer) promote(ctx context.Context, ref core.Ref, version, why string) {
	defer ob.auto.finish(ref)
	res, err := ob.eng.Do(ctx, core.Command{Kind: core.CmdPromote, Ref: ref, Version: version, Actor: automation, Reason: why})
	if err == nil || ctx.Err() != nil {
		return
	}
	msg := res.Message
	if msg == "" {
		msg = err.Error()
	}
	ob.notice(ref, shorten(fmt.Sprintf("automatic promote of %s to %s did not happen: %s", version, ref.Env, msg), 240))
}

// shorten cuts s to at most n runes, marking the cut.
func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
