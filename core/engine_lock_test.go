package core_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
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

func TestExpiredLockIsTakenOverWithoutForce(t *testing.T) {
	now := time.Now()
	e := engineWithStore(t, func() time.Time { return now })
	ctx := context.Background()
	ref := core.Ref{Service: "api", Env: "production"}
	if _, err := e.Do(ctx, core.Command{Kind: core.CmdLock, Ref: ref, Actor: core.Actor{Name: "ana"}}); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Minute) // ana's console died: no heartbeat
	if _, err := e.Do(ctx, core.Command{Kind: core.CmdLock, Ref: ref, Actor: core.Actor{Name: "bo"}}); err != nil {
		t.Fatalf("taking over an expired lock: %v", err)
	}
}
