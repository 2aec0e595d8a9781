package core

import (
	"fmt"
	"strings"
	"time"
)

// BackupPolicy is what one backup set is expected to do.
type BackupPolicy struct {
	// Every is the expected interval between backups; default 24h, the
	// daily minimum.
	Every time.Duration
	// Warn and Critical are multiples of Every (default 1.5 and 2).
	Warn, Critical float64
	// VerifyEvery, when set, is how often the repository should be
	// verified; an overdue verify is mentioned, never judged as old.
	VerifyEvery time.Duration
	// Criticality is a label for people: how much this data matters.
	Criticality string
	// PollInterval is how often the source reports; a report older than
	// three intervals means the source went quiet. Default 5m.
	PollInterval time.Duration
}

// Policy defaults.
const (
	DefaultBackupEvery        = 24 * time.Hour
	DefaultBackupWarn         = 1.5
	DefaultBackupCritical     = 2.0
	DefaultBackupPollInterval = 5 * time.Minute
	// staleReports is how many poll intervals may pass without a report
	// before the set is unknown.
	staleReports = 3
	// clockSkewTolerance is how far in the future a backup may claim to be
	// before its clock is called out.
	clockSkewTolerance = 5 * time.Minute
)

// WithDefaults fills the zero fields.
func (p BackupPolicy) WithDefaults() BackupPolicy {
	if p.Every <= 0 {
		p.Every = DefaultBackupEvery
	}
	if p.Warn <= 0 {
		p.Warn = DefaultBackupWarn
	}
	if p.Critical <= 0 {
		p.Critical = DefaultBackupCritical
	}
	if p.PollInterval <= 0 {
		p.PollInterval = DefaultBackupPollInterval
	}
	return p
}

// BackupTime is when the set's newest backup is as old as: its end, or its
// start where the tool records no end (restic before 0.17).
func (f BackupFacts) BackupTime() time.Time {
	if !f.LastEnd.IsZero() {
		return f.LastEnd
	}
	return f.LastStart
}

// JudgeBackup turns a set's facts into a state. Unknown — the source could
// not be read, reported nothing recently, or holds no backup — is kept
// apart from old: it says "look at the source", not "run a backup".
func JudgeBackup(ref Ref, f BackupFacts, p BackupPolicy, now time.Time) Freshness {
	p = p.WithDefaults()
	fr := Freshness{Ref: ref, Facts: f, Expected: p.Every}
	name := backupSetName(f)
	var notes []string

	switch {
	case f.Unreadable != "":
		fr.State = FreshUnknown
		fr.Reason = fmt.Sprintf("%s backup unknown: %s", name, f.Unreadable)
		return fr
	case f.ReportedAt.IsZero():
		fr.State = FreshUnknown
		fr.Reason = fmt.Sprintf("%s backup unknown: the source has not reported", name)
		return fr
	case now.Sub(f.ReportedAt) > staleReports*p.PollInterval:
		fr.State = FreshUnknown
		fr.Reason = fmt.Sprintf("%s backup unknown: last report from %s is %s old, expected every %s (stale source)",
			name, backupToolName(f), HumanDuration(now.Sub(f.ReportedAt)), HumanDuration(p.PollInterval))
		return fr
	}

	at := f.BackupTime()
	if at.IsZero() {
		fr.State = FreshUnknown
		fr.Reason = fmt.Sprintf("%s backup unknown: no backup found", name)
		if f.Status != "" {
			fr.Reason += " (" + backupToolName(f) + ": " + f.Status + ")"
		}
		if f.Running {
			fr.Reason += "; the first backup is running now"
		}
		if !f.Attempted.IsZero() && !f.AttemptOK {
			fr.Reason += fmt.Sprintf("; an attempt at %s failed", utcClock(f.Attempted, now))
		}
		return fr
	}

	age := now.Sub(at)
	switch {
	case age < -clockSkewTolerance:
		// A backup from the future says a clock is wrong, and an age
		// measured against a wrong clock cannot be trusted either way.
		fr.State = FreshWarn
		fr.Reason = fmt.Sprintf("%s backup is from %s in the future: clock skew between the backup host and this console",
			name, HumanDuration(-age))
		age = 0
	case age < 0:
		age = 0
		fallthrough
	default:
		fr.State = FreshOK
		if age >= time.Duration(p.Critical*float64(p.Every)) {
			fr.State = FreshCritical
		} else if age >= time.Duration(p.Warn*float64(p.Every)) {
			fr.State = FreshWarn
		}
		fr.Reason = fmt.Sprintf("%s backup is %s old, expected every %s", name, HumanDuration(age), HumanDuration(p.Every))
		if f.LastEnd.IsZero() {
			notes = append(notes, "age from its start: "+backupToolName(f)+" records no end time")
		}
	}
	fr.Age = age

	if !f.VerifiedAt.IsZero() && !f.VerifyOK {
		// A failed verify means the newest backup may not restore: its
		// age no longer says anything good.
		fr.State = FreshCritical
		msg := "last verify failed"
		if f.VerifyMessage != "" {
			msg += ": " + f.VerifyMessage
		}
		notes = append(notes, msg)
	} else if p.VerifyEvery > 0 {
		switch {
		case f.VerifiedAt.IsZero():
			notes = append(notes, "never verified")
		case now.Sub(f.VerifiedAt) > p.VerifyEvery:
			notes = append(notes, fmt.Sprintf("last verified %s ago, expected every %s",
				HumanDuration(now.Sub(f.VerifiedAt)), HumanDuration(p.VerifyEvery)))
		}
	}
	if !f.Attempted.IsZero() && !f.AttemptOK && f.Attempted.After(f.LastStart) {
		notes = append(notes, fmt.Sprintf("last attempt at %s failed", utcClock(f.Attempted, now)))
	}
	if f.Running {
		notes = append(notes, "a backup is running now")
	}
	if len(notes) > 0 {
		fr.Reason += "; " + strings.Join(notes, "; ")
	}
	return fr
}

