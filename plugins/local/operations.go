package local

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/ripcordhq/ripcord/core"
)

// stepFunc reports one step of an operation as it happens.
type stepFunc func(progress float64, message string)

// runOp runs one operation once per request ID: a repeated ID replays the
// recorded events (following them if the first call is still running)
// and returns the recorded outcome.
func (t *Target) runOp(ctx context.Context, op core.OpRequest, fn func(core.OpEvent), work func(step stepFunc) error) error {
	if err := t.checkRef(op.Ref); err != nil {
		return err
	}
	if fn == nil {
		fn = func(core.OpEvent) {}
	}
	l, fresh, err := t.book.Begin(op.ID, fn)
	if err != nil {
		return err
	}
	if !fresh {
		return l.Follow(ctx, fn)
	}
	t.opMu.Lock()
	defer t.opMu.Unlock()
	step := func(p float64, msg string) {
		l.Emit(core.OpEvent{Progress: p, Message: msg, ExternalRef: op.ID})
	}
	err = work(step)
	done := core.OpEvent{Done: true, Progress: 1, Message: "done", ExternalRef: op.ID}
	if err != nil {
		done.Progress, done.Message, done.Err = 0, "failed", err.Error()
	}
	l.Emit(done)
	t.notify()
	return err
}

// WatchOperation re-attaches to an operation by its request ID (the
// external ref this target hands out is that ID).
func (t *Target) WatchOperation(ctx context.Context, op core.OpRequest, externalRef string, fn func(core.OpEvent)) error {
	if err := t.checkRef(op.Ref); err != nil {
		return err
	}
	id := op.ID
	if externalRef != "" {
		id = externalRef
	}
	l, err := t.book.Lookup(id)
	if err != nil {
		return err
	}
	return l.Follow(ctx, fn)
}

// Deploy installs the release, starts it and checks its health; at weight
// 100 (or when nothing serves yet) it becomes current, below 100 it runs as
// the candidate beside the stable release.
func (t *Target) Deploy(ctx context.Context, op core.OpRequest, rel core.Release, weight int, fn func(core.OpEvent)) error {
	return t.runOp(ctx, op, fn, func(step stepFunc) error {
		v := rel.Version
		if err := validVersion(v); err != nil {
			return err
		}
		if rel.Service != "" && rel.Service != t.cfg.Ref.Service {
			return fmt.Errorf("release of %s cannot deploy to %s", rel.Service, t.cfg.Ref)
		}
		if weight < 0 || weight > 100 {
			return fmt.Errorf("weight %d is not within 0..100", weight)
		}
		step(0.05, fmt.Sprintf("installing %s as releases/%s", rel.ArtifactDigest, v))
		m, err := t.lay.install(t.cfg.ArtifactStore, v, rel.ArtifactDigest)
		if err != nil {
			return fmt.Errorf("install %s: %w", v, err)
		}
		step(0.2, fmt.Sprintf("artifact verified: %s, %d bytes", m.Digest, m.Size))

		t.mu.Lock()
		st := t.st
		running := t.procs[v]
		t.mu.Unlock()
		if v == st.Stable && running != nil {
			step(0.9, v+" is already serving")
			return nil
		}
		if v == st.Candidate && running != nil {
			return t.applyWeight(weight, step)
		}
		p, err := t.startHealthy(ctx, v, step)
		if err != nil {
			if st.Stable != "" {
				return fmt.Errorf("%w; %s is still serving", err, st.Stable)
			}
			return err
		}
		if st.Stable == "" || weight >= 100 {
			return t.promote(p, nil, step)
		}
		return t.setCandidate(p, weight, step)
	})
}

// SetWeight moves the candidate's share of requests at once; 100 makes
// the candidate current.
func (t *Target) SetWeight(ctx context.Context, op core.OpRequest, weight int, fn func(core.OpEvent)) error {
	return t.runOp(ctx, op, fn, func(step stepFunc) error {
		if weight < 0 || weight > 100 {
			return fmt.Errorf("weight %d is not within 0..100", weight)
		}
		return t.applyWeight(weight, step)
	})
}

// Rollback returns to toVersion, or to the last good release when it is
// empty: start it, check its health, switch current, move traffic, stop
// the releases it replaces. Rolling back to the current release while a
// candidate runs aborts the candidate.
func (t *Target) Rollback(ctx context.Context, op core.OpRequest, toVersion string, fn func(core.OpEvent)) error {
	return t.runOp(ctx, op, fn, func(step stepFunc) error {
		t.mu.Lock()
		st := t.st
		t.mu.Unlock()
		to := toVersion
		if to == "" {
			if to = t.lastGood(st); to == "" {
				return fmt.Errorf("no earlier good release is installed to roll back to from %q", st.Stable)
			}
		}
		if err := validVersion(to); err != nil {
			return err
		}
		leaving := []string{}
		for _, v := range []string{st.Stable, st.Candidate} {
			if v != "" && v != to {
				leaving = append(leaving, v)
			}
		}
		step(0.05, fmt.Sprintf("rolling back to %s, leaving %s", to, strings.Join(leaving, ", ")))
		if to == st.Stable {
			t.mu.Lock()
			cand := t.procs[st.Candidate]
			if st.Candidate != "" {
				delete(t.procs, st.Candidate)
				t.markRolledBackLocked(st.Candidate)
			}
			t.st.Candidate, t.st.Weight = "", 0
			var err error
			if p := t.procs[to]; p != nil {
				err = t.setRouteLocked(p, nil, 0)
			}
			err = errors.Join(err, t.saveLocked())
			t.mu.Unlock()
			step(0.6, "all traffic back on "+to)
			if cand != nil {
				t.stopProcess(cand)
				step(0.9, "stopped candidate "+cand.version)
			}
			return err
		}
		if err := t.lay.complete(to); err != nil {
			return fmt.Errorf("cannot roll back to %s: %w", to, err)
		}
		t.mu.Lock()
		p := t.procs[to]
		t.mu.Unlock()
		if p == nil {
			var err error
			if p, err = t.startHealthy(ctx, to, step); err != nil {
				return fmt.Errorf("%w; %s is still serving", err, st.Stable)
			}
		}
		return t.promote(p, leaving, step)
	})
}

