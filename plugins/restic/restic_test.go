package restic

import (
	"bytes"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/plugins/internal/toolrun"
	"github.com/ripcordhq/ripcord/plugins/internal/toolrun/tooltest"
)

func TestParseCapturedSnapshots(t *testing.T) {
	flat, err := os.ReadFile("testdata/restic-0.14.0-snapshots.json")
	if err != nil {
		t.Fatal(err)
	}
	grouped, err := os.ReadFile("testdata/restic-0.14.0-snapshots-groupby-host.json")
	if err != nil {
		t.Fatal(err)
	}
	a, err := ParseSnapshots(flat)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ParseSnapshots(grouped)
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != 3 || len(b) != 3 {
		t.Fatalf("want 3 snapshots from both shapes, got %d and %d", len(a), len(b))
	}
	for i := range a {
		if a[i].ID != b[i].ID {
			t.Errorf("snapshot %d: flat %s, grouped %s: shapes disagree on order", i, a[i].ID, b[i].ID)
		}
	}
	newest := a[2]
	if newest.ID[:8] != "79f212ae" || newest.Hostname != "db-01" {
		t.Errorf("newest = %s on %s, want 79f212ae on db-01", newest.ID[:8], newest.Hostname)
	}
	want := time.Date(2026, 11, 25, 21, 21, 46, 687635769, time.UTC)
	if !newest.Time.Equal(want) {
		t.Errorf("time = %v, want %v", newest.Time, want)
	}
	// restic 0.14 records only the start.
	if !newest.End().IsZero() {
		t.Errorf("0.14 snapshot has end %v, want none", newest.End())
	}
}

