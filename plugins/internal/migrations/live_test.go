package migrations

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/plugins/internal/gitfacts"
	"github.com/ripcordhq/ripcord/plugins/internal/toolrun/tooltest"
)

const pgBin = "/usr/lib/postgresql/15/bin"

// livePG is a real PostgreSQL 15 of the test's own, on 127.0.0.1 and a
// socket in its directory, started the way the pgBackRest tests start
// theirs (as the postgres user when the test runs as root).
type livePG struct {
	dir  string
	port int
	asPG []string
}

func startPG(t *testing.T) livePG {
	t.Helper()
	tooltest.Require(t, "runuser", "util-linux")
	tooltest.Require(t, "psql", "postgresql")
	if _, err := os.Stat(filepath.Join(pgBin, "initdb")); err != nil {
		if os.Getenv("RIPCORD_REQUIRE_TOOLS") == "1" {
			t.Fatalf("PostgreSQL 15 not found at %s and RIPCORD_REQUIRE_TOOLS=1: install the Debian package postgresql", pgBin)
		}
		t.Skipf("PostgreSQL 15 not found at %s: install the Debian package postgresql to run this test", pgBin)
	}
	pgUser, err := user.Lookup("postgres")
	if err != nil {
		t.Fatalf("no postgres user (the Debian package postgresql creates it): %v", err)
	}
	dir, err := os.MkdirTemp("", "ripcord-migrations-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	uid, _ := strconv.Atoi(pgUser.Uid)
	gid, _ := strconv.Atoi(pgUser.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pg := livePG{dir: dir, port: l.Addr().(*net.TCPAddr).Port}
	l.Close()
	if os.Geteuid() == 0 {
		pg.asPG = []string{"runuser", "-u", "postgres", "--"}
	}
	pg.run(t, filepath.Join(pgBin, "initdb"), "-D", filepath.Join(dir, "pg"), "-A", "trust", "-U", "postgres", "--no-sync")
	conf := fmt.Sprintf("\nport = %d\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\nfsync = off\n", pg.port, dir)
	f, err := os.OpenFile(filepath.Join(dir, "pg", "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(conf); err != nil {
		t.Fatal(err)
	}
	f.Close()
	t.Cleanup(func() {
		args := append(append([]string{}, pg.asPG...), filepath.Join(pgBin, "pg_ctl"), "-D", filepath.Join(dir, "pg"), "-m", "immediate", "-w", "stop")
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Logf("stopping PostgreSQL: %v\n%s", err, out)
		}
	})
	pg.run(t, filepath.Join(pgBin, "pg_ctl"), "-D", filepath.Join(dir, "pg"), "-l", filepath.Join(dir, "pg.log"), "-w", "start")
	return pg
}

func (pg livePG) run(t *testing.T, args ...string) {
	t.Helper()
	args = append(append([]string{}, pg.asPG...), args...)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = pg.dir
	if out, err := cmd.CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(pg.dir, "pg.log"))
		t.Fatalf("%v: %v\n%s\n%s", args, err, out, log)
	}
}

// exec runs SQL over TCP with psql and returns its error output, "" when
// it worked.
func (pg livePG) exec(t *testing.T, sql string) string {
	t.Helper()
	cmd := exec.Command("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", strconv.Itoa(pg.port), "-U", "postgres", "-d", "postgres", "-c", sql)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return strings.TrimSpace(string(out))
	}
	return ""
}

// release is one build of the service: its commit and the migrations
// read there.
type release struct {
	core.Release
	queries []string // what this release's code runs against the database
}

