package sqlitestore

import (
	"database/sql"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
)

// A state file from before locks had kinds keeps its lock: it becomes an
// operation's lock, with its holder, reason, times and token.
func TestLocksOfAnOlderStateFileSurviveTheMigration(t *testing.T) {
	ctx := testContext(t)
	path := filepath.Join(t.TempDir(), "state.db")
	db, err := sql.Open("sqlite", dsn(path, ""))
	if err != nil {
		t.Fatal(err)
	}
	since := time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)
	for _, q := range append(append([]string{}, migrations[:3]...),
		"PRAGMA user_version = 3",
		`INSERT INTO locks (service, env, holder, reason, since, expires_at, token) VALUES ('api', 'production', '{"name":"ana"}', 'rollback', `+
			itoa(since.UnixMicro())+`, `+itoa(since.Add(time.Minute).UnixMicro())+`, 'tok-1')`) {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%.40s: %v", q, err)
		}
	}
	db.Close()

	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	locks, err := s.Locks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := core.Lock{Ref: core.Ref{Service: "api", Env: "production"}, Kind: core.LockOperation, Holder: core.Actor{Name: "ana"}, Reason: "rollback",
		Since: since, ExpiresAt: since.Add(time.Minute), Token: "tok-1"}
	if len(locks) != 1 || locks[0] != want {
		t.Fatalf("locks after the migration = %+v, want %+v", locks, want)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
