package ssh

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path"
	"slices"
	"strings"
	"sync"

	"github.com/ripcordhq/ripcord/core"
)

// stepFunc reports one step of an operation as it happens.
type stepFunc func(progress float64, message string)

// runOp runs one operation once per request ID: a repeated ID replays the
// recorded events (following them while the first call still runs).
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
	var mu sync.Mutex // hosts report from their own goroutines
	step := func(p float64, msg string) {
		mu.Lock()
		defer mu.Unlock()
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

// HostsFor is how many of n hosts a weight puts on the candidate: the
// nearest whole number of hosts, at least one for any weight above 0 and,
// below 100, at least one left on the stable release when there are two
// or more hosts.
func HostsFor(weight, n int) int {
	switch {
	case weight <= 0 || n == 0:
		return 0
	case weight >= 100:
		return n
	}
	k := int(math.Round(float64(weight) * float64(n) / 100))
	k = max(k, 1)
	if n > 1 {
		k = min(k, n-1)
	}
	return k
}

// ordered lists the hosts in rollout order: canary hosts first, then the
// rest, each group as configured.
func (t *Target) ordered() []Host {
	var out []Host
	for _, h := range t.cfg.Hosts {
		if h.Canary {
			out = append(out, h)
		}
	}
	for _, h := range t.cfg.Hosts {
		if !h.Canary {
			out = append(out, h)
		}
	}
	return out
}

func (t *Target) shareText(weight, k int) string {
	n := len(t.cfg.Hosts)
	return fmt.Sprintf("%d%% requested → %d of %d hosts (%d%%)", weight, k, n, share(k, n))
}

// Deploy puts the release on the share of hosts the weight asks for,
// canary hosts first, in batches of MaxParallel. At weight 100, or when
// nothing runs yet, every host moves and the release becomes stable.
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
		if _, _, err := t.artifact(rel.ArtifactDigest); err != nil {
			return err
		}
		t.mu.Lock()
		st := t.st
		t.mu.Unlock()
		if st.Candidate != "" && st.Candidate != v {
			return fmt.Errorf("%s is still the candidate on %s: roll back or abort it before deploying %s", st.Candidate, strings.Join(t.hostsOn(st.Candidate), ", "), v)
		}
		if v == st.Stable && len(t.hostsOn(v)) == len(t.cfg.Hosts) {
			step(0.9, v+" already runs on every host")
			return nil
		}
		if st.Stable == "" || st.Stable == v {
			weight = 100
		}
		t.mu.Lock()
		if t.st.Digests == nil {
			t.st.Digests = map[string]string{}
		}
		t.st.Digests[v] = rel.ArtifactDigest
		if weight < 100 {
			t.st.Candidate = v
			t.st.RolledBack = slices.DeleteFunc(t.st.RolledBack, func(s string) bool { return s == v })
		}
		err := t.saveLocked()
		t.mu.Unlock()
		if err != nil {
			return err
		}
		t.notify()
		return t.moveTo(ctx, op.ID, "deploy", v, weight, step)
	})
}

// SetWeight moves hosts to or from the candidate until the weight's share
// of hosts runs it; 100 makes the candidate stable, 0 returns every host
// to the stable release (the candidate stays installed).
func (t *Target) SetWeight(ctx context.Context, op core.OpRequest, weight int, fn func(core.OpEvent)) error {
	return t.runOp(ctx, op, fn, func(step stepFunc) error {
		if weight < 0 || weight > 100 {
			return fmt.Errorf("weight %d is not within 0..100", weight)
		}
		t.mu.Lock()
		cand := t.st.Candidate
		t.mu.Unlock()
		if cand == "" {
			return fmt.Errorf("no candidate release in %s: deploy one first", t.cfg.Ref)
		}
		return t.moveTo(ctx, op.ID, "set-weight", cand, weight, step)
	})
}

