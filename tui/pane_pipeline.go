package tui

import (
	"fmt"
	"strings"
	"time"

	"github.com/ripcordhq/ripcord/core"
)

// pipelinePane is the release's build, each stage with its state and
// duration, and under it the focused environment's rollout: each step,
// the current one timed, in the words of the engine's situation.
type pipelinePane struct{}

func (pipelinePane) name() string { return "Pipeline" }

func (pipelinePane) title(s *screen) string {
	if run, ok := s.snap.Pipelines[s.service]; ok && run.Version != "" {
		return "Pipeline " + run.Version
	}
	return "Pipeline"
}

func (pipelinePane) kinds() []core.EventKind {
	return []core.EventKind{core.EvPipeline, core.EvDeployment, core.EvPlan, core.EvSituation, core.EvTarget}
}

func (pipelinePane) none() string { return " no run yet" }

// ticks while a step is timed, or the rollout line says how long ago
// something happened.
func (pipelinePane) ticks(s *screen) bool {
	if run, ok := s.snap.Pipelines[s.service]; ok && !run.State.Terminal() {
		return true
	}
	sit, ok := s.situation(s.focusRef())
	return s.serving(s.focusRef()) || (ok && !sit.Since.IsZero()) || s.snap.Deployments[s.focusRef()].State == core.DeployHealthy
}

func (p pipelinePane) rows(s *screen, w, room int, filter string) []row {
	st := s.st
	run, ok := s.snap.Pipelines[s.service]
	var out []row
	if ok {
		meta := " " + string(run.State)
		if run.Commit != "" {
			meta += " · " + run.Branch + "@" + short(run.Commit, 7)
		}
		if run.ArtifactDigest != "" {
			meta += " · " + shortDigest(run.ArtifactDigest)
		}
		out = append(out, row{text: st.muted.Render(meta)})
	}
	stages := stageRows(s, run, w, filter)
	roll := append(rolloutRows(s, w, false), hostRows(s, w, false)...)
	if room > 0 && len(out)+len(stages)+len(roll) > room {
		// Short of room: the rollout's steps on one row, the hosts on one,
		// then the finished stages on one.
		roll = append(rolloutRows(s, w, true), hostRows(s, w, true)...)
		if filter == "" && len(out)+len(stages)+len(roll) > room {
			stages = mergeDone(s, run, stages)
		}
	}
	out = append(out, stages...)
	if ok && len(stages) == 0 && filter != "" {
		out = append(out, row{text: st.muted.Render(" nothing matches /" + filter)})
	}
	if !ok && len(roll) > 0 {
		out = append(out, row{text: st.muted.Render(p.none())})
	}
	return append(out, roll...)
}

// prefer selects the step in flight.
func (pipelinePane) prefer(s *screen, rows []row) int {
	run := s.snap.Pipelines[s.service]
	for _, stg := range run.Stages {
		for _, sp := range stg.Steps {
			if !sp.State.Terminal() {
				for i, r := range rows {
					if r.id == stg.Name+"/"+sp.Name {
						return i
					}
				}
			}
		}
	}
	last := -1
	for i, r := range rows {
		if r.id == rolloutRowID {
			return i // no step runs: the rollout is what moves
		}
		if r.open != nil && r.id != rolloutRowID+"/settled" {
			last = i
		}
	}
	return last
}

// stageRows lays out the run's stages: finished stages take one row each
// and only unfinished ones list their steps. A filter keeps the stages
// and steps whose names match it, each step under its stage.
func stageRows(s *screen, run core.PipelineRun, w int, filter string) []row {
	st := s.st
	nameW := max(min(w/3, 22), 8)
	now := s.now()
	type stageRow struct {
		row
		name, stage string
	}
	var rows []stageRow
	for _, stg := range run.Stages {
		if stg.State == core.RunSucceeded || stg.State == core.RunSkipped {
			rows = append(rows, stageRow{row: row{text: " " + glyph(st, stg.State) + " " + st.text.Render(pad(stg.Name, nameW)) + " " + st.muted.Render(clockDur(stageDur(stg))),
				id: stg.Name, open: stepLog(s.service, stg.Name)}, name: stg.Name})
			continue
		}
		rows = append(rows, stageRow{row: row{text: " " + glyph(st, stg.State) + " " + st.text.Render(pad(stg.Name, nameW)), id: stg.Name, open: stepLog(s.service, stg.Name)}, name: stg.Name})
		for _, step := range stg.Steps {
			line := "   " + glyph(st, step.State) + " " + pad(step.Name, nameW-2) + " " + st.muted.Render(pad(stepDur(now, step), 6))
			if step.State == core.RunRunning && step.Progress > 0 {
				line += " " + st.warn.Render(bar(step.Progress, 10))
			}
			id := stg.Name + "/" + step.Name
			rows = append(rows, stageRow{row: row{text: line, id: id, open: stepLog(s.service, id)}, name: step.Name, stage: stg.Name})
		}
	}
	keep := func(r stageRow) bool { return true }
	if filter != "" {
		wanted := map[string]bool{}
		for _, r := range rows {
			if r.stage != "" && containsFold(r.name, filter) {
				wanted[r.stage] = true
			}
		}
		keep = func(r stageRow) bool { return containsFold(r.name, filter) || (r.stage == "" && wanted[r.name]) }
	}
	var out []row
	for _, r := range rows {
		if keep(r) {
			out = append(out, r.row)
		}
	}
	return out
}

