package tui

import (
	"fmt"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/ripcordhq/ripcord/core"
)

// historyItem is one release a rollback could go to.
type historyItem struct {
	version string
	state   core.DeployState // "" when only the target still keeps it
	at      time.Time
	actor   string
	kept    bool // the target still has its artifact
}

// historyDialog is the rollback history: the releases that ran in one
// environment, newest first, with the engine's choice preselected.
type historyDialog struct {
	ref  core.Ref
	from string // the release being rolled back
	// rels are the releases the store holds among from and the items;
	// since is when from's deployment began: what the engine works out
	// a rollback's schema crossing from.
	rels  map[string]core.Release
	since time.Time
	items []historyItem
	sel   int
	off   int
}

// newHistory builds the list from the store's deployments (newest first)
// and the versions the target keeps. The release being rolled back is
// left out: going "back" to it would change nothing. want is the release
// the engine would restore.
func newHistory(ref core.Ref, from, want string, deps []core.Deployment, kept []string) *historyDialog {
	p := &historyDialog{ref: ref, from: from}
	keptSet := map[string]bool{}
	for _, v := range kept {
		keptSet[v] = true
	}
	seen := map[string]bool{from: true}
	for _, d := range deps {
		if seen[d.Version] {
			continue
		}
		seen[d.Version] = true
		at := d.FinishedAt
		if at.IsZero() {
			at = d.StartedAt
		}
		p.items = append(p.items, historyItem{version: d.Version, state: d.State, at: at, actor: d.Actor.Name, kept: keptSet[d.Version]})
	}
	for _, v := range kept {
		if !seen[v] {
			seen[v] = true
			p.items = append(p.items, historyItem{version: v, kept: true})
		}
	}
	for i, it := range p.items {
		if it.version == want {
			p.sel = i
		}
	}
	return p
}

func (p *historyDialog) chosen() historyItem { return p.items[p.sel] }

// crossing is what rolling back to `to` leaves in the schema, worked out
// by the engine's own rule from the releases read with the history.
func (p *historyDialog) crossing(s *screen, to string) *core.RollbackCrossing {
	var from, target *core.Release
	if r, ok := p.rels[p.from]; ok {
		from = &r
	}
	if r, ok := p.rels[to]; ok {
		target = &r
	}
	var sets []core.Freshness
	for _, f := range s.snap.Backups[p.ref] {
		sets = append(sets, f)
	}
	c := core.NewRollbackCrossing(p.ref, p.from, from, to, target, p.since, sets)
	c.Unread(s.snap.Situations[p.ref].MigrationsUnread)
	return &c
}

// refused is the engine's refusal of a rollback here as it stands now, ""
// while it would run: the picker was opened on an earlier word, and a
// lock another person takes (or a rollback already started) since then
// must not leave a choice on screen that the engine would turn down.
func (p *historyDialog) refused(s *screen) string {
	if pos := s.possibleIn(p.ref, core.CmdRollback); !pos.Allowed {
		return pos.Why
	}
	return ""
}

func (p *historyDialog) handle(s *screen, msg tea.Msg) action {
	k, ok := msg.(tea.KeyPressMsg)
	if !ok {
		return nil
	}
	if why := p.refused(s); why != "" {
		switch {
		case key.Matches(k, s.keys.Choose):
			return closeDialog{msg: "rollback refused: " + why, sev: core.SeverityWarn}
		case key.Matches(k, s.keys.Back), key.Matches(k, s.keys.Quit):
			return closeDialog{msg: "rollback cancelled"}
		}
		return nil
	}
	switch pickKey(s, k, &p.sel, len(p.items)) {
	case pickChoose:
		to := p.chosen().version
		cmd := core.Command{Kind: core.CmdRollback, Ref: p.ref, Version: to, Actor: s.opts.Actor}
		return replaceDialog{d: newConfirm(s, cmd, p.crossing(s, to))}
	case pickCancel:
		return closeDialog{msg: "rollback cancelled"}
	}
	return nil
}

type pickAction int

const (
	pickNone pickAction = iota
	pickChoose
	pickCancel
)

// pickKey answers a key in a list of n items: it moves *sel or says the
// person chose or cancelled.
func pickKey(s *screen, k tea.KeyPressMsg, sel *int, n int) pickAction {
	switch {
	case key.Matches(k, s.keys.Up):
		*sel = max(*sel-1, 0)
	case key.Matches(k, s.keys.Down):
		*sel = min(*sel+1, n-1)
	case key.Matches(k, s.keys.PageUp):
		*sel = max(*sel-10, 0)
	case key.Matches(k, s.keys.PageDown):
		*sel = min(*sel+10, n-1)
	case key.Matches(k, s.keys.Choose):
		return pickChoose
	case key.Matches(k, s.keys.Back), key.Matches(k, s.keys.Quit):
		return pickCancel
	}
	return pickNone
}