// moveTo brings the fleet to weight on version v: hosts that should run
// it and do not move forward in order, hosts beyond the share move back to
// the stable release, last moved first.
func (t *Target) moveTo(ctx context.Context, opID, action, v string, weight int, step stepFunc) error {
	order := t.ordered()
	k := HostsFor(weight, len(order))
	step(0.05, t.shareText(weight, k))
	t.mu.Lock()
	stable := t.st.Stable
	t.mu.Unlock()
	var forward, back []Host
	for i, h := range order {
		on := t.release(h.Name) == v
		switch {
		case i < k && !on:
			forward = append(forward, h)
		case i >= k && on && stable != "" && stable != v:
			back = append(back, h)
		}
	}
	slices.Reverse(back)
	if err := t.moveHosts(ctx, opID, action, forward, v, true, step); err != nil {
		return err
	}
	if err := t.moveHosts(ctx, opID, action, back, stable, true, step); err != nil {
		return err
	}
	if k < len(order) {
		step(0.9, fmt.Sprintf("%s runs on %s", v, t.hostList(v)))
		return nil
	}
	t.mu.Lock()
	from := t.st.Stable
	if n := len(t.st.History); n == 0 || t.st.History[n-1] != v {
		t.st.History = append(t.st.History, v)
	}
	if len(t.st.History) > 100 {
		t.st.History = t.st.History[len(t.st.History)-100:]
	}
	t.st.Stable, t.st.Candidate = v, ""
	protect := []string{v, t.lastGoodLocked()}
	err := t.saveLocked()
	t.mu.Unlock()
	t.notify()
	if err != nil {
		return err
	}
	step(0.92, fmt.Sprintf("%s is stable on all %d hosts (was %s)", v, len(order), orNone(from)))
	t.pruneAll(ctx, protect, step)
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "nothing"
	}
	return s
}

// Rollback returns every host that runs something else to toVersion (the
// last good release when empty), in batches of MaxParallel, trying every
// host even when one fails. Hosts it could not reach are named in the
// error: the rollback can be run again once they answer.
func (t *Target) Rollback(ctx context.Context, op core.OpRequest, toVersion string, fn func(core.OpEvent)) error {
	return t.runOp(ctx, op, fn, func(step stepFunc) error {
		t.mu.Lock()
		st := t.st
		to := toVersion
		if to == "" {
			to = t.lastGoodLocked()
		}
		t.mu.Unlock()
		if toVersion == "" && st.Stable != "" && st.Candidate == "" && len(t.hostsOn(st.Stable)) < len(t.cfg.Hosts) {
			// An earlier rollback to the stable release left hosts behind:
			// finish it rather than going back further.
			to = st.Stable
		}
		if to == "" {
			return fmt.Errorf("no earlier good release to roll back to from %q", st.Stable)
		}
		if err := validVersion(to); err != nil {
			return err
		}
		if _, ok := st.Digests[to]; !ok && to != st.Stable {
			if !slices.Contains(t.status().Kept, to) {
				return fmt.Errorf("%s was never deployed by this target and is not installed on the hosts: cannot roll back to it", to)
			}
		}
		var moving []Host
		leaving := map[string]bool{}
		for _, h := range t.ordered() {
			// A host not reached since it was last seen on the target
			// release is tried too: nobody knows what it runs now.
			if r := t.release(h.Name); r != to || !t.reachable(h.Name) {
				moving = append(moving, h)
				if r != "" {
					leaving[r] = true
				}
			}
		}
		for _, v := range []string{st.Stable, st.Candidate} {
			if v != "" && v != to {
				leaving[v] = true
			}
		}
		step(0.05, fmt.Sprintf("rolling back %d of %d hosts to %s", len(moving), len(t.cfg.Hosts), to))
		err := t.moveHosts(ctx, op.ID, "rollback", moving, to, false, step)
		// The fleet's stable release is the rollback's target even when a
		// host could not be moved yet: running the rollback again finishes
		// it, and the status shows the hosts still on another release.
		t.mu.Lock()
		for v := range leaving {
			if !slices.Contains(t.st.RolledBack, v) {
				t.st.RolledBack = append(t.st.RolledBack, v)
			}
		}
		if to != t.st.Stable {
			t.st.History = append(t.st.History, to)
		}
		t.st.Stable, t.st.Candidate = to, ""
		serr := t.saveLocked()
		t.mu.Unlock()
		t.notify()
		if err != nil {
			return err
		}
		step(0.95, fmt.Sprintf("all %d hosts run %s", len(t.cfg.Hosts), to))
		return serr
	})
}

// lastGoodLocked is the release a plain rollback returns to: the latest
// stable release before the current one that was not itself rolled back.
func (t *Target) lastGoodLocked() string {
	st := t.st
	for i := len(st.History) - 1; i >= 0; i-- {
		v := st.History[i]
		if v == st.Stable || slices.Contains(st.RolledBack, v) {
			continue
		}
		return v
	}
	if st.Candidate != "" {
		return st.Stable
	}
	return ""
}

