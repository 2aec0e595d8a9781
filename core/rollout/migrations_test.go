package rollout

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
)

var (
	createOrders = core.Migration{ID: "001_create_orders", Kind: core.MigrationExpand,
		Changes: []core.SchemaChange{{Kind: core.MigrationExpand, Action: "create table", Table: "orders"}}}
	addNote = core.Migration{ID: "002_add_note", Kind: core.MigrationExpand,
		Changes: []core.SchemaChange{{Kind: core.MigrationExpand, Action: "add column", Table: "orders", Column: "note"}}}
	dropComment = core.Migration{ID: "003_drop_comment", Kind: core.MigrationContract, Reason: "drop column orders.comment (line 1)",
		Changes: []core.SchemaChange{{Kind: core.MigrationContract, Action: "drop column", Table: "orders", Column: "comment"}}}
)

// migrationsWorld has v1 (creates orders), v2 (expand: adds a column) and
// v3 (contract: drops the old one), a fresh backup, and the migrations
// gate on production.
func migrationsWorld(t *testing.T) *world {
	t.Helper()
	now := time.Now()
	backups := func(core.Ref) []core.Freshness {
		return []core.Freshness{{Ref: prod, State: core.FreshOK, Facts: core.BackupFacts{Set: "orders", LastEnd: now.Add(-90 * time.Minute)}, Reason: "fresh"}}
	}
	w := newWorld(t, Env{Gates: []core.GateSpec{{Name: core.GateMigrations}}})
	w.ctl.opts.Backups = backups
	ctx := context.Background()
	for _, r := range []core.Release{
		{Service: "api", Version: "v1", Branch: "main", ArtifactDigest: "sha256:v1", BuiltAt: now.Add(-3 * time.Hour), Migrations: []core.Migration{createOrders}},
		{Service: "api", Version: "v2", Branch: "main", ArtifactDigest: "sha256:v2", BuiltAt: now.Add(-2 * time.Hour), Migrations: []core.Migration{createOrders, addNote}},
		{Service: "api", Version: "v3", Branch: "main", ArtifactDigest: "sha256:v3", BuiltAt: now.Add(-2 * time.Hour), Migrations: []core.Migration{createOrders, addNote, dropComment}},
		{Service: "api", Version: "v2b", Branch: "main", ArtifactDigest: "sha256:v2b", BuiltAt: now.Add(-2 * time.Hour), Migrations: []core.Migration{createOrders, addNote, dropComment}},
	} {
		if err := w.eng.Store().PutRelease(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

func (w *world) promoteTo(t *testing.T, version string) {
	t.Helper()
	w.do(t, core.Command{Kind: core.CmdPromote, Version: version})
	w.waitFor(t, version+" healthy", func(ev core.Event) bool {
		return ev.Kind == core.EvDeployment && ev.Deployment.Version == version && ev.Deployment.State == core.DeployHealthy
	})
	w.eng.Publish(core.Event{Kind: core.EvTarget, Ref: prod, Target: &core.TargetStatus{Ref: prod, Current: version, Healthy: true}})
}

func TestContractNeedsItsExpandOneReleaseEarlier(t *testing.T) {
	w := migrationsWorld(t)
	// v1 runs; v2b expands and contracts orders in one release.
	_, err := w.eng.Do(context.Background(), core.Command{Kind: core.CmdPromote, Ref: prod, Version: "v2b", Actor: ana})
	if !errors.Is(err, core.ErrBlocked) || !strings.Contains(err.Error(), "003_drop_comment (drop column orders.comment) ships in the same release as its expand step 002_add_note") {
		t.Fatalf("expand and contract in one release = %v", err)
	}
	// expand → migrate → contract: v2, then v3.
	w.promoteTo(t, "v2")
	res := w.do(t, core.Command{Kind: core.CmdPromote, Version: "v3"})
	if res.Outcome != "promoted" || !strings.Contains(res.Gates[0].Reason, "v3 contracts (003_drop_comment: drop column orders.comment) one release after v2 expanded the same tables") {
		t.Fatalf("contract after its expand: %+v", res)
	}
}

func TestRollbackAcrossAContractNeedsAPersonWithAReason(t *testing.T) {
	w := migrationsWorld(t)
	w.promoteTo(t, "v2")
	w.promoteTo(t, "v3")
	ctx := context.Background()

	// What the screen shows before anyone presses a key: rollback is
	// refused as the engine refuses it, crossing the contract, unless a
	// person overrides the migrations gate (which the CLI takes).
	w.waitFor(t, "the rollback refusal", func(ev core.Event) bool {
		if ev.Kind != core.EvSituation || ev.Situation.Ref != prod {
			return false
		}
		p := ev.Situation.Command(core.CmdRollback)
		return p.To == "v2" && !p.Allowed && slices.Contains(p.Overridable, core.GateMigrations) &&
			strings.Contains(p.Why, "rolling back to v2 crosses contract migration 003_drop_comment: drop column orders.comment")
	})

	// A plain rollback to v2 is refused and says why.
	_, err := w.eng.Do(ctx, core.Command{Kind: core.CmdRollback, Ref: prod, Version: "v2", Actor: ana})
	if !errors.Is(err, core.ErrBlocked) || !strings.Contains(err.Error(), "rolling back to v2 crosses contract migration 003_drop_comment: drop column orders.comment") {
		t.Fatalf("rollback across a contract = %v", err)
	}
	if calls := w.target.Calls(); slices.Contains(calls, "rollback v2") {
		t.Fatalf("a refused rollback called the target: %v", calls)
	}
	// Automation may not override it.
	_, err = w.eng.Do(ctx, core.Command{Kind: core.CmdRollback, Ref: prod, Version: "v2", Actor: core.Actor{Name: "ci", Automation: true},
		Overrides: []string{core.GateMigrations}, Reason: "pipeline said so"})
	if !errors.Is(err, core.ErrBlocked) {
		t.Fatalf("automation overriding a contract rollback = %v", err)
	}
	// A person may, with a reason; the audit keeps both.
	res := w.do(t, core.Command{Kind: core.CmdRollback, Version: "v2", Overrides: []string{core.GateMigrations}, Reason: "v2 never read comment; checked"})
	if res.Outcome != "rolled back" {
		t.Fatalf("overridden rollback: %+v", res)
	}
	entries, _ := w.eng.Store().Audit(ctx, 0, 100)
	var blocked, done int
	for _, e := range entries {
		if e.Action != "rollback" {
			continue
		}
		switch {
		case e.Outcome == "blocked":
			blocked++
		case e.Outcome == "rolled back to v2":
			done++
			if !slices.Equal(e.Overrides, []string{"migrations"}) || e.Reason != "v2 never read comment; checked" || len(e.Gates) != 1 || !e.Gates[0].Overridden {
				t.Fatalf("audited rollback = %+v", e)
			}
		}
	}
	if blocked != 2 || done != 1 {
		t.Fatalf("audit has %d blocked and %d done rollbacks, want 2 and 1", blocked, done)
	}
}

func TestRollbackAcrossExpandOnlyIsFree(t *testing.T) {
	w := migrationsWorld(t)
	w.promoteTo(t, "v2")
	res := w.do(t, core.Command{Kind: core.CmdRollback, Version: "v1"})
	if res.Outcome != "rolled back" || !strings.Contains(res.Gates[0].Reason, "v2's migrations over v1 are expand-only (002_add_note): v1 runs on the schema they leave; rollback is free") {
		t.Fatalf("rollback across an expand: %+v", res)
	}
}

// Before a promote a person is shown every gate the engine weighs, the
// migrations gate included: the situation carries its verdict on the
// candidate (the console's and the CLI's confirmation list
// Situation.Gates), and promote is refused naming it, overridable.
func TestPromoteSituationStatesTheMigrationsGate(t *testing.T) {
	w := migrationsWorld(t)
	w.greenBuild("v2b")
	s := w.situationOf(t, "a promote of v2b is weighed", func(s core.Situation) bool { return s.Command(core.CmdPromote).To == "v2b" })
	var gate *core.GateResult
	for i, g := range s.Gates {
		if g.Gate == core.GateMigrations {
			gate = &s.Gates[i]
		}
	}
	want := "003_drop_comment (drop column orders.comment) ships in the same release as its expand step 002_add_note"
	if gate == nil || gate.Status != core.GateFail || !strings.Contains(gate.Reason, want) {
		t.Fatalf("the situation's gates = %+v; want the migrations gate failing: %s", s.Gates, want)
	}
	if p := s.Command(core.CmdPromote); p.Allowed || !slices.Contains(p.Overridable, core.GateMigrations) || !strings.Contains(p.Why, "migrations: ") {
		t.Fatalf("promote of v2b = %+v; want refused by the migrations gate, overridable", p)
	}
}
