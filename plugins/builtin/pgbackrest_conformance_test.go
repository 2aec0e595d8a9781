package builtin

import (
	"time"

	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/ripcordhq/ripcord/plugins/internal/toolrun/tooltest"
	"github.com/ripcordhq/ripcord/plugins/sdk/conformance"
)

// pgBin is where Debian's postgresql package puts PostgreSQL 15.
const pgBin = "/usr/lib/postgresql/15/bin"

// pgCluster is a real PostgreSQL 15 archiving into a real pgBackRest
// repository, all under one directory owned by the postgres user. It is
// the fixture of plugins/pgbackrest's tests, cut to what the conformance
// kit needs.
type pgCluster struct {
	dir, conf string
	asPG      []string // runs a command as postgres (we may be root)
}

func startPGCluster(t *testing.T) pgCluster {
	t.Helper()
	tooltest.Require(t, "pgbackrest", "pgbackrest")
	tooltest.Require(t, "runuser", "util-linux")
	if _, err := os.Stat(filepath.Join(pgBin, "initdb")); err != nil {
		if os.Getenv("RIPCORD_REQUIRE_TOOLS") == "1" {
			t.Fatalf("PostgreSQL 15 not found at %s and RIPCORD_REQUIRE_TOOLS=1: install the Debian package postgresql", pgBin)
		}
		t.Skipf("PostgreSQL 15 not found at %s: install the Debian package postgresql to run this test", pgBin)
	}
	pg, err := user.Lookup("postgres")
	if err != nil {
		t.Fatalf("no postgres user (the Debian package postgresql creates it): %v", err)
	}
	uid, _ := strconv.Atoi(pg.Uid)
	gid, _ := strconv.Atoi(pg.Gid)
	// t.TempDir is root-only; PostgreSQL refuses to run as root.
	dir, err := os.MkdirTemp("", "ripcord-pgbackrest-conformance-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	c := pgCluster{dir: dir, conf: filepath.Join(dir, "pgbackrest.conf")}
	if os.Geteuid() == 0 {
		c.asPG = []string{"runuser", "-u", "postgres", "--"}
	}
	c.run(t, filepath.Join(pgBin, "initdb"), "-D", filepath.Join(dir, "pg"), "-A", "trust", "-U", "postgres", "--no-sync")
	port := freePort(t)
	conf := fmt.Sprintf(`[global]
repo1-path=%[1]s/repo
lock-path=%[1]s/lock
log-path=%[1]s/log
spool-path=%[1]s/spool
log-level-file=off
start-fast=y
compress-type=none

[demo]
pg1-path=%[1]s/pg
pg1-port=%[2]d
pg1-socket-path=%[1]s
`, dir, port)
	if err := os.WriteFile(c.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	pgconf := fmt.Sprintf(`
port = %d
listen_addresses = '127.0.0.1'
unix_socket_directories = '%s'
wal_level = replica
archive_mode = on
archive_command = 'pgbackrest --config=%s --stanza=demo archive-push %%p'
fsync = off
`, port, dir, c.conf)
	f, err := os.OpenFile(filepath.Join(dir, "pg", "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(pgconf); err != nil {
		f.Close()
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	// Registered before the start so a half-started server is stopped too.
	t.Cleanup(func() {
		args := append(append([]string{}, c.asPG...), filepath.Join(pgBin, "pg_ctl"), "-D", filepath.Join(dir, "pg"), "-m", "immediate", "-w", "stop")
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Logf("stopping PostgreSQL: %v\n%s", err, out)
		}
	})
	c.run(t, filepath.Join(pgBin, "pg_ctl"), "-D", filepath.Join(dir, "pg"), "-l", filepath.Join(dir, "pg.log"), "-w", "start")
	return c
}

func (c pgCluster) run(t *testing.T, args ...string) {
	t.Helper()
	args = append(append([]string{}, c.asPG...), args...)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = c.dir
	if out, err := cmd.CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.dir, "pg.log"))
		t.Fatalf("%v: %v\n%s\n%s", args, err, out, log)
	}
}

func (c pgCluster) pgbackrest(t *testing.T, args ...string) {
	t.Helper()
	c.run(t, append([]string{"pgbackrest", "--config=" + c.conf, "--stanza=demo", "--log-level-console=warn"}, args...)...)
}

// The pgbackrest built-in against a live cluster: a stanza with a full and
// an incremental backup, so verify has a repository to check and the kit's
// backups are real incrementals.
func TestPgbackrestBuiltinPassesConformance(t *testing.T) {
	c := startPGCluster(t)
	c.pgbackrest(t, "stanza-create")
	c.pgbackrest(t, "backup", "--type=full")
	c.pgbackrest(t, "backup", "--type=incr")
	settings := map[string]any{"set": "postgres", "stanza": "demo", "config": c.conf,
		"wrapper": c.asPG, "backup_type": "incr"}
	conformance.Run(t, conformance.Options{
		Binary:      launcher(t, "pgbackrest"),
		Name:        "pgbackrest",
		Env:         []string{serveEnv + "=pgbackrest"},
		Settings:    settings,
		BadSettings: map[string]any{"set": "postgres", "stanza": "demo", "wrapper": "runuser -u postgres"},
		BadPath:     "wrapper",
		// pgBackRest runs as the postgres user through runuser, so a cancel
		// ends a process tree of its own; with the race detector on two
		// shared cores that has taken just over a second.
		CancelWithin: 5 * time.Second,
		Kinds:        []string{"backup"},
		BackupSet:    "postgres",
	})
}
