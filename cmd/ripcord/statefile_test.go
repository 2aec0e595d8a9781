package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/core/config"
	"github.com/ripcordhq/ripcord/core/sqlitestore"
)

// A mistyped store.path or a 0-byte state file is not a project without
// history: commands that read state say which file is missing or empty and
// fail, instead of showing an empty status and an "intact" audit log.
func TestMissingOrEmptyStateIsAnErrorNamingThePath(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "ripcord.yaml")
	body := `project: shop
services:
  - name: api
environments:
  - name: production
    target: { provider: local, root: envs/production, run: "./api", health: "tcp://127.0.0.1:1" }
store: { path: .ripcord/stat.db }
`
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	typo := filepath.Join(dir, ".ripcord", "stat.db")
	for _, args := range [][]string{{"status"}, {"audit", "verify"}, {"audit"}, {"history", "api", "--env", "production"}, {"lock", "api", "--env", "production"}} {
		code, out, errs := ripcord(t, append(args, "-c", cfg)...)
		if code != exitFailed || !strings.Contains(errs, "no state file at "+typo) || !strings.Contains(errs, "store.path in "+cfg) {
			t.Fatalf("%v on a mistyped store.path: exit %d\n%s%s\nwant exit %d naming %s", args, code, out, errs, exitFailed, typo)
		}
	}
	if _, err := os.Stat(typo); !os.IsNotExist(err) {
		t.Fatalf("a read command created %s (%v)", typo, err)
	}

	if err := os.MkdirAll(filepath.Dir(typo), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(typo, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errs := ripcord(t, "audit", "verify", "-c", cfg)
	if code != exitFailed || !strings.Contains(errs, "state file "+typo+" is empty (0 bytes)") {
		t.Fatalf("audit verify on a 0-byte state file: exit %d, %q", code, errs)
	}

	// The console starts a project's state by design, and says so.
	f, err := config.Load(cfg, config.Options{Providers: config.BuiltinProviders})
	if err != nil {
		t.Fatal(err)
	}
	w, err := openEngine(context.Background(), f, worldOptions{CreateState: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if notices := w.eng.Snapshot().Notices; !slices.Contains(notices, "created new state at "+typo) {
		t.Fatalf("notices = %q; want the new state's path", notices)
	}
}

// A state file with a damaged page that the command at hand does not even
// read is refused before anything is written to it; `state check` lists
// the damage.
func TestADamagedStateFileIsRefusedAndLeftUntouched(t *testing.T) {
	cfg, db := stateConfig(t)
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	var counts []core.ErrorCount
	for i := range 2000 {
		counts = append(counts, core.ErrorCount{Project: "shop", Ref: core.Ref{Service: "api", Env: "production"}, Release: "v1", Level: "error",
			Fingerprint: fmt.Sprintf("fp-%04d", i), Title: "TypeError: cart is undefined", Bucket: time.Unix(1_700_000_000, 0), Count: 1})
	}
	if err := st.PutErrorCounts(ctx, counts); err != nil {
		t.Fatal(err)
	}
	st.Close()
	if code, out, errs := ripcord(t, "state", "check", "-c", cfg); code != exitOK || !strings.Contains(out, "intact") {
		t.Fatalf("state check of a sound file: exit %d\n%s%s", code, out, errs)
	}

	// A bad sector in the error counts' b-tree: lock never reads it.
	raw, err := sql.Open("sqlite", "file:"+db+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	var root, pageSize int64
	if err := raw.QueryRow(`SELECT rootpage FROM sqlite_master WHERE name = 'error_counts'`).Scan(&root); err != nil {
		t.Fatal(err)
	}
	if err := raw.QueryRow(`PRAGMA page_size`).Scan(&pageSize); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	fh, err := os.OpenFile(db, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fh.WriteAt(bytes.Repeat([]byte{0xA5}, 24), (root-1)*pageSize); err != nil {
		t.Fatal(err)
	}
	fh.Close()
	before := sum(t, db)

	as(t, "ana")
	code, _, errs := ripcord(t, "lock", "api", "--env", "production", "-c", cfg)
	if code != exitFailed || !strings.Contains(errs, "state file "+db+" is damaged") || !strings.Contains(errs, "nothing was written to it") {
		t.Fatalf("lock on a damaged state file: exit %d, %q", code, errs)
	}
	if !bytes.Equal(before, sum(t, db)) {
		t.Fatal("the refused command changed the state file")
	}
	code, out, errs := ripcord(t, "state", "check", "-c", cfg)
	if code != exitFailed || !strings.Contains(out, "page") || !strings.Contains(errs, "is damaged") {
		t.Fatalf("state check of the damaged file: exit %d\n%s%s", code, out, errs)
	}
}

func sum(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return s[:]
}

// `ripcord serve` starts a project's state by design; on a missing or
// 0-byte file it says so in its own log, where whoever runs it (by hand
// or under systemd) reads, not only in a console's notices.
func TestServeSaysItCreatedNewState(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "")
	state := filepath.Join(dir, ".ripcord", "state.db")
	if err := os.Truncate(state, 0); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	srv := exec.Command(self, "serve", "-c", cfg)
	srv.Stdout, srv.Stderr = &out, &out
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- srv.Wait() }()
	t.Cleanup(func() {
		_ = srv.Process.Kill()
		<-exited
	})
	waitServer(t, cfg)
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, logs, _ := ripcord(t, "server", "logs", "-c", cfg)
		if code == exitOK && strings.Contains(logs, "created new state at "+state) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("server logs: exit %d\n%s\nwant the new state's path", code, logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, out, errs := ripcord(t, "server", "stop", "-c", cfg); code != exitOK {
		t.Fatalf("server stop: exit %d\n%s%s", code, out, errs)
	}
}
