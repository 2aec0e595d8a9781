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
