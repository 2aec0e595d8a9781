package pgbackrest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/plugins/internal/toolrun/tooltest"
)

func readInfo(t *testing.T, name string) Stanza {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	ss, err := ParseInfo(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(ss) != 1 {
		t.Fatalf("%s: %d stanzas", name, len(ss))
	}
	return ss[0]
}

func TestCapturedInfo(t *testing.T) {
	s := readInfo(t, "pgbackrest-2.45-info.json")
	var f core.BackupFacts
	FillFacts(&f, s)
	if f.Unreadable != "" {
		t.Fatal(f.Unreadable)
	}
	if f.LastType != "incr" || f.LastStart.Unix() != 1795641850 || f.LastEnd.Unix() != 1795641852 {
		t.Errorf("newest = %s %v..%v, want the incr at 1795641850..852", f.LastType, f.LastStart, f.LastEnd)
	}
	if f.LastFull.Unix() != 1795641847 {
		t.Errorf("last full = %v, want the full's stop 1795641847", f.LastFull)
	}
	if f.LastSize != 28456673 || !f.AttemptOK || f.Running {
		t.Errorf("facts = %+v", f)
	}
	if f.Status != "ok; WAL 000000010000000000000001…000000010000000000000007" {
		t.Errorf("status = %q", f.Status)
	}
	if f.LastEnd.Location() != time.UTC {
		t.Error("epoch times not in UTC")
	}
}

func TestCapturedNoBackups(t *testing.T) {
	s := readInfo(t, "pgbackrest-2.45-info-no-backups.json")
	var f core.BackupFacts
	FillFacts(&f, s)
	if f.Unreadable != "" || !f.LastStart.IsZero() || !strings.HasPrefix(f.Status, "no valid backups") {
		t.Errorf("facts = %+v", f)
	}
	// core judges "no backup" as unknown, never fresh.
	f.ReportedAt = time.Now()
	if got := core.JudgeBackup(core.Ref{}, f, core.BackupPolicy{}, time.Now()).State; got != core.FreshUnknown {
		t.Errorf("no valid backups judged %s", got)
	}
}

func TestCapturedBackupInProgress(t *testing.T) {
	var f core.BackupFacts
	FillFacts(&f, readInfo(t, "pgbackrest-2.45-info-backup-in-progress.json"))
	if !f.Running || f.LastType != "incr" {
		t.Errorf("running %v, newest %s: want the held lock read as running beside the finished incr", f.Running, f.LastType)
	}
}

func TestCapturedAfterFourthFull(t *testing.T) {
	var f core.BackupFacts
	FillFacts(&f, readInfo(t, "pgbackrest-2.45-info-after-4th.json"))
	if f.LastType != "full" || !f.LastFull.Equal(f.LastEnd) {
		t.Errorf("newest %s, last full %v, end %v: want a full that is also the last full", f.LastType, f.LastFull, f.LastEnd)
	}
}

func TestMissingStanzaIsUnreadable(t *testing.T) {
	var s Stanza
	s.Name = "demo"
	s.Status.Code, s.Status.Message = StatusMissingStanza, "missing stanza path"
	var f core.BackupFacts
	FillFacts(&f, s)
	if f.Unreadable != "pgbackrest: stanza demo: missing stanza path (status 1)" {
		t.Errorf("unreadable = %q", f.Unreadable)
	}
}

func TestMissingBinaryIsUnreadable(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	p, _ := New(Config{Set: "postgres", Stanza: "demo"})
	fs, err := p.Facts(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got := fs[0].Unreadable; got != "pgbackrest: binary not found in PATH (Debian package pgbackrest)" {
		t.Errorf("unreadable = %q", got)
	}
}

func TestRealClusterBackups(t *testing.T) {
	c := tooltest.StartPGCluster(t)
	c.Pgbackrest(t, "stanza-create")
	p, err := New(Config{Set: "postgres", Stanza: "demo", ConfigPath: c.Conf, Wrapper: c.AsPG, BackupType: "incr"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()

	s, err := p.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.Status.Code != StatusNoValidBackups || s.Status.Message != "no valid backups" || len(s.Backup) != 0 {
		t.Fatalf("after stanza-create: status %d %q with %d backups", s.Status.Code, s.Status.Message, len(s.Backup))
	}
	fs, err := p.Facts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if fs[0].Unreadable != "" || !fs[0].LastStart.IsZero() || !strings.HasPrefix(fs[0].Status, "no valid backups") {
		t.Fatalf("facts before any backup: %+v", fs[0])
	}

	before := time.Now().Truncate(time.Second) // epoch seconds
	c.Pgbackrest(t, "backup", "--type=full")
	midway := time.Now()
	if err := p.RunNow(ctx, "postgres"); err != nil { // the incr
		t.Fatal(err)
	}
	after := time.Now()

	s, err = p.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.Status.Code != StatusOK || len(s.Backup) != 2 {
		t.Fatalf("status %d %q with %d backups, want ok with 2", s.Status.Code, s.Status.Message, len(s.Backup))
	}
	full, incr := s.Backup[0], s.Backup[1]
	if full.Type != "full" || incr.Type != "incr" || incr.Prior != full.Label {
		t.Errorf("chain = %s(%s) → %s(%s) prior %s", full.Type, full.Label, incr.Type, incr.Label, incr.Prior)
	}
	if full.Stop().After(incr.Start()) {
		t.Errorf("full stopped %v after the incr started %v", full.Stop(), incr.Start())
	}
	if full.Info.Size <= 0 || incr.Info.Size <= 0 || incr.Info.Delta >= full.Info.Delta {
		t.Errorf("sizes: full %d (copied %d), incr %d (copied %d)", full.Info.Size, full.Info.Delta, incr.Info.Size, incr.Info.Delta)
	}
	lo, hi := s.WALRange()
	if lo == "" || hi < incr.Archive.Stop || lo > full.Archive.Start {
		t.Errorf("WAL range %s…%s does not cover the backups' %s…%s", lo, hi, full.Archive.Start, incr.Archive.Stop)
	}

	fs, err = p.Facts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f := fs[0]
	if f.Unreadable != "" {
		t.Fatal(f.Unreadable)
	}
	if f.LastType != "incr" || f.LastStart.Before(midway.Truncate(time.Second)) || f.LastEnd.After(after) {
		t.Errorf("last = %s %v..%v, want the incr within %v..%v", f.LastType, f.LastStart, f.LastEnd, midway, after)
	}
	if f.LastFull.Before(before) || !f.LastFull.Before(f.LastEnd) && !f.LastFull.Equal(f.LastEnd) {
		t.Errorf("last full %v, want the full backup's stop", f.LastFull)
	}
	if f.LastSize != incr.Info.Size || !f.AttemptOK || f.Running || !f.CanRunNow {
		t.Errorf("facts = %+v", f)
	}
	if !strings.Contains(f.Status, "WAL "+lo+"…"+hi) {
		t.Errorf("status %q lacks the WAL range", f.Status)
	}

	v, err := p.Verify(ctx, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	if !v.VerifyOK {
		t.Fatalf("verify of a sound repository failed: %q", v.VerifyMessage)
	}

	// Damage a file of the full backup: verify must name the problem.
	victim := filepath.Join(c.Dir, "repo", "backup", "demo", full.Label, "pg_data", "PG_VERSION")
	if err := os.WriteFile(victim, []byte("99\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	v, err = p.Verify(ctx, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	if v.VerifyOK {
		t.Fatal("verify of a damaged repository reported OK")
	}
	if want := "status error; backup " + full.Label + ": checksum invalid: 1"; !strings.HasPrefix(v.VerifyMessage, want) {
		t.Errorf("verify message %q, want it to start %q", v.VerifyMessage, want)
	}
}

func TestRealUnknownStanzaIsUnreadable(t *testing.T) {
	tooltest.Require(t, "pgbackrest", "pgbackrest")
	dir := t.TempDir()
	conf := filepath.Join(dir, "pgbackrest.conf")
	body := fmt.Sprintf("[global]\nrepo1-path=%[1]s/repo\nlock-path=%[1]s/lock\nlog-path=%[1]s\nlog-level-file=off\n", dir)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	p, _ := New(Config{Set: "postgres", Stanza: "demo", ConfigPath: conf})
	fs, err := p.Facts(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got := fs[0].Unreadable; got != "pgbackrest: stanza demo: missing stanza path (status 1)" {
		t.Errorf("unreadable = %q", got)
	}
}

func TestRealBadConfigIsUnreadable(t *testing.T) {
	tooltest.Require(t, "pgbackrest", "pgbackrest")
	p, _ := New(Config{Set: "postgres", Stanza: "demo", ConfigPath: filepath.Join(t.TempDir(), "missing.conf")})
	fs, err := p.Facts(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got := fs[0].Unreadable; !strings.HasPrefix(got, "pgbackrest: ") || !strings.Contains(got, "missing.conf") {
		t.Errorf("unreadable = %q", got)
	}
}
