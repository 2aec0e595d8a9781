package borg

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

func readListing(t *testing.T, name string) Listing {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	l, err := ParseListing(b)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestParseCapturedListings(t *testing.T) {
	list := readListing(t, "borg-1.2.4-list.json")
	if len(list.Archives) != 2 {
		t.Fatalf("want 2 archives, got %d", len(list.Archives))
	}
	newest := list.Archives[1]
	if newest.Name != "web-01-2026-11-25T21:23:43" {
		t.Errorf("newest = %s", newest.Name)
	}
	if want := time.Date(2026, 11, 25, 21, 23, 43, 0, time.UTC); !newest.Start.Equal(want) {
		t.Errorf("start = %v, want %v", newest.Start, want)
	}
	if !newest.End.IsZero() {
		t.Error("plain list has no end, got one")
	}
	withEnd := readListing(t, "borg-1.2.4-list-format.json")
	if withEnd.Archives[1].End.IsZero() {
		t.Error("list --format {end} lost its end")
	}

	info := readListing(t, "borg-1.2.4-info-last1.json")
	a := info.Archives[0]
	if a.Stats == nil || a.Stats.OriginalSize != 700017 || a.End.IsZero() {
		t.Errorf("info archive = %+v", a)
	}
}

// The same archive listed with TZ=America/New_York reads five hours early:
// borg's times carry no zone, which is why the provider forces TZ=UTC.
func TestCapturedTimeZoneSkew(t *testing.T) {
	utc := readListing(t, "borg-1.2.4-list-last1.json").Archives[0]
	ny := readListing(t, "borg-1.2.4-list-last1-TZ-America_New_York.json").Archives[0]
	if utc.Name != ny.Name {
		t.Fatalf("captures are of different archives: %s, %s", utc.Name, ny.Name)
	}
	if got := utc.Start.Sub(ny.Start.Time); got != 5*time.Hour {
		t.Errorf("TZ skew = %v, want 5h", got)
	}
}

type fixture struct {
	dir, repo, data, base, pass string
	bytes                       int64
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	tooltest.Require(t, "borg", "borgbackup")
	dir := t.TempDir()
	f := fixture{dir: dir, repo: filepath.Join(dir, "repo"), data: filepath.Join(dir, "data"),
		base: filepath.Join(dir, "borg-base"), pass: "borg-pass-" + filepath.Base(dir)}
	if err := os.MkdirAll(f.data, 0o755); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 300000)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.data, "a.bin"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	f.bytes = int64(len(b))
	f.borg(t, "init", "--encryption=repokey", f.repo)
	return f
}

func (f fixture) borg(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command("borg", args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "BORG_PASSPHRASE=" + f.pass, "BORG_BASE_DIR=" + f.base, "TZ=UTC"}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("borg %v: %v\n%s", args, err, out)
	}
}

func (f fixture) config() Config {
	return Config{Set: "uploads", Repository: f.repo, Passphrase: f.pass, Glob: "web-01-*",
		Backup: []string{f.data}, BaseDir: f.base}
}

