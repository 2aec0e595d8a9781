package tui

import (
	"fmt"
	"sort"
	"strings"

	"github.com/ripcordhq/ripcord/core"
)

// disabled says why an action is not allowed now, or "" when it is. Keys
// for disabled actions stay on screen, dimmed, and pressing one says this.
func (m *Model) disabled(kind core.CommandKind) string {
	if m.opts.ReadOnly {
		return m.opts.ReadOnlyReason
	}
	ref := m.focusRef()
	d, hasDep := m.snap.Deployments[ref]
	inFlight := hasDep && !d.State.Terminal()
	switch kind {
	case core.CmdPromote, core.CmdFullPromote:
		if _, _, why := m.promotion(ref); why != "" {
			return why
		}
	case core.CmdAbort:
		if !inFlight {
			return "nothing to abort: no rollout in flight in " + ref.Env
		}
	case core.CmdPause:
		if !inFlight {
			return "nothing to pause: no rollout in flight in " + ref.Env
		}
	case core.CmdRollback:
		cur, _, _ := m.versions(ref)
		if cur == "" && !hasDep {
			return "nothing to roll back: no release runs in " + ref.Env
		}
	case core.CmdBackupNow:
		if len(m.snap.Backups[ref]) == 0 {
			return "nothing to back up: no backup sets reported in " + ref.Env
		}
	}
	return ""
}

// predecessor is the environment before env in promotion order.
func (m *Model) predecessor(env string) (string, bool) {
	for i, e := range m.snap.Envs {
		if e == env && i > 0 {
			return m.snap.Envs[i-1], true
		}
	}
	return "", false
}

// promotion is what promote would do in ref: the release it moves from and
// to, or why there is nothing to promote.
func (m *Model) promotion(ref core.Ref) (from, to, why string) {
	if d, ok := m.snap.Deployments[ref]; ok && !d.State.Terminal() {
		return d.From, d.Version, ""
	}
	cur, _, _ := m.versions(ref)
	if prev, ok := m.predecessor(ref.Env); ok {
		pc, _, _ := m.versions(core.Ref{Service: ref.Service, Env: prev})
		switch {
		case pc == "":
			return "", "", fmt.Sprintf("nothing to promote: %s runs no release yet", prev)
		case pc == cur:
			return "", "", fmt.Sprintf("nothing to promote: %s already runs %s, as %s does", ref.Env, cur, prev)
		}
		return cur, pc, ""
	}
	run, ok := m.snap.Pipelines[ref.Service]
	switch {
	case !ok:
		return "", "", "nothing to promote: no pipeline run yet"
	case run.Version == cur:
		return "", "", fmt.Sprintf("nothing to promote: %s already runs %s, the latest build", ref.Env, cur)
	case !run.Green():
		return "", "", fmt.Sprintf("nothing to promote: the pipeline for %s is %s", run.Version, run.State)
	}
	return cur, run.Version, ""
}

// readyToPromote names the release waiting at the door of ref: its
// predecessor runs it, ref does not, and no rollout is in flight.
func (m *Model) readyToPromote(ref core.Ref) string {
	if d, ok := m.snap.Deployments[ref]; ok && !d.State.Terminal() {
		return ""
	}
	prev, ok := m.predecessor(ref.Env)
	if !ok {
		return ""
	}
	// Not while the release is still rolling out in the environment before:
	// it is ready once it has settled there.
	if d, ok := m.snap.Deployments[core.Ref{Service: ref.Service, Env: prev}]; ok && !d.State.Terminal() {
		return ""
	}
	_, to, why := m.promotion(ref)
	if why != "" || m.rolledBack(ref, to) {
		return ""
	}
	return to
}

// rolledBack says whether version was rolled back out of ref (the audit
// log in the snapshot says so): such a release is held, and offering to
// promote it again would be the screen undoing a person's rollback.
func (m *Model) rolledBack(ref core.Ref, version string) bool {
	for i := len(m.snap.Audit) - 1; i >= 0; i-- {
		a := m.snap.Audit[i]
		switch {
		case a.Action == string(core.CmdClearHold) && a.Ref.Service == ref.Service && a.To == version:
			return false
		case a.Action == "rollback" && a.Ref == ref && a.From == version && !strings.HasPrefix(a.Outcome, "failed"):
			return true
		}
	}
	return false
}

// check is the screen's reading of one gate, from what the snapshot
// holds. The engine evaluates the configured gates again on every command.
type check struct {
	gate   string
	ok     bool
	reason string
}

