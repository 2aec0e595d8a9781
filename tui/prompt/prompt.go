// Package prompt states what a command will do before a person confirms
// it: from → to, what the engine says it will do, the gates with their
// results, the migrations and backups a rollback crosses, what will be
// held, the lock, and who else is watching. The console's confirmation
// dialog and the CLI's prompt both print this text, so a person is told
// the same facts whichever they use.
//
// Every fact comes from the engine: the situation it published for the
// environment (core.Situation), the snapshot, and the release being left.
// Nothing here decides whether a command may run.
package prompt

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/ripcordhq/ripcord/core"
)

// Tone is how a span reads: a screen colours it, a CLI prints it plain.
type Tone int

const (
	Plain Tone = iota
	Muted
	Accent
	OK
	Warn
	Danger
)

// Span is a run of text in one tone.
type Span struct {
	Text string
	Tone Tone
}

// Line is one line of the statement: spans after an indent (in cells), so
// a narrow screen can wrap it under its own indent.
type Line struct {
	Indent int
	Spans  []Span
}

// Text returns the line's words without tones.
func (l Line) Text() string {
	var b strings.Builder
	for _, s := range l.Spans {
		b.WriteString(s.Text)
	}
	return b.String()
}

// Statement is what a confirmation says: a title and its lines, and why
// the engine would refuse the command as it stands ("" when it would run
// it), so nobody is asked to confirm what cannot happen.
type Statement struct {
	Title   string
	Lines   []Line
	Refused string
}

// Plain renders the statement as text for a terminal without colour: the
// title, then each line under its indent.
func (s Statement) Plain() string {
	var b strings.Builder
	b.WriteString(s.Title + "\n")
	for _, l := range s.Lines {
		if len(l.Spans) > 0 {
			b.WriteString(strings.Repeat(" ", l.Indent) + l.Text())
		}
		b.WriteString("\n")
	}
	return b.String()
}

// Input is what a statement is made from.
type Input struct {
	// Cmd is the command as it will be sent: kind, ref, version (the
	// release it leads to; the backup set for back-up-now) and actor.
	Cmd core.Command
	// Snapshot holds the situation of Cmd.Ref, the locks, backups and who
	// is watching.
	Snapshot core.Snapshot
	// Crossing is what a rollback to Cmd.Version does to the schema, as
	// the engine works it out (core.NewRollbackCrossing); nil when it
	// could not be.
	Crossing *core.RollbackCrossing
	// Self is the asker's own watcher id, left out of "also watching".
	Self string
	// Now is the time ages are counted to.
	Now time.Time
}

