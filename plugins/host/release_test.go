package host

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// A provider the release ships (deb/rpm: /usr/lib/ripcord/plugins beside
// /usr/bin/ripcord; archive: plugins/ beside ripcord) is found without
// configuration and trusted by the release's SHA256SUMS, with no
// `ripcord plugins lock`; anything else about it is refused.
func TestReleasePluginsAreFoundAndTrustedByTheReleaseSums(t *testing.T) {
	for _, layout := range []struct{ name, exe, plugins string }{
		{"package", "usr/bin/ripcord", "usr/lib/ripcord/plugins"},
		{"archive", "ripcord_1.0.0_linux_amd64/ripcord", "ripcord_1.0.0_linux_amd64/plugins"},
	} {
		t.Run(layout.name, func(t *testing.T) {
			root := t.TempDir()
			exe := filepath.Join(root, layout.exe)
			dir := filepath.Join(root, layout.plugins)
			for _, d := range []string{filepath.Dir(exe), dir} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			saved := executable
			executable = func() (string, error) { return exe, nil }
			t.Cleanup(func() { executable = saved })

			bin := filepath.Join(dir, "ripcord-provider-kubernetes")
			if err := os.WriteFile(bin, []byte("#!/bin/sh\necho release build\n"), 0o755); err != nil {
				t.Fatal(err)
			}
			sum, _ := FileSHA256(bin)
			sums := filepath.Join(dir, ReleaseSumsFile)
			if err := os.WriteFile(sums, []byte(sum+"  ripcord-provider-kubernetes\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			wd := t.TempDir()
			t.Setenv("XDG_DATA_HOME", filepath.Join(wd, "xdg"))
			found := Discover(SearchDirs(wd))
			if len(found) != 1 || found[0].Name != "kubernetes" || found[0].Path != bin {
				t.Fatalf("Discover = %+v, want the release's kubernetes provider at %s", found, bin)
			}
			lock := filepath.Join(wd, LockFileName) // no lock file at all
			got, err := VerifyLock(lock, found)
			if err != nil {
				t.Fatalf("the release's own provider was refused: %v", err)
			}
			if len(got["kubernetes"]) != 32 {
				t.Fatalf("no digest to pin the process to: %v", got)
			}

			// A sums file others can write vouches for nothing.
			if err := os.Chmod(sums, 0o666); err != nil {
				t.Fatal(err)
			}
			var ce *ChecksumError
			if _, err := VerifyLock(lock, found); !errors.As(err, &ce) {
				t.Fatalf("a world-writable %s was trusted: %v", ReleaseSumsFile, err)
			}
			if err := os.Chmod(sums, 0o644); err != nil {
				t.Fatal(err)
			}

			// A project's lock entry is the user's explicit pin: it wins.
			if err := os.WriteFile(lock, []byte(`{"version":1,"plugins":{"kubernetes":{"path":"x","sha256":"`+zeros64+`"}}}`), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := VerifyLock(lock, found); !errors.As(err, &ce) || ce.Expected != zeros64 {
				t.Fatalf("a lock entry did not take precedence: %v", err)
			}
			os.Remove(lock)

			// A changed binary no longer matches the release.
			if err := os.WriteFile(bin, []byte("#!/bin/sh\necho tampered\n"), 0o755); err != nil {
				t.Fatal(err)
			}
			if _, err := VerifyLock(lock, found); !errors.As(err, &ce) {
				t.Fatalf("a binary that differs from the release's sums was trusted: %v", err)
			}

			// The same sums file outside a release directory means nothing.
			other := filepath.Join(wd, ".ripcord", "plugins")
			if err := os.MkdirAll(other, 0o755); err != nil {
				t.Fatal(err)
			}
			elsewhere := filepath.Join(other, "ripcord-provider-other")
			if err := os.WriteFile(elsewhere, []byte("x"), 0o755); err != nil {
				t.Fatal(err)
			}
			s2, _ := FileSHA256(elsewhere)
			if err := os.WriteFile(filepath.Join(other, ReleaseSumsFile), []byte(s2+"  ripcord-provider-other\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := VerifyLock(lock, []PluginSpec{{Name: "other", Path: elsewhere}}); !errors.As(err, &ce) {
				t.Fatalf("a project directory's own sums file was trusted: %v", err)
			}
		})
	}
}

const zeros64 = "0000000000000000000000000000000000000000000000000000000000000000"
