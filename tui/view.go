package tui

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/ripcordhq/ripcord/core"
)

// View renders the whole screen. The frame is rebuilt only when a message
// changed something or the clock ticked; panes keep their own caches.
func (m *Model) View() tea.View {
	now := m.opts.Clock()
	key := fmt.Sprint(m.gen, m.w, m.h, now.Unix())
	content := m.frame.get(key, func() []string { return []string{m.render(now)} })[0]
	v := tea.NewView(content)
	v.AltScreen = true
	if m.mouse {
		v.MouseMode = tea.MouseModeCellMotion
	}
	return v
}

// paneCache keeps a rendered pane until its key changes.
type paneCache struct {
	key    string
	lines  []string
	builds int // how often it rendered, for tests
}

func (c *paneCache) get(key string, build func() []string) []string {
	if c.lines == nil || c.key != key {
		c.key, c.lines = key, build()
		c.builds++
	}
	return c.lines
}

// cached renders pane p through its cache; extra adds what else the pane
// depends on. The pane's filter is part of the key: typing one rebuilds
// the pane, clearing it brings the unfiltered lines back.
func (m *Model) cached(p pane, w, h int, extra string, build func() []string) []string {
	key := fmt.Sprint(m.rev[p], w, h, m.focus == p, m.service, m.env, m.filterLabel(p), extra)
	return m.caches[p].get(key, build)
}

func (m *Model) render(now time.Time) string {
	w, h := m.screenSize()
	lines := make([]string, 0, h)
	lines = append(lines, fit(m.header(now, w), w))
	lines = append(lines, fit(m.needsYou(now), w))
	body := h - headerRows - footerRows
	switch m.mode {
	case modeConfirm:
		lines = append(lines, m.confirm.view(m, w, body)...)
	case modePicker:
		lines = append(lines, m.picker.view(m, now, w, body)...)
	case modeSetPicker:
		lines = append(lines, m.sets.view(m, w, body)...)
	case modeLogs:
		lines = append(lines, m.logBox(w, body)...)
	case modeHelp:
		lines = append(lines, m.helpBox(w, body)...)
	case modeQuit:
		lines = append(lines, m.quitBox(w, body)...)
	default:
		l := m.layout()
		lines = m.appendPanes(lines, now, l)
		if m.mode == modePalette {
			m.palette.overlay(m, lines, w, l.body)
		}
	}
	lines = append(lines, fit(m.statusLine(), w), fit(m.footer(w), w))
	if len(lines) > h {
		lines = lines[:h]
	}
	return strings.Join(lines, "\n")
}

// appendPanes draws the panes where the layout puts them, row by row.
func (m *Model) appendPanes(lines []string, now time.Time, l screenLayout) []string {
	var drawn [paneCount][]string
	for p, r := range l.panes {
		switch pane(p) {
		case panePipeline:
			drawn[p] = m.pipelinePane(now, r.w, r.h)
		case paneErrors:
			drawn[p] = m.errorsPane(r.w, r.h)
		case paneBackups:
			drawn[p] = m.backupsPane(now, r.w, r.h)
		case paneActivity:
			drawn[p] = m.activityPane(r.w, r.h)
		}
	}
	// Left to right, so a row's segments join in screen order.
	order := [paneCount]pane{panePipeline, paneErrors, paneBackups, paneActivity}
	for i := 1; i < len(order); i++ {
		for j := i; j > 0 && l.panes[order[j]].x < l.panes[order[j-1]].x; j-- {
			order[j], order[j-1] = order[j-1], order[j]
		}
	}
	for y := l.body.y; y < l.body.y+l.body.h; y++ {
		line := ""
		for _, p := range order {
			r := l.panes[p]
			if y < r.y || y >= r.y+r.h {
				continue
			}
			if i := y - r.y; i < len(drawn[p]) {
				line += drawn[p][i]
			} else {
				line += blank(r.w)
			}
		}
		lines = append(lines, line)
	}
	return lines
}

// split divides n lines by weights.
func split(n int, weights []int) []int {
	total := 0
	for _, x := range weights {
		total += x
	}
	out := make([]int, len(weights))
	used := 0
	for i, x := range weights {
		out[i] = n * x / total
		used += out[i]
	}
	for i := 0; used < n; i = (i + 1) % len(out) {
		out[i]++
		used++
	}
	return out
}

// fit truncates or pads a (possibly styled) line to exactly w cells.
func fit(s string, w int) string {
	if s == "" {
		return blank(w)
	}
	n := width(s)
	if n > w {
		s = ansi.Truncate(s, w, "…")
		n = width(s)
	}
	if n < w {
		s += blank(w - n)
	}
	return s
}

// blanks holds runs of spaces, so padding allocates only the result.
var blanks = strings.Repeat(" ", 512)

func blank(n int) string {
	if n <= len(blanks) {
		return blanks[:max(n, 0)]
	}
	return strings.Repeat(" ", n)
}

// box draws a titled pane exactly w wide and h tall; content past the
// height is cut, never wrapped.
func (m *Model) box(title string, content []string, w, h int) []string {
	if h <= 0 {
		return nil
	}
	inner := max(w-2, 0)
	b := m.st.border
	t := ansi.Truncate(" "+title+" ", max(inner-1, 0), "…")
	top := b.Render("┌─") + m.st.accent.Render(t) + b.Render(strings.Repeat("─", max(inner-1-width(t), 0))+"┐")
	out := []string{top}
	for i := 0; i < h-2; i++ {
		line := ""
		if i < len(content) {
			line = content[i]
		}
		out = append(out, b.Render("│")+fit(line, inner)+b.Render("│"))
	}
	if h >= 2 {
		out = append(out, b.Render("└"+strings.Repeat("─", inner)+"┘"))
	}
	return out
}

