package migrations

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/plugins/internal/gitfacts/gittest"
)

// A CI service's commits are read in the local clone, as each commit
// holds them (not as the working tree does now); a commit the clone lacks
// leaves them unknown, saying how to get it, and is read once fetched.
func TestAtCommitReadsTheCloneAtEachCommit(t *testing.T) {
	origin := gittest.New(t)
	first := origin.Commit("db/migrations/0001_orders.up.sql", "CREATE TABLE orders (id bigint PRIMARY KEY);\n", "orders")
	clone := gittest.New(t)
	clone.Git("pull", "-q", origin.Dir, "main")
	second := origin.Commit("db/migrations/0002_drop_note.up.sql", "ALTER TABLE orders DROP COLUMN note;\n", "drop note")

	a := &AtCommit{Dir: filepath.Join(clone.Dir, "db", "migrations")}
	list, unknown := a.Read(first)
	if unknown != "" || len(list) != 1 || list[0].ID != "0001_orders" || list[0].Kind != core.MigrationExpand {
		t.Fatalf("at %s: %+v, unknown %q; want 0001_orders, expand", first[:12], list, unknown)
	}
	list, unknown = a.Read(second)
	if len(list) != 0 || !strings.Contains(unknown, "commit "+second[:12]+" is not in the repository at "+a.Dir) || !strings.Contains(unknown, "git fetch") {
		t.Fatalf("a commit the clone lacks: %+v, unknown %q; want it named, with how to get it", list, unknown)
	}
	clone.Git("pull", "-q", origin.Dir, "main")
	a.asked = nil // the retry interval, passed
	list, unknown = a.Read(second)
	if unknown != "" || len(list) != 2 || list[1].Kind != core.MigrationContract {
		t.Fatalf("once fetched: %+v, unknown %q; want 0002 as contract", list, unknown)
	}
	// The first commit is still read as it stood, without 0002.
	if list, _ := a.Read(first); len(list) != 1 {
		t.Fatalf("at %s after the fetch: %d migrations, want 1", first[:12], len(list))
	}
	if list, unknown := (&AtCommit{}).Read(first); list != nil || unknown != "" {
		t.Fatalf("without a directory: %+v, %q; want nothing read and nothing said", list, unknown)
	}
}