// listBox draws a picker: the heading lines, the items that fit around
// the selection with marks for those above and below, and how to answer.
func listBox(s *screen, title string, head, items []string, sel int, off *int, w, h int) []string {
	st := s.st
	foot := []string{"", " " + st.accent.Render("↑/↓") + " move   " + st.accent.Render("enter") + " choose   " + st.accent.Render("esc") + " cancel"}
	room := max(h-2-len(head)-len(foot), 1)
	lines := append([]string{}, head...)
	if len(items) <= room {
		*off = 0
		lines = append(lines, items...)
		return st.box(title, append(lines, foot...), w, h, 0, 0)
	}
	// A row each is kept for the "above" and "below" marks.
	span := max(room-2, 1)
	if sel < *off {
		*off = sel
	}
	if sel >= *off+span {
		*off = sel - span + 1
	}
	*off = min(max(*off, 0), len(items)-span)
	end := min(*off+span, len(items))
	mark := func(n int, dir string) string {
		if n == 0 {
			return ""
		}
		return st.warn.Render(fmt.Sprintf("   %s %d more", dir, n))
	}
	lines = append(lines, mark(*off, "↑"))
	lines = append(lines, items[*off:end]...)
	lines = append(lines, mark(len(items)-end, "↓"))
	return st.box(title, append(lines, foot...), w, h, 0, 0)
}

func (p *historyDialog) view(s *screen, w, h int) []string {
	st := s.st
	if why := p.refused(s); why != "" {
		lines := wrapLines([]string{"",
			" " + st.danger.Render(fmt.Sprintf("the engine now refuses to roll %s in %s back:", p.ref.Service, p.ref.Env)),
			" " + st.text.Render(why), "",
			" " + st.accent.Render("esc") + " back"}, w-2)
		return st.box("Rollback "+p.ref.Env+" · history", lines, w, h, 0, 0)
	}
	head := wrapLines([]string{"", " " + st.text.Render(fmt.Sprintf("roll %s in %s back from %s to:", p.ref.Service, p.ref.Env, p.from)), ""}, w-2)
	items := make([]string, 0, len(p.items))
	for i, it := range p.items {
		mark := "  "
		if i == p.sel {
			mark = st.accent.Render("▸ ")
		}
		state := string(it.state)
		paint := st.muted
		switch it.state {
		case core.DeployHealthy:
			paint = st.ok
		case core.DeployRolledBack, core.DeployFailed, core.DeployAborted:
			paint = st.danger
		case "":
			state = "kept"
		}
		when := ""
		if !it.at.IsZero() {
			when = s.ago(it.at) + " ago"
		}
		line := " " + mark + st.text.Render(pad(it.version, 10)) + " " + paint.Render(pad(state, 12)) + " " + st.muted.Render(pad(when, 9))
		if it.actor != "" {
			line += " " + st.muted.Render("by "+it.actor)
		}
		if it.kept && it.state != "" {
			line += st.muted.Render(" · kept")
		}
		items = append(items, line)
	}
	return listBox(s, "Rollback "+p.ref.Env+" · history", head, items, p.sel, &p.off, w, h)
}

func (p *historyDialog) hints(s *screen) []key.Binding {
	if p.refused(s) != "" {
		return []key.Binding{hint("esc", "back")}
	}
	return []key.Binding{s.keys.Up, s.keys.Down, s.keys.Choose, s.keys.Back}
}

// setsDialog chooses which backup set of one environment to back up now,
// among those the engine says can run.
type setsDialog struct {
	ref  core.Ref
	sets []string
	sel  int
	off  int
}

func (p *setsDialog) handle(s *screen, msg tea.Msg) action {
	k, ok := msg.(tea.KeyPressMsg)
	if !ok {
		return nil
	}
	switch pickKey(s, k, &p.sel, len(p.sets)) {
	case pickChoose:
		return replaceDialog{d: newConfirm(s, backupCommand(s, p.ref, p.sets[p.sel]), nil)}
	case pickCancel:
		return closeDialog{msg: string(core.CmdBackupNow) + " cancelled"}
	}
	return nil
}

// backupCommand backs up one set: the engine carries the set's name in
// the command's Version, as `ripcord backup --set` does.
func backupCommand(s *screen, ref core.Ref, set string) core.Command {
	return core.Command{Kind: core.CmdBackupNow, Ref: ref, Version: set, Actor: s.opts.Actor}
}

func (p *setsDialog) view(s *screen, w, h int) []string {
	st := s.st
	head := wrapLines([]string{"", " " + st.text.Render(fmt.Sprintf("back up %s in %s now: which set?", p.ref.Service, p.ref.Env)), ""}, w-2)
	items := make([]string, 0, len(p.sets))
	for i, name := range p.sets {
		mark := "  "
		if i == p.sel {
			mark = st.accent.Render("▸ ")
		}
		line := " " + mark + st.text.Render(pad(name, 12))
		if f, ok := s.snap.Backups[p.ref][name]; ok {
			paint, word := freshWord(st, f)
			line += " " + st.muted.Render(pad(f.Facts.Tool, 11)) + " " + pad(lastBackup(f), 10) + " " + paint.Render(word)
		}
		items = append(items, line)
	}
	return listBox(s, "Back up now · "+p.ref.Env, head, items, p.sel, &p.off, w, h)
}

func (p *setsDialog) hints(s *screen) []key.Binding {
	return []key.Binding{s.keys.Up, s.keys.Down, s.keys.Choose, s.keys.Back}
}