// For states what in.Cmd will do.
func For(in Input) Statement {
	cmd := in.Cmd
	ref := cmd.Ref
	sit := in.Snapshot.Situations[ref]
	p := sit.CommandFor(cmd.Kind, cmd.Actor)
	where := ref.Service + " in " + ref.Env
	var st Statement
	add := func(indent int, spans ...Span) { st.Lines = append(st.Lines, Line{Indent: indent, Spans: spans}) }
	blank := func() { st.Lines = append(st.Lines, Line{}) }

	from, to := p.From, p.To
	if cmd.Version != "" {
		to = cmd.Version
	}
	// Refused unless the only refusal is gates the command overrides.
	if !p.Allowed && !(len(p.Overridable) > 0 && subset(p.Overridable, cmd.Overrides)) {
		st.Refused = p.Why
	}
	if c := in.Crossing; cmd.Kind == core.CmdRollback && st.Refused == "" && c != nil {
		if g := c.Gate(); g.Status != core.GatePass && !slices.Contains(cmd.Overrides, core.GateMigrations) {
			st.Refused = g.Reason + fmt.Sprintf(`; to go ahead anyway: ripcord rollback %s --env %s --to %s --override migrations --reason "why"`, ref.Service, ref.Env, to)
		}
	}
	switch cmd.Kind {
	case core.CmdPromote, core.CmdFullPromote:
		word := "promote"
		if cmd.Kind == core.CmdFullPromote {
			word = "full promote"
		}
		st.Title = fmt.Sprintf("%s %s: %s → %s", word, where, dash(from), to)
	case core.CmdRollback:
		st.Title = fmt.Sprintf("rollback %s: %s → %s", where, dash(from), to)
	case core.CmdAbort:
		st.Title = fmt.Sprintf("abort %s: %s → %s", where, dash(from), dash(to))
	case core.CmdPause, core.CmdResume:
		st.Title = fmt.Sprintf("%s %s: the rollout of %s at %d%%", cmd.Kind, where, dash(sit.Candidate), sit.Weight)
	case core.CmdBackupNow:
		st.Title = fmt.Sprintf("back up now %s: %s", where, cmd.Version)
	default:
		st.Title = fmt.Sprintf("%s %s", cmd.Kind, where)
	}
	if st.Refused != "" {
		add(1, Span{"refused: " + st.Refused, Danger})
	} else if cmd.Kind != core.CmdRollback || cmd.Version == p.To {
		add(1, Span{p.Why, Plain})
	} else {
		add(1, Span{fmt.Sprintf("%s serves all of %s at once (no steps, no analysis)", to, ref.Env), Plain})
	}
	if p.Note != "" && cmd.Kind != core.CmdRollback {
		add(1, Span{p.Note, Warn})
	}

	switch cmd.Kind {
	case core.CmdPromote, core.CmdFullPromote:
		blank()
		if sit.Phase.Serving() {
			add(1, Span{"gates: checked when the rollout of " + dash(sit.Candidate) + " started; a step forward does not check them again", Muted})
			break
		}
		if len(sit.Gates) == 0 {
			add(1, Span{"gates: none configured for " + ref.Env, Muted})
			break
		}
		add(1, Span{"gates, as the engine evaluates them now:", Plain})
		for _, g := range sit.Gates {
			add(3, gateSpans(g)...)
		}
	case core.CmdRollback:
		blank()
		st.Lines = append(st.Lines, crossingLines(in.Crossing, from, to)...)
		add(1, Span{"newest backups: ", Plain})
		last := &st.Lines[len(st.Lines)-1]
		last.Spans = append(last.Spans, backupAges(in.Snapshot.Backups[ref])...)
		if c := in.Crossing; c != nil {
			if g := c.Gate(); g.Status != core.GatePass && slices.Contains(cmd.Overrides, core.GateMigrations) {
				add(1, Span{"! migrations overridden: " + g.Reason, Warn})
			}
		}
		if from != "" && from != to {
			add(1, Span{from + " will be held: automation will not promote it again until a person clears it", Warn})
		}
	case core.CmdBackupNow:
		if f, ok := in.Snapshot.Backups[ref][cmd.Version]; ok {
			line := []Span{{"newest " + f.Facts.Set + " backup: " + lastBackup(f) + " ", Plain}, freshWord(f)}
			if f.Expected > 0 {
				line = append(line, Span{" (expected every " + core.HumanDuration(f.Expected) + ")", Muted})
			}
			add(1, line...)
			if f.Reason != "" {
				add(1, Span{f.Reason, Warn})
			}
		}
	}

	blank()
	add(1, lockSpans(in.Snapshot.Locks[ref], cmd.Actor, in.Now)...)
	add(1, Span{"as " + cmd.Actor.String(), Plain})
	add(1, watching(in.Snapshot.Watchers, in.Self, in.Now))
	return st
}

// Watching names the people with another console open on the project,
// longest watching first: a line of its own, so a screen can redraw it
// live while the question is open.
func Watching(ws []core.Watcher, self string, now time.Time) Line {
	return Line{Indent: 1, Spans: []Span{watching(ws, self, now)}}
}

func watching(ws []core.Watcher, self string, now time.Time) Span {
	ws = append([]core.Watcher(nil), ws...)
	sort.SliceStable(ws, func(i, j int) bool { return ws[i].Since.Before(ws[j].Since) })
	var names []string
	for _, w := range ws {
		if w.ID == self {
			continue
		}
		names = append(names, w.Actor.String()+" ("+age(now, w.Since)+")")
	}
	if len(names) == 0 {
		return Span{"nobody else is watching", Muted}
	}
	return Span{"also watching: " + strings.Join(names, ", "), Warn}
}

