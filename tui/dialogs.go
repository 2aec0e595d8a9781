package tui

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

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

// picker is the rollback history: releases that ran in one environment,
// newest first, with the last good one preselected.
type picker struct {
	ref  core.Ref
	from string // the release being rolled back
	rel  *core.Release
	// rels are the releases the store holds among from and the items;
	// since is when from reached the environment.
	rels  map[string]core.Release
	since time.Time
	items []historyItem
	sel   int
}

type pickAction int

const (
	pickNone pickAction = iota
	pickChoose
	pickCancel
)

// newPicker builds the list from the store's deployments (newest first)
// and the versions the target keeps. The release being rolled back is
// left out: going "back" to it would change nothing.
func newPicker(ref core.Ref, from string, deps []core.Deployment, kept []string) *picker {
	p := &picker{ref: ref, from: from}
	keptSet := map[string]bool{}
	for _, v := range kept {
		keptSet[v] = true
	}
	seen := map[string]bool{from: true}
	good := ""
	for _, d := range deps {
		if d.Version == from {
			continue
		}
		// The engine's own choice: the newest healthy deployment that is
		// not the one being rolled back.
		if good == "" && d.State == core.DeployHealthy {
			good = d.Version
		}
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
		if it.version == good {
			p.sel = i
		}
	}
	return p
}

func (p *picker) chosen() historyItem { return p.items[p.sel] }

func (p *picker) update(k tea.KeyPressMsg, keys keyMap) pickAction {
	return pickKey(k, keys, &p.sel, len(p.items))
}

// pickKey answers a key in any picker of n items: it moves *sel or says
// the person chose or cancelled.
func pickKey(k tea.KeyPressMsg, keys keyMap, sel *int, n int) pickAction {
	switch {
	case key.Matches(k, keys.Up):
		*sel = max(*sel-1, 0)
	case key.Matches(k, keys.Down):
		*sel = min(*sel+1, n-1)
	case key.Matches(k, keys.Choose):
		return pickChoose
	case key.Matches(k, keys.Back), key.Matches(k, keys.Quit):
		return pickCancel
	}
	return pickNone
}

func (p *picker) view(m *Model, now time.Time, w, h int) []string {
	s := m.st
	c := []string{
		"",
		" " + s.text.Render(fmt.Sprintf("roll %s in %s back from %s to:", p.ref.Service, p.ref.Env, p.from)),
		"",
	}
	for i, it := range p.items {
		mark := "  "
		if i == p.sel {
			mark = s.accent.Render("▸ ")
		}
		state := string(it.state)
		st := s.muted
		switch it.state {
		case core.DeployHealthy:
			st = s.ok
		case core.DeployRolledBack, core.DeployFailed, core.DeployAborted:
			st = s.danger
		case "":
			state = "kept"
		}
		when := ""
		if !it.at.IsZero() {
			when = age(now, it.at) + " ago"
		}
		line := " " + mark + s.text.Render(pad(it.version, 10)) + " " + st.Render(pad(state, 12)) + " " + s.muted.Render(pad(when, 9))
		if it.actor != "" {
			line += " " + s.muted.Render("by "+it.actor)
		}
		if it.kept && it.state != "" {
			line += s.muted.Render(" · kept")
		}
		c = append(c, line)
	}
	c = append(c, "", pickerHints(s))
	return m.box("Rollback "+p.ref.Env+" · history", c, w, h)
}

// pickerHints is how to answer any picker.
func pickerHints(s styles) string {
	return " " + s.accent.Render("↑/↓") + " move   " + s.accent.Render("enter") + " choose   " + s.accent.Render("esc") + " cancel"
}

// setPicker chooses which backup set of one environment to back up now.
type setPicker struct {
	ref  core.Ref
	sets []core.Freshness // by set name
	sel  int
}

func (p *setPicker) chosen() core.Freshness { return p.sets[p.sel] }

func (p *setPicker) update(k tea.KeyPressMsg, keys keyMap) pickAction {
	return pickKey(k, keys, &p.sel, len(p.sets))
}

