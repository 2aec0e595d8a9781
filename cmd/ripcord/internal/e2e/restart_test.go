package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
)

// countActions counts the audit log's entries per action and checks its
// chain.
func countActions(t *testing.T, entries []core.AuditEntry) map[string]int {
	t.Helper()
	if _, err := core.VerifyAudit(core.GenesisHash, entries); err != nil {
		t.Fatalf("audit chain: %v", err)
	}
	n := map[string]int{}
	for _, e := range entries {
		n[e.Action]++
	}
	return n
}

// kill -9 of the server in the middle of a rollout: the next server
// resumes it from the step it was at and takes it to the end; the audit
// holds the promote and the completion once each.
func TestKilledServerMidRolloutResumesIt(t *testing.T) {
	p := newProject(t, "    rollout: [ {weight: 50}, {pause: 6s}, {weight: 100} ]\n")
	srv := p.serve()
	p.mustRun("promote", "api", "--to", "production", "--version", "v1", "--full", "--yes")
	p.mustRun("promote", "api", "--to", "production", "--version", "v2", "--yes")
	st := p.store()
	prod := core.Ref{Service: "api", Env: "production"}
	// The rollout pauses 6 s at 50%: kill the server in that pause.
	waitUntil(t, 30*time.Second, "the rollout to reach its pause", func() bool {
		deps, err := st.Deployments(context.Background(), prod, 1)
		return err == nil && len(deps) == 1 && deps[0].Version == "v2" && deps[0].Step == 1
	})
	srv.kill9(t)
	before := countActions(t, p.audit())

	p.serve()
	waitUntil(t, 90*time.Second, "the next server to finish the rollout", func() bool {
		deps, err := st.Deployments(context.Background(), prod, 1)
		return err == nil && len(deps) == 1 && deps[0].Version == "v2" && deps[0].State == core.DeployHealthy && deps[0].Weight == 100
	})
	after := countActions(t, p.audit())
	if after["promote"] != before["promote"] || before["promote"] != 1 {
		t.Fatalf("promotes in the audit: %d before the kill, %d after; want v2's one promote, once", before["promote"], after["promote"])
	}
	if after["rollout-complete"] != before["rollout-complete"]+1 {
		t.Fatalf("rollout-complete entries: %d before, %d after; want exactly one more (v2's)", before["rollout-complete"], after["rollout-complete"])
	}
	if got := p.current(); got != "v2" {
		t.Fatalf("production current = %s, want v2", got)
	}
}

// kill -9 of the server in the middle of a rollback: the next server
// completes the rollback (it never resumes the rollout it interrupted),
// the release rolled back is held, and the audit holds one rollback.
func TestKilledServerMidRollbackCompletesIt(t *testing.T) {
	p := newProject(t, "    rollout: [ {weight: 50}, {pause: judgment}, {weight: 100} ]\n")
	p.env = append(p.env, "SLOW_RESTART=5") // v1 takes 5 s to come back
	srv := p.serve()
	// v2 replaces v1 in full, so v1 is stopped: rolling back to it means
	// starting it again, which takes the 5 s the kill lands in. (From a
	// canary v1 still runs and the rollback is one switch of traffic.)
	p.mustRun("promote", "api", "--to", "production", "--version", "v1", "--full", "--yes")
	p.mustRun("promote", "api", "--to", "production", "--version", "v2", "--full", "--yes")
	asker := p.command("ana", "rollback", "api", "--env", "production", "--yes", "--reason", "v2 throws")
	var out strings.Builder
	asker.Stdout, asker.Stderr = &out, &out
	if err := asker.Start(); err != nil {
		t.Fatal(err)
	}
	st := p.store()
	waitUntil(t, 60*time.Second, "the rollback to reach the target", func() bool {
		ops, err := st.Unfinished(context.Background())
		return err == nil && len(ops) == 1 && ops[0].Kind == "rollback" && ops[0].State == core.OpRunning
	})
	srv.kill9(t)
	if err := asker.Wait(); err == nil || !strings.Contains(out.String(), "did not answer") {
		t.Fatalf("the rollback command whose server died: %v\n%s", err, out.String())
	}

	p.serve()
	prod := core.Ref{Service: "api", Env: "production"}
	waitUntil(t, 90*time.Second, "the next server to complete the rollback", func() bool {
		ops, err := st.Unfinished(context.Background())
		return err == nil && len(ops) == 0
	})
	if got := p.current(); got != "v1" {
		t.Fatalf("production current = %s, want v1", got)
	}
	rel, err := st.Release(context.Background(), "api", "v2")
	if err != nil || !rel.Held {
		t.Fatalf("v2 after its interrupted rollback: held=%v (%v)", rel.Held, err)
	}
	deps, err := st.Deployments(context.Background(), prod, 5)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range deps {
		if d.Version == "v2" && d.State != core.DeployRolledBack {
			t.Fatalf("v2's deployment is %s; want rolled-back", d.State)
		}
	}
	n := countActions(t, p.audit())
	if n["rollback"] != 1 || n["full-promote"] != 2 || n["rollout-complete"] != 2 {
		t.Fatalf("audit actions %v; want v1's and v2's full promote and rollout-complete and one rollback — nothing lost, nothing twice", n)
	}
}

// current is the release production's current link points at: what the
// target serves, read from disk.
func (p *project) current() string {
	p.t.Helper()
	link, err := os.Readlink(filepath.Join(p.dir, "envs", "production", "current"))
	if err != nil {
		p.t.Fatal(err)
	}
	return filepath.Base(link)
}

// A person's lock outlives the lock TTL (here 1 s) for as long as they
// hold it: another person's rollback and lock meet it with exit 4 naming
// the holder and the reason, and nothing expired it.
func TestALockHoldsPastTheTTL(t *testing.T) {
	p := newProject(t, "")
	p.env = append(p.env, "RIPCORD_LOCK_TTL=1s")
	p.serve()
	p.mustRun("promote", "api", "--to", "production", "--version", "v1", "--yes")
	p.mustRun("lock", "api", "--env", "production", "--reason", "release freeze until Monday")
	locked := time.Now()
	// Three TTLs: what nothing heartbeats would have expired twice over.
	waitUntil(t, 10*time.Second, "three lock TTLs to pass", func() bool { return time.Since(locked) > 3*time.Second })
	for _, args := range [][]string{
		{"rollback", "api", "--env", "production", "--to", "v1", "--yes"},
		{"lock", "api", "--env", "production"},
		{"promote", "api", "--to", "production", "--version", "v2", "--yes"},
	} {
		code, out := p.runAs("bo", args...)
		if code != 4 || !strings.Contains(out, "locked by ana") || !strings.Contains(out, "release freeze until Monday") {
			t.Fatalf("bo's %s under ana's lock: exit %d\n%s\nwant 4 naming ana and her reason", args[0], code, out)
		}
	}
	n := countActions(t, p.audit())
	if n["lock-expired"] != 0 || n["lock"] != 1 {
		t.Fatalf("audit actions %v: the lock must be taken once and never expire", n)
	}
	out := p.mustRun("unlock", "api", "--env", "production")
	if !strings.Contains(out, "unlocked") {
		t.Fatalf("ana's unlock: %s", out)
	}
	if code, out := p.runAs("bo", "lock", "api", "--env", "production"); code != 0 {
		t.Fatalf("bo's lock after ana unlocked: exit %d\n%s", code, out)
	}
}