func (m *Model) checks(ref core.Ref, version string) []check {
	var out []check
	if run, ok := m.snap.Pipelines[ref.Service]; ok && run.Version == version {
		if run.Green() {
			out = append(out, check{"pipeline", true, "pipeline for " + version + " succeeded"})
		} else {
			out = append(out, check{"pipeline", false, fmt.Sprintf("pipeline for %s is %s", version, run.State)})
		}
	}
	if v, ok := m.snap.Verdicts[ref]; ok {
		switch v.Kind {
		case core.VerdictSpike:
			out = append(out, check{"errors", false, fmt.Sprintf("SPIKE: %s %s baseline (p=%s)", v.Candidate, v.Evidence.Ratio(), pval(v.Evidence.PValue))})
		case core.VerdictHealthy:
			out = append(out, check{"errors", true, "no error spike"})
		default:
			out = append(out, check{"errors", true, "inconclusive so far: too few errors to tell"})
		}
	}
	// As the engine's gate: critical or unknown blocks; old-but-not-critical
	// passes with a warning a person should still see.
	var bad, warns []string
	n := 0
	for _, f := range m.backups() {
		if f.Ref != ref {
			continue
		}
		n++
		switch f.State {
		case core.FreshCritical:
			bad = append(bad, fmt.Sprintf("%s backup %s old (expected %s)", f.Facts.Set, dur(f.Age), dur(f.Expected)))
		case core.FreshWarn:
			warns = append(warns, fmt.Sprintf("%s backup %s old (expected %s)", f.Facts.Set, dur(f.Age), dur(f.Expected)))
		case core.FreshUnknown:
			bad = append(bad, fmt.Sprintf("%s backup unknown: %s", f.Facts.Set, f.Reason))
		}
	}
	if len(bad) > 0 {
		out = append(out, check{"backups", false, strings.Join(bad, "; ")})
	} else if len(warns) > 0 {
		out = append(out, check{"backups", true, "passes with a warning: " + strings.Join(warns, "; ")})
	} else if n > 0 {
		out = append(out, check{"backups", true, fmt.Sprintf("%d backup set(s) fresh", n)})
	}
	if l, ok := m.snap.Locks[ref]; ok && (l.Holder.Name != m.opts.Actor.Name || l.Holder.Host != m.opts.Actor.Host) {
		out = append(out, check{"lock", false, "held by " + l.Holder.String()})
	} else {
		out = append(out, check{"lock", true, "free"})
	}
	return out
}

func (m *Model) checkLines(cs []check, onlyFailing bool) []string {
	var out []string
	for _, c := range cs {
		switch {
		case !c.ok:
			out = append(out, "   "+m.st.danger.Render("✗ "+c.gate)+" "+c.reason)
		case !onlyFailing:
			out = append(out, "   "+m.st.ok.Render("✓ "+c.gate)+" "+m.st.muted.Render(c.reason))
		}
	}
	return out
}

// common lines every confirmation ends with: the lock and the actor. Who
// else is watching follows them, drawn live (confirmDialog.view).
func (m *Model) tailLines(ref core.Ref) []string {
	lock := " lock: " + m.st.ok.Render("free")
	if l, ok := m.snap.Locks[ref]; ok {
		lock = " lock: " + m.st.warn.Render(fmt.Sprintf("held by %s for %s", l.Holder, age(m.opts.Clock(), l.Since)))
		if l.Reason != "" {
			lock += m.st.muted.Render(" (" + l.Reason + ")")
		}
	}
	return []string{
		lock,
		" as " + m.opts.Actor.String(),
	}
}

// othersWatching names the people with another console open on the
// project, longest watching first.
func (m *Model) othersWatching() string {
	var names []string
	for _, w := range m.snap.Watchers {
		if w.ID == m.self {
			continue
		}
		names = append(names, w.Actor.String()+" ("+age(m.opts.Clock(), w.Since)+")")
	}
	if len(names) == 0 {
		return m.st.muted.Render(" nobody else is watching")
	}
	return " " + m.st.warn.Render("also watching: "+strings.Join(names, ", "))
}