func (m *Model) header(now time.Time, w int) string {
	s := m.st
	// Below two columns the header drops its decorations so versions and
	// the lock holder still fit in 80 cells.
	narrow := w < twoColumnMin
	gap := "   "
	left := " " + s.accent.Render("ripcord") + s.muted.Render(" · ") + s.text.Render(m.snap.Project+"/"+m.service)
	if narrow {
		gap = "  "
		left = " " + s.accent.Render(m.service)
	}
	for _, env := range m.snap.Envs {
		ref := core.Ref{Service: m.service, Env: env}
		cur, cand, weight := m.versions(ref)
		if cur == "" && cand == "" {
			continue
		}
		name := s.text.Render(env)
		if isProduction(env) {
			name = s.prod.Render(env)
		}
		part := gap + name + " " + s.text.Render(orDash(cur))
		if cand != "" {
			part += s.warn.Render(fmt.Sprintf(" ▸ %s %d%%", cand, weight))
		}
		left += part
	}
	left += gap + s.muted.Render("lock: ") + m.lockText(narrow)
	if p := m.providersText(narrow); p != "" {
		left += gap + p
	}
	clock := " " + s.muted.Render(now.In(m.opts.Location).Format("15:04:05")) + " "
	cw := width(clock)
	if width(left)+cw > w {
		return fit(left, max(w-cw, 0)) + clock
	}
	return left + strings.Repeat(" ", w-width(left)-cw) + clock
}

// versions is what an environment runs: the target's word first, the
// deployment record where the target has not reported.
func (m *Model) versions(ref core.Ref) (cur, cand string, weight int) {
	t, hasT := m.snap.Targets[ref]
	d, hasD := m.snap.Deployments[ref]
	if hasT {
		cur, cand, weight = t.Current, t.Candidate, t.Weight
	}
	if hasD && cur == "" {
		cur = d.From
		if d.State == core.DeployHealthy {
			cur = d.Version
		}
	}
	if hasD && cand == "" && !d.State.Terminal() {
		cand, weight = d.Version, d.Weight
	}
	return cur, cand, weight
}

// providersText sums up the providers' health for the header: all
// healthy in one word, otherwise how many are not and the worst state.
// Empty until the first provider reports.
func (m *Model) providersText(short bool) string {
	s := m.st
	n := len(m.snap.Providers)
	if n == 0 {
		return ""
	}
	count := map[string]int{}
	for _, h := range m.snap.Providers {
		count[h.State]++
	}
	switch {
	case count["failed"] > 0:
		if short {
			return s.danger.Render(fmt.Sprintf("✗%d", count["failed"]))
		}
		return s.danger.Render(fmt.Sprintf("providers: %d failed", count["failed"]))
	case count["degraded"] > 0:
		if short {
			return s.warn.Render(fmt.Sprintf("!%d", count["degraded"]))
		}
		return s.warn.Render(fmt.Sprintf("providers: %d degraded", count["degraded"]))
	case count["healthy"] < n:
		if short {
			return s.muted.Render(fmt.Sprintf("…%d", n-count["healthy"]))
		}
		return s.muted.Render(fmt.Sprintf("providers: %d starting", n-count["healthy"]))
	}
	if short {
		return s.ok.Render(fmt.Sprintf("✓%d", n))
	}
	return s.ok.Render(fmt.Sprintf("providers: %d ok", n))
}

// unhealthyProviders lists the providers that are not healthy, worst
// first, for the Activity pane.
func (m *Model) unhealthyProviders() []core.ProviderHealth {
	rank := map[string]int{"failed": 0, "degraded": 1, "starting": 2}
	var out []core.ProviderHealth
	for _, h := range m.snap.Providers {
		if h.State != "healthy" {
			out = append(out, h)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if rank[out[i].State] != rank[out[j].State] {
			return rank[out[i].State] < rank[out[j].State]
		}
		return out[i].Name < out[j].Name
	})
	return out
}

func (m *Model) lockText(short bool) string {
	var held []string
	for _, env := range m.snap.Envs {
		if l, ok := m.snap.Locks[core.Ref{Service: m.service, Env: env}]; ok {
			if short {
				held = append(held, l.Holder.Name)
			} else {
				held = append(held, fmt.Sprintf("%s (%s)", l.Holder.Name, env))
			}
		}
	}
	if len(held) == 0 {
		return m.st.ok.Render("free")
	}
	return m.st.warn.Render(strings.Join(held, ", "))
}

