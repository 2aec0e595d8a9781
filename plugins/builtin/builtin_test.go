package builtin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ripcordhq/ripcord/plugins/host"
	"github.com/ripcordhq/ripcord/plugins/internal/toolrun/tooltest"
	"github.com/ripcordhq/ripcord/plugins/sdk/conformance"
)

const serveEnv = "RIPCORD_TEST_SERVE_BUILTIN"

// The test binary serves a built-in when the host starts it through the
// wrapper script below, exactly as `ripcord plugin serve NAME` does.
func TestMain(m *testing.M) {
	if name := os.Getenv(serveEnv); name != "" {
		if err := host.ServeBuiltin(name, Registry("test")); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// launcher writes an executable that runs this test binary as the named
// built-in, so the conformance kit can start it like any plugin binary.
func launcher(t testing.TB, name string) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ripcord-provider-"+name)
	script := fmt.Sprintf("#!/bin/sh\n%s=%s exec %q\n", serveEnv, name, self)
	if err := os.WriteFile(path, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDirBuiltinPassesConformance(t *testing.T) {
	backups := t.TempDir()
	for i, size := range []int{100, 120} {
		if err := os.WriteFile(filepath.Join(backups, fmt.Sprintf("db-%d.sqlite", i)), make([]byte, size), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	conformance.Run(t, conformance.Options{
		Binary:      launcher(t, "dir"),
		Name:        "dir",
		Env:         []string{serveEnv + "=dir"},
		Settings:    map[string]any{"set": "db", "path": filepath.Join(backups, "*.sqlite")},
		BadSettings: map[string]any{"set": "db", "path": "x", "min_fraction": "half"},
		BadPath:     "min_fraction",
		Kinds:       []string{"backup"},
		BackupSet:   "db",
	})
}

func TestResticBuiltinPassesConformance(t *testing.T) {
	restic := tooltest.Require(t, "restic", "restic")
	repo, data := filepath.Join(t.TempDir(), "repo"), t.TempDir()
	if err := os.WriteFile(filepath.Join(data, "uploads.bin"), make([]byte, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	initCmd := exec.Command(restic, "init", "--repo", repo)
	initCmd.Env = append(os.Environ(), "RESTIC_PASSWORD=conformance-secret", "RESTIC_CACHE_DIR="+t.TempDir())
	if out, err := initCmd.CombinedOutput(); err != nil {
		t.Fatalf("restic init: %v\n%s", err, out)
	}
	conformance.Run(t, conformance.Options{
		Binary:      launcher(t, "restic"),
		Name:        "restic",
		Env:         []string{serveEnv + "=restic"},
		Settings:    map[string]any{"set": "uploads", "repository": repo, "password": "conformance-secret", "backup": []string{data}},
		BadSettings: map[string]any{"set": "uploads", "repository": repo, "password": "x", "paths": "not-a-list"},
		BadPath:     "paths",
		Kinds:       []string{"backup"},
		BackupSet:   "uploads",
	})
}

func TestBorgBuiltinPassesConformance(t *testing.T) {
	borg := tooltest.Require(t, "borg", "borgbackup")
	dir := t.TempDir()
	repo, data := filepath.Join(dir, "repo"), filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "uploads.bin"), make([]byte, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	initCmd := exec.Command(borg, "init", "--encryption=repokey", repo)
	initCmd.Env = []string{"PATH=" + os.Getenv("PATH"), "BORG_PASSPHRASE=conformance-secret", "BORG_BASE_DIR=" + filepath.Join(dir, "creator")}
	if out, err := initCmd.CombinedOutput(); err != nil {
		t.Fatalf("borg init: %v\n%s", err, out)
	}
	set := "uploads-" + filepath.Base(dir) // the provider's cache is per set
	conformance.Run(t, conformance.Options{
		Binary:      launcher(t, "borg"),
		Name:        "borg",
		Settings:    map[string]any{"set": set, "repository": repo, "passphrase": "conformance-secret", "glob": "uploads-*", "backup": []string{data}},
		BadSettings: map[string]any{"set": set, "repository": repo, "acept_relocated": true},
		BadPath:     "acept_relocated",
		Kinds:       []string{"backup"},
		BackupSet:   set,
	})
}
