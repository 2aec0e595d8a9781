package exec

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ripcordhq/ripcord/core"
)

func gitIn(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "user.name=ana", "-c", "user.email=ana@example.com", "-c", "commit.gpgsign=false"}, args...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func needGit(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		if os.Getenv("RIPCORD_REQUIRE_TOOLS") == "1" {
			t.Fatal("git is missing (Debian package git)")
		}
		t.Skip("git is missing (install the Debian package git)")
	}
}

// A run records the commit and branch it was built from and the
// migrations at that commit, not what the working tree holds while it
// runs.
func TestRunRecordsCommitBranchAndMigrationsAtItsCommit(t *testing.T) {
	needGit(t)
	s, cfg := newSource(t, []StageConfig{
		// The build leaves an uncommitted contract migration behind: it is
		// not part of the release.
		{Name: "build", Run: `printf 'DROP TABLE users;\n' > db/migrations/002_drop_users.sql`},
	})
	migDir := filepath.Join(cfg.WorkDir, "db", "migrations")
	if err := os.MkdirAll(migDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(migDir, "001_add_note.sql"), []byte("ALTER TABLE orders ADD COLUMN note text;\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	gitIn(t, cfg.WorkDir, "init", "-q", "-b", "feature/notes")
	gitIn(t, cfg.WorkDir, "add", ".")
	gitIn(t, cfg.WorkDir, "commit", "-q", "-m", "orders get a note")
	head := gitIn(t, cfg.WorkDir, "rev-parse", "HEAD")
	s.cfg.MigrationsDir = migDir

	var lines []string
	s.logf = func(l core.LogLine) { lines = append(lines, l.Text) }
	id, err := s.Trigger(context.Background(), "api", "1.5.0", "")
	if err != nil {
		t.Fatal(err)
	}
	r := waitRun(t, s, "api", id)
	if !r.Green() || r.Commit != head || r.Branch != "feature/notes" {
		t.Fatalf("run = %s commit %q branch %q; want green, %s on feature/notes", r.State, r.Commit, r.Branch, head)
	}
	if len(r.Migrations) != 1 || r.Migrations[0].ID != "001_add_note" || r.Migrations[0].Kind != core.MigrationExpand || r.MigrationsUnknown != "" {
		t.Fatalf("migrations = %+v (unknown %q); want only the committed expand 001_add_note", r.Migrations, r.MigrationsUnknown)
	}
	if got := r.Migrations[0].Affects(); got != "add column orders.note" {
		t.Fatalf("affects = %q", got)
	}
	joined := strings.Join(lines, "\n")
	if !strings.Contains(joined, "built from commit "+head+" on feature/notes (checked out)") || !strings.Contains(joined, "1 migrations at") {
		t.Fatalf("the run does not say what it was built from:\n%s", joined)
	}
	// A restarted source reads the same facts back.
	s2, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	runs, _ := s2.Runs(context.Background(), "api", 1)
	if len(runs) != 1 || runs[0].Commit != head || len(runs[0].Migrations) != 1 {
		t.Fatalf("after a restart: %+v", runs)
	}
}

// Outside a git working tree nothing is guessed: no commit, no branch,
// and migrations unknown with the reason.
func TestRunOutsideGitRecordsUnknown(t *testing.T) {
	needGit(t)
	s, cfg := newSource(t, []StageConfig{{Name: "build", Run: "true"}})
	s.cfg.MigrationsDir = filepath.Join(cfg.WorkDir, "db")
	id, err := s.Trigger(context.Background(), "api", "1.5.0", "")
	if err != nil {
		t.Fatal(err)
	}
	r := waitRun(t, s, "api", id)
	if r.Commit != "" || r.Branch != "" || !strings.Contains(r.MigrationsUnknown, "is not a git working tree") {
		t.Fatalf("outside git: commit %q branch %q unknown %q", r.Commit, r.Branch, r.MigrationsUnknown)
	}
}
