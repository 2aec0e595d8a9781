package tui

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/ripcordhq/ripcord/core"
)

// backupsPane is each backup set of the watched service against its
// expected interval, worst first, with its last verify.
type backupsPane struct{}

func (backupsPane) name() string              { return "Backups" }
func (backupsPane) title(*screen) string      { return "Backups" }
func (backupsPane) kinds() []core.EventKind   { return []core.EventKind{core.EvBackup} }
func (backupsPane) ticks(*screen) bool        { return false }
func (backupsPane) none() string              { return " no backup sets" }
func (backupsPane) prefer(*screen, []row) int { return -1 }
func (b backupsPane) rows(s *screen, _, _ int, filter string) []row {
	st := s.st
	all := backups(s)
	// Sets of the same name in several environments (staging and
	// production both back up "orders") are told apart by an env column.
	envW := 0
	for _, f := range all {
		if f.Ref.Env != all[0].Ref.Env {
			for _, g := range all {
				envW = max(envW, width(g.Ref.Env))
			}
			break
		}
	}
	var out []row
	for _, f := range all {
		if !containsFold(f.Facts.Set+" "+f.Ref.Env, filter) {
			continue
		}
		p, word := freshWord(st, f)
		fill := 0.0
		if (f.State != core.FreshUnknown || f.Age > 0) && f.Expected > 0 {
			fill = float64(f.Age) / float64(f.Expected)
		}
		env := ""
		if envW > 0 {
			env = " " + st.muted.Render(pad(f.Ref.Env, envW))
		}
		line := env + " " + st.text.Render(pad(f.Facts.Set, 10)) + " " + st.muted.Render(pad(f.Facts.Tool, 10)) + " " +
			pad(lastBackup(f), 9) + " " + p.Render(bar(fill, 6)) + " " + p.Render(pad(word, 7)) + " " + lastVerify(s, f)
		out = append(out, row{text: line, id: f.Ref.String() + "/" + f.Facts.Set, open: backupDetail(f)})
	}
	return out
}

// backups lists the watched service's backup sets, worst first, so a
// short pane still shows the sets that need a person.
func backups(s *screen) []core.Freshness {
	var out []core.Freshness
	for ref, sets := range s.snap.Backups {
		if ref.Service != s.service {
			continue
		}
		for _, f := range sets {
			out = append(out, f)
		}
	}
	slices.SortFunc(out, func(a, b core.Freshness) int {
		if sa, sb := freshRank(a.State), freshRank(b.State); sa != sb {
			return cmp.Compare(sb, sa)
		}
		if c := strings.Compare(a.Facts.Set, b.Facts.Set); c != 0 {
			return c
		}
		return strings.Compare(a.Ref.Env, b.Ref.Env)
	})
	return out
}

func freshRank(s core.FreshnessState) int {
	switch s {
	case core.FreshCritical:
		return 3
	case core.FreshUnknown:
		return 2
	case core.FreshWarn:
		return 1
	}
	return 0
}

// freshWord is a backup set's state as the Backups pane words it.
func freshWord(st styles, f core.Freshness) (paint, string) {
	switch f.State {
	case core.FreshWarn:
		return st.warn, "WARN"
	case core.FreshCritical:
		return st.danger, "STALE"
	case core.FreshUnknown:
		return st.warn, "UNKNOWN"
	}
	return st.ok, "ok"
}

// lastBackup is how long ago a set's newest backup ended, "—" when no one
// knows.
func lastBackup(f core.Freshness) string {
	if f.State != core.FreshUnknown || f.Age > 0 {
		return core.HumanDuration(f.Age) + " ago"
	}
	return "—"
}

// lastVerify is when the set's repository was last checked and what the
// check found: a backup that cannot be restored is no backup.
func lastVerify(s *screen, f core.Freshness) string {
	v := f.Facts
	if v.VerifiedAt.IsZero() {
		return s.st.muted.Render("unverified")
	}
	when := s.ago(v.VerifiedAt) + " ago"
	if !v.VerifyOK {
		msg := "✗ verify " + when
		if v.VerifyMessage != "" {
			msg += ": " + v.VerifyMessage
		}
		return s.st.danger.Render(msg)
	}
	return s.st.muted.Render("verified " + when)
}

// backupDetail opens everything known about one backup set.
func backupDetail(f core.Freshness) func(*screen) dialog {
	return func(s *screen) dialog {
		v := f.Facts
		_, word := freshWord(s.st, f)
		lines := []string{
			fmt.Sprintf(" %s in %s (%s): %s", v.Set, f.Ref.Env, orDash(v.Tool), word),
			" newest backup: " + lastBackup(f) + ", expected every " + core.HumanDuration(f.Expected),
		}
		if f.Reason != "" {
			lines = append(lines, " "+f.Reason)
		}
		if v.Status != "" {
			lines = append(lines, " the tool says: "+v.Status)
		}
		if !v.LastFull.IsZero() {
			lines = append(lines, " last full: "+s.ago(v.LastFull)+" ago")
		}
		if v.LastType != "" || v.LastSize > 0 {
			lines = append(lines, fmt.Sprintf(" last backup: %s, %d bytes", orDash(v.LastType), v.LastSize))
		}
		if !v.Attempted.IsZero() {
			ok := "succeeded"
			if !v.AttemptOK {
				ok = "failed"
			}
			lines = append(lines, " last attempt: "+s.ago(v.Attempted)+" ago, "+ok)
		}
		if v.Running {
			lines = append(lines, " a backup is running now")
		}
		lines = append(lines, " last verify: "+ansiStrip(lastVerify(s, f)))
		if v.Unreadable != "" {
			lines = append(lines, " unreadable: "+v.Unreadable)
		}
		if v.CanRunNow {
			lines = append(lines, " its provider can back it up now (b)")
		}
		return newDetail("Backup · "+f.Ref.String()+" · "+v.Set, lines)
	}
}
