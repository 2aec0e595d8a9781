package tui

import (
	"fmt"
	"sort"
	"strings"

	tea "charm.land/bubbletea/v2"

	"github.com/ripcordhq/ripcord/core"
)

// attention remembers what has already called for a person, so the bell
// and the desktop notification fire once per new thing and never while
// everything is fine.
type attention struct {
	bell, desktop bool
	seen          map[string]bool
}

// need is one thing waiting on a person.
type need struct {
	key  string // identity: the same thing keeps the same key
	text string // what the notification says
}

// needs lists what waits on a person across every service, so a spike in
// a service the screen is not showing still reaches the person. A spike
// of a release that no longer takes traffic (rolled back, aborted) is not
// one.
func needs(s *screen) []need {
	snap := s.snap
	var out []need
	for ref, v := range snap.Verdicts {
		if v.Kind == core.VerdictSpike && pastVerdict(s, ref, v) == "" {
			out = append(out, need{"spike|" + ref.String() + "|" + v.Candidate,
				fmt.Sprintf("SPIKE: %s %s %s errors", ref, v.Candidate, v.Evidence.Ratio())})
		}
	}
	for ref, sit := range snap.Situations {
		switch sit.Phase {
		case core.PhaseJudgment:
			out = append(out, need{fmt.Sprintf("judgment|%s|%s|%d|%d", ref, sit.Candidate, sit.Step, sit.Since.Unix()),
				fmt.Sprintf("%s %s at %d%% waits for judgment", ref, sit.Candidate, sit.Weight)})
		case core.PhaseDegraded:
			out = append(out, need{fmt.Sprintf("degraded|%s|%s|%d", ref, sit.Candidate, sit.Since.Unix()),
				fmt.Sprintf("%s %s stopped at %d%%: abort or roll back", ref, sit.Candidate, sit.Weight)})
		}
	}
	for ref, sets := range snap.Backups {
		for set, f := range sets {
			switch f.State {
			case core.FreshCritical:
				// The same stale backup is one thing; a newer backup that
				// goes stale again is another.
				out = append(out, need{fmt.Sprintf("backup|%s|%s|stale|%d", ref, set, f.Facts.LastEnd.Unix()),
					fmt.Sprintf("%s %s backup is %s old", ref, set, core.HumanDuration(f.Age))})
			case core.FreshUnknown:
				out = append(out, need{fmt.Sprintf("backup|%s|%s|unknown|%d", ref, set, f.Facts.LastEnd.Unix()),
					fmt.Sprintf("%s %s backup state unknown", ref, set)})
			}
		}
	}
	for id, op := range snap.Operations {
		if op.State == core.OpAttention {
			out = append(out, need{"op|" + id, fmt.Sprintf("%s %s unfinished: needs an owner", op.Kind, op.Ref)})
		}
	}
	for name, h := range snap.Providers {
		if h.State == "failed" {
			out = append(out, need{fmt.Sprintf("provider|%s|%d", name, h.Since.Unix()), fmt.Sprintf("provider %s failed", name)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key < out[j].key })
	return out
}

// prime records what already waits when the console opens: the strip
// shows it, and the bell is for what happens while the person watches.
func (a *attention) prime(s *screen) {
	a.seen = map[string]bool{}
	for _, n := range needs(s) {
		a.seen[n.key] = true
	}
}

// check returns the sequence to write for things that newly need a
// person, or "" when nothing new does.
func (a *attention) check(s *screen) string {
	var fresh []string
	for _, n := range needs(s) {
		if !a.seen[n.key] {
			a.seen[n.key] = true
			fresh = append(fresh, n.text)
		}
	}
	if len(fresh) == 0 || (!a.bell && !a.desktop) {
		return ""
	}
	var b strings.Builder
	if a.bell {
		b.WriteByte('\a')
	}
	if a.desktop {
		// OSC 9: a desktop notification in iTerm2, WezTerm, kitty, foot,
		// Windows Terminal and others; terminals without it ignore it.
		b.WriteString("\x1b]9;ripcord: " + oscSafe(strings.Join(fresh, " · ")) + "\a")
	}
	return b.String()
}

// oscSafe drops control characters, which could end the sequence early or
// start another.
func oscSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return -1
		}
		return r
	}, s)
}

func rawCmd(s string) tea.Cmd {
	if s == "" {
		return nil
	}
	return tea.Raw(s)
}
