package core

import (
	"strings"
	"testing"
	"time"
)

var judgeNow = time.Date(2026, 11, 25, 21, 14, 5, 0, time.UTC)

// facts is a readable restic-like set whose newest backup ended `age` ago.
func facts(age time.Duration) BackupFacts {
	end := judgeNow.Add(-age)
	return BackupFacts{Set: "uploads", Tool: "restic", LastStart: end.Add(-10 * time.Minute), LastEnd: end,
		Attempted: end.Add(-10 * time.Minute), AttemptOK: true, ReportedAt: judgeNow.Add(-time.Minute)}
}

func TestJudgeBackup(t *testing.T) {
	daily := BackupPolicy{Every: 24 * time.Hour, Warn: 1.5, Critical: 2, PollInterval: 5 * time.Minute}
	with := func(f BackupFacts, edit func(*BackupFacts)) BackupFacts { edit(&f); return f }
	tests := []struct {
		name    string
		f       BackupFacts
		p       BackupPolicy
		state   FreshnessState
		age     time.Duration
		reasons []string // each must appear in Reason
	}{
		{"fresh", facts(3 * time.Hour), daily, FreshOK, 3 * time.Hour,
			[]string{"uploads backup is 3h old, expected every 24h"}},
		{"just under warn", facts(36*time.Hour - time.Nanosecond), daily, FreshOK, 36*time.Hour - time.Nanosecond, nil},
		{"exactly 1.5x warns", facts(36 * time.Hour), daily, FreshWarn, 36 * time.Hour,
			[]string{"36h old, expected every 24h"}},
		{"just under critical", facts(48*time.Hour - time.Nanosecond), daily, FreshWarn, 48*time.Hour - time.Nanosecond,
			[]string{"47h old"}},
		{"exactly 2x is critical", facts(48 * time.Hour), daily, FreshCritical, 48 * time.Hour,
			[]string{"uploads backup is 2d old, expected every 24h"}},
		{"26h with the defaults", facts(26 * time.Hour), BackupPolicy{}, FreshOK, 26 * time.Hour,
			[]string{"uploads backup is 26h old, expected every 24h"}},
		{"custom multiples", facts(7 * time.Hour), BackupPolicy{Every: 6 * time.Hour, Warn: 1.1, Critical: 3}, FreshWarn, 7 * time.Hour,
			[]string{"7h old, expected every 6h"}},
		{"no end time: age from start", with(facts(0), func(f *BackupFacts) {
			f.LastStart, f.LastEnd = judgeNow.Add(-30*time.Hour), time.Time{}
		}), daily, FreshOK, 30 * time.Hour, []string{"30h old", "age from its start: restic records no end time"}},
		{"zero start and end: no backup", with(facts(0), func(f *BackupFacts) {
			f.LastStart, f.LastEnd, f.Status = time.Time{}, time.Time{}, "no snapshots"
		}), daily, FreshUnknown, 0, []string{"uploads backup unknown: no backup found (restic: no snapshots)"}},
		{"no backup, first one running", with(facts(0), func(f *BackupFacts) {
			f.LastStart, f.LastEnd, f.Running = time.Time{}, time.Time{}, true
		}), daily, FreshUnknown, 0, []string{"no backup found", "first backup is running now"}},
		{"unreadable", with(facts(time.Hour), func(f *BackupFacts) {
			f.Unreadable = "restic: wrong password or no key found"
		}), daily, FreshUnknown, 0, []string{"uploads backup unknown: restic: wrong password or no key found"}},
		{"stale report", with(facts(time.Hour), func(f *BackupFacts) {
			f.ReportedAt = judgeNow.Add(-16 * time.Minute)
		}), daily, FreshUnknown, 0, []string{"last report from restic is 16m old, expected every 5m (stale source)"}},
		{"report exactly 3 intervals old is not stale", with(facts(time.Hour), func(f *BackupFacts) {
			f.ReportedAt = judgeNow.Add(-15 * time.Minute)
		}), daily, FreshOK, time.Hour, nil},
		{"never reported", with(facts(time.Hour), func(f *BackupFacts) { f.ReportedAt = time.Time{} }),
			daily, FreshUnknown, 0, []string{"has not reported"}},
		{"from the future beyond skew", facts(-2*time.Hour - 13*time.Minute), daily, FreshWarn, 0,
			[]string{"from 2h 13m in the future: clock skew"}},
		{"slightly in the future is tolerated", facts(-4 * time.Minute), daily, FreshOK, 0,
			[]string{"0s old"}},
		{"failed attempt after success", with(facts(20*time.Hour), func(f *BackupFacts) {
			f.Attempted, f.AttemptOK = judgeNow.Add(-2*time.Hour), false
		}), daily, FreshOK, 20 * time.Hour, []string{"20h old", "last attempt at 19:14 UTC failed"}},
		{"failed verify is critical", with(facts(time.Hour), func(f *BackupFacts) {
			f.VerifiedAt, f.VerifyOK, f.VerifyMessage = judgeNow.Add(-time.Hour), false, "repository contains errors"
		}), daily, FreshCritical, time.Hour, []string{"last verify failed: repository contains errors"}},
		{"overdue verify is mentioned", with(facts(time.Hour), func(f *BackupFacts) {
			f.VerifiedAt, f.VerifyOK = judgeNow.Add(-9*24*time.Hour), true
		}), BackupPolicy{VerifyEvery: 7 * 24 * time.Hour}, FreshOK, time.Hour, []string{"last verified 9d ago, expected every 7d"}},
		{"never verified", facts(time.Hour), BackupPolicy{VerifyEvery: 7 * 24 * time.Hour}, FreshOK, time.Hour,
			[]string{"never verified"}},
		{"running", with(facts(time.Hour), func(f *BackupFacts) { f.Running = true }), daily, FreshOK, time.Hour,
			[]string{"a backup is running now"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ref := Ref{Service: "shop", Env: "production"}
			got := JudgeBackup(ref, tc.f, tc.p, judgeNow)
			if got.State != tc.state {
				t.Errorf("state = %s, want %s (reason %q)", got.State, tc.state, got.Reason)
			}
			if got.Age != tc.age {
				t.Errorf("age = %v, want %v", got.Age, tc.age)
			}
			if got.Ref != ref || got.Facts.Set != tc.f.Set {
				t.Errorf("freshness lost its identity: %v %q", got.Ref, got.Facts.Set)
			}
			for _, want := range tc.reasons {
				if !strings.Contains(got.Reason, want) {
					t.Errorf("reason %q lacks %q", got.Reason, want)
				}
			}
			if got.Expected == 0 {
				t.Error("expected interval not reported")
			}
		})
	}
}

func TestHumanDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		45 * time.Second:               "45s",
		42 * time.Minute:               "42m",
		90 * time.Minute:               "1h 30m",
		26*time.Hour + 12*time.Minute:  "26h",
		24 * time.Hour:                 "24h",
		23*time.Hour + 59*time.Minute:  "23h",
		76 * time.Hour:                 "3d 4h",
		7 * 24 * time.Hour:             "7d",
		-(2*time.Hour + 5*time.Minute): "2h 5m",
	} {
		if got := HumanDuration(d); got != want {
			t.Errorf("HumanDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func judged(set string, age time.Duration, edit func(*BackupFacts)) Freshness {
	f := facts(age)
	f.Set = set
	if edit != nil {
		edit(&f)
	}
	return JudgeBackup(Ref{Service: "shop", Env: "production"}, f, BackupPolicy{}, judgeNow)
}

func TestBackupGate(t *testing.T) {
	built := time.Date(2026, 11, 25, 21, 4, 0, 0, time.UTC)
	tests := []struct {
		name     string
		fs       []Freshness
		contract bool
		built    time.Time
		status   GateStatus
		reasons  []string
		absent   []string
	}{
		{"all fresh", []Freshness{judged("postgres", 3*time.Hour, nil), judged("uploads", time.Hour, nil)},
			false, built, GatePass, []string{"all 2 backup sets are fresh"}, nil},
		{"warn passes and says so", []Freshness{judged("uploads", 40*time.Hour, nil)},
			false, built, GatePass, []string{"uploads backup is 40h old, expected every 24h"}, nil},
		{"critical fails naming the set", []Freshness{judged("postgres", 3*time.Hour, nil), judged("uploads", 50*time.Hour, nil)},
			false, built, GateFail, []string{"uploads backup is 2d 2h old, expected every 24h"}, []string{"postgres"}},
		{"unknown fails", []Freshness{judged("uploads", time.Hour, func(f *BackupFacts) {
			f.Unreadable = "restic: wrong password or no key found"
		})}, false, built, GateFail, []string{"uploads backup unknown: restic: wrong password or no key found"}, nil},
		{"back up now offered", []Freshness{judged("uploads", 50*time.Hour, func(f *BackupFacts) { f.CanRunNow = true })},
			false, built, GateFail, []string{"back up now"}, nil},
		{"no run-now, no offer", []Freshness{judged("uploads", 50*time.Hour, nil)},
			false, built, GateFail, nil, []string{"back up now"}},
		{"contract with an older backup fails", []Freshness{judged("postgres", judgeNow.Sub(time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)), nil)},
			true, built, GateFail,
			[]string{"release carries a contract migration: needs a backup newer than its build at 21:04 UTC; postgres newest is from 03:00 UTC"}, nil},
		{"contract with a newer backup passes", []Freshness{judged("postgres", 5*time.Minute, nil)},
			true, built, GatePass, []string{"newer than the release build"}, nil},
		{"contract: start after build counts when there is no end", []Freshness{judged("uploads", 0, func(f *BackupFacts) {
			f.LastStart, f.LastEnd = built.Add(time.Minute), time.Time{}
		})}, true, built, GatePass, nil, nil},
		{"contract: backup exactly at build time is not newer", []Freshness{judged("uploads", judgeNow.Sub(built), nil)},
			true, built, GateFail, []string{"uploads newest is from 21:04 UTC"}, nil},
		{"contract: every set must be newer", []Freshness{judged("postgres", 5*time.Minute, nil), judged("uploads", 22*time.Hour, nil)},
			true, built, GateFail, []string{"uploads newest is from Nov 24 23:14 UTC"}, []string{"postgres newest"}},
		{"contract without build time fails", []Freshness{judged("postgres", 5*time.Minute, nil)},
			true, time.Time{}, GateFail, []string{"build time is unknown"}, nil},
		{"contract without sets fails", nil, true, built, GateFail, []string{"no backup set is watched"}, nil},
		{"no sets, no contract", nil, false, built, GatePass, []string{"no backup sets"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := BackupGate(tc.fs, tc.contract, tc.built)
			if g.Gate != "backups" {
				t.Errorf("gate = %q", g.Gate)
			}
			if g.Status != tc.status {
				t.Errorf("status = %s, want %s (reason %q)", g.Status, tc.status, g.Reason)
			}
			for _, want := range tc.reasons {
				if !strings.Contains(g.Reason, want) {
					t.Errorf("reason %q lacks %q", g.Reason, want)
				}
			}
			for _, not := range tc.absent {
				if strings.Contains(g.Reason, not) {
					t.Errorf("reason %q mentions %q", g.Reason, not)
				}
			}
		})
	}
}
