package tooltest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
)

// pgBin is where Debian's postgresql package puts PostgreSQL 15.
const pgBin = "/usr/lib/postgresql/15/bin"

// PGCluster is a real PostgreSQL 15 archiving into a real pgBackRest
// repository (stanza "demo"), all under one directory owned by the
// postgres user.
type PGCluster struct {
	Dir  string   // the cluster's directory: pg/, repo/, pg.log
	Conf string   // the pgbackrest.conf to pass with --config
	AsPG []string // prefix that runs a command as postgres (we may be root)
}

// StartPGCluster initialises and starts a cluster for this test and stops
// it when the test ends. Without pgBackRest or PostgreSQL 15 the test
// fails under RIPCORD_REQUIRE_TOOLS=1 and is skipped otherwise.
func StartPGCluster(t *testing.T) PGCluster {
	t.Helper()
	Require(t, "pgbackrest", "pgbackrest")
	Require(t, "runuser", "util-linux")
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
	c := PGCluster{Dir: dir, Conf: filepath.Join(dir, "pgbackrest.conf")}
	if os.Geteuid() == 0 {
		c.AsPG = []string{"runuser", "-u", "postgres", "--"}
	}
	c.Run(t, filepath.Join(pgBin, "initdb"), "-D", filepath.Join(dir, "pg"), "-A", "trust", "-U", "postgres", "--no-sync")
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
	if err := os.WriteFile(c.Conf, []byte(conf), 0o644); err != nil {
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
`, port, dir, c.Conf)
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
		args := append(append([]string{}, c.AsPG...), filepath.Join(pgBin, "pg_ctl"), "-D", filepath.Join(dir, "pg"), "-m", "immediate", "-w", "stop")
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Logf("stopping PostgreSQL: %v\n%s", err, out)
		}
	})
	c.Run(t, filepath.Join(pgBin, "pg_ctl"), "-D", filepath.Join(dir, "pg"), "-l", filepath.Join(dir, "pg.log"), "-w", "start")
	return c
}

// Run runs a command as postgres in the cluster directory, failing the
// test with its output and the server log.
func (c PGCluster) Run(t *testing.T, args ...string) {
	t.Helper()
	args = append(append([]string{}, c.AsPG...), args...)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = c.Dir
	if out, err := cmd.CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.Dir, "pg.log"))
		t.Fatalf("%v: %v\n%s\n%s", args, err, out, log)
	}
}

// Pgbackrest runs pgbackrest on the cluster's stanza.
func (c PGCluster) Pgbackrest(t *testing.T, args ...string) {
	t.Helper()
	c.Run(t, append([]string{"pgbackrest", "--config=" + c.Conf, "--stanza=demo", "--log-level-console=warn"}, args...)...)
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