// needsYou is the strip of things waiting on a person, worst first. Below
// two columns it speaks in short forms so the first items fit in 80 cells.
func (m *Model) needsYou(now time.Time) string {
	s := m.st
	narrow := m.w < twoColumnMin
	var items []string
	add := func(st paint, long, short string) {
		if narrow {
			long = short
		}
		items = append(items, st.Render(long))
	}
	for _, env := range m.snap.Envs {
		ref := core.Ref{Service: m.service, Env: env}
		if v, ok := m.snap.Verdicts[ref]; ok && v.Kind == core.VerdictSpike {
			add(s.danger, fmt.Sprintf("SPIKE %s %s %s baseline", env, v.Candidate, v.Evidence.Ratio()),
				fmt.Sprintf("SPIKE %s %s", env, v.Evidence.Ratio()))
		}
		if d, ok := m.snap.Deployments[ref]; ok && d.State == core.DeployJudgment {
			a := age(now, d.StartedAt)
			add(s.warn, fmt.Sprintf("%s %s %d%% waiting for judgment (%s)", env, d.Version, d.Weight, a),
				fmt.Sprintf("judgment %s %s", env, a))
		}
		if v := m.readyToPromote(ref); v != "" {
			add(s.accent, fmt.Sprintf("ready to promote %s to %s", v, env), fmt.Sprintf("ready: %s → %s", v, env))
		}
	}
	// The newest build, rolled back somewhere, is held: automation will not
	// promote it again until a person clears the hold or ships a fix.
	if run, ok := m.snap.Pipelines[m.service]; ok && run.Version != "" {
		for _, env := range m.snap.Envs {
			if m.rolledBack(core.Ref{Service: m.service, Env: env}, run.Version) {
				add(s.warn, fmt.Sprintf("%s held: rolled back in %s", run.Version, env), run.Version+" held")
				break
			}
		}
	}
	for _, f := range m.backups() {
		switch f.State {
		case core.FreshWarn, core.FreshCritical:
			st := s.warn
			if f.State == core.FreshCritical {
				st = s.danger
			}
			add(st, fmt.Sprintf("%s backup %s old (expected %s)", f.Facts.Set, dur(f.Age), dur(f.Expected)),
				fmt.Sprintf("%s backup %s/%s", f.Facts.Set, dur(f.Age), dur(f.Expected)))
		case core.FreshUnknown:
			add(s.warn, fmt.Sprintf("%s backup unknown: %s", f.Facts.Set, f.Reason), f.Facts.Set+" backup unknown")
		}
	}
	ops := make([]core.Operation, 0, len(m.snap.Operations))
	for _, op := range m.snap.Operations {
		if op.State == core.OpAttention && op.Ref.Service == m.service {
			ops = append(ops, op)
		}
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i].ID < ops[j].ID })
	for _, op := range ops {
		add(s.danger, fmt.Sprintf("%s %s unfinished: needs attention", op.Kind, op.Ref.Env), fmt.Sprintf("%s %s unfinished", op.Kind, op.Ref.Env))
	}
	for _, p := range m.unhealthyProviders() {
		if p.State == "failed" {
			add(s.danger, "provider "+p.Name+" failed", p.Name+" failed")
		}
	}
	if len(items) == 0 {
		return " " + s.ok.Render("✓ nothing needs you")
	}
	lead := "! needs you: "
	if narrow {
		lead = "! "
	}
	return " " + s.warn.Render(lead) + strings.Join(items, s.muted.Render(" · "))
}

func (m *Model) pipelinePane(now time.Time, w, h int) []string {
	extra := fmt.Sprint(m.stepSel, now.Unix())
	d, rolling := m.snap.Deployments[m.focusRef()]
	rolling = rolling && !d.State.Terminal()
	if run, ok := m.snap.Pipelines[m.service]; (!ok || run.State.Terminal()) && !rolling {
		extra = m.stepSel // finished runs do not change with the clock
	}
	return m.cached(panePipeline, w, h, extra, func() []string { return m.buildPipelinePane(now, w, h) })
}

func (m *Model) buildPipelinePane(now time.Time, w, h int) []string {
	s := m.st
	roll := m.rolloutLines(now, w, h-2)
	roll = append(roll, m.hostLines(w, h-2-len(roll))...)
	run, ok := m.snap.Pipelines[m.service]
	if !ok {
		return m.box(m.paneTitle(panePipeline, "Pipeline"), append([]string{s.muted.Render(" no run yet")}, roll...), w, h)
	}
	meta := " " + string(run.State)
	if run.Commit != "" {
		meta += " · " + run.Branch + "@" + short(run.Commit, 7)
	}
	if run.ArtifactDigest != "" {
		meta += " · " + shortDigest(run.ArtifactDigest)
	}
	c := []string{s.muted.Render(meta)}
	rows := m.pipelineRows(now, w, h-3-len(roll))
	sel := -1
	if m.focus == panePipeline {
		sel = m.selectedRow(rows)
	}
	for i, r := range rows {
		if i == sel {
			r.text = s.accent.Render("›") + r.text[1:]
		}
		c = append(c, r.text)
	}
	if len(rows) == 0 {
		c = append(c, m.emptyPane(panePipeline, ""))
	}
	c = append(c, roll...)
	return m.box(m.paneTitle(panePipeline, "Pipeline "+run.Version), c, w, h)
}

// rolloutLines shows the focused environment's rollout under the
// pipeline: each configured step, the one in flight with its timer (and
// an analysis with how much of its window has passed), the ones to come.
// Where the pane has no room for a line per step, one line sums it up.
func (m *Model) rolloutLines(now time.Time, w, avail int) []string {
	s := m.st
	ref := m.focusRef()
	d, ok := m.snap.Deployments[ref]
	plan := m.snap.Plans[ref]
	// A deployment without a From replaced nothing through steps: a
	// first install, or the release a rollback restored.
	if !ok || len(plan) == 0 || d.Version == "" || d.From == "" {
		return nil
	}
	head := " rollout " + ref.Env + " · " + d.Version + " · " + string(d.State)
	if d.State == core.DeployHealthy && d.FinishedAt.Before(now.Add(-time.Hour)) {
		return nil // long done: the pipeline has the pane to itself
	}
	state := func(i int) core.RunState {
		switch {
		case i < d.Step || d.State == core.DeployHealthy:
			return core.RunSucceeded
		case i > d.Step:
			return core.RunQueued
		}
		switch d.State {
		case core.DeployProgressing:
			return core.RunRunning
		case core.DeployPaused, core.DeployJudgment:
			return core.RunWaiting
		case core.DeployDegraded, core.DeployFailed, core.DeployRolledBack, core.DeployAborted:
			return core.RunFailed
		}
		return core.RunQueued
	}
	timer := func(i int) string {
		if i != d.Step || d.State.Terminal() || d.StepStartedAt.IsZero() {
			return ""
		}
		return clockDur(now.Sub(d.StepStartedAt))
	}
	if avail < len(plan)+5 { // keep room for the pipeline's own lines
		parts := []string{}
		for i, st := range plan {
			part := m.glyph(state(i)) + stepLabel(st)
			if t := timer(i); t != "" {
				part += " " + s.muted.Render(t)
			}
			parts = append(parts, part)
		}
		return []string{s.muted.Render(" rollout "+ref.Env+":") + " " + strings.Join(parts, s.muted.Render(" · "))}
	}
	nameW := max(min(w/3, 22), 8)
	lines := []string{s.muted.Render(head)}
	for i, st := range plan {
		line := " " + m.glyph(state(i)) + " " + s.text.Render(pad(stepLabel(st), nameW)) + " " + s.muted.Render(pad(timer(i), 6))
		if st.Kind == core.StepAnalysis && state(i) == core.RunRunning && st.For > 0 && !d.StepStartedAt.IsZero() {
			line += " " + s.warn.Render(bar(float64(now.Sub(d.StepStartedAt))/float64(st.For), 10))
		}
		lines = append(lines, line)
	}
	return lines
}

