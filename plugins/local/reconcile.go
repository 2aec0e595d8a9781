package local

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// reconcile reads the root as it actually is, after whatever happened
// while no provider watched it, fixes what can be fixed safely and
// reports every finding in Status().Problems. It never assumes the state
// file is right: the current link is the commit point of a switch.
func (t *Target) reconcile(ctx context.Context) {
	var problems []string
	add := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }

	tmp := filepath.Join(t.lay.root, currentTmp)
	if _, err := os.Lstat(tmp); err == nil {
		dest, _ := os.Readlink(tmp)
		if err := os.Remove(tmp); err != nil {
			add("stale %s (-> %s) from an interrupted switch could not be removed: %v", currentTmp, dest, err)
		} else {
			add("stale %s (-> %s) from an interrupted switch: removed, current left as it was", currentTmp, dest)
		}
	}

	_, broken, err := t.lay.installed()
	if err != nil {
		add("cannot list releases: %v", err)
	}
	for _, b := range broken {
		add("releases/%s is not a complete release: %v", b, t.lay.complete(b))
	}

	cur, err := t.lay.currentVersion()
	if err != nil {
		add("%v", err)
	}
	if cur != "" {
		if err := t.lay.complete(cur); err != nil {
			add("current points to %s, which is not a complete release: %v", cur, err)
			cur = ""
		}
	}

	st, err := loadState(t.lay.statePath())
	if err != nil {
		add("state file unreadable (%v): rebuilt from the current link", err)
		st = state{}
	}
	if st.Stable != cur {
		if st.Stable != "" || cur != "" {
			add("state recorded %q as current but the current link says %q: following the link", st.Stable, cur)
		}
		st.Stable = cur
		if cur != "" && (len(st.History) == 0 || st.History[len(st.History)-1] != cur) {
			st.History = append(st.History, cur)
		}
	}
	if st.Candidate != "" && (st.Candidate == st.Stable || t.lay.complete(st.Candidate) != nil) {
		st.Candidate, st.Weight = "", 0
	}

	pidfiles, _ := filepath.Glob(filepath.Join(t.lay.runDir(), "*.json"))
	for _, path := range pidfiles {
		var pf pidfile
		b, err := os.ReadFile(path)
		if err != nil || json.Unmarshal(b, &pf) != nil || pf.Version == "" {
			add("unreadable pidfile %s: removed", filepath.Base(path))
			os.Remove(path)
			continue
		}
		if ok, why := t.ownedBy(pf); !ok {
			// Never adopted, never signalled: whatever has the pid now
			// is not this target's.
			add("process of release %s (pid %d) %s: left alone, pidfile removed", pf.Version, pf.Pid, why)
			os.Remove(path)
			continue
		}
		p := t.adoptProcess(pf)
		if pf.Version != st.Stable && pf.Version != st.Candidate {
			add("process of release %s (pid %d) is neither current nor candidate (left by an interrupted operation): stopped", pf.Version, pf.Pid)
			t.stopProcess(p)
			continue
		}
		if err := t.health.probe(ctx, p.port); err != nil {
			add("process of release %s (pid %d) is running but unhealthy (%v): restarted", pf.Version, pf.Pid, err)
			t.stopProcess(p)
			continue
		}
		add("release %s was still running (pid %d, 127.0.0.1:%d): adopted", pf.Version, pf.Pid, pf.Port)
		go func() { <-p.exited; t.notify() }()
		t.procs[pf.Version] = p
	}

	if st.Stable != "" && t.procs[st.Stable] == nil {
		noop := func(float64, string) {}
		if p, err := t.startHealthy(ctx, st.Stable, noop); err != nil {
			add("current release %s was not running and could not be started: %v", st.Stable, err)
		} else {
			add("current release %s was not running: started (pid %d)", st.Stable, p.pid)
			t.procs[st.Stable] = p
		}
	}
	if st.Candidate != "" && t.procs[st.Candidate] == nil {
		add("candidate %s was not running: dropped, all requests go to %s", st.Candidate, st.Stable)
		st.Candidate, st.Weight = "", 0
	}

	for _, id := range t.book.Interrupted() {
		add("operation %s was cut short when the target stopped: marked failed", id)
		_, _ = t.book.Lookup(id)
	}

	t.mu.Lock()
	defer t.mu.Unlock()
	t.st = st
	if p := t.procs[st.Stable]; p != nil {
		if err := t.setRouteLocked(p, t.procs[st.Candidate], st.Weight); err != nil {
			add("%v (retried while the target runs)", err)
		}
		t.healthy = true
	}
	if err := t.saveLocked(); err != nil {
		add("%v", err)
	}
	t.problems = problems
}
