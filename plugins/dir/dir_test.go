package dir

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
)

// writeBackup writes a dump of size bytes with the given modification time.
func writeBackup(t *testing.T, dir, name string, size int, mtime time.Time) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, make([]byte, size), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	return p
}

func newSource(t *testing.T, dir string) *Source {
	t.Helper()
	s, err := New(Config{Set: "db", Glob: filepath.Join(dir, "*.sql.gz")})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var day0 = time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC)

func TestNewestFileIsTheLastBackup(t *testing.T) {
	dir := t.TempDir()
	for i := range 3 {
		writeBackup(t, dir, "db-"+string(rune('1'+i))+".sql.gz", 1000+i*10, day0.Add(time.Duration(i)*24*time.Hour))
	}
	writeBackup(t, dir, "notes.txt", 5, day0.Add(100*time.Hour)) // outside the glob
	sc := newSource(t, dir).Scan()
	f := sc.Facts
	newest := day0.Add(48 * time.Hour)
	if !f.LastEnd.Equal(newest) || f.LastSize != 1020 || !f.AttemptOK || !f.Attempted.Equal(newest) || f.Unreadable != "" {
		t.Fatalf("facts %+v", f)
	}
	if sc.Count != 3 || f.Tool != "dir" || f.Set != "db" || f.ReportedAt.IsZero() {
		t.Fatalf("scan %+v", sc)
	}
}

func TestEmptyNewestFileIsAFailedBackup(t *testing.T) {
	dir := t.TempDir()
	writeBackup(t, dir, "a.sql.gz", 1000, day0)
	writeBackup(t, dir, "b.sql.gz", 0, day0.Add(24*time.Hour))
	f := newSource(t, dir).Scan().Facts
	if f.AttemptOK || !f.Attempted.Equal(day0.Add(24*time.Hour)) {
		t.Fatalf("an empty dump counted as a good attempt: %+v", f)
	}
	if !f.LastEnd.Equal(day0) || f.LastSize != 1000 {
		t.Fatalf("last good backup should be a.sql.gz: %+v", f)
	}
	if !strings.Contains(f.Status, "b.sql.gz is empty") {
		t.Fatalf("status %q", f.Status)
	}
}

func TestTooSmallFileIsAFailedBackup(t *testing.T) {
	dir := t.TempDir()
	writeBackup(t, dir, "a.sql.gz", 1000, day0)
	writeBackup(t, dir, "b.sql.gz", 999, day0.Add(24*time.Hour))
	writeBackup(t, dir, "c.sql.gz", 400, day0.Add(48*time.Hour)) // a truncated dump
	f := newSource(t, dir).Scan().Facts
	if f.AttemptOK || !f.LastEnd.Equal(day0.Add(24*time.Hour)) || f.LastSize != 999 {
		t.Fatalf("facts %+v", f)
	}
	if !strings.Contains(f.Status, "less than 50%") {
		t.Fatalf("status %q", f.Status)
	}
	// Exactly half is still a backup.
	writeBackup(t, dir, "d.sql.gz", 500, day0.Add(72*time.Hour))
	f = newSource(t, dir).Scan().Facts
	if !f.AttemptOK || f.LastSize != 500 {
		t.Fatalf("a half-size dump (compared with the last good one) should count: %+v", f)
	}
}

func TestOnlyBadFilesMeansNoBackup(t *testing.T) {
	dir := t.TempDir()
	writeBackup(t, dir, "a.sql.gz", 0, day0)
	f := newSource(t, dir).Scan().Facts
	if !f.LastEnd.IsZero() || f.AttemptOK || f.Attempted.IsZero() {
		t.Fatalf("facts %+v", f)
	}
}

func TestMissingDirectoryIsUnreadable(t *testing.T) {
	s, err := New(Config{Set: "db", Glob: filepath.Join(t.TempDir(), "gone", "*.sql.gz")})
	if err != nil {
		t.Fatal(err)
	}
	if f := s.Scan().Facts; f.Unreadable == "" {
		t.Fatalf("a missing backup directory reads as %+v", f)
	}
}

func TestFilesChangingDuringTheScan(t *testing.T) {
	dir := t.TempDir()
	old := writeBackup(t, dir, "a.sql.gz", 1000, day0)
	writeBackup(t, dir, "b.sql.gz", 1000, day0.Add(24*time.Hour))
	s := newSource(t, dir)
	s.afterGlob = func() {
		os.Remove(old) // rotated away after the listing
		writeBackup(t, dir, "c.sql.gz", 1000, day0.Add(48*time.Hour))
	}
	sc := s.Scan()
	if sc.Facts.Unreadable != "" || len(sc.Files) != 1 || !sc.Facts.LastEnd.Equal(day0.Add(24*time.Hour)) {
		t.Fatalf("scan during rotation: %+v", sc)
	}
	s.afterGlob = nil
	if f := s.Scan().Facts; !f.LastEnd.Equal(day0.Add(48 * time.Hour)) {
		t.Fatalf("the next scan missed the new file: %+v", f)
	}
}

func TestWatchFreshnessSeesANewBackup(t *testing.T) {
	dir := t.TempDir()
	writeBackup(t, dir, "a.sql.gz", 1000, day0)
	s, err := New(Config{Set: "db", Glob: filepath.Join(dir, "*.sql.gz"), Poll: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reports := 0
	_ = s.WatchFreshness(ctx, func(f core.BackupFacts) {
		reports++
		if reports == 1 {
			writeBackup(t, dir, "b.sql.gz", 1000, day0.Add(24*time.Hour))
		}
		if f.LastEnd.Equal(day0.Add(24 * time.Hour)) {
			cancel()
		}
	})
	if ctx.Err() != context.Canceled || reports < 2 {
		t.Fatalf("watch never reported the new backup (%d reports)", reports)
	}
}

func TestVerifyReadsTheNewestGoodBackup(t *testing.T) {
	dir := t.TempDir()
	writeBackup(t, dir, "a.sql.gz", 4096, day0)
	s := newSource(t, dir)
	f, err := s.Verify(context.Background(), "db")
	if err != nil || !f.VerifyOK || f.VerifiedAt.IsZero() {
		t.Fatalf("verify: %+v %v", f, err)
	}
	if _, err := s.Verify(context.Background(), "other"); err == nil {
		t.Fatal("verify of another set was answered")
	}
	if err := s.RunNow(context.Background(), "db"); err == nil {
		t.Fatal("RunNow claimed to run an external job")
	}
}
