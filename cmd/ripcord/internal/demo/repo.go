package demo

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// MigrationsDir is where the shop keeps its schema migrations, relative to
// the workspace. Ripcord reads them at each release's commit and classes
// them; the demo's own database (SQLite) does not apply them.
const MigrationsDir = "db/migrations"

// The shop's migrations: the stable release's schema, and the one expand
// step the candidate adds (a nullable column: v1.4.2 keeps working on it,
// so rolling back stays free).
const (
	createOrdersFile = "0001_create_orders.sql"
	createOrdersSQL  = `-- The orders table every release reads and writes.
CREATE TABLE orders (
    id          bigserial PRIMARY KEY,
    sku         text NOT NULL,
    total_cents integer NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_created_at_idx ON orders (created_at);
`
	giftNoteFile = "0002_add_orders_gift_note.sql"
	giftNoteSQL  = `-- v1.5.0 lets a customer add a gift note. Nullable, so the release
-- before it keeps inserting orders without one.
ALTER TABLE orders ADD COLUMN gift_note text;
`
)

// gitignore keeps what the demo generates out of the shop's history: the
// repository holds the project (config, build script, migrations), not its
// state, builds, data or backups.
const gitignore = `.ripcord/
dist/
data/
backups/
`

// git runs git in the workspace with an identity of its own and none of
// the person's signing or hooks, so the demo's commits never prompt.
func (w World) git(args ...string) error {
	base := []string{"-c", "user.name=ripcord demo", "-c", "user.email=demo@ripcord.invalid",
		"-c", "commit.gpgsign=false", "-c", "core.hooksPath=/dev/null", "-c", "init.defaultBranch=main"}
	cmd := exec.Command("git", append(base, args...)...)
	cmd.Dir = w.Dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

// initRepo makes the workspace the shop's git repository, on main, with
// the stable release's tree committed: the pipeline records the commit and
// branch each release is built from, and reads its migrations there.
func (w World) initRepo() error {
	if _, err := exec.LookPath("git"); err != nil {
		return fmt.Errorf("the demo needs git to record what each release is built from (install the Debian package git): %w", err)
	}
	if err := os.MkdirAll(filepath.Join(w.Dir, MigrationsDir), 0o755); err != nil {
		return err
	}
	for name, text := range map[string]string{".gitignore": gitignore, filepath.Join(MigrationsDir, createOrdersFile): createOrdersSQL} {
		if err := os.WriteFile(filepath.Join(w.Dir, name), []byte(text), 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", name, err)
		}
	}
	for _, args := range [][]string{
		{"init", "-q", "-b", "main"},
		{"add", "."},
		{"commit", "-q", "-m", "shop api v1.4.2: orders"},
	} {
		if err := w.git(args...); err != nil {
			return err
		}
	}
	return nil
}

// MergeCandidate lands the candidate's change on main: the gift-note
// migration, committed, so the next build of the pipeline is built from it.
func (w World) MergeCandidate(version string) error {
	if err := os.WriteFile(filepath.Join(w.Dir, MigrationsDir, giftNoteFile), []byte(giftNoteSQL), 0o644); err != nil {
		return fmt.Errorf("writing the %s migration: %w", version, err)
	}
	if err := w.git("add", MigrationsDir); err != nil {
		return err
	}
	return w.git("commit", "-q", "-m", "shop api "+version+": a gift note on orders")
}