func TestRealRepositoryFacts(t *testing.T) {
	// A console running in New York must still read borg's times right.
	t.Setenv("TZ", "America/New_York")
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
	if fs[0].Unreadable != "" || !fs[0].LastStart.IsZero() || fs[0].Status != "no archives" {
		t.Fatalf("empty repository: %+v", fs[0])
	}

	before := time.Now().Truncate(time.Second) // borg keeps whole seconds
	for range 2 {
		if err := p.RunNow(ctx, "uploads"); err != nil {
			t.Fatal(err)
		}
	}
	after := time.Now()
	f.borg(t, "create", f.repo+"::db-01-{utcnow}", f.data) // another set's archive

	archives, err := p.Archives(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(archives) != 2 {
		t.Fatalf("set has %d archives, want 2", len(archives))
	}
	fs, err = p.Facts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := fs[0]
	if got.Unreadable != "" {
		t.Fatalf("unreadable: %s", got.Unreadable)
	}
	for name, ts := range map[string]time.Time{"start": got.LastStart, "end": got.LastEnd} {
		if ts.Before(before) || ts.After(after) {
			t.Errorf("%s %v outside the run window %v..%v", name, ts, before, after)
		}
	}
	if got.LastEnd.Before(got.LastStart) {
		t.Errorf("end %v before start %v", got.LastEnd, got.LastStart)
	}
	if got.LastSize != f.bytes {
		t.Errorf("size = %d, want %d", got.LastSize, f.bytes)
	}
	if got.Status != "2 archives" || got.LastType != "archive" || !got.AttemptOK || got.Running {
		t.Errorf("facts = %+v", got)
	}

	v, err := p.Verify(ctx, "uploads")
	if err != nil {
		t.Fatal(err)
	}
	if !v.VerifyOK {
		t.Fatalf("verify of a sound repository failed: %q", v.VerifyMessage)
	}

	// Flip a byte in the middle of the biggest segment (the data).
	seg := tooltest.LargestFile(t, filepath.Join(f.repo, "data"))
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(seg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	v, err = p.Verify(ctx, "uploads")
	if err != nil {
		t.Fatal(err)
	}
	if v.VerifyOK {
		t.Fatal("verify of a damaged repository reported OK")
	}
	for _, want := range []string{"Segment entry checksum mismatch", "errors found"} {
		if !strings.Contains(v.VerifyMessage, want) {
			t.Errorf("verify message %q lacks %q", v.VerifyMessage, want)
		}
	}
}

func TestRealWrongPassphraseIsUnreadable(t *testing.T) {
	f := newFixture(t)
	cfg := f.config()
	cfg.Passphrase = "wrong-passphrase-5521"
	p, _ := New(cfg)
	fs, err := p.Facts(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got := fs[0].Unreadable; got != "borg: wrong passphrase" {
		t.Errorf("unreadable = %q", got)
	}
}

// With no passphrase at all borg would ask for one; it must fail instead of
// waiting on a prompt.
func TestRealNoPassphraseDoesNotPrompt(t *testing.T) {
	f := newFixture(t)
	cfg := f.config()
	cfg.Passphrase = ""
	p, _ := New(cfg)
	fs, err := p.Facts(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if fs[0].Unreadable == "" {
		t.Fatal("encrypted repository read without a passphrase")
	}
}

func TestRealUnknownUnencryptedIsRefused(t *testing.T) {
	tooltest.Require(t, "borg", "borgbackup")
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	cmd := exec.Command("borg", "init", "--encryption=none", repo)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "BORG_BASE_DIR=" + filepath.Join(dir, "creator")}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("borg init: %v\n%s", err, out)
	}
	// The provider's own base dir has never seen this repository.
	p, _ := New(Config{Set: "s", Repository: repo, BaseDir: filepath.Join(dir, "mine")})
	fs, err := p.Facts(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(fs[0].Unreadable, "has not seen before") {
		t.Errorf("unreadable = %q", fs[0].Unreadable)
	}
	p, _ = New(Config{Set: "s", Repository: repo, BaseDir: filepath.Join(dir, "mine"), AcceptUnknownUnencrypted: true})
	if fs, _ = p.Facts(t.Context()); fs[0].Unreadable != "" {
		t.Errorf("accepted repository unreadable: %q", fs[0].Unreadable)
	}
}

func TestRealMissingRepository(t *testing.T) {
	tooltest.Require(t, "borg", "borgbackup")
	dir := t.TempDir()
	p, _ := New(Config{Set: "s", Repository: filepath.Join(dir, "nope"), BaseDir: dir})
	fs, err := p.Facts(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got := fs[0].Unreadable; got != "borg: repository not found" {
		t.Errorf("unreadable = %q", got)
	}
}

func TestMissingBinaryIsUnreadable(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("PATH", dir)
	p, _ := New(Config{Set: "s", Repository: dir, BaseDir: dir})
	fs, err := p.Facts(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got := fs[0].Unreadable; got != "borg: binary not found in PATH (Debian package borgbackup)" {
		t.Errorf("unreadable = %q", got)
	}
}

func TestPassphraseOnlyInEnvironment(t *testing.T) {
	f := newFixture(t)
	p, _ := New(f.config())
	cmd, err := toolrun.Command(t.Context(), p.spec("create", f.repo+"::x", f.data))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(strings.Join(cmd.Args, " "), f.pass) {
		t.Fatalf("passphrase in argv %q", cmd.Args)
	}
	if cmd.Stdin != nil {
		t.Error("borg gets a stdin it could prompt on")
	}
	var cmdline, environ []byte
	p.onStart = func(pid int) {
		// Not reaped before Wait; borg's Python start-up outlasts this read.
		cmdline, _ = os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
		environ, _ = os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
		p.onStart = nil
	}
	if err := p.RunNow(t.Context(), "uploads"); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(cmdline, []byte("create")) {
		t.Fatalf("did not read the running borg's command line: %q", cmdline)
	}
	if bytes.Contains(cmdline, []byte(f.pass)) {
		t.Errorf("passphrase in /proc/<pid>/cmdline")
	}
	for _, want := range []string{"BORG_PASSPHRASE=" + f.pass, "TZ=UTC", "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=no", "BORG_RELOCATED_REPO_ACCESS_IS_OK=no", "BORG_BASE_DIR=" + f.base} {
		if !bytes.Contains(environ, []byte(want+"\x00")) {
			t.Errorf("child environment lacks %s", strings.SplitN(want, "=", 2)[0])
		}
	}
}