// TestExpandKeepsTheOldReleaseWorkingAndContractBreaksIt walks a service
// through expand → migrate → contract on a live PostgreSQL: release B's
// expand leaves release A's queries working; the contract breaks them; and
// before each step Ripcord's gate and rollback check say exactly that.
func TestExpandKeepsTheOldReleaseWorkingAndContractBreaksIt(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		if os.Getenv("RIPCORD_REQUIRE_TOOLS") == "1" {
			t.Fatal("git is missing (Debian package git)")
		}
		t.Skip("git is missing (install the Debian package git)")
	}
	pg := startPG(t)
	ctx := context.Background()
	repo := t.TempDir()
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-c", "user.name=ana", "-c", "user.email=ana@example.com", "-c", "commit.gpgsign=false"}, args...)...)
		cmd.Dir = repo
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	migDir := filepath.Join(repo, "db", "migrations")
	if err := os.MkdirAll(migDir, 0o755); err != nil {
		t.Fatal(err)
	}
	git("init", "-q", "-b", "main")
	build := func(version, file, sql string, queries ...string) release {
		t.Helper()
		if err := os.WriteFile(filepath.Join(migDir, file), []byte(sql), 0o644); err != nil {
			t.Fatal(err)
		}
		git("add", ".")
		git("commit", "-q", "-m", version)
		commit := git("rev-parse", "HEAD")
		files, err := gitfacts.FilesAt(ctx, repo, commit, migDir)
		if err != nil {
			t.Fatal(err)
		}
		in := make([]File, len(files))
		for i, f := range files {
			in[i] = File{Path: f.Path, Data: f.Data}
		}
		return release{Release: core.Release{Service: "api", Version: version, Commit: commit, Branch: "main", BuiltAt: time.Now(), Migrations: Read(in)}, queries: queries}
	}
	a := build("v1", "001_create_users.up.sql", "CREATE TABLE users (id bigserial PRIMARY KEY, name text NOT NULL);\n",
		"INSERT INTO users (name) VALUES ('ana')", "SELECT id, name FROM users ORDER BY id")
	b := build("v2", "002_add_display_name.up.sql", "ALTER TABLE users ADD COLUMN display_name text;\nUPDATE users SET display_name = name WHERE display_name IS NULL;\n",
		"INSERT INTO users (name, display_name) VALUES ('bo', 'Bo')", "SELECT id, coalesce(display_name, name) FROM users")
	c := build("v3", "003_drop_users_name.up.sql", "ALTER TABLE users DROP COLUMN name;\n",
		"INSERT INTO users (display_name) VALUES ('Cy')", "SELECT id, display_name FROM users")

	apply := func(from, to release) {
		t.Helper()
		for _, m := range core.MigrationsAdded(from.Release, to.Release) {
			data, err := os.ReadFile(filepath.Join(repo, m.File))
			if err != nil {
				t.Fatal(err)
			}
			if msg := pg.exec(t, string(data)); msg != "" {
				t.Fatalf("applying %s: %s", m.ID, msg)
			}
		}
	}
	runs := func(r release) string {
		t.Helper()
		for _, q := range r.queries {
			if msg := pg.exec(t, q); msg != "" {
				return msg
			}
		}
		return ""
	}
	now := time.Now()
	prod := core.Ref{Service: "api", Env: "production"}
	backups := []core.Freshness{{Ref: prod, State: core.FreshOK, Facts: core.BackupFacts{Set: "db", LastEnd: now}}} // newer than every build above
	gate := func(candidate, stable release) core.GateResult {
		in := core.GateInput{Ref: prod, Release: candidate.Release, StableVersion: stable.Version, Stable: &stable.Release, Backups: backups, Now: now}
		return core.EvaluateGates([]core.GateSpec{{Name: core.GateMigrations}}, in, nil)[0]
	}

	// A runs on its own schema.
	apply(release{}, a)
	if msg := runs(a); msg != "" {
		t.Fatalf("v1 on its own schema: %s", msg)
	}

	// Before B: the gate says B only expands, and A keeps working.
	if g := gate(b, a); g.Status != core.GatePass || !strings.Contains(g.Reason, "v2 adds expand-only migrations over v1 (002_add_display_name): v1 keeps working on the new schema") {
		t.Fatalf("gate before v2 = %s %q", g.Status, g.Reason)
	}
	apply(a, b)
	if msg := runs(a); msg != "" {
		t.Fatalf("v1's queries on v2's schema fail, though the gate called it expand-only: %s", msg)
	}
	if msg := runs(b); msg != "" {
		t.Fatalf("v2 on its own schema: %s", msg)
	}
	if g := core.NewRollbackCrossing(prod, "v2", &b.Release, "v1", &a.Release, now, backups).Gate(); g.Status != core.GatePass {
		t.Fatalf("rollback v2 → v1 across an expand is refused: %q", g.Reason)
	}

	// C straight over A would contract with no expand shipped before it.
	if g := gate(c, a); g.Status != core.GateFail || !strings.Contains(g.Reason, "003_drop_users_name (drop column users.name) ships in the same release as its expand step 002_add_display_name") {
		t.Fatalf("gate for v3 over v1 = %s %q", g.Status, g.Reason)
	}
	// C over B is the contract step of the pair: allowed with a fresh backup.
	if g := gate(c, b); g.Status != core.GatePass || !strings.Contains(g.Reason, "v3 contracts (003_drop_users_name: drop column users.name) one release after v2 expanded the same tables") {
		t.Fatalf("gate for v3 over v2 = %s %q", g.Status, g.Reason)
	}
	// Before C is applied, the rollback check already says what rolling
	// back from C to B would meet: B's code on a schema without users.name.
	crossing := core.NewRollbackCrossing(prod, "v3", &c.Release, "v2", &b.Release, now.Add(time.Second), backups)
	g := crossing.Gate()
	lines := strings.Join(crossing.Lines(), "\n")
	if g.Status != core.GateFail || !strings.Contains(g.Reason, "rolling back to v2 crosses contract migration 003_drop_users_name: drop column users.name") ||
		!strings.Contains(lines, "✗ 003_drop_users_name contract: drop column users.name — v2 may fail on the schema it leaves") ||
		!strings.Contains(lines, "newest db backup from before v3:") {
		t.Fatalf("rollback check v3 → v2 = %s %q\n%s", g.Status, g.Reason, lines)
	}
	apply(b, c)
	if msg := runs(c); msg != "" {
		t.Fatalf("v3 on its own schema: %s", msg)
	}
	// And so it is: the releases before C fail on its schema, on exactly
	// the column the gate named.
	for _, old := range []release{a, b} {
		if msg := runs(old); !strings.Contains(msg, `column "name"`) || !strings.Contains(msg, "does not exist") {
			t.Fatalf("%s's queries on v3's schema: %q; want them to fail on the dropped column users.name", old.Version, msg)
		}
	}
}
