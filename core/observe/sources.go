package observe

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/ripcordhq/ripcord/core"
)

// watchTarget publishes what the target reports running in ref.
func (ob *Observer) watchTarget(ctx context.Context, ref core.Ref, t core.Target) {
	publish := func(ts core.TargetStatus) {
		ts.Ref = ref // the snapshot files it under its ref
		ob.eng.Publish(core.Event{Kind: core.EvTarget, Ref: ref, Key: "target/" + ref.String(), Target: &ts})
	}
	ob.retry(ctx, ref, "watch target "+ref.String(), func(ctx context.Context) error {
		ts, err := t.Status(ctx, ref)
		if err != nil {
			return fmt.Errorf("read status: %w", err)
		}
		publish(ts)
		return t.WatchStatus(ctx, ref, publish)
	}, nil)
}

// watchPipeline publishes a service's runs, records the releases green
// runs built and hands the newest green run to the automation.
func (ob *Observer) watchPipeline(ctx context.Context, svc string, p core.PipelineSource) {
	ref := core.Ref{Service: svc}
	ob.retry(ctx, ref, "watch pipeline of "+svc, func(ctx context.Context) error {
		runs, err := p.Runs(ctx, svc, historyRuns)
		if err != nil {
			return fmt.Errorf("list runs: %w", err)
		}
		// The whole history is recorded before automation learns of any
		// of it: acting between two runs of the list, it would take an
		// older run for the newest.
		slices.SortStableFunc(runs, func(a, b core.PipelineRun) int { return a.Began().Compare(b.Began()) })
		var greens []core.PipelineRun
		for _, r := range runs {
			if ob.applyRun(ctx, svc, r) {
				greens = append(greens, r)
			}
		}
		ob.auto.green(greens...)
		ob.auto.poke()
		return p.WatchRuns(ctx, svc, func(r core.PipelineRun) { ob.pipelineRun(ctx, svc, r) })
	}, nil)
}

// pipelineRun applies one run as it arrives and lets automation react.
func (ob *Observer) pipelineRun(ctx context.Context, svc string, r core.PipelineRun) {
	if ob.applyRun(ctx, svc, r) {
		ob.auto.green(r)
		ob.auto.poke()
	}
}

// applyRun records a run, and its release when green, for people to see;
// it reports whether the run was green. Automation hears of it from the
// caller.
func (ob *Observer) applyRun(ctx context.Context, svc string, r core.PipelineRun) bool {
	if r.Service == "" {
		r.Service = svc
	}
	green := r.Green() && r.Version != ""
	if green {
		// Recorded before the run is published, so whoever sees the green
		// run can already promote its release.
		if err := ob.recordRelease(ctx, r); err != nil {
			ob.logf(core.Ref{Service: svc}, "%v", err)
			green = false
		}
	}
	ob.eng.Publish(core.Event{Kind: core.EvPipeline, Ref: core.Ref{Service: svc}, Final: r.State.Terminal(), Key: "pipeline/" + svc + "/" + r.ID, Pipeline: &r})
	return green
}

// recordRelease stores the release a green run built, with the commit,
// branch and migrations its pipeline read, unless the store already holds
// it with the same digest. A hold recorded earlier is kept. A branch the
// pipeline did not report stays unknown: the branch gate says so rather
// than assume one.
func (ob *Observer) recordRelease(ctx context.Context, r core.PipelineRun) error {
	st := ob.eng.Store()
	rel := core.Release{Service: r.Service, Version: r.Version, Commit: r.Commit, Branch: r.Branch, ArtifactDigest: r.ArtifactDigest, BuiltAt: r.FinishedAt,
		Migrations: r.Migrations, MigrationsUnknown: r.MigrationsUnknown}
	old, err := st.Release(ctx, r.Service, r.Version)
	switch {
	case err == nil:
		if old.ArtifactDigest == rel.ArtifactDigest {
			return nil
		}
		rel.Held, rel.HeldReason = old.Held, old.HeldReason
		if len(rel.Migrations) == 0 && rel.MigrationsUnknown == "" {
			rel.Migrations, rel.MigrationsUnknown = old.Migrations, old.MigrationsUnknown
		}
	case !errors.Is(err, core.ErrNotFound):
		return fmt.Errorf("record release %s %s: %w", r.Service, r.Version, err)
	}
	if err := st.PutRelease(ctx, rel); err != nil {
		return fmt.Errorf("record release %s %s: %w", r.Service, r.Version, err)
	}
	return nil
}