// hostLines lists the machines of the focused environment's target when
// it runs releases on several (an SSH fleet): each with the release it
// runs and its state, so a stopped rollout shows which host runs what.
// Short of room, one line counts the hosts per release and names the
// ones that are not ok.
func (m *Model) hostLines(w, avail int) []string {
	ref := m.focusRef()
	t, ok := m.snap.Targets[ref]
	if !ok || len(t.Hosts) == 0 {
		return nil
	}
	s := m.st
	paintOf := func(state string) paint {
		switch state {
		case core.HostOK:
			return s.ok
		case core.HostWorking:
			return s.warn
		case core.HostUnknown:
			return s.muted
		}
		return s.danger
	}
	if avail < len(t.Hosts)+10 { // the pipeline keeps room for its own lines
		count := map[string]int{}
		var order, bad []string
		for _, h := range t.Hosts {
			if count[h.Release] == 0 {
				order = append(order, h.Release)
			}
			count[h.Release]++
			if h.State != core.HostOK {
				bad = append(bad, paintOf(h.State).Render(h.Name+" "+h.State))
			}
		}
		var parts []string
		for _, r := range order {
			parts = append(parts, fmt.Sprintf("%d on %s", count[r], orDash(r)))
		}
		line := s.muted.Render(" hosts: ") + s.text.Render(strings.Join(parts, ", "))
		if len(bad) > 0 {
			line += s.muted.Render(" · ") + strings.Join(bad, s.muted.Render(", "))
		}
		return []string{fit(line, w-2)}
	}
	nameW, relW := 6, 4
	for _, h := range t.Hosts {
		nameW, relW = max(nameW, width(h.Name)), max(relW, width(h.Release))
	}
	nameW, relW = min(nameW, 16), min(relW, 16)
	lines := []string{s.muted.Render(" hosts · " + ref.Env)}
	for _, h := range t.Hosts {
		line := "   " + s.text.Render(pad(h.Name, nameW)) + " " + s.text.Render(pad(orDash(h.Release), relW)) + " " + paintOf(h.State).Render(h.State)
		if h.Message != "" && h.State != core.HostOK {
			line += s.muted.Render(": " + h.Message)
		}
		lines = append(lines, fit(line, w-2))
	}
	return lines
}

// stepLabel names a rollout step the way the config writes it.
func stepLabel(st core.RolloutStep) string {
	switch st.Kind {
	case core.StepWeight:
		return fmt.Sprintf("%d%%", st.Weight)
	case core.StepAnalysis:
		return "analysis " + dur(st.For)
	case core.StepPause:
		if st.For == 0 {
			return "pause: judgment"
		}
		return "pause " + dur(st.For)
	}
	return string(st.Kind)
}

// pipelineRows lays out the run's stages and steps in at most avail rows
// where it can: finished stages take one line each and only unfinished
// ones list their steps. Should that still not fit, the leading finished
// stages share a line, so the step in flight is never the one cut off.
// A filter keeps the stages and steps whose names match it, each step
// under its stage.
func (m *Model) pipelineRows(now time.Time, w, avail int) []pipeRow {
	s := m.st
	run, ok := m.snap.Pipelines[m.service]
	if !ok {
		return nil
	}
	nameW := max(min(w/3, 22), 8)
	var done []string
	var doneDur time.Duration
	var rows []pipeRow
	leading := true
	for _, st := range run.Stages {
		if st.State == core.RunSucceeded || st.State == core.RunSkipped {
			d := stageDur(st)
			if leading {
				done = append(done, st.Name)
				doneDur += d
			}
			rows = append(rows, pipeRow{text: " " + m.glyph(st.State) + " " + s.text.Render(pad(st.Name, nameW)) + " " + s.muted.Render(clockDur(d)), target: st.Name, name: st.Name})
			continue
		}
		leading = false
		rows = append(rows, pipeRow{text: " " + m.glyph(st.State) + " " + s.text.Render(pad(st.Name, nameW)), target: st.Name, name: st.Name})
		for _, step := range st.Steps {
			line := "   " + m.glyph(step.State) + " " + pad(step.Name, nameW-2) + " " + s.muted.Render(pad(stepDur(now, step), 6))
			if step.State == core.RunRunning && step.Progress > 0 {
				line += " " + s.warn.Render(bar(step.Progress, 10))
			}
			rows = append(rows, pipeRow{text: line, target: st.Name + "/" + step.Name, name: step.Name, stage: st.Name})
		}
	}
	if q := m.filter[panePipeline]; q != "" {
		return filterPipeRows(rows, q)
	}
	if len(rows) > avail && len(done) > 1 {
		merged := pipeRow{text: " " + m.glyph(core.RunSucceeded) + " " + s.text.Render(strings.Join(done, " · ")) + " " + s.muted.Render(clockDur(doneDur)), target: done[len(done)-1], steps: done}
		rows = append([]pipeRow{merged}, rows[len(done):]...)
	}
	return rows
}

