// Package gittest makes real git repositories for tests: a temporary
// directory, `git init`, and commits of files written into it.
package gittest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Repo is a real git repository in a temporary directory, on branch main.
type Repo struct {
	t   testing.TB
	Dir string
}

// New makes an empty repository. Without git it fails the test when
// RIPCORD_REQUIRE_TOOLS=1 (CI), else skips it.
func New(t testing.TB) *Repo {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		if os.Getenv("RIPCORD_REQUIRE_TOOLS") == "1" {
			t.Fatal("git is missing (Debian package git)")
		}
		t.Skip("git is missing (install the Debian package git)")
	}
	r := &Repo{t: t, Dir: t.TempDir()}
	r.Git("init", "-q", "-b", "main")
	return r
}

// Git runs git in the repository, as a person with no global config, and
// returns its trimmed output.
func (r *Repo) Git(args ...string) string {
	r.t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "user.name=ana", "-c", "user.email=ana@example.com", "-c", "commit.gpgsign=false"}, args...)...)
	cmd.Dir = r.Dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+r.Dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// Commit writes file (a path in the repository) with content, commits it
// and returns the commit.
func (r *Repo) Commit(file, content, msg string) string {
	r.t.Helper()
	p := filepath.Join(r.Dir, file)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		r.t.Fatal(err)
	}
	r.Git("add", file)
	r.Git("commit", "-q", "-m", msg)
	return r.Git("rev-parse", "HEAD")
}
