package gitfacts

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ripcordhq/ripcord/plugins/internal/gitfacts/gittest"
)

// repo is a real git repository in a temporary directory.
type repo struct {
	*gittest.Repo
	dir string
}

func newRepo(t *testing.T) *repo {
	r := gittest.New(t)
	return &repo{Repo: r, dir: r.Dir}
}

func (r *repo) git(args ...string) string               { return r.Git(args...) }
func (r *repo) commit(file, content, msg string) string { return r.Commit(file, content, msg) }

func noEnv(string) string { return "" }

func read(t *testing.T, r *repo, env func(string) string) Facts {
	t.Helper()
	f, err := Read(context.Background(), r.dir, env)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestBranchFromTheWorkingTree(t *testing.T) {
	r := newRepo(t)
	first := r.commit("a.txt", "1", "first")
	if f := read(t, r, noEnv); f.Commit != first || f.Branch != "main" || f.How != "checked out" || f.Dirty {
		t.Fatalf("on main: %+v", f)
	}
	r.git("checkout", "-q", "-b", "feature/cart")
	onFeature := r.commit("b.txt", "2", "feature work")
	if f := read(t, r, noEnv); f.Commit != onFeature || f.Branch != "feature/cart" {
		t.Fatalf("on a feature branch: %+v", f)
	}
	// A modified tracked file: the build is not exactly the commit.
	if err := os.WriteFile(filepath.Join(r.dir, "b.txt"), []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	if f := read(t, r, noEnv); !f.Dirty {
		t.Fatalf("a modified tracked file is not reported: %+v", f)
	}
}

func TestDetachedHeadRecordsTheContainingBranchOrUnknown(t *testing.T) {
	r := newRepo(t)
	base := r.commit("a.txt", "1", "base")
	r.git("checkout", "-q", "-b", "feature/cart")
	feature := r.commit("b.txt", "2", "feature work")
	r.git("checkout", "-q", "main")

	// Only the feature branch has the commit.
	r.git("checkout", "-q", "--detach", feature)
	if f := read(t, r, noEnv); f.Branch != "feature/cart" || !strings.Contains(f.How, "contained only in feature/cart") {
		t.Fatalf("detached on a feature commit: %+v", f)
	}
	// main and the feature branch both contain base: main is the default
	// branch, so the commit is merged there.
	r.git("checkout", "-q", "--detach", base)
	if f := read(t, r, noEnv); f.Branch != "main" || !strings.Contains(f.How, "merged into the default branch main") {
		t.Fatalf("detached on a commit merged into main: %+v", f)
	}
	// A commit no branch contains any more.
	r.git("checkout", "-q", "main")
	orphan := r.commit("c.txt", "3", "later undone")
	r.git("reset", "-q", "--hard", base)
	r.git("checkout", "-q", "--detach", orphan)
	f := read(t, r, noEnv)
	if f.Branch != "" || f.Commit != orphan || !strings.Contains(f.How, "which no branch contains") {
		t.Fatalf("detached on a commit no branch contains: %+v", f)
	}
	// Two branches but not the default: unknown, naming both.
	r.git("checkout", "-q", "-b", "release/2", feature)
	r.git("checkout", "-q", "-b", "side")
	r.git("branch", "-q", "-D", "main")
	r.git("checkout", "-q", "--detach", feature)
	f = read(t, r, noEnv)
	if f.Branch != "" || !strings.Contains(f.How, "several branches (feature/cart, release/2, side)") {
		t.Fatalf("detached on a commit of several non-default branches: %+v", f)
	}
}

func TestCIVariablesNameTheBranchOfTheCommitTheyBuilt(t *testing.T) {
	r := newRepo(t)
	c := r.commit("a.txt", "1", "first")
	r.commit("a.txt", "2", "second")
	r.git("checkout", "-q", "--detach", c)
	env := map[string]string{"GITHUB_SHA": c, "GITHUB_REF_TYPE": "branch", "GITHUB_REF_NAME": "release/1.5"}
	if f := read(t, r, func(k string) string { return env[k] }); f.Branch != "release/1.5" || f.How != "GITHUB_REF_NAME" {
		t.Fatalf("GitHub Actions branch build: %+v", f)
	}
	env["GITHUB_HEAD_REF"] = "feature/x"
	if f := read(t, r, func(k string) string { return env[k] }); f.Branch != "feature/x" {
		t.Fatalf("GitHub Actions pull request build: %+v", f)
	}
	// Variables about another commit are not about this build.
	env = map[string]string{"CI_COMMIT_SHA": "0000000000000000000000000000000000000000", "CI_COMMIT_BRANCH": "main"}
	if f := read(t, r, func(k string) string { return env[k] }); f.How == "CI_COMMIT_BRANCH" {
		t.Fatalf("a CI variable about another commit was believed: %+v", f)
	}
}

func TestFilesAtACommitNotTheWorkingTree(t *testing.T) {
	r := newRepo(t)
	before := r.commit("README", "x", "before migrations")
	r.commit("db/migrations/001_a.sql", "CREATE TABLE a (id int);\n", "a")
	at := r.commit("db/migrations/002_b.sql", "CREATE TABLE b (id int);\n", "b")
	// The working tree moves on: a change and a new file, not committed.
	if err := os.WriteFile(filepath.Join(r.dir, "db/migrations/002_b.sql"), []byte("DROP TABLE a;\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(r.dir, "db/migrations/003_c.sql"), []byte("DROP TABLE b;\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	files, err := FilesAt(ctx, r.dir, at, filepath.Join(r.dir, "db/migrations"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 || files[0].Path != "db/migrations/001_a.sql" || files[1].Path != "db/migrations/002_b.sql" || string(files[1].Data) != "CREATE TABLE b (id int);\n" {
		t.Fatalf("files at %s = %+v", at[:8], files)
	}
	if files, err := FilesAt(ctx, r.dir, before, filepath.Join(r.dir, "db/migrations")); err != nil || len(files) != 0 {
		t.Fatalf("before the directory existed: %+v, %v", files, err)
	}
	if _, err := FilesAt(ctx, r.dir, at, t.TempDir()); err == nil || !strings.Contains(err.Error(), "outside the git repository") {
		t.Fatalf("a directory outside the repository: %v", err)
	}
}
