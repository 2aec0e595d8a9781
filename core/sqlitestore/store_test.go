package sqlitestore

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/core/storetest"
)

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func openTemp(t testing.TB, opts ...Option) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), ".ripcord", "state.db")
	s, err := Open(testContext(t), path, opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s, path
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) core.Store {
		s, _ := openTemp(t)
		return s
	})
}

// rawDB opens the file with no help from Store, the way someone with a
// sqlite3 shell would.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatalf("open raw: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestOpenCreatesPrivateWALDatabase(t *testing.T) {
	s, path := openTemp(t)
	defer s.Close()

	dirInfo, err := os.Stat(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if perm := dirInfo.Mode().Perm(); perm != 0o700 {
		t.Errorf("state directory mode = %o, want 700", perm)
	}
	fileInfo, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fileInfo.Mode().Perm(); perm != 0o600 {
		t.Errorf("state file mode = %o, want 600", perm)
	}

	db := rawDB(t, path)
	var mode string
	var version, fk int
	if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" {
		t.Errorf("journal_mode = %q, want wal", mode)
	}
	if err := db.QueryRow("PRAGMA user_version").Scan(&version); err != nil {
		t.Fatal(err)
	}
	if version != SchemaVersion() {
		t.Errorf("user_version = %d, want %d", version, SchemaVersion())
	}
	// The store's own connections enforce foreign keys.
	if err := s.w.QueryRow("PRAGMA foreign_keys").Scan(&fk); err != nil {
		t.Fatal(err)
	}
	if fk != 1 {
		t.Errorf("foreign_keys = %d on the store's connection, want 1", fk)
	}
}

