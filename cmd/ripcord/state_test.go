package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/core/sqlitestore"
)

func stateConfig(t *testing.T) (cfg, db string) {
	t.Helper()
	dir := t.TempDir()
	cfg = writeConfig(t, dir, "")
	return cfg, filepath.Join(dir, ".ripcord", "state.db")
}

func as(t *testing.T, who string) {
	t.Helper()
	t.Setenv("RIPCORD_ACTOR", who)
}

func TestLockStatusUnlockAndAuditFromTheCLI(t *testing.T) {
	cfg, _ := stateConfig(t)
	as(t, "ana")
	if code, _, errs := ripcord(t, "lock", "api", "--env", "production", "--reason", "incident 42", "-c", cfg); code != exitOK {
		t.Fatalf("lock: exit %d: %s", code, errs)
	}
	as(t, "bo")
	code, _, errs := ripcord(t, "lock", "api", "--env", "production", "-c", cfg)
	if code != exitLocked || !strings.Contains(errs, "locked by ana") || !strings.Contains(errs, "incident 42") {
		t.Fatalf("bo's lock: exit %d, stderr %q; want exit 4 naming ana and her reason", code, errs)
	}
	code, out, _ := ripcord(t, "status", "--json", "-c", cfg)
	var st struct {
		Envs []struct {
			Env  string `json:"env"`
			Lock *struct {
				Holder struct{ Name string } `json:"holder"`
				Token  string                `json:"token"`
			} `json:"lock"`
		} `json:"environments"`
	}
	if code != exitOK || json.Unmarshal([]byte(out), &st) != nil || len(st.Envs) != 1 || st.Envs[0].Lock == nil || st.Envs[0].Lock.Holder.Name != "ana" {
		t.Fatalf("status: exit %d, %s", code, out)
	}
	if st.Envs[0].Lock.Token != "" {
		t.Fatal("status printed the lock token")
	}
	if code, _, _ := ripcord(t, "unlock", "api", "--env", "production", "-c", cfg); code != exitLocked {
		t.Fatalf("bo unlocking ana's lock without --force exited %d, want 4", code)
	}
	if code, _, errs := ripcord(t, "unlock", "api", "--env", "production", "--force", "--reason", "ana is off shift", "-c", cfg); code != exitOK {
		t.Fatalf("forced unlock: exit %d: %s", code, errs)
	}
	code, out, _ = ripcord(t, "audit", "--json", "-c", cfg)
	var export struct {
		Entries []struct {
			Action string
			Actor  struct{ Name string }
			From   string
		}
	}
	err := json.Unmarshal([]byte(out), &export)
	entries := export.Entries
	if code != exitOK || err != nil {
		t.Fatalf("audit: exit %d, %s", code, out)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Action+":"+e.Actor.Name)
	}
	if strings.Join(got, ",") != "lock:ana,unlock-force:bo" {
		t.Fatalf("audit = %v, want ana's lock then bo's forced unlock", got)
	}
	if code, out, _ := ripcord(t, "audit", "verify", "-c", cfg); code != exitOK || !strings.Contains(out, "intact: 2 entries") {
		t.Fatalf("audit verify: exit %d, %q", code, out)
	}
}

func TestAuditVerifyDetectsAnEditedEntry(t *testing.T) {
	cfg, dbPath := stateConfig(t)
	as(t, "ana")
	for _, cmd := range [][]string{{"lock"}, {"unlock"}, {"lock"}} {
		if code, _, errs := ripcord(t, cmd[0], "api", "--env", "production", "-c", cfg); code != exitOK {
			t.Fatalf("%s: %s", cmd[0], errs)
		}
	}
	// Someone with shell access edits the database behind Ripcord's back.
	db, err := sql.Open("sqlite", dbPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`DROP TRIGGER audit_no_update`,
		`UPDATE audit SET entry = replace(entry, '"ana"', '"mallory"') WHERE seq = 2`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()
	code, _, errs := ripcord(t, "audit", "verify", "-c", cfg)
	if code != exitFailed || !strings.Contains(errs, "audit chain broken at entry 2") {
		t.Fatalf("verify after tampering: exit %d, stderr %q", code, errs)
	}
}

func TestHistoryNeedsEnv(t *testing.T) {
	cfg, db := stateConfig(t)
	if code, _, errs := ripcord(t, "history", "api", "-c", cfg); code != exitUsage || !strings.Contains(errs, `"env"`) {
		t.Fatalf("history without --env: exit %d, %q", code, errs)
	}
	createStore(t, db)
	if code, out, errs := ripcord(t, "history", "api", "--env", "production", "-c", cfg); code != exitOK || !strings.Contains(out, "VERSION") {
		t.Fatalf("history: exit %d, %q %q", code, out, errs)
	}
}

// status names the consoles open on the project, and not one that has
// gone quiet.
func TestStatusNamesWhoIsWatching(t *testing.T) {
	cfg, db := stateConfig(t)
	st, err := sqlitestore.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, w := range []core.Watcher{
		{ID: "w1", Actor: core.Actor{Name: "ana", Host: "bastion-1"}, Since: now.Add(-20 * time.Minute), SeenAt: now},
		{ID: "w2", Actor: core.Actor{Name: "bo", Host: "laptop"}, Since: now.Add(-3 * time.Hour), SeenAt: now.Add(-2 * time.Hour)},
	} {
		if err := st.PutWatcher(context.Background(), w); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	code, out, errs := ripcord(t, "status", "-c", cfg)
	if code != exitOK || !strings.Contains(out, "watching: ana@bastion-1 since ") || strings.Contains(out, "bo@laptop") {
		t.Fatalf("status: exit %d, stderr %q, stdout:\n%s\nwant ana watching and not bo, who went quiet", code, errs, out)
	}
}

func createStore(t *testing.T, db string) {
	t.Helper()
	st, err := sqlitestore.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
}

// The read-only commands never start a server and never create state: on
// a config nothing has run on they say which state file is missing.
func TestReadOnlyCommandsNeitherStartAServerNorCreateState(t *testing.T) {
	dir := t.TempDir()
	cfg, db := filepath.Join(dir, "ripcord.yaml"), filepath.Join(dir, ".ripcord", "state.db")
	body := "project: shop\nservices:\n  - name: api\nenvironments:\n  - name: production\n    target: { provider: local, root: envs/production, run: \"./api\", health: \"tcp://127.0.0.1:1\" }\n"
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"status"}, {"history", "api", "--env", "production"}, {"audit"}, {"audit", "verify"}} {
		code, _, errs := ripcord(t, append(args, "-c", cfg)...)
		if code != exitFailed || !strings.Contains(errs, "no state file at "+db) {
			t.Fatalf("%v on a fresh config: exit %d, stderr %q; want 1 naming %s", args, code, errs, db)
		}
	}
	if _, err := os.Stat(filepath.Dir(db)); err == nil {
		t.Fatalf("a read-only command created %s", filepath.Dir(db))
	}
	if code, _, _ := ripcord(t, "server", "status", "-c", cfg); code != exitFailed {
		t.Fatal("a read-only command started a server")
	}
}
