// Package observe feeds the providers' streams into the engine: what the
// deploy targets run, pipeline runs (and the releases green runs produce),
// error windows and the spike verdicts drawn from them, and backup
// freshness. It also performs the automatic promotions an environment asks
// for, through the engine's commands, so automation passes the same gates,
// locks and audit as a person.
//
// Every source is watched by its own goroutine that retries after a pause
// when the source fails, so one broken provider never stops the others and
// never spins.
package observe

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/core/spike"
)

// BackupSet is one backup set of an environment and where its facts come
// from. One source may report several sets; its facts are matched to sets
// by core.BackupFacts.Set.
type BackupSet struct {
	Name   string
	Source core.BackupSource
	Policy core.BackupPolicy
}

// Options say what to watch and how to react.
type Options struct {
	Engine    *core.Engine
	Targets   map[core.Ref]core.Target       // one per service and environment
	Pipelines map[string]core.PipelineSource // by service
	Errors    map[core.Ref]core.ErrorSource
	Backups   map[core.Ref][]BackupSet  // per service and environment
	Spike     map[core.Ref]spike.Policy // zero = defaults
	From      map[core.Ref]string       // the environment ref's service is promoted from ("" for the first)
	Auto      map[core.Ref]bool         // deploy automatically when the predecessor is green
	// Retry is the pause between failed watch attempts (default 1s).
	Retry time.Duration
	// Rejudge is how often backup ages and verdicts are re-evaluated
	// (default 10s), so ages advance and quiet sources go stale.
	Rejudge time.Duration
	// PostRollout is how long after a full rollout the new release's
	// errors are compared with the previous release's errors before the
	// rollout (default 15m), unless Windows names the environment's own
	// (its spike.window). The comparison assumes equal traffic on both
	// sides, which holds only over short windows.
	PostRollout time.Duration
	Windows     map[core.Ref]time.Duration
}

// Defaults of the zero Options durations.
const (
	DefaultRetry       = time.Second
	DefaultRejudge     = 10 * time.Second
	DefaultPostRollout = 15 * time.Minute
	// historyRuns is how many past runs a pipeline is asked for at start.
	historyRuns = 10
)

// automation is the actor automatic promotions are recorded against.
var automation = core.Actor{Name: "ripcord", Automation: true}

// Observer runs the watches. Close stops them.
type Observer struct {
	o      Options
	eng    *core.Engine
	cancel context.CancelFunc
	wg     sync.WaitGroup

	errs    map[core.Ref]*errState // fixed after Start
	backups *backupState
	auto    *autoState
}

// Start starts watching every source in o and returns at once.
func Start(ctx context.Context, o Options) *Observer {
	if o.Retry <= 0 {
		o.Retry = DefaultRetry
	}
	if o.Rejudge <= 0 {
		o.Rejudge = DefaultRejudge
	}
	if o.PostRollout <= 0 {
		o.PostRollout = DefaultPostRollout
	}
	ctx, cancel := context.WithCancel(ctx)
	ob := &Observer{o: o, eng: o.Engine, cancel: cancel, errs: map[core.Ref]*errState{}}
	for ref := range o.Errors {
		ob.errs[ref] = newErrState(ob, ref)
	}
	ob.auto = newAutoState()
	// Subscribe before any watch publishes, so the reactor sees every
	// deployment, target and pipeline change from here on.
	snap, sub := ob.eng.Subscribe()
	ob.spawn(func() { ob.react(ctx, snap, sub) })
	for ref, t := range o.Targets {
		ob.spawn(func() { ob.watchTarget(ctx, ref, t) })
	}
	for svc, p := range o.Pipelines {
		ob.spawn(func() { ob.watchPipeline(ctx, svc, p) })
	}
	for ref, src := range o.Errors {
		s := ob.errs[ref]
		ob.spawn(func() { ob.watchErrors(ctx, s, src) })
		ob.spawn(func() { s.judge(ctx) })
	}
	ob.startBackups(ctx)
	return ob
}

// postRollout is ref's comparison window after a full rollout.
func (ob *Observer) postRollout(ref core.Ref) time.Duration {
	if w := ob.o.Windows[ref]; w > 0 {
		return w
	}
	return ob.o.PostRollout
}

// Close stops every watch and waits for its goroutine, including
// automatic promotions under way.
func (ob *Observer) Close() {
	ob.cancel()
	ob.wg.Wait()
}

func (ob *Observer) spawn(fn func()) {
	ob.wg.Add(1)
	go func() {
		defer ob.wg.Done()
		fn()
	}()
}

// retry runs attempt until ctx ends. After each failure (or a watch that
// ended by itself) it tells fail, logs the error and pauses for Retry.
func (ob *Observer) retry(ctx context.Context, ref core.Ref, what string, attempt func(context.Context) error, fail func(error)) {
	for ctx.Err() == nil {
		err := attempt(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			err = fmt.Errorf("the source ended the stream")
		}
		if fail != nil {
			fail(err)
		}
		ob.logf(ref, "%s: %v; retrying in %s", what, err, ob.o.Retry)
		t := time.NewTimer(ob.o.Retry)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// logf publishes a line of the observer's own output.
func (ob *Observer) logf(ref core.Ref, format string, args ...any) {
	ob.eng.Publish(core.Event{Kind: core.EvLog, Ref: ref, Log: &core.LogLine{
		Time: ob.eng.Now(), Source: "observe", Text: fmt.Sprintf(format, args...),
	}})
}

// notice publishes something a person should read.
func (ob *Observer) notice(ref core.Ref, text string) {
	ob.eng.Publish(core.Event{Kind: core.EvNotice, Ref: ref, Final: true, Notice: text})
}