// actionDialog states what promote, full promote, abort, pause or resume
// will do.
func (m *Model) actionDialog(kind core.CommandKind) *confirmDialog {
	ref := m.focusRef()
	cmd := core.Command{Kind: kind, Ref: ref, Actor: m.opts.Actor}
	d, hasDep := m.snap.Deployments[ref]
	inFlight := hasDep && !d.State.Terminal()
	c := &confirmDialog{cmd: cmd}
	where := ref.Service + " in " + ref.Env
	switch kind {
	case core.CmdPromote, core.CmdFullPromote:
		from, to, _ := m.promotion(ref)
		c.cmd.Version = to
		word := "promote"
		if kind == core.CmdFullPromote {
			word = "full promote"
		}
		c.title = fmt.Sprintf("%s %s: %s → %s", word, where, orDash(from), to)
		switch {
		case kind == core.CmdFullPromote:
			c.lines = append(c.lines, fmt.Sprintf(" %s goes to 100%% of traffic now, skipping the remaining steps and analysis (audited)", to))
		case inFlight:
			c.lines = append(c.lines, fmt.Sprintf(" %s now has %d%% of traffic; promote moves it to its next step", to, d.Weight))
		default:
			c.lines = append(c.lines, fmt.Sprintf(" starts the rollout of %s in %s", to, ref.Env))
		}
		c.lines = append(c.lines, "", " gates (the engine checks the configured gates again):")
		c.lines = append(c.lines, m.checkLines(m.checks(ref, to), false)...)
	case core.CmdAbort:
		c.title = fmt.Sprintf("abort %s: %s → %s", where, d.Version, d.From)
		c.lines = append(c.lines, fmt.Sprintf(" traffic goes back to %s; %s is kept for inspection", d.From, d.Version))
	case core.CmdPause, core.CmdResume:
		c.title = fmt.Sprintf("%s %s: the rollout of %s at %d%%", kind, where, d.Version, d.Weight)
	}
	c.lines = append(c.lines, "")
	c.lines = append(c.lines, m.tailLines(ref)...)
	return c
}

// backupSets are the backup sets of ref, by name.
func (m *Model) backupSets(ref core.Ref) []core.Freshness {
	sets := make([]core.Freshness, 0, len(m.snap.Backups[ref]))
	for _, f := range m.snap.Backups[ref] {
		sets = append(sets, f)
	}
	sort.Slice(sets, func(i, j int) bool { return sets[i].Facts.Set < sets[j].Facts.Set })
	return sets
}

// backupDialog states what backing up one set now will do. The engine
// carries the set's name in the command's Version, as the CLI's
// `ripcord backup --set` does.
func (m *Model) backupDialog(ref core.Ref, f core.Freshness) *confirmDialog {
	set := f.Facts.Set
	c := &confirmDialog{cmd: core.Command{Kind: core.CmdBackupNow, Ref: ref, Version: set, Actor: m.opts.Actor}}
	c.title = fmt.Sprintf("back up now %s in %s: %s", ref.Service, ref.Env, set)
	tool := ""
	if f.Facts.Tool != "" {
		tool = " (" + f.Facts.Tool + ")"
	}
	c.lines = append(c.lines, fmt.Sprintf(" runs the %s backup%s now, where its provider can; the run is audited", set, tool))
	st, word := m.freshWord(f)
	newest := " newest " + set + " backup: " + m.lastBackup(f) + " " + st.Render(word)
	if f.Expected > 0 {
		newest += m.st.muted.Render(" (expected every " + dur(f.Expected) + ")")
	}
	c.lines = append(c.lines, newest)
	if f.Reason != "" {
		c.lines = append(c.lines, " "+m.st.warn.Render(f.Reason))
	}
	c.lines = append(c.lines, "")
	c.lines = append(c.lines, m.tailLines(ref)...)
	return c
}

// rollbackDialog states exactly what the chosen rollback will do.
func (m *Model) rollbackDialog(p *picker) *confirmDialog {
	ref := p.ref
	to := p.chosen().version
	c := &confirmDialog{cmd: core.Command{Kind: core.CmdRollback, Ref: ref, Version: to, Actor: m.opts.Actor}}
	c.title = fmt.Sprintf("rollback %s in %s: %s → %s", ref.Service, ref.Env, p.from, to)
	s := m.st
	c.lines = append(c.lines, m.migrationLines(p, to)...)
	c.lines = append(c.lines, " newest backups: "+m.backupAges(ref))
	if fails := m.checkLines(m.checks(ref, p.from), true); len(fails) > 0 {
		c.lines = append(c.lines, " failing gates:")
		c.lines = append(c.lines, fails...)
	} else {
		c.lines = append(c.lines, " failing gates: none")
	}
	c.lines = append(c.lines, " "+s.muted.Render(p.from+" will be held: automation will not promote it again until a person clears it"))
	c.lines = append(c.lines, "")
	c.lines = append(c.lines, m.tailLines(ref)...)
	return c
}