func TestParseSummaryEnd(t *testing.T) {
	// restic 0.17+ snapshot shape, per restic's scripting documentation.
	doc := `[{"time":"2026-11-25T03:00:00Z","id":"aa","hostname":"h","paths":["/d"],
	  "summary":{"backup_start":"2026-11-25T03:00:00Z","backup_end":"2026-11-25T05:30:00Z","total_bytes_processed":4096}}]`
	s, err := ParseSnapshots([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s[0].End(), time.Date(2026, 11, 25, 5, 30, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("End = %v, want %v", got, want)
	}
}

func TestParseRejectsGarbage(t *testing.T) {
	if _, err := ParseSnapshots([]byte("Fatal: something")); err == nil {
		t.Fatal("want a parse error")
	}
}

// fixture is a real restic repository with a small directory to back up.
type fixture struct {
	dir, repo, data, password string
	bytes                     int64
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	tooltest.Require(t, "restic", "restic")
	dir := t.TempDir()
	f := fixture{dir: dir, repo: filepath.Join(dir, "repo"), data: filepath.Join(dir, "data"),
		password: "correct-horse-" + filepath.Base(dir)}
	if err := os.MkdirAll(filepath.Join(f.data, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"a.bin":     random(t, 320000), // incompressible: its pack is the largest
		"sub/b.txt": []byte("hello\n"),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(f.data, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
		f.bytes += int64(len(b))
	}
	f.restic(t, nil, "init")
	return f
}

// restic runs the real binary directly, as an operator's cron job would.
func (f fixture) restic(t *testing.T, extraEnv []string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("restic", args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "RESTIC_REPOSITORY=" + f.repo,
		"RESTIC_PASSWORD=" + f.password, "RESTIC_CACHE_DIR=" + filepath.Join(f.dir, "cache")}, extraEnv...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("restic %v: %v\n%s", args, err, out)
	}
	return out
}

func (f fixture) config() Config {
	return Config{Set: "uploads", Repository: f.repo, Password: f.password, Host: "web-01",
		Tags: []string{"nightly"}, Backup: []string{f.data}, CacheDir: filepath.Join(f.dir, "cache")}
}

func TestRealRepositoryFacts(t *testing.T) {
	f := newFixture(t)
	p, err := New(f.config())
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()

	fs, err := p.Facts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if fs[0].Unreadable != "" || !fs[0].LastStart.IsZero() || fs[0].Status != "no snapshots" {
		t.Fatalf("empty repository: %+v, want readable with no snapshot", fs[0])
	}

	before := time.Now()
	if err := p.RunNow(ctx, "uploads"); err != nil {
		t.Fatal(err)
	}
	if err := p.RunNow(ctx, "uploads"); err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	// A snapshot of another host is not part of the set.
	f.restic(t, nil, "backup", "--host", "db-01", "--tag", "nightly", f.data)

	fs, err = p.Facts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := fs[0]
	if got.Unreadable != "" {
		t.Fatalf("unreadable: %s", got.Unreadable)
	}
	if got.Set != "uploads" || got.Tool != "restic" || got.LastType != "snapshot" {
		t.Errorf("identity = %s/%s/%s", got.Set, got.Tool, got.LastType)
	}
	if got.LastStart.Before(before) || got.LastStart.After(after) {
		t.Errorf("last start %v outside the run window %v..%v (another host's snapshot counted?)", got.LastStart, before, after)
	}
	if !got.LastEnd.IsZero() {
		t.Errorf("restic 0.14 has no end time, got %v", got.LastEnd)
	}
	if got.LastSize != f.bytes {
		t.Errorf("size = %d, want the %d bytes backed up", got.LastSize, f.bytes)
	}
	if got.Status != "2 snapshots" {
		t.Errorf("status = %q, want 2 snapshots in the set", got.Status)
	}
	if !got.AttemptOK || got.Running || !got.CanRunNow {
		t.Errorf("attempt ok %v, running %v, can run now %v", got.AttemptOK, got.Running, got.CanRunNow)
	}
	if got.ReportedAt.Before(after) {
		t.Errorf("reported at %v, before the read", got.ReportedAt)
	}

	v, err := p.Verify(ctx, "uploads")
	if err != nil {
		t.Fatal(err)
	}
	if !v.VerifyOK || v.VerifiedAt.Before(after) || v.VerifyMessage != "no errors were found" {
		t.Fatalf("verify of a sound repository: ok %v at %v: %q", v.VerifyOK, v.VerifiedAt, v.VerifyMessage)
	}

	// Damage the data pack (the largest; tree packs are small): check must
	// say so in restic's words. A damaged tree pack would work as well but
	// restic retries loading it with backoff for over a minute.
	pack := tooltest.LargestFile(t, filepath.Join(f.repo, "data"))
	if err := os.Truncate(pack, 100); err != nil {
		t.Fatal(err)
	}
	v, err = p.Verify(ctx, "uploads")
	if err != nil {
		t.Fatal(err)
	}
	if v.VerifyOK {
		t.Fatal("verify of a damaged repository reported OK")
	}
	for _, want := range []string{"repository contains errors", filepath.Base(pack), "unexpected file size"} {
		if !strings.Contains(v.VerifyMessage, want) {
			t.Errorf("verify message %q lacks %q", v.VerifyMessage, want)
		}
	}

	if _, err := p.Verify(ctx, "other"); err == nil {
		t.Error("verify of a set this provider does not watch succeeded")
	}
}

func TestRealWrongPasswordIsUnreadable(t *testing.T) {
	f := newFixture(t)
	cfg := f.config()
	cfg.Password = "not-the-password-9431"
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	fs, err := p.Facts(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got := fs[0].Unreadable; got != "restic: wrong password or no key found" {
		t.Errorf("unreadable = %q", got)
	}
	if !fs[0].LastStart.IsZero() {
		t.Error("unreadable set reports a backup time")
	}
	err = p.RunNow(t.Context(), "uploads")
	if err == nil || strings.Contains(err.Error(), cfg.Password) {
		t.Errorf("run-now with a wrong password: %v", err)
	}
	fs, _ = p.Facts(t.Context())
	if fs[0].AttemptOK || fs[0].Attempted.IsZero() {
		t.Errorf("failed run-now not recorded: attempted %v ok %v", fs[0].Attempted, fs[0].AttemptOK)
	}
}

func TestRealMissingRepositoryIsUnreadable(t *testing.T) {
	tooltest.Require(t, "restic", "restic")
	dir := t.TempDir()
	p, _ := New(Config{Set: "s", Repository: filepath.Join(dir, "nope"), Password: "x", CacheDir: dir})
	fs, err := p.Facts(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got := fs[0].Unreadable; got != "restic: repository not found (not initialised?)" {
		t.Errorf("unreadable = %q", got)
	}
}

func TestMissingBinaryIsUnreadable(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("PATH", dir) // an empty PATH: no restic anywhere
	p, _ := New(Config{Set: "s", Repository: dir, Password: "x", CacheDir: dir})
	fs, err := p.Facts(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got := fs[0].Unreadable; got != "restic: binary not found in PATH (Debian package restic)" {
		t.Errorf("unreadable = %q", got)
	}
	v, err := p.Verify(t.Context(), "s")
	if err != nil || v.VerifyOK {
		t.Errorf("verify without a binary: ok %v, err %v", v.VerifyOK, err)
	}
}

// The password reaches restic through its environment only: it is not in
// the argv the provider builds, nor in the live process's command line.
func TestPasswordNeverInArgv(t *testing.T) {
	f := newFixture(t)
	p, err := New(f.config())
	if err != nil {
		t.Fatal(err)
	}
	cmd, err := toolrun.Command(t.Context(), p.spec("backup", f.data))
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range cmd.Args {
		if strings.Contains(a, f.password) {
			t.Fatalf("password in argv %q", cmd.Args)
		}
	}

	var cmdline, environ []byte
	p.onStart = func(pid int) {
		// The child cannot be reaped before Wait, and restic derives its
		// key (scrypt) before it can finish, so it is alive here.
		// Start returns once exec has begun; the kernel lays out the new
		// argv a moment later, so an empty read means "not yet".
		for deadline := time.Now().Add(5 * time.Second); len(cmdline) == 0 && time.Now().Before(deadline); {
			cmdline, _ = os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
			if len(cmdline) == 0 {
				time.Sleep(time.Millisecond)
			}
		}
		environ, _ = os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
		p.onStart = nil // only the first tool run: the backup
	}
	if err := p.RunNow(t.Context(), "uploads"); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(cmdline, []byte("backup")) {
		t.Fatalf("did not read the running backup's command line: %q", cmdline)
	}
	if bytes.Contains(cmdline, []byte(f.password)) {
		t.Errorf("password in /proc/<pid>/cmdline: %q", cmdline)
	}
	if !bytes.Contains(environ, []byte("RESTIC_PASSWORD="+f.password+"\x00")) {
		t.Errorf("password not passed in the child's environment")
	}
	if bytes.Contains(environ, []byte("HOME=")) {
		t.Errorf("child inherited the console's environment: %q", environ)
	}
}

func random(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}
