package main

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/core/sqlitestore"
)

// auditWorld is a project whose audit log has n entries (locks and
// unlocks by ana).
func auditWorld(t *testing.T, n int) (cfg, db string) {
	t.Helper()
	cfg, db = stateConfig(t)
	as(t, "ana")
	for i := range n {
		kind := "lock"
		if i%2 == 1 {
			kind = "unlock"
		}
		if code, _, errs := ripcord(t, kind, "api", "--env", "production", "-c", cfg); code != exitOK {
			t.Fatalf("%s: %s", kind, errs)
		}
	}
	return cfg, db
}

// tamper runs statements on the state file as someone with shell access
// would, with the append-only triggers dropped first.
func tamper(t *testing.T, db string, stmts ...string) {
	t.Helper()
	raw, err := sql.Open("sqlite", db)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	for _, q := range append([]string{`DROP TRIGGER IF EXISTS audit_no_update`, `DROP TRIGGER IF EXISTS audit_no_delete`}, stmts...) {
		if _, err := raw.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

func verify(t *testing.T, cfg string, args ...string) (int, string, string) {
	t.Helper()
	return ripcord(t, append([]string{"audit", "verify", "-c", cfg}, args...)...)
}

// Deleting the log's last entry, or its last 50, is found: the head file
// beside the state (and a head kept elsewhere) say how far it went.
func TestAuditVerifyFindsATruncatedLog(t *testing.T) {
	cfg, db := auditWorld(t, 60)
	code, out, errs := verify(t, cfg)
	if code != exitOK || !strings.Contains(out, "intact: 60 entries") || !strings.Contains(out, "signed by audit key") {
		t.Fatalf("verify of an untouched log: exit %d\n%s%s", code, out, errs)
	}
	kept := strings.TrimSpace(out[strings.LastIndex(out, "head ")+len("head "):])

	tamper(t, db, `DELETE FROM audit WHERE seq = 60`)
	code, _, errs = verify(t, cfg)
	if code != exitFailed || !strings.Contains(errs, "the log ends at entry 59") || !strings.Contains(errs, "entries 60–60 were removed") {
		t.Fatalf("verify after the last entry was deleted: exit %d, %q", code, errs)
	}
	tamper(t, db, `DELETE FROM audit WHERE seq > 10`)
	code, _, errs = verify(t, cfg)
	if code != exitFailed || !strings.Contains(errs, "entries 11–60 were removed") {
		t.Fatalf("verify after the last 50 entries were deleted: exit %d, %q", code, errs)
	}
	// Whoever deleted them rewrites the head file too; the head a person
	// kept elsewhere still tells.
	rows := mustQuery(t, db, `SELECT hash FROM audit WHERE seq = 10`)
	if err := os.WriteFile(sqlitestore.AuditHeadPath(db), []byte("10:"+rows+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := verify(t, cfg); code != exitOK {
		t.Fatalf("with the head file rewritten too, only a kept head can tell: exit %d\n%s%s", code, out, errs)
	}
	code, _, errs = verify(t, cfg, "--head", kept)
	if code != exitFailed || !strings.Contains(errs, "entries 11–60 were removed") || !strings.Contains(errs, "the head given") {
		t.Fatalf("verify --head %s: exit %d, %q", kept, code, errs)
	}
}

// An entry edited and the chain recomputed after it — so every hash
// checks out — is found by its signature, and named.
func TestAuditVerifyFindsARechainedEdit(t *testing.T) {
	cfg, db := auditWorld(t, 8)
	st, err := sqlitestore.Open(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := st.Audit(t.Context(), 0, 0)
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	// Entry 3 now says mallory did it; 3..8 are re-hashed (and keep their
	// old signatures: the key is not in the database).
	var stmts []string
	prev := entries[1].Hash
	for i := 2; i < len(entries); i++ {
		e := entries[i]
		if e.Seq == 3 {
			e.Actor.Name = "mallory"
		}
		e.PrevHash = prev
		e.Hash = core.HashAudit(e)
		prev = e.Hash
		b, _ := json.Marshal(e)
		stmts = append(stmts, fmt.Sprintf(`UPDATE audit SET actor = %q, prev_hash = %q, hash = %q, entry = '%s' WHERE seq = %d`,
			e.Actor.Name, e.PrevHash, e.Hash, strings.ReplaceAll(string(b), "'", "''"), e.Seq))
	}
	tamper(t, db, stmts...)
	code, _, errs := verify(t, cfg)
	if code != exitFailed || !strings.Contains(errs, "audit chain broken at entry 3: its signature does not match its content") {
		t.Fatalf("verify after a re-chained edit: exit %d, %q", code, errs)
	}
}

// The columns the audit table keeps for lookups (who, what, where) are
// checked against the entry each row stores.
func TestAuditVerifyFindsAnEditedIndexColumn(t *testing.T) {
	cfg, db := auditWorld(t, 3)
	tamper(t, db, `UPDATE audit SET actor = 'mallory' WHERE seq = 2`)
	code, _, errs := verify(t, cfg)
	if code != exitFailed || !strings.Contains(errs, `entry 2: its index columns were edited (actor column says "mallory", the entry "ana")`) {
		t.Fatalf("verify after an index column edit: exit %d, %q", code, errs)
	}
}

// The export carries the head, and the public key is printed for a
// person to keep; a key replaced beside the state is caught with it.
func TestAuditExportCarriesTheHeadAndThePublicKeyIsPrinted(t *testing.T) {
	cfg, db := auditWorld(t, 2)
	code, out, _ := ripcord(t, "audit", "--json", "-c", cfg)
	var export struct {
		Head    core.AuditHead `json:"head"`
		Entries []auditJSON    `json:"entries"`
	}
	if code != exitOK || json.Unmarshal([]byte(out), &export) != nil || export.Head.Count != 2 || export.Head.Hash != export.Entries[1].Hash || export.Entries[1].Sig == "" {
		t.Fatalf("audit --json: exit %d\n%s", code, out)
	}
	code, pub, errs := ripcord(t, "audit", "pubkey", "-c", cfg)
	if code != exitOK || !strings.HasPrefix(pub, "ed25519:") {
		t.Fatalf("audit pubkey: exit %d, %q %q", code, pub, errs)
	}
	if code, out, errs := verify(t, cfg, "--pubkey", strings.TrimSpace(pub)); code != exitOK {
		t.Fatalf("verify --pubkey: exit %d\n%s%s", code, out, errs)
	}
	// Someone replaces the key (to sign a forged log with it), and the
	// server restarts: the running one still signs with the key it read.
	if err := os.Remove(sqlitestore.AuditKeyPath(db)); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := ripcord(t, "server", "stop", "-c", cfg); code != exitOK {
		t.Fatalf("server stop: exit %d\n%s%s", code, out, errs)
	}
	if code, _, errs := ripcord(t, "lock", "api", "--env", "production", "-c", cfg); code != exitOK {
		t.Fatal(errs)
	}
	code, _, errs = verify(t, cfg, "--pubkey", strings.TrimSpace(pub))
	if code != exitFailed || !strings.Contains(errs, "is not the one given") {
		t.Fatalf("verify against the kept key after it was replaced: exit %d, %q", code, errs)
	}
}

func mustQuery(t *testing.T, db, q string) string {
	t.Helper()
	raw, err := sql.Open("sqlite", db)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var s string
	if err := raw.QueryRow(q).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}
