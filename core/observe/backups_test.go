package observe

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
)

func TestBackupFreshnessFollowsTheClockAndTheSource(t *testing.T) {
	clk := &clock{t: t0}
	eng := newEngine(t, clk, "production")
	good := &fakeBackups{facts: make(chan core.BackupFacts)}
	broken := &fakeBackups{err: errors.New("restic: wrong password")}
	policy := core.BackupPolicy{Every: time.Hour, PollInterval: time.Hour}
	_, sub := eng.Subscribe()
	defer sub.Close()
	ob := Start(context.Background(), Options{Engine: eng, Retry: time.Hour, Rejudge: 5 * time.Millisecond, Backups: map[core.Ref][]BackupSet{
		prod: {{Name: "db", Source: good, Policy: policy}, {Name: "files", Source: broken, Policy: policy}},
	}})
	defer ob.Close()
	backup := func(set string, state core.FreshnessState) func(core.Event) bool {
		return func(ev core.Event) bool {
			return ev.Kind == core.EvBackup && ev.Backup.Facts.Set == set && ev.Backup.State == state
		}
	}

	f := waitFor(t, sub, "the failing source unknown", backup("files", core.FreshUnknown)).Backup
	if !strings.Contains(f.Reason, "unknown: restic: wrong password") || f.Ref != prod {
		t.Fatalf("files: %+v, want unknown with the source's error", f)
	}

	good.facts <- core.BackupFacts{Set: "db", Tool: "restic", LastEnd: t0.Add(-10 * time.Minute), ReportedAt: t0}
	ok := waitFor(t, sub, "db fresh", func(ev core.Event) bool { return backup("db", core.FreshOK)(ev) && ev.Final })
	if ok.Backup.Age != 10*time.Minute {
		t.Fatalf("db age = %s, want 10m", ok.Backup.Age)
	}
	clk.Set(t0.Add(85 * time.Minute)) // 95 minutes old: past 1.5 × 1h
	warn := waitFor(t, sub, "db warn", backup("db", core.FreshWarn))
	if !warn.Final || warn.Backup.Age != 95*time.Minute {
		t.Fatalf("db warn event = final %v age %s, want a final event at 95m", warn.Final, warn.Backup.Age)
	}
	clk.Set(t0.Add(3*time.Hour + time.Minute)) // no report for over 3 poll intervals
	stale := waitFor(t, sub, "db unknown", backup("db", core.FreshUnknown)).Backup
	if !strings.Contains(stale.Reason, "stale source") {
		t.Fatalf("db reason = %q, want a stale source", stale.Reason)
	}
	if got := eng.Snapshot().Backups[prod]; got["db"].State != core.FreshUnknown || got["files"].State != core.FreshUnknown {
		t.Fatalf("snapshot backups = %+v", got)
	}
}

// A set whose policy says verify_every is verified by its source when its
// last verify is older than that, once per interval, and the verify's
// outcome reaches the screen.
func TestOverdueVerifyIsRunThroughTheSource(t *testing.T) {
	clk := &clock{t: t0}
	eng := newEngine(t, clk, "production")
	src := &fakeBackups{facts: make(chan core.BackupFacts), clock: clk}
	policy := core.BackupPolicy{Every: time.Hour, PollInterval: time.Hour, VerifyEvery: 24 * time.Hour}
	_, sub := eng.Subscribe()
	defer sub.Close()
	ob := Start(context.Background(), Options{Engine: eng, Retry: time.Hour, Rejudge: 5 * time.Millisecond, Backups: map[core.Ref][]BackupSet{
		prod: {{Name: "uploads", Source: src, Policy: policy}},
	}})
	defer ob.Close()
	verified := func(at time.Time) func(core.Event) bool {
		return func(ev core.Event) bool {
			return ev.Kind == core.EvBackup && ev.Backup.Facts.Set == "uploads" && ev.Backup.Facts.VerifiedAt.Equal(at)
		}
	}
	// Never verified: the first rejudge asks the source.
	f := waitFor(t, sub, "the first verify", verified(t0)).Backup
	if !f.Facts.VerifyOK || strings.Contains(f.Reason, "never verified") {
		t.Fatalf("after the verify: %+v", f)
	}
	clk.Set(t0.Add(time.Hour))
	waitFor(t, sub, "a rejudge an hour later", func(ev core.Event) bool {
		return ev.Kind == core.EvBackup && ev.Backup.Age >= time.Hour
	})
	if n := src.verifies.Load(); n != 1 {
		t.Fatalf("%d verifies within the interval, want 1", n)
	}
	// A day later the verify is due again.
	clk.Set(t0.Add(25 * time.Hour))
	waitFor(t, sub, "the next verify", verified(t0.Add(25*time.Hour)))
	if n := src.verifies.Load(); n != 2 {
		t.Fatalf("%d verifies after a day, want 2", n)
	}
}
