package demo

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runBackupJob starts BackupJob and returns a function stopping it.
func runBackupJob(t *testing.T, db, dir string, every time.Duration, keep int) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- BackupJob(ctx, db, dir, every, keep) }()
	return func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("BackupJob: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("BackupJob did not return within 10s of its context ending")
		}
	}
}

// countOrders opens a backup read-only and counts its orders.
func countOrders(t *testing.T, path string) int {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM orders`).Scan(&n); err != nil {
		t.Fatalf("reading orders from backup %s: %v", filepath.Base(path), err)
	}
	return n
}

func TestBackupJobWritesRealBackupsAndKeepsTheNewest(t *testing.T) {
	data, dir := t.TempDir(), filepath.Join(t.TempDir(), "orders")
	dbPath := filepath.Join(data, OrdersFile)
	db, err := openOrders(context.Background(), dbPath)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := insertOrder(context.Background(), db, "v1.4.2", 100*i); err != nil {
			t.Fatal(err)
		}
	}
	// The service keeps its connection open while backups run.
	defer db.Close()

	const keep = 3
	stop := runBackupJob(t, dbPath, dir, 30*time.Millisecond, keep)
	seen := map[string]bool{}
	waitFor(t, 20*time.Second, "seven backups to be written", func() bool {
		names, _ := backupNames(dir)
		for _, n := range names {
			seen[n] = true
		}
		return len(seen) >= 7
	})
	stop()

	names, err := backupNames(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != keep {
		t.Fatalf("%d backups left (%v), want the newest %d", len(names), names, keep)
	}
	var newestSeen string
	for n := range seen {
		newestSeen = max(newestSeen, n)
	}
	if names[len(names)-1] != newestSeen {
		t.Errorf("newest backup kept is %s, but %s was written", names[len(names)-1], newestSeen)
	}
	for _, n := range names {
		if got := countOrders(t, filepath.Join(dir, n)); got != 5 {
			t.Errorf("backup %s holds %d orders, want 5", n, got)
		}
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), backupPrefix) || !strings.HasSuffix(e.Name(), backupSuffix) {
			t.Errorf("left behind in the backup dir: %s", e.Name())
		}
	}
}

// A job started before the service has run creates the database, so the
// very first backup is a real, empty orders database and not 0 bytes.
func TestBackupJobCreatesAMissingDatabase(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "new", OrdersFile)
	dir := filepath.Join(t.TempDir(), "orders")
	stop := runBackupJob(t, dbPath, dir, time.Hour, 2)
	waitFor(t, 10*time.Second, "the first backup", func() bool {
		names, _ := backupNames(dir)
		return len(names) == 1
	})
	stop()

	names, _ := backupNames(dir)
	first := filepath.Join(dir, names[0])
	if st, err := os.Stat(first); err != nil || st.Size() == 0 {
		t.Fatalf("first backup: %v, size %v", err, st)
	}
	if got := countOrders(t, first); got != 0 {
		t.Fatalf("first backup of a new database holds %d orders", got)
	}
	stamp := strings.TrimSuffix(strings.TrimPrefix(names[0], backupPrefix), backupSuffix)
	when, err := time.Parse(backupTimeLayout, stamp)
	if err != nil || time.Since(when) > time.Minute || time.Since(when) < 0 {
		t.Fatalf("backup %s is not named by the UTC time it was taken (%v)", names[0], err)
	}
}

func TestBackupJobRefusesNonsense(t *testing.T) {
	ctx := context.Background()
	db, dir := filepath.Join(t.TempDir(), OrdersFile), t.TempDir()
	if err := BackupJob(ctx, db, dir, 0, 3); err == nil {
		t.Error("BackupJob with no interval returned nil")
	}
	if err := BackupJob(ctx, db, dir, time.Minute, 0); err == nil {
		t.Error("BackupJob keeping nothing returned nil")
	}
}
