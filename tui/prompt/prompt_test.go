package prompt

import (
	"strings"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
)

var (
	now  = time.Date(2026, 12, 5, 2, 0, 0, 0, time.UTC)
	prod = core.Ref{Service: "api", Env: "production"}
	ana  = core.Actor{Name: "ana", Host: "bastion-1"}
)

// snapshot: v1.5.0 stopped at 25% in production after a failed analysis,
// as the engine's situation says, with two backup sets and two consoles.
func snapshot() core.Snapshot {
	s := core.NewSnapshot("shop", []string{"api"}, []string{"staging", "production"})
	s.Situations[prod] = core.Situation{Ref: prod, Phase: core.PhaseDegraded, Stable: "v1.4.2", Candidate: "v1.5.0", Weight: 25, Acting: true,
		Gates: []core.GateResult{
			{Gate: "pipeline", Status: core.GatePass, Reason: "pipeline for v1.5.0 is green"},
			{Gate: "errors", Status: core.GateFail, Reason: "error spike in production"},
		},
		Commands: []core.Possible{
			{Kind: core.CmdRollback, Allowed: true, From: "v1.5.0", To: "v1.4.2", Why: "v1.4.2 serves all of production at once (no steps, no analysis)", Note: "v1.5.0 will be held"},
			{Kind: core.CmdAbort, Allowed: true, From: "v1.5.0", To: "v1.4.2", Why: "traffic goes back to v1.4.2; v1.5.0 is kept for inspection"},
			{Kind: core.CmdPromote, Why: "blocked by errors: error spike in production", From: "v1.4.2", To: "v1.5.0"},
		}}
	s.Backups[prod] = map[string]core.Freshness{
		"orders":  {Ref: prod, State: core.FreshOK, Age: 20 * time.Minute, Facts: core.BackupFacts{Set: "orders"}},
		"uploads": {Ref: prod, State: core.FreshWarn, Age: 30 * time.Hour, Facts: core.BackupFacts{Set: "uploads"}},
	}
	s.Watchers = []core.Watcher{
		{ID: "me", Actor: ana, Since: now.Add(-time.Hour)},
		{ID: "bo", Actor: core.Actor{Name: "bo", Host: "laptop"}, Since: now.Add(-20 * time.Minute)},
	}
	return s
}

// A rollback's statement names from → to, what the engine will do, the
// migrations it crosses, the backups, what will be held, the lock, the
// asker and who else is watching.
func TestRollbackStatesEveryFact(t *testing.T) {
	stable := core.Release{Service: "api", Version: "v1.4.2"}
	rel := core.Release{Service: "api", Version: "v1.5.0", Migrations: []core.Migration{{ID: "0042_add_owner", Kind: core.MigrationExpand}}}
	crossing := core.NewRollbackCrossing(prod, "v1.5.0", &rel, "v1.4.2", &stable, now.Add(-time.Hour), nil)
	st := For(Input{Cmd: core.Command{Kind: core.CmdRollback, Ref: prod, Version: "v1.4.2", Actor: ana}, Snapshot: snapshot(), Crossing: &crossing, Self: "me", Now: now})
	got := st.Plain()
	if st.Refused != "" {
		t.Fatalf("refused: %s", st.Refused)
	}
	for _, want := range []string{
		"rollback api in production: v1.5.0 → v1.4.2\n",
		" v1.4.2 serves all of production at once (no steps, no analysis)\n",
		" migrations v1.5.0 carries over v1.4.2 (they stay applied):\n   ✓ 0042_add_owner expand — safe to keep\n",
		" newest backups: orders 20m ago · uploads 30h ago\n",
		" v1.5.0 will be held: automation will not promote it again until a person clears it\n",
		" lock: free\n", " as ana@bastion-1\n", " also watching: bo@laptop (20m)\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("statement lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "ana@bastion-1 (1h)") {
		t.Error("the asker is named as watching")
	}
}

// A rollback across a contract migration is refused as the engine would
// refuse it, saying how a person goes ahead; with the override the CLI
// takes, it is not.
func TestRollbackAcrossAContractIsRefused(t *testing.T) {
	stable := core.Release{Service: "api", Version: "v1.4.2"}
	rel := core.Release{Service: "api", Version: "v1.5.0", Migrations: []core.Migration{{ID: "0043_drop_cart", Kind: core.MigrationContract}}}
	crossing := core.NewRollbackCrossing(prod, "v1.5.0", &rel, "v1.4.2", &stable, now.Add(-time.Hour), nil)
	cmd := core.Command{Kind: core.CmdRollback, Ref: prod, Version: "v1.4.2", Actor: ana}
	st := For(Input{Cmd: cmd, Snapshot: snapshot(), Crossing: &crossing, Now: now})
	if !strings.Contains(st.Refused, "crosses contract migration") || !strings.Contains(st.Refused, "--override migrations") {
		t.Fatalf("refused = %q", st.Refused)
	}
	if got := st.Plain(); !strings.Contains(got, " refused: rolling back to v1.4.2 crosses contract migration") || !strings.Contains(got, "   ✗ 0043_drop_cart contract") {
		t.Fatalf("statement:\n%s", got)
	}
	cmd.Overrides, cmd.Reason = []string{core.GateMigrations}, "restoring from backup"
	if st := For(Input{Cmd: cmd, Snapshot: snapshot(), Crossing: &crossing, Now: now}); st.Refused != "" || !strings.Contains(st.Plain(), "! migrations overridden") {
		t.Fatalf("with the override: refused %q\n%s", st.Refused, st.Plain())
	}
}

// A promote's statement lists the gates with their results, as the
// engine evaluated them; a refused command says so instead of what it
// would do.
func TestPromoteListsTheGates(t *testing.T) {
	snap := snapshot()
	sit := snap.Situations[prod]
	sit.Phase = core.PhaseIdle
	snap.Situations[prod] = sit
	got := For(Input{Cmd: core.Command{Kind: core.CmdPromote, Ref: prod, Actor: ana}, Snapshot: snap, Now: now}).Plain()
	for _, want := range []string{"promote api in production: v1.4.2 → v1.5.0", "refused: blocked by errors: error spike in production",
		"gates, as the engine evaluates them now:", "   ✓ pipeline pipeline for v1.5.0 is green", "   ✗ errors error spike in production"} {
		if !strings.Contains(got, want) {
			t.Errorf("statement lacks %q:\n%s", want, got)
		}
	}
}

// The lock line names the holder, or says it is the asker's own.
func TestLockLine(t *testing.T) {
	snap := snapshot()
	snap.Locks[prod] = core.Lock{Ref: prod, Kind: core.LockPerson, Holder: core.Actor{Name: "bo", Host: "laptop"}, Reason: "db migration", Since: now.Add(-3 * time.Minute)}
	if got := For(Input{Cmd: core.Command{Kind: core.CmdAbort, Ref: prod, Actor: ana}, Snapshot: snap, Now: now}).Plain(); !strings.Contains(got, " lock: held by bo@laptop for 3m (db migration)\n") {
		t.Errorf("statement:\n%s", got)
	}
	snap.Locks[prod] = core.Lock{Ref: prod, Holder: ana, Since: now}
	if got := For(Input{Cmd: core.Command{Kind: core.CmdAbort, Ref: prod, Actor: ana}, Snapshot: snap, Now: now}).Plain(); !strings.Contains(got, " lock: yours for 0s\n") {
		t.Errorf("statement:\n%s", got)
	}
}
