package core_test

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/core/procid"
	"github.com/ripcordhq/ripcord/core/sqlitestore"
)

func engineWithStore(t *testing.T, clock func() time.Time) *core.Engine {
	t.Helper()
	st, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return core.NewEngine(core.EngineOptions{Project: "shop", Services: []string{"api"}, Envs: []string{"production"}, Store: st, Clock: clock, LockTTL: time.Minute})
}

func TestLockCommandsNameTheHolderAndAuditForce(t *testing.T) {
	now := time.Now()
	e := engineWithStore(t, func() time.Time { return now })
	ctx := context.Background()
	ref := core.Ref{Service: "api", Env: "production"}
	ana, bo := core.Actor{Name: "ana", Host: "bastion-1"}, core.Actor{Name: "bo"}

	if _, err := e.Do(ctx, core.Command{Kind: core.CmdLock, Ref: ref, Actor: ana, Reason: "incident 42"}); err != nil {
		t.Fatal(err)
	}
	_, err := e.Do(ctx, core.Command{Kind: core.CmdLock, Ref: ref, Actor: bo})
	var held *core.LockHeldError
	if !errors.As(err, &held) || held.Lock.Holder.Name != "ana" || held.Lock.Reason != "incident 42" {
		t.Fatalf("second lock = %v; want LockHeldError naming ana and her reason", err)
	}
	if _, err := e.Do(ctx, core.Command{Kind: core.CmdUnlock, Ref: ref, Actor: bo}); !errors.As(err, &held) {
		t.Fatalf("bo unlocking ana's live lock = %v; want refusal", err)
	}
	if _, err := e.Do(ctx, core.Command{Kind: core.CmdLock, Ref: ref, Actor: bo, Force: true, Reason: "ana is off shift"}); err != nil {
		t.Fatalf("forced takeover: %v", err)
	}
	if l := e.Snapshot().Locks[ref]; l.Holder.Name != "bo" {
		t.Fatalf("snapshot lock holder = %q, want bo", l.Holder.Name)
	}

	entries, err := e.Store().Audit(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, a := range entries {
		actions = append(actions, a.Action+":"+a.Actor.Name)
	}
	want := []string{"lock:ana", "lock-force:bo", "lock:bo"}
	if len(actions) != len(want) {
		t.Fatalf("audit = %v, want %v", actions, want)
	}
	for i := range want {
		if actions[i] != want[i] {
			t.Fatalf("audit = %v, want %v", actions, want)
		}
	}
	if entries[1].From != ana.String() {
		t.Fatalf("force entry names previous holder %q, want %q", entries[1].From, ana.String())
	}
	if _, err := core.VerifyAudit(core.GenesisHash, entries); err != nil {
		t.Fatal(err)
	}
}

// A person's lock holds until they unlock it — no silent expiry — or
// until the TTL they gave; an expiry is audited, naming whose lock it was.
func TestPersonLockHoldsUntilUnlockOrItsTTLAndExpiryIsAudited(t *testing.T) {
	now := time.Now()
	e := engineWithStore(t, func() time.Time { return now })
	ctx := context.Background()
	ref := core.Ref{Service: "api", Env: "production"}
	ana, bo := core.Actor{Name: "ana"}, core.Actor{Name: "bo"}
	if _, err := e.Do(ctx, core.Command{Kind: core.CmdLock, Ref: ref, Actor: ana, Reason: "db migration"}); err != nil {
		t.Fatal(err)
	}
	now = now.Add(72 * time.Hour) // nobody heartbeats a person's lock
	var held *core.LockHeldError
	if _, err := e.Do(ctx, core.Command{Kind: core.CmdLock, Ref: ref, Actor: bo}); !errors.As(err, &held) || held.Lock.Holder.Name != "ana" {
		t.Fatalf("bo's lock three days later = %v; want refused: ana's lock holds until she unlocks it", err)
	}
	if _, err := e.Do(ctx, core.Command{Kind: core.CmdUnlock, Ref: ref, Actor: ana}); err != nil {
		t.Fatalf("ana unlocks her own lock from another process: %v", err)
	}
	if _, err := e.Do(ctx, core.Command{Kind: core.CmdLock, Ref: ref, Actor: ana, Reason: "lunch", TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	now = now.Add(30 * time.Minute)
	if _, err := e.Do(ctx, core.Command{Kind: core.CmdLock, Ref: ref, Actor: bo}); !errors.As(err, &held) {
		t.Fatalf("bo's lock within ana's TTL = %v; want refused", err)
	}
	now = now.Add(31 * time.Minute)
	if err := e.ExpireLocks(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.Snapshot().Locks[ref]; ok {
		t.Fatalf("the expired lock is still shown: %+v", e.Snapshot().Locks[ref])
	}
	entries, err := e.Store().Audit(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	last := entries[len(entries)-1]
	if last.Action != "lock-expired" || last.From != "ana" || last.Reason != "lunch" || !strings.Contains(last.Outcome, "TTL ran out") {
		t.Fatalf("last audit entry = %+v; want ana's lock's expiry with its reason", last)
	}
	if _, err := e.Do(ctx, core.Command{Kind: core.CmdLock, Ref: ref, Actor: bo}); err != nil {
		t.Fatalf("bo after ana's TTL: %v", err)
	}
}

// An operation's lock belongs to the command holding its token, not to a
// name: another process of the same person cannot unlock it without
// force, and so cannot start a second operation beside it.
func TestOperationLockIsReleasedOnlyByItsOwner(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	ref := core.Ref{Service: "api", Env: "production"}
	rollbackProcess := engineAt(t, path, core.EngineOptions{})
	otherProcess := engineAt(t, path, core.EngineOptions{})
	ana := core.Actor{Name: "ana", Host: "bastion-1"}
	l, err := rollbackProcess.AcquireLock(ctx, ref, ana, "rollback", false)
	if err != nil {
		t.Fatal(err)
	}
	var held *core.LockHeldError
	_, err = otherProcess.Do(ctx, core.Command{Kind: core.CmdUnlock, Ref: ref, Actor: ana})
	if !errors.As(err, &held) || held.Lock.Reason != "rollback" {
		t.Fatalf("ana's unlock from another process = %v; want refused naming the rollback", err)
	}
	if _, err := otherProcess.AcquireLock(ctx, ref, ana, "promote", false); !errors.As(err, &held) {
		t.Fatalf("a promote beside the running rollback = %v; want refused", err)
	}
	if locks, _ := otherProcess.Store().Locks(ctx); len(locks) != 1 || locks[0].Token != l.Token {
		t.Fatalf("locks = %+v; want the rollback's, untouched", locks)
	}
	// With force it goes, audited as forced, and the rollback's engine is
	// told it lost the lock.
	if _, err := otherProcess.Do(ctx, core.Command{Kind: core.CmdUnlock, Ref: ref, Actor: ana, Force: true, Reason: "stuck"}); err != nil {
		t.Fatal(err)
	}
	entries, _ := otherProcess.Store().Audit(ctx, 0, 10)
	if n := len(entries); n == 0 || entries[n-1].Action != "unlock-force" || !strings.Contains(entries[n-1].Outcome, "is running") {
		t.Fatalf("audit = %+v; want a forced unlock saying the holder's process runs", entries)
	}
	if err := rollbackProcess.ReleaseLock(ctx, l); !errors.Is(err, core.ErrLockLost) {
		t.Fatalf("the rollback's release after the force = %v; want ErrLockLost", err)
	}
}

// A lock whose process died is named as such, and its holder takes it
// over with force (audited) instead of waiting for it to expire.
func TestStaleLockOfADeadProcessIsTakenOverWithForce(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	ref := core.Ref{Service: "api", Env: "production"}
	dead := exitedProcess(t)
	crashed := engineAt(t, path, core.EngineOptions{Process: dead, LockTTL: time.Hour})
	next := engineAt(t, path, core.EngineOptions{})
	ana := core.Actor{Name: "ana"}
	if _, err := crashed.AcquireLock(ctx, ref, ana, "rollback", false); err != nil {
		t.Fatal(err)
	}
	var held *core.LockHeldError
	_, err := next.AcquireLock(ctx, ref, ana, "rollback", false)
	if !errors.As(err, &held) || !held.OwnerGone || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", dead.PID)) || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("ana's next command = %v; want refused, saying the holder's process is gone and --force takes it over", err)
	}
	if _, err := next.AcquireLock(ctx, ref, ana, "rollback", true); err != nil {
		t.Fatal(err)
	}
	entries, _ := next.Store().Audit(ctx, 0, 10)
	if len(entries) != 1 || entries[0].Action != "lock-force" || !strings.Contains(entries[0].Outcome, "gone") {
		t.Fatalf("audit = %+v; want the takeover from a dead process", entries)
	}
}

// exitedProcess is the ID of a process that ran on this machine and has
// ended.
func exitedProcess(t *testing.T) procid.ID {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	id, err := procid.Of(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	return id
}

// A console started after another one shows what the store remembers: the
// lock someone holds, the deployment that runs, the audit trail.
func TestRestoreShowsWhatTheStoreRemembers(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	ref := core.Ref{Service: "api", Env: "production"}
	open := func() *core.Engine { return engineAt(t, path, core.EngineOptions{LockTTL: time.Hour}) }
	first := open()
	if _, err := first.Do(ctx, core.Command{Kind: core.CmdLock, Ref: ref, Actor: core.Actor{Name: "ana"}, Reason: "incident 42"}); err != nil {
		t.Fatal(err)
	}
	if _, err := first.Store().AddDeployment(ctx, core.Deployment{Ref: ref, Version: "v1.4.2", State: core.DeployHealthy, Weight: 100}); err != nil {
		t.Fatal(err)
	}

	second := open()
	if err := second.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	snap := second.Snapshot()
	if l, ok := snap.Locks[ref]; !ok || l.Holder.Name != "ana" || l.Reason != "incident 42" || l.Token != "" {
		t.Fatalf("restored lock = %+v; want ana's, without its token", snap.Locks[ref])
	}
	if d := snap.Deployments[ref]; d.Version != "v1.4.2" || d.State != core.DeployHealthy {
		t.Fatalf("restored deployment = %+v", d)
	}
	if len(snap.Audit) == 0 || snap.Audit[len(snap.Audit)-1].Action != "lock" {
		t.Fatalf("restored audit = %+v; want the lock entry", snap.Audit)
	}
}

// A lock held up front (the CLI does this before starting providers) is
// the one the command uses: a rival is refused from the start, and the
// lock is released only when the holder is done.
func TestHoldIsReusedByCommandsAndReleasedByUnhold(t *testing.T) {
	now := time.Now()
	e := engineWithStore(t, func() time.Time { return now })
	ctx := context.Background()
	ref := core.Ref{Service: "api", Env: "production"}
	ana, bo := core.Actor{Name: "ana"}, core.Actor{Name: "bo"}
	if err := e.Hold(ctx, ref, ana, "rollback", false); err != nil {
		t.Fatal(err)
	}
	var held *core.LockHeldError
	if err := e.Hold(ctx, ref, bo, "rollback", false); !errors.As(err, &held) || held.Lock.Holder.Name != "ana" {
		t.Fatalf("bo's hold = %v; want refused naming ana", err)
	}
	// ana's own command takes and gives back the lock inside her hold.
	l, err := e.AcquireLock(ctx, ref, ana, "rollback", false)
	if err != nil {
		t.Fatalf("ana's command under her own hold: %v", err)
	}
	if err := e.ReleaseLock(ctx, l); err != nil {
		t.Fatal(err)
	}
	if _, err := e.AcquireLock(ctx, ref, bo, "promote", false); !errors.As(err, &held) {
		t.Fatalf("after ana's command, bo got the lock (%v): the hold was dropped early", err)
	}
	if err := e.Unhold(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if _, err := e.AcquireLock(ctx, ref, bo, "promote", false); err != nil {
		t.Fatalf("after Unhold: %v", err)
	}
}

// A lock held longer than its TTL by a live process stays held: the
// engine heartbeats it, so a CLI following a long rollout is not
// overtaken by a rival. When someone forces it away, the first holder is
// told instead of carrying on as if it still held it.
func TestHeldLockOutlivesItsTTLWhileTheHolderLives(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	ref := core.Ref{Service: "api", Env: "production"}
	const ttl = 600 * time.Millisecond
	open := func() *core.Engine { return engineAt(t, path, core.EngineOptions{LockTTL: ttl}) }
	a, b := open(), open()
	ana, bo := core.Actor{Name: "ana"}, core.Actor{Name: "bo"}
	if err := a.Hold(ctx, ref, ana, "promote --wait", false); err != nil {
		t.Fatal(err)
	}
	// Let two and a half TTLs pass: without a heartbeat the lock is long
	// expired by then.
	<-time.After(5 * ttl / 2)
	var held *core.LockHeldError
	if err := b.Hold(ctx, ref, bo, "rollback", false); !errors.As(err, &held) || held.Lock.Holder.Name != "ana" {
		t.Fatalf("bo's hold after %s = %v; want refused naming ana", 5*ttl/2, err)
	}

	_, sub := a.Subscribe()
	defer sub.Close()
	if err := b.Hold(ctx, ref, bo, "incident", true); err != nil {
		t.Fatalf("forcing the lock: %v", err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		ev, err := sub.Next(wctx)
		if err != nil {
			t.Fatalf("ana's engine never noticed it lost the lock: %v", err)
		}
		if ev.Kind == core.EvNotice && ev.Notice == "lock on api/production held by ana was lost: it expired or was taken over" {
			break
		}
	}
}

// Two consoles on one store see each other; one that closes leaves the
// other's list at its next refresh.
func TestConsolesSeeWhoElseIsWatching(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	open := func() *core.Engine { return engineAt(t, path, core.EngineOptions{WatchEvery: 50 * time.Millisecond}) }
	a, b := open(), open()
	_, sub := a.Subscribe()
	defer sub.Close()
	anaID, stopAna := a.Watch(ctx, core.Actor{Name: "ana", Host: "bastion-1"})
	defer stopAna()
	boID, stopBo := b.Watch(ctx, core.Actor{Name: "bo", Host: "laptop"})
	wait := func(what string, pred func([]core.Watcher) bool) {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		for {
			ev, err := sub.Next(wctx)
			if err != nil {
				t.Fatalf("waiting until %s: %v (snapshot: %+v)", what, err, a.Snapshot().Watchers)
			}
			if ev.Kind == core.EvWatchers && pred(ev.Watchers) {
				return
			}
		}
	}
	ids := func(ws []core.Watcher) []string {
		var out []string
		for _, w := range ws {
			out = append(out, w.ID+"="+w.Actor.Name)
		}
		return out
	}
	wait("ana's console sees bo", func(ws []core.Watcher) bool {
		return len(ws) == 2 && slices.Contains(ids(ws), anaID+"=ana") && slices.Contains(ids(ws), boID+"=bo")
	})
	stopBo()
	wait("bo's console is gone", func(ws []core.Watcher) bool {
		return slices.Equal(ids(ws), []string{anaID + "=ana"})
	})
}

// A console that does not run the providers follows what another process
// writes: its lock, its audit entries and its deployments appear, and the
// lock disappears when it is released.
func TestFollowShowsWhatAnotherProcessDoes(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	ref := core.Ref{Service: "api", Env: "production"}
	open := func() *core.Engine { return engineAt(t, path, core.EngineOptions{}) }
	actor, follower := open(), open()
	fctx, stop := context.WithCancel(ctx)
	defer stop()
	_, sub := follower.Subscribe()
	defer sub.Close()
	follower.Follow(fctx, 20*time.Millisecond)
	until := func(what string, pred func(core.Snapshot) bool) {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		for !pred(follower.Snapshot()) {
			if _, err := sub.Next(wctx); err != nil {
				t.Fatalf("the follower never saw %s: %v", what, err)
			}
		}
	}
	ana := core.Actor{Name: "ana"}
	if _, err := actor.Do(ctx, core.Command{Kind: core.CmdLock, Ref: ref, Actor: ana, Reason: "db maintenance"}); err != nil {
		t.Fatal(err)
	}
	if _, err := actor.Store().AddDeployment(ctx, core.Deployment{Ref: ref, Version: "v2", From: "v1", State: core.DeployProgressing, Weight: 25, StartedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	until("ana's lock, its audit entry and the deployment", func(s core.Snapshot) bool {
		l, locked := s.Locks[ref]
		n := len(s.Audit)
		return locked && l.Holder.Name == "ana" && l.Token == "" && n > 0 && s.Audit[n-1].Action == "lock" &&
			s.Deployments[ref].Version == "v2" && s.Deployments[ref].Weight == 25
	})
	if _, err := actor.Do(ctx, core.Command{Kind: core.CmdUnlock, Ref: ref, Actor: ana}); err != nil {
		t.Fatal(err)
	}
	until("the lock released", func(s core.Snapshot) bool {
		_, locked := s.Locks[ref]
		return !locked && s.Audit[len(s.Audit)-1].Action == "unlock"
	})
}

// What the providers report in the console that runs them (a verdict, a
// backup's freshness) reaches a console that follows the store.
func TestFollowShowsWhatTheOtherConsolesProvidersReport(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	path := filepath.Join(t.TempDir(), "state.db")
	ref := core.Ref{Service: "api", Env: "production"}
	open := func() *core.Engine { return engineAt(t, path, core.EngineOptions{}) }
	owner, follower := open(), open()
	// Reported before sharing began (the providers come up first).
	owner.Publish(core.Event{Kind: core.EvProvider, Final: true, Provider: &core.ProviderHealth{Name: "local@production", State: "healthy"}})
	owner.Share(ctx, 20*time.Millisecond)
	_, sub := follower.Subscribe()
	defer sub.Close()
	follower.Follow(ctx, 20*time.Millisecond)
	owner.Publish(core.Event{Kind: core.EvVerdict, Ref: ref, Final: true, Verdict: &core.SpikeVerdict{Ref: ref, Candidate: "v2", Baseline: "v1", Kind: core.VerdictSpike,
		Evidence: core.Evidence{CandidateCount: 14, BaselineCount: 2, RateRatio: 21}}})
	owner.Publish(core.Event{Kind: core.EvBackup, Ref: ref, Final: true, Backup: &core.Freshness{Ref: ref, State: core.FreshWarn, Facts: core.BackupFacts{Set: "uploads", Tool: "dir"}}})
	owner.Publish(core.Event{Kind: core.EvLog, Ref: ref, Log: &core.LogLine{Text: "the owner's own log line"}})
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	for {
		s := follower.Snapshot()
		v, spiked := s.Verdicts[ref]
		b, backed := s.Backups[ref]["uploads"]
		if spiked && v.Kind == core.VerdictSpike && v.Evidence.CandidateCount == 14 && backed && b.State == core.FreshWarn &&
			s.Providers["local@production"].State == "healthy" {
			break
		}
		ev, err := sub.Next(wctx)
		if err != nil {
			t.Fatalf("the follower never saw the owner's provider health, verdict and backup: %v", err)
		}
		if ev.Kind == core.EvLog && ev.Log.Text == "the owner's own log line" {
			t.Fatal("the owner's log lines were shared; they are its own")
		}
	}
}

// engineAt opens another engine on the store at path, as another process
// would: project shop, service api, environment production, plus o's
// timings.
func engineAt(t *testing.T, path string, o core.EngineOptions) *core.Engine {
	t.Helper()
	st, err := sqlitestore.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	o.Project, o.Services, o.Envs, o.Store = "shop", []string{"api"}, []string{"production"}, st
	return core.NewEngine(o)
}
