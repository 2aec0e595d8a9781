package sqlitestore

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
)

// A missing or empty file is not a project with no history: with Existing
// it is refused, naming the path, and nothing is created.
func TestExistingRefusesAMissingOrEmptyFile(t *testing.T) {
	ctx := testContext(t)
	dir := t.TempDir()
	missing := filepath.Join(dir, "typo", "stat.db")
	var me *MissingError
	if _, err := Open(ctx, missing, Existing()); !errors.As(err, &me) || me.Empty || !strings.Contains(err.Error(), missing) {
		t.Fatalf("open of a missing file = %v; want a MissingError naming it", err)
	}
	if _, err := os.Stat(filepath.Dir(missing)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the refused open created %s", filepath.Dir(missing))
	}
	empty := filepath.Join(dir, "state.db")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, empty, Existing()); !errors.As(err, &me) || !me.Empty {
		t.Fatalf("open of an empty file = %v; want a MissingError saying it is empty", err)
	}
	if st, _ := os.Stat(empty); st.Size() != 0 {
		t.Fatal("the refused open wrote to the empty file")
	}
	// Without Existing (the commands that create state) it is created,
	// and says so.
	s, err := Open(ctx, empty)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !s.Created() {
		t.Fatal("Created() = false for a new state file")
	}
}

// A state file that is emptied (or removed) after audit entries were
// written is lost state, not a new project: even the commands that create
// state refuse it, naming the head file that says so, and write nothing —
// until a person moves the head file away.
func TestALostStateIsRefusedEvenWhereStateIsCreated(t *testing.T) {
	ctx := testContext(t)
	s, path := openTemp(t)
	for range 3 {
		if _, err := s.AppendAudit(ctx, core.AuditEntry{Action: "promote", Outcome: "ok"}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	for _, f := range []string{path + "-wal", path + "-shm"} {
		_ = os.Remove(f)
	}
	for _, empty := range []bool{true, false} {
		if empty {
			if err := os.WriteFile(path, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		} else if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		var lost *LostError
		_, err := Open(ctx, path)
		if !errors.As(err, &lost) || lost.Empty != empty || lost.Head.Count != 3 ||
			!strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), AuditHeadPath(path)) || !strings.Contains(err.Error(), "3 audit entries") {
			t.Fatalf("open of a lost state (empty %v) = %v; want a LostError naming the file, its head and 3 entries", empty, err)
		}
		if st, err := os.Stat(path); empty && (err != nil || st.Size() != 0) || !empty && !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("the refused open touched %s: %v", path, err)
		}
	}
	if err := os.Rename(AuditHeadPath(path), AuditHeadPath(path)+".old"); err != nil {
		t.Fatal(err)
	}
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("with the head moved away, a new state: %v", err)
	}
	defer s.Close()
	if !s.Created() {
		t.Fatal("Created() = false for the new state")
	}
}

// A state file with a damaged page — one the commands do not read — is
// refused at open (quick_check), byte for byte untouched, and the full
// check names the damage.
func TestADamagedPageIsRefusedAndLeftUntouched(t *testing.T) {
	ctx := testContext(t)
	s, path := openTemp(t)
	var counts []core.ErrorCount
	for i := range 2000 {
		counts = append(counts, core.ErrorCount{Project: "shop", Ref: core.Ref{Service: "api", Env: "production"}, Release: "v1", Level: "error",
			Fingerprint: fmt.Sprintf("fp-%04d", i), Title: strings.Repeat("TypeError: cart is undefined ", 3), Bucket: time.Unix(1_700_000_000, 0), Count: 1})
	}
	if err := s.PutErrorCounts(ctx, counts); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendAudit(ctx, core.AuditEntry{Action: "lock", Outcome: "locked"}); err != nil {
		t.Fatal(err)
	}
	var root, pageSize int64
	if err := s.r.QueryRowContext(ctx, `SELECT rootpage FROM sqlite_master WHERE name = 'error_counts'`).Scan(&root); err != nil {
		t.Fatal(err)
	}
	if err := s.r.QueryRowContext(ctx, `PRAGMA page_size`).Scan(&pageSize); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil { // checkpoints the WAL into the file
		t.Fatal(err)
	}
	corruptPage(t, path, root, pageSize)
	before := fileSum(t, path)

	_, err := Open(ctx, path, Existing())
	var ce *CorruptError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "nothing was written to it") {
		t.Fatalf("open of a damaged file = %v; want a CorruptError", err)
	}
	if after := fileSum(t, path); !bytes.Equal(before, after) {
		t.Fatal("the refused open changed the file")
	}
	problems, err := Check(ctx, path)
	if err != nil || len(problems) == 0 {
		t.Fatalf("Check = %v, %v; want the damage listed", problems, err)
	}
}

// corruptPage overwrites the b-tree header of page n with garbage, as a
// bad sector or a stray write would.
func corruptPage(t *testing.T, path string, n, size int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(bytes.Repeat([]byte{0xA5}, 24), (n-1)*size); err != nil {
		t.Fatal(err)
	}
}

func fileSum(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return sum[:]
}

// BenchmarkQuickCheckOnOpen measures the quick_check every open runs, on
// a state file with 100k rows of error counts (200 fingerprints, 500
// ten-second buckets each).
func BenchmarkQuickCheckOnOpen(b *testing.B) {
	ctx := testContext(b)
	s, path := openTemp(b)
	var counts []core.ErrorCount
	for i := range 100_000 {
		counts = append(counts, core.ErrorCount{Project: "shop", Ref: core.Ref{Service: "api", Env: "production"}, Release: "v1", Level: "error",
			Fingerprint: fmt.Sprintf("fp-%03d", i%200), Title: "TypeError: cart is undefined", Bucket: time.Unix(1_700_000_000+int64(i/200)*10, 0), Count: 1})
	}
	if err := s.PutErrorCounts(ctx, counts); err != nil {
		b.Fatal(err)
	}
	s.Close()
	st, _ := os.Stat(path)
	for b.Loop() {
		if err := quickCheck(ctx, path); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(st.Size())/1e6, "MB")
}