// filterPipeRows keeps the rows whose stage or step name matches q, and
// the stage line above each matching step so it is clear where it runs.
func filterPipeRows(rows []pipeRow, q string) []pipeRow {
	wanted := map[string]bool{}
	for _, r := range rows {
		if r.stage != "" && containsFold(r.name, q) {
			wanted[r.stage] = true
		}
	}
	var out []pipeRow
	for _, r := range rows {
		if containsFold(r.name, q) || (r.stage == "" && wanted[r.name]) {
			out = append(out, r)
		}
	}
	return out
}

// pipelineSize is the pipeline pane's size in the current layout.
func (m *Model) pipelineSize() (w, h int) {
	r := m.layout().panes[panePipeline]
	return r.w, r.h
}

// paneTitle marks the focused pane and shows its filter.
func (m *Model) paneTitle(p pane, title string) string {
	if f := m.filterLabel(p); f != "" {
		title += " " + f
	}
	if m.focus == p {
		return "▸ " + title
	}
	return title
}

// filterLabel is pane p's filter as its title shows it: "/roll", "/"
// while the person starts typing one, "" when there is none.
func (m *Model) filterLabel(p pane) string {
	if m.filter[p] == "" && !(m.filtering && m.focus == p) {
		return ""
	}
	return "/" + m.filter[p]
}

// emptyPane is what a pane says when it has no lines: why, if its filter
// hid them all, else the pane's own words for having nothing.
func (m *Model) emptyPane(p pane, none string) string {
	if q := m.filter[p]; q != "" {
		return m.st.muted.Render(" nothing matches /" + q)
	}
	return m.st.muted.Render(none)
}

func (m *Model) glyph(st core.RunState) string {
	switch st {
	case core.RunSucceeded:
		return m.st.ok.Render("✓")
	case core.RunFailed, core.RunCanceled:
		return m.st.danger.Render("✗")
	case core.RunRunning:
		return m.st.warn.Render("◐")
	case core.RunWaiting:
		return m.st.warn.Render("‖")
	}
	return m.st.muted.Render("·")
}

func (m *Model) errorsPane(w, h int) []string {
	return m.cached(paneErrors, w, h, "", func() []string { return m.buildErrorsPane(w, h) })
}

func (m *Model) buildErrorsPane(w, h int) []string {
	s := m.st
	ref := m.focusRef()
	wins := m.snap.Errors[ref]
	v, hasV := m.snap.Verdicts[ref]
	rels := make([]string, 0, len(wins))
	for r := range wins {
		rels = append(rels, r)
	}
	// The candidate first, then the baseline, then anything else.
	rank := func(r string) int {
		switch {
		case hasV && r == v.Candidate:
			return 0
		case hasV && r == v.Baseline:
			return 1
		}
		return 2
	}
	sort.Slice(rels, func(i, j int) bool {
		if a, b := rank(rels[i]), rank(rels[j]); a != b {
			return a < b
		}
		return rels[i] > rels[j]
	})
	q := m.filter[paneErrors]
	var c []string
	for _, r := range rels {
		if !containsFold(r, q) {
			continue
		}
		win := wins[r]
		line := " " + s.text.Render(pad(r, 9)) + " "
		if win.Unavailable != "" {
			c = append(c, line+s.warn.Render("counts unavailable: "+win.Unavailable))
			continue
		}
		line += s.accent.Render(sparkline(win.Buckets, 12)) + " " + s.muted.Render(pad(rate(win), 9))
		if hasV && r == v.Candidate {
			line += " " + m.verdictWord(v)
		}
		c = append(c, line)
	}
	if hasV {
		// The verdict speaks about the candidate: a filter that hides the
		// candidate's row hides its evidence too.
		candidate := containsFold(v.Candidate, q)
		if candidate {
			c = append(c, wrapLines([]string{" " + m.evidence(v)}, w-2)...)
		}
		issues := v.Evidence.NewIssues
		if !candidate {
			issues = nil
			for _, is := range v.Evidence.NewIssues {
				if containsFold(is.Title, q) {
					issues = append(issues, is)
				}
			}
		}
		for i, is := range issues {
			if i == 3 {
				c = append(c, s.muted.Render(fmt.Sprintf(" … %d more new issues", len(issues)-3)))
				break
			}
			c = append(c, s.danger.Render(fmt.Sprintf(" new: %s (%d)", is.Title, is.Count)))
		}
		if candidate && v.Evidence.Note != "" {
			c = append(c, wrapLines([]string{s.muted.Render(" " + v.Evidence.Note)}, w-2)...)
		}
	}
	if len(c) == 0 {
		c = append(c, m.emptyPane(paneErrors, " no error counts yet"))
	}
	return m.box(m.paneTitle(paneErrors, "Errors · "+ref.Env), c, w, h)
}

// evidence is why the verdict is what it is, in one line: the word, the
// window's p-value, the counts against the traffic share, the rate ratio
// with its interval and how long the comparison has run.
func (m *Model) evidence(v core.SpikeVerdict) string {
	e := v.Evidence
	if e.CandidateCount+e.BaselineCount == 0 {
		// Nothing counted yet: numbers would only be noise (an interval
		// without an upper bound); the note under it says what is missing.
		return m.verdictWord(v) + m.st.muted.Render(" · no errors counted yet · "+dur(e.Elapsed))
	}
	return m.verdictWord(v) + m.st.muted.Render(fmt.Sprintf(" p=%s · %d vs %d events at %.0f%% share · %s (CI %s) · %s",
		pval(e.PValue), e.CandidateCount, e.BaselineCount, e.Share*100, e.Ratio(), e.Interval(), dur(e.Elapsed)))
}

// pval prints a p-value with two significant digits: 3e-09, 0.034.
func pval(p float64) string { return fmt.Sprintf("%.2g", p) }