func TestReopenKeepsDataAndSchema(t *testing.T) {
	ctx := testContext(t)
	s, path := openTemp(t)
	if err := s.PutRelease(ctx, core.Release{Service: "api", Version: "v1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendAudit(ctx, core.AuditEntry{Action: "promote", Outcome: "ok"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	if _, err := s.Release(ctx, "api", "v1"); err != nil {
		t.Fatalf("release lost on reopen: %v", err)
	}
	e, err := s.AppendAudit(ctx, core.AuditEntry{Action: "rollback", Outcome: "ok"})
	if err != nil {
		t.Fatal(err)
	}
	if e.Seq != 2 {
		t.Fatalf("the chain restarted on reopen: Seq %d, want 2", e.Seq)
	}
}

func TestNewerSchemaIsRefusedAndLeftUntouched(t *testing.T) {
	ctx := testContext(t)
	s, path := openTemp(t)
	if _, err := s.AppendAudit(ctx, core.AuditEntry{Action: "promote", Outcome: "ok"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// A future ripcord migrated this file to version 7.
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("PRAGMA user_version = 7"); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	s, err = Open(ctx, path)
	if err == nil {
		s.Close()
		t.Fatal("Open accepted a database from a newer ripcord")
	}
	want := fmt.Sprintf("state.db has schema version 7; this ripcord knows up to %d: upgrade ripcord", SchemaVersion())
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("error = %q, want it to contain %q", err, want)
	}
	var tooNew *SchemaTooNewError
	if !errors.As(err, &tooNew) || tooNew.Version != 7 {
		t.Fatalf("error %v is not a *SchemaTooNewError for version 7", err)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Fatal("refusing the newer database still changed its bytes")
	}
}

func TestAuditRejectsRawUpdateAndDelete(t *testing.T) {
	ctx := testContext(t)
	s, path := openTemp(t)
	defer s.Close()
	for _, action := range []string{"promote", "rollback"} {
		if _, err := s.AppendAudit(ctx, core.AuditEntry{Action: action, Actor: core.Actor{Name: "alice"}, Outcome: "ok"}); err != nil {
			t.Fatal(err)
		}
	}

	db := rawDB(t, path)
	for _, stmt := range []string{
		`UPDATE audit SET action = 'nothing to see' WHERE seq = 1`,
		`UPDATE audit SET entry = replace(entry, 'alice', 'mallory')`,
		`DELETE FROM audit WHERE seq = 2`,
		`DELETE FROM audit`,
	} {
		_, err := db.Exec(stmt)
		if err == nil || !strings.Contains(err.Error(), "audit log is append-only") {
			t.Errorf("%s: got %v, want the append-only error", stmt, err)
		}
	}

	all, err := s.Audit(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[0].Action != "promote" || all[0].Actor.Name != "alice" {
		t.Fatalf("audit after the attempts = %+v", all)
	}
	if _, err := core.VerifyAudit(core.GenesisHash, all); err != nil {
		t.Fatalf("chain after the attempts: %v", err)
	}
}

// Two consoles on one machine open the same file: their appends must
// still form one chain.
func TestTwoHandlesShareOneAuditChain(t *testing.T) {
	ctx := testContext(t)
	a, path := openTemp(t)
	defer a.Close()
	b, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	const each = 40
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	start := make(chan struct{})
	for i, s := range []*Store{a, b, a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for j := range each {
				if _, err := s.AppendAudit(ctx, core.AuditEntry{Action: "heartbeat", Reason: fmt.Sprintf("%d/%d", i, j), Outcome: "ok"}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	all, err := b.Audit(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 4*each {
		t.Fatalf("%d entries, want %d", len(all), 4*each)
	}
	if _, err := core.VerifyAudit(core.GenesisHash, all); err != nil {
		t.Fatalf("chain written through two handles: %v", err)
	}
}

func TestConcurrentOpenOfNewFile(t *testing.T) {
	ctx := testContext(t)
	path := filepath.Join(t.TempDir(), "state.db")
	const n = 4
	stores := make([]*Store, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			stores[i], errs[i] = Open(ctx, path)
		}()
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Errorf("Open %d: %v", i, errs[i])
			continue
		}
		defer stores[i].Close()
	}
	if t.Failed() {
		return
	}
	if err := stores[0].PutRelease(ctx, core.Release{Service: "api", Version: "v1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := stores[n-1].Release(ctx, "api", "v1"); err != nil {
		t.Fatalf("a write through one handle is not visible through another: %v", err)
	}
}

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestLockExpiryFollowsTheStoreClock(t *testing.T) {
	ctx := testContext(t)
	clock := &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	s, _ := openTemp(t, WithClock(clock.Now))
	defer s.Close()
	ref := core.Ref{Service: "api", Env: "production"}

	a, _, err := s.AcquireLock(ctx, core.Lock{Ref: ref, Holder: core.Actor{Name: "alice"}, ExpiresAt: clock.Now().Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if !a.Since.Equal(clock.Now()) {
		t.Fatalf("Since = %v, want the store clock's %v", a.Since, clock.Now())
	}
	clock.Advance(59 * time.Second)
	bobLock := core.Lock{Ref: ref, Holder: core.Actor{Name: "bob"}, ExpiresAt: clock.Now().Add(time.Hour)}
	var held *core.LockHeldError
	if _, _, err := s.AcquireLock(ctx, bobLock); !errors.As(err, &held) {
		t.Fatalf("bob one second before expiry: got %v, want *core.LockHeldError", err)
	}
	clock.Advance(time.Second)
	if _, _, err := s.AcquireLock(ctx, bobLock); err != nil {
		t.Fatalf("bob at expiry: %v", err)
	}
	if err := s.Heartbeat(ctx, ref, a.Token, clock.Now().Add(time.Hour)); !errors.Is(err, core.ErrLockLost) {
		t.Fatalf("alice's heartbeat: got %v, want core.ErrLockLost", err)
	}
}

func TestAcquireLockNeedsExpiry(t *testing.T) {
	s, _ := openTemp(t)
	defer s.Close()
	_, _, err := s.AcquireLock(testContext(t), core.Lock{Ref: core.Ref{Service: "api", Env: "prod"}, Holder: core.Actor{Name: "alice"}})
	if err == nil || !strings.Contains(err.Error(), "expiry") {
		t.Fatalf("a lock with no expiry: got %v, want an error about the expiry", err)
	}
}

func BenchmarkAppendAudit(b *testing.B) {
	s, _ := openTemp(b)
	defer s.Close()
	ctx := testContext(b)
	e := core.AuditEntry{Actor: core.Actor{Name: "alice", Host: "bastion"}, Action: "promote",
		Ref: core.Ref{Service: "api", Env: "production"}, From: "v1.42.0", To: "v1.43.0", Outcome: "ok"}
	b.ResetTimer()
	for b.Loop() {
		if _, err := s.AppendAudit(ctx, e); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAcquireReleaseLock(b *testing.B) {
	s, _ := openTemp(b)
	defer s.Close()
	ctx := testContext(b)
	ref := core.Ref{Service: "api", Env: "production"}
	for b.Loop() {
		l, _, err := s.AcquireLock(ctx, core.Lock{Ref: ref, Holder: core.Actor{Name: "alice"}, ExpiresAt: time.Now().Add(time.Minute)})
		if err != nil {
			b.Fatal(err)
		}
		if err := s.ReleaseLock(ctx, ref, l.Token); err != nil {
			b.Fatal(err)
		}
	}
}

// Paths are passed to SQLite as file: URIs; characters that mean
// something in a URI must still name the file the user gave.
func TestOpenPathWithURICharacters(t *testing.T) {
	ctx := testContext(t)
	dir := filepath.Join(t.TempDir(), "my project?v=2 #1 100%")
	path := filepath.Join(dir, "state.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := s.PutRelease(ctx, core.Release{Service: "api", Version: "v1"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "state.db" {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("files in %q = %v, want just state.db", dir, names)
	}
	s, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Release(ctx, "api", "v1"); err != nil {
		t.Fatalf("data written to the wrong file: %v", err)
	}
}
