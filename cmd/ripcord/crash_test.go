package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/cmd/ripcord/internal/lease"
	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/core/sqlitestore"
)

// killServer kills the world's server with SIGKILL and waits until it is
// gone; its provider processes die with it (Pdeathsig), the releases and
// the local proxy do not.
func (w *cliWorld) killServer(t *testing.T) {
	t.Helper()
	rec, err := lease.ReadRecord(lease.For(filepath.Join(w.dir, ".ripcord", "state.db")))
	if err != nil {
		t.Fatalf("no server record: %v", err)
	}
	if err := syscall.Kill(rec.Pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %d: %v", rec.Pid, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for serverAlive(rec.Pid) && !zombie(rec.Pid) {
		if time.Now().After(deadline) {
			t.Fatalf("server %d survived kill -9", rec.Pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// zombie reports whether pid has exited and waits to be reaped (an
// autostarted server is this test process's child).
func zombie(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && i+2 < len(b) && b[i+2] == 'Z'
}

// openStore opens the world's state as another process would.
func (w *cliWorld) openStore(t *testing.T) *sqlitestore.Store {
	t.Helper()
	st, err := sqlitestore.Open(context.Background(), filepath.Join(w.dir, ".ripcord", "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// waitOp polls the journal until an operation of kind satisfies ok.
func waitOp(t *testing.T, st core.Store, kind string, ok func(core.Operation) bool, what string, out *bytes.Buffer) core.Operation {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ops, err := st.Unfinished(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, op := range ops {
			if op.Kind == kind && ok(op) {
				return op
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: %+v\n%s", what, ops, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// localState is what the local target records about what serves.
func (w *cliWorld) localState(t *testing.T, env string) (stable, candidate string, weight int) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(w.dir, "envs", env, "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Stable    string `json:"stable"`
		Candidate string `json:"candidate"`
		Weight    int    `json:"weight"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	return st.Stable, st.Candidate, st.Weight
}

// kill -9 of the server rolling back a canary in flight, with the real
// local target and its plugin processes: the next server finishes the
// rollback — production serves the release it was rolling back to — and
// never resumes the rollout it interrupted; the release it was leaving
// stays held.
func TestKilledRollbackOfACanaryIsFinishedNotResumed(t *testing.T) {
	t.Setenv("RIPCORD_ACTOR", "ana")
	// The server runs the releases: each takes 3 s to become healthy, so
	// the rollback is still under way when the server is killed.
	t.Setenv("RIPCORD_TEST_SLOW_START", "3s")
	w := newCLIWorld(t, "    rollout: [ {weight: 50}, {pause: judgment}, {weight: 100} ]\n")
	for _, args := range [][]string{
		{"promote", "api", "--to", "production", "--version", "v1", "--full", "--yes"},
		{"promote", "api", "--to", "production", "--version", "v2", "--full", "--yes"},
		{"promote", "api", "--to", "production", "--version", "v3", "--yes"},
	} {
		if code, out, errs := w.run(t, args...); code != exitOK {
			t.Fatalf("%v: exit %d\n%s%s", args, code, out, errs)
		}
	}
	if stable, cand, weight := w.localState(t, "production"); stable != "v2" || cand != "v3" || weight != 50 {
		t.Fatalf("before the rollback production runs %s with %s at %d%%; want v2 with v3 at 50%%", stable, cand, weight)
	}

	// The rollback to v1 starts v1, which takes 3 s to become healthy: the
	// server is killed in the middle of that.
	var out bytes.Buffer
	asker := cliProcess(t, w, "ana", "rollback", "api", "--env", "production", "--to", "v1", "--yes", "--reason", "v3 throws")
	asker.Stdout, asker.Stderr = &out, &out
	if err := asker.Start(); err != nil {
		t.Fatal(err)
	}
	st := w.openStore(t)
	op := waitOp(t, st, "rollback", func(op core.Operation) bool { return op.State == core.OpRunning }, "the rollback to reach the target", &out)
	w.killServer(t)
	if err := asker.Wait(); err == nil {
		t.Fatalf("the rollback command succeeded though its server was killed:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "did not answer") {
		t.Fatalf("the command whose server died does not say so:\n%s", out.String())
	}

	// Restart: a console's worth of client starts the next server.
	self, _ := os.Executable()
	var watchOut bytes.Buffer
	watch := exec.Command(self, "watch", "-c", w.cfg)
	watch.Env = append(os.Environ(), "RIPCORD_TEST_CLI=1", "RIPCORD_ACTOR=bo")
	watch.Stdout, watch.Stderr = &watchOut, &watchOut
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = watch.Process.Signal(syscall.SIGTERM)
		_ = watch.Wait()
	}()
	deadline := time.Now().Add(90 * time.Second)
	for {
		got, err := st.Operation(context.Background(), op.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != core.OpIntent && got.State != core.OpRunning {
			if got.State != core.OpSucceeded {
				t.Fatalf("after the restart the rollback is %s: %s\n%s", got.State, got.Message, watchOut.String())
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the restarted server never finished the rollback\n%s", watchOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}

	if stable, cand, weight := w.localState(t, "production"); stable != "v1" || cand != "" || weight != 0 {
		t.Fatalf("after recovery production runs %s with %q at %d%%; want v1 alone\n%s", stable, cand, weight, watchOut.String())
	}
	if got := w.current(t, "production"); got != "v1" {
		t.Fatalf("production current = %s, want v1", got)
	}
	ctx := context.Background()
	rel, err := st.Release(ctx, "api", "v3")
	if err != nil || !rel.Held {
		t.Fatalf("v3 after its interrupted rollback: held=%v (%v); want held", rel.Held, err)
	}
	hist, err := st.Deployments(ctx, core.Ref{Service: "api", Env: "production"}, 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range hist {
		if d.Version == "v3" && d.State != core.DeployRolledBack {
			t.Fatalf("v3's deployment is %s after recovery; want rolled-back (history %+v)", d.State, hist)
		}
	}
	var actions []string
	for _, e := range w.audit(t) {
		actions = append(actions, e.Action)
		if e.At.After(op.StartedAt) && (e.Action == "promote" || e.Action == "full-promote" || e.Action == "rollout-complete") {
			t.Fatalf("something was promoted after the crash: %+v", e)
		}
	}
	if !strings.Contains(strings.Join(actions, ","), "lock-recover,rollback") {
		t.Fatalf("audit = %v; want the dead process's lock taken over, then the rollback", actions)
	}
}

// While a rollback runs in one process, another process of the same
// person can neither unlock the environment without --force nor start a
// promote beside it: the lock belongs to the rollback, not to a name.
func TestAnotherProcessOfTheSamePersonCannotUnlockARunningRollback(t *testing.T) {
	t.Setenv("RIPCORD_ACTOR", "ana")
	t.Setenv("RIPCORD_TEST_SLOW_START", "3s") // the rollback takes 3 s in the server
	w := newCLIWorld(t, "")
	for _, v := range []string{"v1", "v2"} {
		if code, out, errs := w.run(t, "promote", "api", "--to", "production", "--version", v, "--yes"); code != exitOK {
			t.Fatalf("promote %s: exit %d\n%s%s", v, code, out, errs)
		}
	}
	var out bytes.Buffer
	rollback := cliProcess(t, w, "ana", "rollback", "api", "--env", "production", "--to", "v1", "--yes")
	rollback.Stdout, rollback.Stderr = &out, &out
	if err := rollback.Start(); err != nil {
		t.Fatal(err)
	}
	st := w.openStore(t)
	waitOp(t, st, "rollback", func(op core.Operation) bool { return op.State == core.OpRunning }, "the rollback to reach the target", &out)

	code, _, errs := w.run(t, "unlock", "api", "--env", "production")
	if code != exitLocked || !strings.Contains(errs, "rollback") {
		t.Fatalf("ana's unlock from another terminal: exit %d, %q; want %d naming the rollback that holds it", code, errs, exitLocked)
	}
	code, _, errs = w.run(t, "promote", "api", "--to", "production", "--version", "v2", "--yes")
	if code != exitLocked {
		t.Fatalf("a promote beside the running rollback: exit %d, %q; want %d", code, errs, exitLocked)
	}
	if err := rollback.Wait(); err != nil {
		t.Fatalf("the rollback: %v\n%s", err, out.String())
	}
	if got := w.current(t, "production"); got != "v1" {
		t.Fatalf("production current = %s, want v1", got)
	}
	for _, e := range w.audit(t) {
		if strings.HasPrefix(e.Action, "unlock") {
			t.Fatalf("the lock was released by someone else: %+v", e)
		}
	}
}