func (m *Model) verdictWord(v core.SpikeVerdict) string {
	switch v.Kind {
	case core.VerdictSpike:
		return m.st.danger.Render("SPIKE")
	case core.VerdictHealthy:
		return m.st.ok.Render("healthy")
	}
	return m.st.muted.Render("inconclusive")
}

// backups lists the watched service's backup sets in a stable order.
func (m *Model) backups() []core.Freshness {
	var out []core.Freshness
	for ref, sets := range m.snap.Backups {
		if ref.Service != m.service {
			continue
		}
		for _, f := range sets {
			out = append(out, f)
		}
	}
	slices.SortFunc(out, func(a, b core.Freshness) int {
		if sa, sb := severity(a.State), severity(b.State); sa != sb {
			return cmp.Compare(sb, sa)
		}
		if c := strings.Compare(a.Facts.Set, b.Facts.Set); c != 0 {
			return c
		}
		return strings.Compare(a.Ref.Env, b.Ref.Env)
	})
	return out
}

// severity orders backup states worst first, so a short pane still shows
// the sets that need a person.
func severity(s core.FreshnessState) int {
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

func (m *Model) backupsPane(_ time.Time, w, h int) []string {
	return m.cached(paneBackups, w, h, "", func() []string { return m.buildBackupsPane(w, h) })
}

func (m *Model) buildBackupsPane(w, h int) []string {
	s := m.st
	var c []string
	q := m.filter[paneBackups]
	all := m.backups()
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
	for _, f := range all {
		if !containsFold(f.Facts.Set+" "+f.Ref.Env, q) {
			continue
		}
		st, word := m.freshWord(f)
		fill := 0.0
		if (f.State != core.FreshUnknown || f.Age > 0) && f.Expected > 0 {
			fill = float64(f.Age) / float64(f.Expected)
		}
		env := ""
		if envW > 0 {
			env = " " + s.muted.Render(pad(f.Ref.Env, envW))
		}
		c = append(c, env+" "+s.text.Render(pad(f.Facts.Set, 10))+" "+s.muted.Render(pad(f.Facts.Tool, 10))+" "+
			pad(m.lastBackup(f), 9)+" "+st.Render(bar(fill, 6))+" "+st.Render(pad(word, 7))+" "+m.lastVerify(f))
	}
	if len(c) == 0 {
		c = append(c, m.emptyPane(paneBackups, " no backup sets"))
	}
	return m.box(m.paneTitle(paneBackups, "Backups"), c, w, h)
}

// lastVerify is when the set's repository was last checked and what the
// check found: a backup that cannot be restored is no backup.
func (m *Model) lastVerify(f core.Freshness) string {
	v := f.Facts
	if v.VerifiedAt.IsZero() {
		return m.st.muted.Render("unverified")
	}
	when := age(m.opts.Clock(), v.VerifiedAt) + " ago"
	if !v.VerifyOK {
		msg := "✗ verify " + when
		if v.VerifyMessage != "" {
			msg += ": " + v.VerifyMessage
		}
		return m.st.danger.Render(msg)
	}
	return m.st.muted.Render("verified " + when)
}

// freshWord is a backup set's state as the Backups pane words it.
func (m *Model) freshWord(f core.Freshness) (paint, string) {
	switch f.State {
	case core.FreshWarn:
		return m.st.warn, "WARN"
	case core.FreshCritical:
		return m.st.danger, "STALE"
	case core.FreshUnknown:
		return m.st.warn, "UNKNOWN"
	}
	return m.st.ok, "ok"
}

// lastBackup is how long ago a set's newest backup ended, "—" when no one
// knows.
func (m *Model) lastBackup(f core.Freshness) string {
	if f.State != core.FreshUnknown || f.Age > 0 {
		return dur(f.Age) + " ago"
	}
	return "—"
}

func (m *Model) activityPane(w, h int) []string {
	return m.cached(paneActivity, w, h, "", func() []string { return m.buildActivityPane(w, h) })
}

func (m *Model) buildActivityPane(w, h int) []string {
	s := m.st
	q := m.filter[paneActivity]
	var c []string
	// Plugin health first: a provider that is down explains why nothing
	// moves. Its log lines are in the log viewer (l).
	for _, p := range m.unhealthyProviders() {
		st := s.warn
		if p.State == "failed" {
			st = s.danger
		}
		line := p.Name + " " + p.State
		if p.Message != "" {
			line += ": " + p.Message
		}
		if (q != "" && !containsFold(line, q)) || len(c) >= max(h-2, 0) {
			continue
		}
		c = append(c, " "+st.Render(line))
	}
	for i := len(m.snap.Audit) - 1; i >= 0 && len(c) < max(h-2, 0); i-- {
		a := m.snap.Audit[i]
		what := a.Action + " " + a.Ref.Env
		if a.From != "" || a.To != "" {
			what += " " + a.From + "→" + a.To
		}
		// A person acting through a shared account is named with it.
		who := a.Actor.Name
		if a.Actor.Via != "" {
			who += " via " + a.Actor.Via
		}
		if q != "" && !containsFold(who+" "+what+" · "+a.Outcome, q) {
			continue
		}
		c = append(c, " "+s.muted.Render(a.At.In(m.opts.Location).Format("15:04:05"))+" "+s.text.Render(pad(who, 8))+" "+what+s.muted.Render(" · "+a.Outcome))
	}
	if len(c) == 0 {
		c = append(c, m.emptyPane(paneActivity, " nothing yet"))
	}
	return m.box(m.paneTitle(paneActivity, "Activity"), c, w, h)
}

// helpBox is the full help, written by bubbles/help from the keymap.
// Actions not allowed now keep their place and say why. Typing narrows it
// to the bindings whose key or description holds the query, in the same
// columns.
func (m *Model) helpBox(w, h int) []string {
	k := m.keys
	for _, b := range []*key.Binding{&k.Promote, &k.FullPromote, &k.Rollback, &k.Abort, &k.Pause, &k.Backup} {
		if why := m.disabled(bindingKind(*b, m.keys)); why != "" {
			hp := b.Help()
			b.SetHelp(hp.Key, hp.Desc+" (disabled: "+why+")")
		}
	}
	groups := k.FullHelp()
	q := m.helpQuery
	if q != "" {
		var kept [][]key.Binding
		for _, g := range groups {
			var in []key.Binding
			for _, b := range g {
				if hp := b.Help(); containsFold(hp.Key, q) || containsFold(hp.Desc, q) {
					in = append(in, b)
				}
			}
			if len(in) > 0 {
				kept = append(kept, in)
			}
		}
		groups = kept
	}
	hm := m.help
	hm.SetWidth(max(w-4, 10))
	c := []string{""}
	if q != "" {
		c[0] = " " + m.st.accent.Render("search:") + " " + q + m.st.accent.Render("_")
		c = append(c, "")
	}
	if len(groups) == 0 {
		return m.box("Help", append(c, m.st.muted.Render(fmt.Sprintf(" no key or description holds %q", q))), w, h)
	}
	for _, l := range strings.Split(hm.FullHelpView(groups), "\n") {
		c = append(c, " "+l)
	}
	return m.box("Help", c, w, h)
}

// bindingKind is the command an action binding asks for.
func bindingKind(b key.Binding, k keyMap) core.CommandKind {
	switch b.Help().Key {
	case k.Promote.Help().Key:
		return core.CmdPromote
	case k.FullPromote.Help().Key:
		return core.CmdFullPromote
	case k.Rollback.Help().Key:
		return core.CmdRollback
	case k.Abort.Help().Key:
		return core.CmdAbort
	case k.Pause.Help().Key:
		return core.CmdPause
	case k.Backup.Help().Key:
		return core.CmdBackupNow
	}
	return ""
}

func (m *Model) logBox(w, h int) []string {
	lv := m.logView
	c := strings.Split(lv.vp.View(), "\n")
	if lv.count == 0 {
		c = []string{m.st.muted.Render(" no log lines yet")}
		if lv.filter.text != "" {
			c = []string{m.st.muted.Render(" no log line matches /" + lv.filter.text)}
		}
	}
	title := lv.filter.title
	if lv.filter.text != "" || lv.typing {
		title += " /" + lv.filter.text
	}
	title += fmt.Sprintf(" · %d lines", lv.count)
	if !lv.follow {
		title += " · scrolled"
	}
	return m.box(title, c, w, h)
}

func (m *Model) quitBox(w, h int) []string {
	n := m.ownRunning()
	c := []string{
		"",
		" " + m.st.warn.Render(fmt.Sprintf("%d operation(s) you started are still running.", n)),
		" They continue in the engine after you quit; any console can watch them.",
		"",
		" " + m.st.accent.Render("y/q") + " quit   " + m.st.accent.Render("enter/esc") + " stay",
	}
	return m.box("Quit", c, w, h)
}

func (m *Model) statusLine() string {
	switch {
	case m.filtering:
		return " " + m.st.accent.Render("filter "+paneNames[m.focus]+":") + " " + m.filter[m.focus] + m.st.accent.Render("_")
	case m.mode == modeLogs && m.logView.typing:
		return " " + m.st.accent.Render("filter log:") + " " + m.logView.filter.text + m.st.accent.Render("_")
	case m.mode == modeConfirm && m.confirm.typeName != "":
		return " " + m.st.warn.Render("confirm "+string(m.confirm.cmd.Kind)+"? type "+m.confirm.typeName+" then enter; esc cancels")
	case m.mode == modeConfirm:
		return " " + m.st.warn.Render("confirm "+string(m.confirm.cmd.Kind)+"? y confirms, enter or esc cancels")
	case m.status == "":
		return ""
	case m.statusBad:
		return " " + m.st.danger.Render(m.status)
	}
	return " " + m.st.text.Render(m.status)
}

// footer lists the keys. Actions not allowed now stay in their place,
// dimmed; a read-only console also says so and why. When the hints do not
// fit in w cells, the least needed give way (never an action or ?).
func (m *Model) footer(w int) string {
	hint := func(bs ...key.Binding) string {
		parts := make([]string, 0, len(bs))
		for _, b := range bs {
			parts = append(parts, m.st.accent.Render(b.Help().Key)+" "+m.st.muted.Render(b.Help().Desc))
		}
		return " " + strings.Join(parts, m.st.muted.Render(" · "))
	}
	k := m.keys
	switch m.mode {
	case modeConfirm:
		if m.confirm.typeName != "" {
			return hint(key.NewBinding(key.WithHelp("enter", "confirm the typed name")), k.Back)
		}
		return hint(k.Confirm, k.Cancel)
	case modePicker:
		return hint(k.Up, k.Down, k.Choose, k.Back)
	case modeSetPicker:
		return hint(k.Up, k.Down, k.Choose, k.Back)
	case modeLogs:
		if m.logView.typing {
			return hint(key.NewBinding(key.WithHelp("enter", "keep filter")), key.NewBinding(key.WithHelp("esc", "clear filter")))
		}
		if m.logView.filter.text != "" {
			return hint(key.NewBinding(key.WithHelp("↑/↓ pgup/pgdn", "scroll")), k.Filter, key.NewBinding(key.WithHelp("esc", "clear filter")))
		}
		return hint(key.NewBinding(key.WithHelp("↑/↓ pgup/pgdn", "scroll")), k.Filter, k.Back)
	case modeHelp:
		return hint(key.NewBinding(key.WithHelp("type", "search")), key.NewBinding(key.WithHelp("?/esc", "close help")))
	case modePalette:
		return hint(key.NewBinding(key.WithHelp("type", "narrow")), key.NewBinding(key.WithHelp("↑/↓", "move")), key.NewBinding(key.WithHelp("enter", "run")), key.NewBinding(key.WithHelp("esc", "close")))
	case modeQuit:
		return hint(key.NewBinding(key.WithHelp("y/q", "quit")), key.NewBinding(key.WithHelp("enter/esc", "stay")))
	}
	if m.filtering {
		return hint(key.NewBinding(key.WithHelp("enter", "keep filter")), key.NewBinding(key.WithHelp("esc", "clear filter")))
	}
	build := func(skip map[string]bool) string {
		var parts []string
		if m.opts.ReadOnly {
			parts = append(parts, m.st.warn.Render("read-only: "+m.opts.ReadOnlyReason))
		}
		for _, b := range m.keys.ShortHelp() {
			hp := b.Help()
			switch kind := bindingKind(b, m.keys); {
			case skip[hp.Key]:
			case kind != "" && m.disabled(kind) != "":
				parts = append(parts, m.st.dim.Render(hp.Key+" "+hp.Desc))
			default:
				parts = append(parts, m.st.accent.Render(hp.Key)+" "+m.st.muted.Render(hp.Desc))
			}
		}
		return " " + strings.Join(parts, m.st.muted.Render(" · "))
	}
	out := build(nil)
	if width(out) <= w {
		return out
	}
	skip := map[string]bool{}
	drop := m.keys.footerDropOrder()
	n := 0
	for n < len(drop) && width(out) > w {
		skip[drop[n].Help().Key] = true
		out = build(skip)
		n++
	}
	// Giving up a long hint may leave room for a shorter one given up
	// before it.
	for i := n - 2; i >= 0; i-- {
		k := drop[i].Help().Key
		delete(skip, k)
		if try := build(skip); width(try) <= w {
			out = try
		} else {
			skip[k] = true
		}
	}
	return out
}

var sparks = []rune("▁▂▃▄▅▆▇█")

// sparkline draws the last n buckets, scaled to the window's maximum.
func sparkline(bs []core.ErrorBucket, n int) string {
	if len(bs) > n {
		bs = bs[len(bs)-n:]
	}
	var top int64
	for _, b := range bs {
		top = max(top, b.Count)
	}
	var sb strings.Builder
	for range n - len(bs) {
		sb.WriteRune(' ')
	}
	for _, b := range bs {
		// Zero alone draws the lowest bar; any error at all draws at least
		// the second, so a quiet release and a nearly quiet one differ.
		i := 0
		if top > 0 && b.Count > 0 {
			i = max(1, int(math.Ceil(float64(b.Count)*float64(len(sparks))/float64(top)-1e-9))-1)
		}
		sb.WriteRune(sparks[min(max(i, 0), len(sparks)-1)])
	}
	return sb.String()
}

// rate is the release's errors in the last minute of its window: what is
// happening now, not diluted by the quiet half hour before a canary.
// A window shorter than a minute is scaled to one.
func rate(w core.ErrorWindow) string {
	if len(w.Buckets) < 2 {
		return fmt.Sprintf("%d", w.Total())
	}
	last := w.Buckets[len(w.Buckets)-1].Start
	step := (last.Sub(w.Buckets[0].Start)) / time.Duration(len(w.Buckets)-1)
	if step <= 0 {
		return fmt.Sprintf("%d", w.Total())
	}
	var n int64
	covered := time.Duration(0)
	for i := len(w.Buckets) - 1; i >= 0 && covered < time.Minute; i-- {
		n += w.Buckets[i].Count
		covered += step
	}
	return fmt.Sprintf("%.0f/min", float64(n)/covered.Minutes())
}

func bar(frac float64, n int) string {
	k := int(math.Round(min(max(frac, 0), 1) * float64(n)))
	return strings.Repeat("█", k) + strings.Repeat("░", n-k)
}

func stepDur(now time.Time, s core.Step) string {
	switch {
	case s.StartedAt.IsZero():
		return ""
	case s.FinishedAt.IsZero():
		return clockDur(now.Sub(s.StartedAt))
	}
	return clockDur(s.FinishedAt.Sub(s.StartedAt))
}

// stageDur is from the stage's first step start to its last step end.
func stageDur(st core.Stage) time.Duration {
	var from, to time.Time
	for _, s := range st.Steps {
		if !s.StartedAt.IsZero() && (from.IsZero() || s.StartedAt.Before(from)) {
			from = s.StartedAt
		}
		if s.FinishedAt.After(to) {
			to = s.FinishedAt
		}
	}
	if from.IsZero() || to.Before(from) {
		return 0
	}
	return to.Sub(from)
}

func clockDur(d time.Duration) string {
	d = max(d, 0).Round(time.Second)
	return fmt.Sprintf("%d:%02d", int(d.Minutes()), int(d.Seconds())%60)
}

// dur is a short human age: 45s, 12m, 26h, 3d.
func dur(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 72*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func age(now, t time.Time) string {
	if t.IsZero() {
		return "?"
	}
	return dur(now.Sub(t))
}

func pad(s string, n int) string {
	if w := width(s); w < n {
		return s + strings.Repeat(" ", n-w)
	}
	return s
}

func short(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// shortDigest keeps the algorithm and 12 hex digits: enough to tell
// artifacts apart at a glance.
func shortDigest(d string) string {
	algo, hex, ok := strings.Cut(d, ":")
	if !ok {
		return short(d, 12) + "…"
	}
	if len(hex) <= 12 {
		return d
	}
	return algo + ":" + hex[:12] + "…"
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

func isProduction(env string) bool { return env == "production" || env == "prod" }