func (p *setPicker) view(m *Model, w, h int) []string {
	s := m.st
	c := []string{
		"",
		" " + s.text.Render(fmt.Sprintf("back up %s in %s now: which set?", p.ref.Service, p.ref.Env)),
		"",
	}
	for i, f := range p.sets {
		mark := "  "
		if i == p.sel {
			mark = s.accent.Render("▸ ")
		}
		st, word := m.freshWord(f)
		c = append(c, " "+mark+s.text.Render(pad(f.Facts.Set, 12))+" "+s.muted.Render(pad(f.Facts.Tool, 11))+" "+
			pad(m.lastBackup(f), 10)+" "+st.Render(word))
	}
	c = append(c, "", pickerHints(s))
	return m.box("Back up now · "+p.ref.Env, c, w, h)
}

// confirmDialog is the last word before a command goes to the engine. It
// states what will happen; Enter and Esc cancel, and only y (or, by
// policy, typing the service name) confirms.
type confirmDialog struct {
	cmd      core.Command
	title    string   // "rollback api in production: v1.5.0 → v1.4.2"
	lines    []string // styled detail lines
	typeName string   // the text to type, when policy asks for it
	typed    string
}

type confirmAction int

const (
	confirmNone confirmAction = iota
	confirmYes
	confirmCancel
	confirmWrong
)

func (c *confirmDialog) update(k tea.KeyPressMsg, keys keyMap) confirmAction {
	if c.typeName == "" {
		switch {
		case key.Matches(k, keys.Confirm):
			return confirmYes
		case key.Matches(k, keys.Cancel):
			return confirmCancel
		}
		return confirmNone
	}
	switch k.Code {
	case tea.KeyEscape:
		return confirmCancel
	case tea.KeyEnter:
		if c.typed == c.typeName {
			return confirmYes
		}
		return confirmWrong
	case tea.KeyBackspace:
		if r := []rune(c.typed); len(r) > 0 {
			c.typed = string(r[:len(r)-1])
		}
		return confirmNone
	}
	if k.Text != "" && len(c.typed) < 64 {
		c.typed += k.Text
	}
	return confirmNone
}

func (c *confirmDialog) view(m *Model, w, h int) []string {
	s := m.st
	head := wrapLines([]string{" " + s.warn.Render(c.title)}, w-2)
	// Who else is watching is read at every frame: someone who opens a
	// console while the dialog is up appears in it.
	body := wrapLines(append(slices.Clip(c.lines), m.othersWatching()), w-2)
	var foot []string
	if c.typeName != "" {
		foot = wrapLines([]string{
			" type " + s.accent.Render(c.typeName) + " and press enter to confirm · " + s.accent.Render("esc") + " cancels",
			" > " + c.typed + s.accent.Render("_")}, w-2)
	} else {
		foot = []string{" " + s.accent.Render("y") + " confirm   " + s.accent.Render("enter/esc") + " cancel"}
	}
	out := append(append(append(append(append([]string{""}, head...), ""), body...), ""), foot...)
	if room := h - 2; len(out) > room {
		// Short terminal: give up the spacing first, then the detail's
		// tail, never the title or how to answer.
		var packed []string
		for _, l := range append(append(head, body...), foot...) {
			if strings.TrimSpace(ansi.Strip(l)) != "" {
				packed = append(packed, l)
			}
		}
		out = packed
		if len(out) > room {
			keep := max(room-len(head)-len(foot)-1, 0)
			cut := len(out) - len(head) - len(foot) - keep
			kept := append([]string{}, out[:len(head)+keep]...)
			kept = append(kept, s.muted.Render(fmt.Sprintf(" … %d more line(s): a taller terminal shows them", cut)))
			out = append(kept, foot...)
		}
	}
	return m.box("Confirm "+string(c.cmd.Kind), out, w, h)
}

// wrapLines wraps each line to w cells, indenting continuations under the
// line's own indent: a confirmation must say everything, never cut it.
func wrapLines(lines []string, w int) []string {
	out := make([]string, 0, len(lines))
	for _, l := range lines {
		if width(l) <= w {
			out = append(out, l)
			continue
		}
		plain := ansi.Strip(l)
		indent := len(plain) - len(strings.TrimLeft(plain, " ")) + 2
		first, rest, _ := strings.Cut(ansi.Wrap(l, w, ""), "\n")
		out = append(out, first)
		// The rest is wrapped again at the width left after the indent,
		// so no continuation line is longer than the first.
		rest = strings.Join(strings.Fields(strings.ReplaceAll(rest, "\n", " ")), " ")
		for _, q := range strings.Split(ansi.Wrap(rest, max(w-indent, 1), ""), "\n") {
			out = append(out, strings.Repeat(" ", indent)+q)
		}
	}
	return out
}