// mergeDone puts the leading finished stages on one row, so the step in
// flight is never the one that does not fit.
func mergeDone(s *screen, run core.PipelineRun, rows []row) []row {
	var done []string
	var took time.Duration
	for _, stg := range run.Stages {
		if stg.State != core.RunSucceeded && stg.State != core.RunSkipped {
			break
		}
		done = append(done, stg.Name)
		took += stageDur(stg)
	}
	if len(done) < 2 {
		return rows
	}
	merged := row{text: " " + glyph(s.st, core.RunSucceeded) + " " + s.st.text.Render(strings.Join(done, " · ")) + " " + s.st.muted.Render(clockDur(took)),
		id: done[len(done)-1], open: stepLog(s.service, done...)}
	return append([]row{merged}, rows[len(done):]...)
}

// stepLog opens the log of the named stages or steps.
func stepLog(service string, steps ...string) func(*screen) dialog {
	return func(s *screen) dialog {
		finished := true
		run := s.snap.Pipelines[service]
		for _, stg := range run.Stages {
			for _, sp := range stg.Steps {
				for _, want := range steps {
					if (want == stg.Name || want == stg.Name+"/"+sp.Name) && !sp.State.Terminal() {
						finished = false
					}
				}
			}
		}
		d := newLogDialog(logFilter{title: "Log · " + service + " · " + strings.Join(steps, " · "), steps: steps, finished: finished})
		// The source keeps each step's log; it is read now, once, not
		// polled: the row names stages or steps, the read names steps.
		var read []string
		for _, want := range steps {
			if strings.Contains(want, "/") {
				read = append(read, want)
				continue
			}
			for _, stg := range run.Stages {
				if stg.Name != want {
					continue
				}
				for _, sp := range stg.Steps {
					read = append(read, stg.Name+"/"+sp.Name)
				}
			}
		}
		if run.ID != "" && len(read) > 0 {
			d.fetch = &core.Command{Kind: core.CmdStepLog, Ref: core.Ref{Service: service, Env: s.focusRef().Env}, Actor: s.opts.Actor, Run: run.ID, Steps: read}
			d.lv.fetching = strings.Join(steps, " · ")
		}
		return d
	}
}

// rolloutRows is the focused environment's rollout, as the engine's
// situation tells it: where it stands (in flight, paused and by whom,
// waiting for judgment, stopped, rolled back, aborted), each configured
// step, the current one timed. Where there is no room for a row per step
// (compact), one row sums the steps up.
func rolloutRows(s *screen, w int, compact bool) []row {
	st := s.st
	ref := s.focusRef()
	d, ok := s.snap.Deployments[ref]
	sit, hasSit := s.situation(ref)
	plan := s.snap.Plans[ref]
	now := s.now()
	if hasSit && sit.Phase != "" {
		return phaseRows(s, ref, sit, d, plan, w, compact)
	}
	// No word from an engine that acts (a console following another):
	// the deployment record says what it last recorded.
	if !ok || len(plan) == 0 || d.Version == "" || d.From == "" || d.State.Terminal() {
		return nil
	}
	head := " rollout " + ref.Env + " · " + d.Version + " · " + string(d.State) + " (as last recorded)"
	return append([]row{{text: st.muted.Render(head)}}, stepRows(s, plan, d.Step, stepStateFor(d.State), d.StepStartedAt, now, w, compact)...)
}