// BackupGate is the "backups" gate: it fails while any set is critical or
// unknown. For a release carrying a contract migration it also requires,
// for every set, a backup finished after the release was built — the gate
// cannot know which set holds the tables the migration rewrites, so it
// asks for all of them.
func BackupGate(fs []Freshness, contract bool, releaseBuilt time.Time) GateResult {
	g := GateResult{Gate: "backups", Status: GatePass}
	var problems, warns []string
	canRun := false
	for _, f := range fs {
		if f.Facts.CanRunNow {
			canRun = true
		}
		switch f.State {
		case FreshCritical, FreshUnknown:
			problems = append(problems, f.Reason)
		case FreshWarn:
			warns = append(warns, f.Reason)
		}
	}
	if contract {
		if msg := backupContractProblem(fs, releaseBuilt); msg != "" {
			problems = append(problems, msg)
		}
	}
	if len(problems) > 0 {
		g.Status = GateFail
		g.Reason = strings.Join(problems, "; ")
		if canRun {
			g.Reason += " — back up now to clear this gate"
		}
		return g
	}
	switch {
	case len(fs) == 0:
		g.Reason = "no backup sets are watched"
	case len(warns) > 0:
		g.Reason = "backups fresh enough; " + strings.Join(warns, "; ")
	case len(fs) == 1:
		g.Reason = fs[0].Reason
	default:
		g.Reason = fmt.Sprintf("all %d backup sets are fresh", len(fs))
	}
	if contract {
		g.Reason += "; every set has a backup newer than the release build"
	}
	return g
}

func backupContractProblem(fs []Freshness, built time.Time) string {
	const lead = "release carries a contract migration"
	if built.IsZero() {
		return lead + ": its build time is unknown, so no backup can be shown to be newer"
	}
	if len(fs) == 0 {
		return lead + ": no backup set is watched"
	}
	var behind []string
	for _, f := range fs {
		// A start after the build implies an end after it too, so tools
		// without an end time are judged fairly.
		at := f.Facts.BackupTime()
		if f.Facts.Unreadable != "" || !at.After(built) {
			newest := "none"
			if !at.IsZero() {
				newest = "from " + utcClock(at, built)
			}
			behind = append(behind, fmt.Sprintf("%s newest is %s", backupSetName(f.Facts), newest))
		}
	}
	if len(behind) == 0 {
		return ""
	}
	return fmt.Sprintf("%s: needs a backup newer than its build at %s; %s", lead, utcClock(built, built), strings.Join(behind, ", "))
}

func backupSetName(f BackupFacts) string {
	if f.Set == "" {
		return "unnamed"
	}
	return f.Set
}

func backupToolName(f BackupFacts) string {
	if f.Tool == "" {
		return "the source"
	}
	return f.Tool
}

// utcClock formats t in UTC for a person: the time alone on ref's day, with
// the date otherwise.
func utcClock(t, ref time.Time) string {
	t, ref = t.UTC(), ref.UTC()
	if t.Year() == ref.Year() && t.YearDay() == ref.YearDay() {
		return t.Format("15:04 UTC")
	}
	return t.Format("Jan 2 15:04 UTC")
}

// HumanDuration formats a duration the way people speak of backup ages: "45s",
// "42m", "1h 30m", "26h", "3d 4h". It truncates: a 23h59m-old backup is
// "23h" old, never rounded up past its deadline.
func HumanDuration(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 48*time.Hour:
		h, m := int(d/time.Hour), int(d%time.Hour/time.Minute)
		if m == 0 || h >= 10 {
			return fmt.Sprintf("%dh", h)
		}
		return fmt.Sprintf("%dh %dm", h, m)
	default:
		days, h := int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour)
		if h == 0 {
			return fmt.Sprintf("%dd", days)
		}
		return fmt.Sprintf("%dd %dh", days, h)
	}
}