func gateSpans(g core.GateResult) []Span {
	switch {
	case g.Status == core.GatePass:
		return []Span{{"✓ " + g.Gate, OK}, {" " + g.Reason, Muted}}
	case g.Overridden:
		return []Span{{"! " + g.Gate, Warn}, {" overridden: " + g.Reason, Plain}}
	case g.Status == core.GateUnknown:
		return []Span{{"? " + g.Gate, Warn}, {" " + g.Reason, Plain}}
	}
	return []Span{{"✗ " + g.Gate, Danger}, {" " + g.Reason, Plain}}
}

// crossingLines states what a rollback leaves in the schema, in the
// engine's own words (core.RollbackCrossing).
func crossingLines(c *core.RollbackCrossing, from, to string) []Line {
	if c == nil {
		return []Line{{Indent: 1, Spans: []Span{{"migrations: ", Plain}, {"unknown: what " + dash(from) + " carries over " + dash(to) + " could not be read", Warn}}}}
	}
	var out []Line
	for _, l := range c.Lines() {
		indent, text := 1, l
		if trimmed := strings.TrimLeft(l, " "); trimmed != l {
			indent, text = 1+len(l)-len(trimmed), trimmed
		}
		tone := Plain
		switch {
		case strings.HasPrefix(text, "✗"):
			tone = Danger
		case strings.HasPrefix(text, "✓"):
			tone = OK
		case strings.HasPrefix(text, "migrations: unknown"):
			tone = Warn
		}
		out = append(out, Line{Indent: indent, Spans: []Span{{text, tone}}})
	}
	return out
}

// subset reports whether every one of want is in have.
func subset(want, have []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

func backupAges(sets map[string]core.Freshness) []Span {
	if len(sets) == 0 {
		return []Span{{"no backup sets reported", Warn}}
	}
	names := make([]string, 0, len(sets))
	for n := range sets {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []Span
	for i, n := range names {
		if i > 0 {
			out = append(out, Span{" · ", Muted})
		}
		f := sets[n]
		switch f.State {
		case core.FreshUnknown:
			out = append(out, Span{n + " unknown", Warn})
		case core.FreshCritical:
			out = append(out, Span{n + " " + core.HumanDuration(f.Age) + " ago STALE", Danger})
		case core.FreshWarn:
			out = append(out, Span{n + " " + core.HumanDuration(f.Age) + " ago", Warn})
		default:
			out = append(out, Span{n + " " + core.HumanDuration(f.Age) + " ago", Plain})
		}
	}
	return out
}

func freshWord(f core.Freshness) Span {
	switch f.State {
	case core.FreshWarn:
		return Span{"WARN", Warn}
	case core.FreshCritical:
		return Span{"STALE", Danger}
	case core.FreshUnknown:
		return Span{"UNKNOWN", Warn}
	}
	return Span{"ok", OK}
}

func lastBackup(f core.Freshness) string {
	if f.State != core.FreshUnknown || f.Age > 0 {
		return core.HumanDuration(f.Age) + " ago"
	}
	return "—"
}

func lockSpans(l core.Lock, me core.Actor, now time.Time) []Span {
	switch {
	case l.Holder.Name == "":
		return []Span{{"lock: ", Plain}, {"free", OK}}
	case core.SamePerson(l.Holder, me):
		return []Span{{"lock: ", Plain}, {fmt.Sprintf("yours for %s", age(now, l.Since)), OK}}
	}
	out := []Span{{"lock: ", Plain}, {fmt.Sprintf("held by %s for %s", l.Holder, age(now, l.Since)), Warn}}
	if l.Reason != "" {
		out = append(out, Span{" (" + l.Reason + ")", Muted})
	}
	return out
}

func age(now, t time.Time) string {
	if t.IsZero() {
		return "?"
	}
	return core.HumanDuration(now.Sub(t))
}

func dash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}