func phaseRows(s *screen, ref core.Ref, sit core.Situation, d core.Deployment, plan []core.RolloutStep, w int, compact bool) []row {
	rows := phaseLines(s, ref, sit, d, plan, w, compact)
	var out []row
	for _, r := range rows {
		for _, l := range wrapLine(r.text, w) {
			out = append(out, row{text: l})
		}
	}
	if len(out) > 0 {
		// The rollout's head row opens the environment's log. While the
		// candidate may take traffic it is what the pane selects (and so
		// keeps in view) when no pipeline step runs: on a short screen it
		// is the one row that must show.
		out[0].id, out[0].open = rolloutRowID+"/settled", envLog(ref)
		if sit.Phase.Serving() {
			out[0].id = rolloutRowID
		}
	}
	return out
}

// rolloutRowID identifies the rollout's head row in the Pipeline pane.
const rolloutRowID = "\x00rollout"

// envLog opens the log lines published for an environment.
func envLog(ref core.Ref) func(*screen) dialog {
	return func(*screen) dialog {
		return newLogDialog(logFilter{title: "Logs · " + ref.String(), ref: ref})
	}
}

func phaseLines(s *screen, ref core.Ref, sit core.Situation, d core.Deployment, plan []core.RolloutStep, w int, compact bool) []row {
	st := s.st
	head := " rollout " + ref.Env + " · " + sit.Candidate + " · "
	var rows []row
	addWhy := func(p paint) {
		if sit.Why != "" {
			rows = append(rows, row{text: p.Render(" " + sit.Why)})
		}
	}
	steps := func(cur core.RunState) []row {
		return stepRows(s, plan, sit.Step, cur, d.StepStartedAt, s.now(), w, compact)
	}
	switch sit.Phase {
	case core.PhaseDeploying:
		rows = append(rows, row{text: st.muted.Render(head) + st.warn.Render(fmt.Sprintf("deploying its first step (%d%%)", sit.Weight))})
		rows = append(rows, steps(core.RunRunning)...)
	case core.PhaseRolling:
		rows = append(rows, row{text: st.muted.Render(head) + st.warn.Render(fmt.Sprintf("in flight at %d%%", sit.Weight))})
		rows = append(rows, steps(core.RunRunning)...)
	case core.PhasePaused:
		rows = append(rows, row{text: st.muted.Render(head) + st.warn.Render(fmt.Sprintf("PAUSED at %d%% by %s (%s)", sit.Weight, sit.By.Name, s.ago(sit.Since)))})
		rows = append(rows, steps(core.RunWaiting)...)
		addWhy(st.muted)
	case core.PhaseJudgment:
		rows = append(rows, row{text: st.muted.Render(head) + st.warn.Render(fmt.Sprintf("waiting for judgment at %d%% (%s)", sit.Weight, s.ago(sit.Since)))})
		rows = append(rows, steps(core.RunWaiting)...)
	case core.PhaseDegraded:
		rows = append(rows, row{text: st.muted.Render(head) + st.danger.Render(fmt.Sprintf("STOPPED at %d%%", sit.Weight))})
		rows = append(rows, steps(core.RunFailed)...)
		addWhy(st.danger)
	case core.PhaseRolledBack:
		line := fmt.Sprintf("rolled back to %s by %s %s ago", sit.Stable, sit.By.Name, s.ago(sit.Since))
		if _, held := sit.Held(sit.Candidate); held {
			line += " · " + sit.Candidate + " held"
		}
		rows = append(rows, row{text: st.muted.Render(head) + st.ok.Render(line)})
	case core.PhaseAborted:
		rows = append(rows, row{text: st.muted.Render(head) + st.ok.Render(fmt.Sprintf("aborted by %s %s ago: all traffic on %s, %s kept", sit.By.Name, s.ago(sit.Since), sit.Stable, sit.Candidate))})
	case core.PhaseFailed:
		rows = append(rows, row{text: st.muted.Render(head) + st.danger.Render(fmt.Sprintf("deploy failed %s ago; %s serves", s.ago(sit.Since), orDash(sit.Stable)))})
	default:
		// Idle: a rollout that finished within the hour is still news.
		if d.State == core.DeployHealthy && d.From != "" && d.FinishedAt.After(s.now().Add(-time.Hour)) {
			rows = append(rows, row{text: st.muted.Render(" rollout "+ref.Env+" · "+d.Version+" · ") + st.ok.Render("complete "+s.ago(d.FinishedAt)+" ago")})
		}
	}
	return rows
}