// migrationLines states what the rollback leaves in the schema, in the
// words the engine's own check uses (core.RollbackCrossing), and how a
// person goes ahead when that check refuses.
func (m *Model) migrationLines(p *picker, to string) []string {
	s := m.st
	var from, target *core.Release
	if r, ok := p.rels[p.from]; ok {
		from = &r
	} else {
		from = p.rel
	}
	if r, ok := p.rels[to]; ok {
		target = &r
	}
	crossing := core.NewRollbackCrossing(p.ref, p.from, from, to, target, p.since, m.backupSets(p.ref))
	var out []string
	for _, l := range crossing.Lines() {
		switch {
		case strings.HasPrefix(l, "  ✗"):
			out = append(out, " "+s.danger.Render(l))
		case strings.HasPrefix(l, "  ✓"):
			out = append(out, " "+s.ok.Render(l))
		case strings.HasPrefix(l, "migrations: unknown"):
			out = append(out, " "+s.warn.Render(l))
		default:
			out = append(out, " "+l)
		}
	}
	if g := crossing.Gate(); g.Status != core.GatePass {
		out = append(out, " "+s.danger.Render("blocked: the engine refuses this rollback across a contract migration"))
		out = append(out, " "+s.muted.Render(fmt.Sprintf("to go ahead anyway: ripcord rollback %s --env %s --to %s --override migrations --reason \"why\"", p.ref.Service, p.ref.Env, to)))
	}
	return out
}

// backupAges lists each backup set of ref with the age of its newest
// backup.
func (m *Model) backupAges(ref core.Ref) string {
	sets := m.snap.Backups[ref]
	if len(sets) == 0 {
		return m.st.warn.Render("no backup sets reported")
	}
	names := make([]string, 0, len(sets))
	for n := range sets {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, 0, len(names))
	for _, n := range names {
		f := sets[n]
		switch f.State {
		case core.FreshUnknown:
			parts = append(parts, m.st.warn.Render(n+" unknown"))
		case core.FreshCritical:
			parts = append(parts, m.st.danger.Render(n+" "+dur(f.Age)+" ago STALE"))
		case core.FreshWarn:
			parts = append(parts, m.st.warn.Render(n+" "+dur(f.Age)+" ago"))
		default:
			parts = append(parts, n+" "+dur(f.Age)+" ago")
		}
	}
	return strings.Join(parts, " · ")
}

// pipeRow is one line of the pipeline pane; target names the log it
// opens ("stage" or "stage/step").
type pipeRow struct {
	text   string
	target string
	steps  []string // what its log shows; several stages on a merged row
	name   string   // the stage's or step's own name, what a filter matches
	stage  string   // a step's stage; "" on a stage's row
}

// moveStep moves the pipeline selection one row.
func (m *Model) moveStep(down bool) {
	w, h := m.pipelineSize()
	rows := m.pipelineRows(m.opts.Clock(), w, h-3)
	if len(rows) == 0 {
		return
	}
	i := m.selectedRow(rows)
	if down {
		i = min(i+1, len(rows)-1)
	} else {
		i = max(i-1, 0)
	}
	m.stepSel = rows[i].target
	m.rev[panePipeline]++
}

// selectedRow is the index of the selected row: the one chosen, else the
// step in flight, else the last.
func (m *Model) selectedRow(rows []pipeRow) int {
	for i, r := range rows {
		if r.target == m.stepSel && m.stepSel != "" {
			return i
		}
	}
	if run, ok := m.snap.Pipelines[m.service]; ok {
		for _, st := range run.Stages {
			for _, sp := range st.Steps {
				if !sp.State.Terminal() {
					for i, r := range rows {
						if r.target == st.Name+"/"+sp.Name {
							return i
						}
					}
				}
			}
		}
	}
	return len(rows) - 1
}

func (m *Model) openStepLog() {
	w, h := m.pipelineSize()
	rows := m.pipelineRows(m.opts.Clock(), w, h-3)
	if len(rows) == 0 {
		m.setStatus("no pipeline run yet: no step log to open", true)
		return
	}
	r := rows[m.selectedRow(rows)]
	steps := r.steps
	if steps == nil {
		steps = []string{r.target}
	}
	m.openLogs(logFilter{title: "Log · " + m.service + " · " + strings.Join(steps, " · "), steps: steps})
}