// startHealthy starts a release and waits for its health check; on failure
// the process is stopped and nothing else changed.
func (t *Target) startHealthy(ctx context.Context, v string, step stepFunc) (*process, error) {
	step(0.3, "starting "+v)
	p, err := t.startProcess(v)
	if err != nil {
		return nil, err
	}
	go func() { <-p.exited; t.notify() }()
	step(0.4, fmt.Sprintf("started %s (pid %d, 127.0.0.1:%d), checking health", v, p.pid, p.port))
	if err := t.health.wait(ctx, p.port, t.cfg.HealthTimeout, p.exited); err != nil {
		t.stopProcess(p)
		return nil, fmt.Errorf("release %s failed its health check: %w", v, err)
	}
	step(0.6, v+" is healthy")
	return p, nil
}

// promote makes a healthy, running release current: switch the link, move
// all traffic, stop what it replaces, prune old releases.
func (t *Target) promote(p *process, rolledBack []string, step stepFunc) error {
	v := p.version
	step(0.7, "switching current to "+v)
	if err := t.lay.switchCurrent(v); err != nil {
		t.mu.Lock()
		serving := t.procs[v] == p
		t.mu.Unlock()
		if !serving {
			t.stopProcess(p)
		}
		return err
	}
	t.mu.Lock()
	var stop []*process
	for name, q := range t.procs {
		if name != v {
			stop = append(stop, q)
			delete(t.procs, name)
		}
	}
	t.procs[v] = p
	rerr := t.setRouteLocked(p, nil, 0)
	if n := len(t.st.History); n == 0 || t.st.History[n-1] != v {
		t.st.History = append(t.st.History, v)
	}
	if len(t.st.History) > 100 {
		t.st.History = t.st.History[len(t.st.History)-100:]
	}
	t.st.RolledBack = slices.DeleteFunc(t.st.RolledBack, func(s string) bool { return s == v })
	for _, r := range rolledBack {
		t.markRolledBackLocked(r)
	}
	t.st.Stable, t.st.Candidate, t.st.Weight = v, "", 0
	t.healthy = true
	err := errors.Join(rerr, t.saveLocked())
	st := t.st
	t.mu.Unlock()
	t.notify()
	step(0.8, v+" is current and serving all requests")
	for _, q := range stop {
		t.stopProcess(q)
		step(0.9, "stopped "+q.version)
	}
	if removed := t.prune(st); len(removed) > 0 {
		step(0.95, "removed old releases "+strings.Join(removed, ", "))
	}
	return err
}

func (t *Target) markRolledBackLocked(v string) {
	if !slices.Contains(t.st.RolledBack, v) {
		t.st.RolledBack = append(t.st.RolledBack, v)
	}
}

func (t *Target) setCandidate(p *process, weight int, step stepFunc) error {
	t.mu.Lock()
	old := t.procs[t.st.Candidate]
	if old != nil && old != p {
		delete(t.procs, t.st.Candidate)
	} else {
		old = nil
	}
	t.procs[p.version] = p
	t.st.Candidate, t.st.Weight = p.version, weight
	t.st.RolledBack = slices.DeleteFunc(t.st.RolledBack, func(s string) bool { return s == p.version })
	err := errors.Join(t.setRouteLocked(t.procs[t.st.Stable], p, weight), t.saveLocked())
	t.mu.Unlock()
	t.notify()
	if err == nil {
		step(0.8, fmt.Sprintf("%s is the candidate with %d%% of requests", p.version, weight))
	}
	if old != nil {
		t.stopProcess(old)
		step(0.9, "stopped previous candidate "+old.version)
	}
	return err
}

func (t *Target) applyWeight(weight int, step stepFunc) error {
	t.mu.Lock()
	p := t.procs[t.st.Candidate]
	t.mu.Unlock()
	if p == nil {
		return fmt.Errorf("no candidate release is running in %s: deploy one first", t.cfg.Ref)
	}
	if weight >= 100 {
		return t.promote(p, nil, step)
	}
	return t.setCandidate(p, weight, step)
}

// prune keeps the newest Keep releases plus the current one, the
// candidate and the last good release, whatever their age.
func (t *Target) prune(st state) []string {
	complete, _, err := t.lay.installed()
	if err != nil {
		return nil
	}
	protect := []string{st.Stable, st.Candidate, t.lastGood(st)}
	var removed []string
	kept := 0
	for i := len(complete) - 1; i >= 0; i-- {
		v := complete[i].Version
		switch {
		case slices.Contains(protect, v):
			kept++
		case kept < t.cfg.Keep:
			kept++
		default:
			if err := removeAll(t.lay.releaseDir(v)); err == nil {
				removed = append(removed, v)
			}
		}
	}
	return removed
}