// hostRows lists the machines of the focused environment's target when it
// runs releases on several (an SSH fleet): each with the release it runs
// and its state, so a stopped rollout shows which host runs what. Short of
// room (compact), one row counts the hosts per release and names the ones
// that are not ok.
func hostRows(s *screen, w int, compact bool) []row {
	ref := s.focusRef()
	t, ok := s.snap.Targets[ref]
	if !ok || len(t.Hosts) == 0 {
		return nil
	}
	st := s.st
	paintOf := func(state string) paint {
		switch state {
		case core.HostOK:
			return st.ok
		case core.HostWorking:
			return st.warn
		case core.HostUnknown:
			return st.muted
		}
		return st.danger
	}
	if compact {
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
		line := st.muted.Render(" hosts: ") + st.text.Render(strings.Join(parts, ", "))
		if len(bad) > 0 {
			line += st.muted.Render(" · ") + strings.Join(bad, st.muted.Render(", "))
		}
		return []row{{text: line}}
	}
	nameW, relW := 6, 4
	for _, h := range t.Hosts {
		nameW, relW = max(nameW, width(h.Name)), max(relW, width(h.Release))
	}
	nameW, relW = min(nameW, 16), min(relW, 16)
	rows := []row{{text: st.muted.Render(" hosts · " + ref.Env)}}
	for _, h := range t.Hosts {
		line := "   " + st.text.Render(pad(h.Name, nameW)) + " " + st.text.Render(pad(orDash(h.Release), relW)) + " " + paintOf(h.State).Render(h.State)
		if h.Message != "" && h.State != core.HostOK {
			line += st.muted.Render(": " + h.Message)
		}
		rows = append(rows, row{text: line})
	}
	return rows
}

// stepStateFor maps a deployment's recorded state to its current step's.
func stepStateFor(ds core.DeployState) core.RunState {
	switch ds {
	case core.DeployProgressing:
		return core.RunRunning
	case core.DeployPaused, core.DeployJudgment:
		return core.RunWaiting
	case core.DeployDegraded, core.DeployFailed:
		return core.RunFailed
	}
	return core.RunQueued
}

// stepRows draws the plan's steps: done before cur, cur in state curState
// (timed since started), queued after.
func stepRows(s *screen, plan []core.RolloutStep, cur int, curState core.RunState, started, now time.Time, w int, compact bool) []row {
	st := s.st
	state := func(i int) core.RunState {
		switch {
		case i < cur:
			return core.RunSucceeded
		case i > cur:
			return core.RunQueued
		}
		return curState
	}
	timer := func(i int) string {
		if i != cur || started.IsZero() || curState == core.RunFailed {
			return ""
		}
		return clockDur(now.Sub(started))
	}
	if len(plan) == 0 {
		return nil
	}
	if compact {
		parts := make([]string, 0, len(plan))
		for i, p := range plan {
			part := glyph(st, state(i)) + stepLabel(p)
			if t := timer(i); t != "" {
				part += " " + st.muted.Render(t)
			}
			parts = append(parts, part)
		}
		return []row{{text: " " + strings.Join(parts, st.muted.Render(" · "))}}
	}
	nameW := max(min(w/3, 22), 8)
	rows := make([]row, 0, len(plan))
	for i, p := range plan {
		line := " " + glyph(st, state(i)) + " " + st.text.Render(pad(stepLabel(p), nameW)) + " " + st.muted.Render(pad(timer(i), 6))
		if p.Kind == core.StepAnalysis && state(i) == core.RunRunning && p.For > 0 && !started.IsZero() {
			line += " " + st.warn.Render(bar(float64(now.Sub(started))/float64(p.For), 10))
		}
		rows = append(rows, row{text: line})
	}
	return rows
}

// stepLabel names a rollout step the way the config writes it.
func stepLabel(p core.RolloutStep) string {
	switch p.Kind {
	case core.StepWeight:
		return fmt.Sprintf("%d%%", p.Weight)
	case core.StepAnalysis:
		return "analysis " + core.HumanDuration(p.For)
	case core.StepPause:
		if p.For == 0 {
			return "pause: judgment"
		}
		return "pause " + core.HumanDuration(p.For)
	}
	return string(p.Kind)
}

func glyph(st styles, s core.RunState) string {
	switch s {
	case core.RunSucceeded:
		return st.ok.Render("✓")
	case core.RunFailed, core.RunCanceled:
		return st.danger.Render("✗")
	case core.RunRunning:
		return st.warn.Render("◐")
	case core.RunWaiting:
		return st.warn.Render("‖")
	}
	return st.muted.Render("·")
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
func stageDur(stg core.Stage) time.Duration {
	var from, to time.Time
	for _, s := range stg.Steps {
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