func (t *Target) release(host string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.views[host].release
}

func (t *Target) hostsOn(v string) []string {
	var out []string
	for _, h := range t.cfg.Hosts {
		if t.release(h.Name) == v {
			out = append(out, h.Name)
		}
	}
	return out
}

// hostList says which hosts run v and which run something else.
func (t *Target) hostList(v string) string {
	on := t.hostsOn(v)
	return fmt.Sprintf("%d of %d hosts (%s)", len(on), len(t.cfg.Hosts), strings.Join(on, ", "))
}

// moveHosts moves hosts to version v in batches of MaxParallel. With
// stopOnFailure, a failed host ends the operation after its batch (the
// hosts already moved stay where they are, the status shows them);
// otherwise every host is tried and the failures are listed together.
func (t *Target) moveHosts(ctx context.Context, opID, action string, hosts []Host, v string, stopOnFailure bool, step stepFunc) error {
	if len(hosts) == 0 {
		return nil
	}
	var failed []error
	var unreachable []string
	for start := 0; start < len(hosts); start += t.cfg.MaxParallel {
		batch := hosts[start:min(start+t.cfg.MaxParallel, len(hosts))]
		errs := make([]error, len(batch))
		var wg sync.WaitGroup
		for i, h := range batch {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = t.moveHost(ctx, opID, action, h, v, step)
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err == nil {
				continue
			}
			failed = append(failed, err)
			if !t.reachable(batch[i].Name) {
				unreachable = append(unreachable, batch[i].Name)
			}
		}
		if len(failed) > 0 && stopOnFailure {
			return fmt.Errorf("stopped at %w; %s", errors.Join(failed...), t.fleetText())
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if len(failed) > 0 {
		lead := fmt.Sprintf("%d of %d hosts not moved to %s", len(failed), len(hosts), v)
		if len(unreachable) > 0 {
			lead += fmt.Sprintf("; unreachable, check by hand and run the rollback again: %s", strings.Join(unreachable, ", "))
		}
		return fmt.Errorf("%s; %w; %s", lead, errors.Join(failed...), t.fleetText())
	}
	return nil
}

// fleetText lists which hosts run which release, for an error a person
// reads: "web-1 v2, web-2 v1, web-3 unreachable (last seen v1)".
func (t *Target) fleetText() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var parts []string
	for _, h := range t.cfg.Hosts {
		v := t.views[h.Name]
		switch {
		case !v.reachable && v.checked:
			parts = append(parts, fmt.Sprintf("%s unreachable (last seen on %s)", h.Name, orNone(v.release)))
		default:
			parts = append(parts, fmt.Sprintf("%s on %s", h.Name, orNone(v.release)))
		}
	}
	return "hosts: " + strings.Join(parts, ", ")
}

func (t *Target) reachable(name string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.views[name].reachable
}

// moveHost does one host's part of an operation: install (deploy only
// uploads; a rollback uploads only a release the host lost), switch
// current, restart, wait for health. The host's marker makes a repeated
// operation skip a host that already finished its part.
func (t *Target) moveHost(ctx context.Context, opID, action string, h Host, v string, step stepFunc) (err error) {
	t.enter()
	defer t.leave()
	ctx, cancel := context.WithTimeout(ctx, t.cfg.HostTimeout)
	defer cancel()
	say := func(p float64, msg string) {
		t.setView(h.Name, func(hv *hostView) { hv.working = msg })
		step(p, h.Name+": "+msg)
	}
	defer func() {
		t.setView(h.Name, func(hv *hostView) {
			hv.working = ""
			if err != nil {
				hv.healthy, hv.err = false, err.Error()
				var ue *unreachableError
				if errors.As(err, &ue) {
					hv.reachable, hv.checked = false, true
				}
			}
		})
		if err != nil {
			err = hostErr(h, err)
			step(0.5, err.Error())
		}
	}()
	t.mu.Lock()
	digest := t.st.Digests[v]
	from := t.views[h.Name].release
	t.mu.Unlock()
	return t.withConn(ctx, h, func(c *conn) error {
		t.setView(h.Name, func(hv *hostView) { hv.reachable, hv.checked = true, true })
		if m, ok := c.readMarker(h.Root, opID); ok && m.State == "done" && m.To == v {
			say(0.8, fmt.Sprintf("already on %s by this operation", v))
			return nil
		}
		dir, err := t.installedDir(ctx, c, h, v, digest, func(msg string) { say(0.3, msg) })
		if err != nil {
			return err
		}
		t.setView(h.Name, func(hv *hostView) {
			if !slices.Contains(hv.releases, v) {
				hv.releases = append([]string{v}, hv.releases...)
			}
		})
		mk := marker{Op: opID, Action: action, From: from, To: v, State: "switching"}
		if err := c.writeMarker(h.Root, mk); err != nil {
			return fmt.Errorf("write operation marker: %w", err)
		}
		if err := c.switchCurrent(h.Root, dir); err != nil {
			return err
		}
		t.setView(h.Name, func(hv *hostView) { hv.release = v })
		mk.State = "restarting"
		_ = c.writeMarker(h.Root, mk)
		say(0.6, fmt.Sprintf("current → %s, restarting", dir))
		env := t.envFor(h, v)
		env["RIPCORD_RELEASE_DIR"] = path.Join(h.Root, "releases", dir)
		r, err := c.runScript(ctx, path.Join(h.Root, currentName), env, t.cfg.Restart, t.cfg.RestartTimeout)
		if out := strings.TrimSpace(r.stdout + "\n" + r.stderr); out != "" {
			for _, line := range strings.Split(out, "\n") {
				t.log(h.Name, line)
			}
		}
		if err == nil && r.code != 0 {
			err = fmt.Errorf("exited %d: %s", r.code, tail(r.stderr))
		}
		if err != nil {
			mk.State, mk.Message = "failed", "restart: "+err.Error()
			_ = c.writeMarker(h.Root, mk)
			return fmt.Errorf("restart on %s: %w", v, err)
		}
		say(0.7, "restarted, checking health")
		if err := t.health.wait(ctx, c, h, env, t.cfg.HealthTimeout); err != nil {
			mk.State, mk.Message = "failed", "health: "+err.Error()
			_ = c.writeMarker(h.Root, mk)
			return fmt.Errorf("%s on %s: %w", t.health, v, err)
		}
		mk.State = "done"
		if err := c.writeMarker(h.Root, mk); err != nil {
			return fmt.Errorf("write operation marker: %w", err)
		}
		t.setView(h.Name, func(hv *hostView) { hv.healthy, hv.err = true, "" })
		say(0.8, fmt.Sprintf("healthy on %s", v))
		return nil
	})
}

// installedDir returns the release directory of v on the host, uploading
// the artifact when the host does not have it and its digest is known.
func (t *Target) installedDir(ctx context.Context, c *conn, h Host, v, digest string, say func(string)) (string, error) {
	if digest != "" {
		want, err := digestHex(digest)
		if err != nil {
			return "", err
		}
		say("installing " + releaseDir(v, want))
		if err := t.install(ctx, h, c, v, digest, say); err != nil {
			return "", fmt.Errorf("install %s: %w", v, err)
		}
		return releaseDir(v, want), nil
	}
	facts, err := t.readHost(ctx, h)
	if err != nil {
		return "", err
	}
	if i := slices.Index(facts.releases, v); i >= 0 {
		return facts.releaseDirs[i], nil
	}
	return "", fmt.Errorf("%s is not installed on the host and its artifact is unknown here", v)
}

// pruneAll removes old releases on every reachable host; a failure is
// reported, never fatal (the release is already out).
func (t *Target) pruneAll(ctx context.Context, protect []string, step stepFunc) {
	var wg sync.WaitGroup
	for _, h := range t.cfg.Hosts {
		if !t.reachable(h.Name) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := t.withConn(ctx, h, func(c *conn) error {
				removed, err := t.prune(ctx, h, c, protect)
				if len(removed) > 0 {
					step(0.95, fmt.Sprintf("%s: removed old releases %s", h.Name, strings.Join(removed, ", ")))
				}
				return err
			})
			if err != nil {
				step(0.95, fmt.Sprintf("%s: old releases not removed: %v", h.Name, err))
			}
		}()
	}
	wg.Wait()
}

// enter and leave count the hosts being worked on, so the MaxParallel
// bound can be checked from outside (Peak).
func (t *Target) enter() {
	t.mu.Lock()
	t.active++
	t.peak = max(t.peak, t.active)
	t.mu.Unlock()
}

func (t *Target) leave() {
	t.mu.Lock()
	t.active--
	t.mu.Unlock()
}

// Peak is the largest number of hosts worked on at once so far.
func (t *Target) Peak() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.peak
}
