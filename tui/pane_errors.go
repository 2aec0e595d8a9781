package tui

import (
	"fmt"
	"sort"

	"github.com/ripcordhq/ripcord/core"
)

// errorsPane compares the candidate's errors with the stable release's in
// the focused environment, with the verdict and the evidence behind it.
// A verdict about a release that no longer takes traffic (rolled back,
// aborted) says so: it is history, not an emergency.
type errorsPane struct{}

func (errorsPane) name() string { return "Errors" }

func (errorsPane) title(s *screen) string { return "Errors · " + s.focusRef().Env }

func (errorsPane) kinds() []core.EventKind {
	return []core.EventKind{core.EvErrors, core.EvVerdict, core.EvSituation, core.EvDeployment}
}

// ticks while it says how long ago the verdict's release stopped serving.
func (errorsPane) ticks(s *screen) bool {
	ref := s.focusRef()
	v, ok := s.snap.Verdicts[ref]
	return ok && pastVerdict(s, ref, v) != ""
}

func (errorsPane) none() string { return " no error counts yet" }

func (errorsPane) rows(s *screen, w, _ int, filter string) []row {
	st := s.st
	ref := s.focusRef()
	wins := s.snap.Errors[ref]
	v, hasV := s.snap.Verdicts[ref]
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
	past := ""
	if hasV {
		past = pastVerdict(s, ref, v)
	}
	var out []row
	for _, r := range rels {
		if !containsFold(r, filter) {
			continue
		}
		win := wins[r]
		line := " " + st.text.Render(pad(r, 9)) + " "
		if win.Unavailable != "" {
			out = append(out, row{text: line + st.warn.Render("counts unavailable: "+win.Unavailable)})
			continue
		}
		line += st.accent.Render(sparkline(win.Buckets, 12)) + " " + st.muted.Render(pad(rate(win), 9))
		rw := row{text: line, id: "release/" + r}
		if hasV && r == v.Candidate {
			line += " " + verdictWord(st, v, past != "")
			rw.text = line
			rw.open = evidenceDetail(ref, v)
		}
		out = append(out, rw)
	}
	if !hasV {
		return out
	}
	// The verdict speaks about the candidate: a filter that hides the
	// candidate's row hides its evidence too.
	candidate := containsFold(v.Candidate, filter)
	if candidate && past != "" {
		for _, l := range wrapLine(" "+past, w) {
			out = append(out, row{text: st.ok.Render(l)})
		}
	}
	if candidate {
		for _, l := range wrapLine(" "+evidence(st, v, past != ""), w) {
			out = append(out, row{text: l})
		}
	}
	issues := v.Evidence.NewIssues
	if !candidate {
		issues = nil
		for _, is := range v.Evidence.NewIssues {
			if containsFold(is.Title, filter) {
				issues = append(issues, is)
			}
		}
	}
	for i, is := range issues {
		if i == 3 {
			out = append(out, row{text: st.muted.Render(fmt.Sprintf(" … %d more new issues (enter on %s shows all)", len(issues)-3, v.Candidate))})
			break
		}
		p := st.danger
		if past != "" {
			p = st.muted
		}
		out = append(out, row{text: p.Render(fmt.Sprintf(" new: %s (%d)", is.Title, is.Count))})
	}
	if candidate && v.Evidence.Note != "" {
		for _, l := range wrapLine(" "+v.Evidence.Note, w) {
			out = append(out, row{text: st.muted.Render(l)})
		}
	}
	return out
}

// prefer selects the candidate's row, where the verdict is.
func (errorsPane) prefer(_ *screen, rows []row) int {
	for i, r := range rows {
		if r.open != nil {
			return i
		}
	}
	return -1
}

// pastVerdict says why a verdict no longer calls for action: its
// candidate was rolled back or aborted and takes no traffic. "" while the
// candidate still serves (or the engine has not said otherwise).
func pastVerdict(s *screen, ref core.Ref, v core.SpikeVerdict) string {
	sit, ok := s.situation(ref)
	if !ok || sit.Candidate != v.Candidate || sit.Phase.Serving() || sit.Phase == "" {
		return ""
	}
	switch sit.Phase {
	case core.PhaseRolledBack:
		return fmt.Sprintf("%s no longer serves: rolled back to %s by %s %s ago", v.Candidate, sit.Stable, sit.By.Name, s.ago(sit.Since))
	case core.PhaseAborted:
		return fmt.Sprintf("%s takes no traffic: aborted by %s %s ago", v.Candidate, sit.By.Name, s.ago(sit.Since))
	}
	return v.Candidate + " no longer serves"
}

func verdictWord(st styles, v core.SpikeVerdict, past bool) string {
	switch {
	case v.Kind == core.VerdictSpike && past:
		return st.muted.Render("SPIKE (past)")
	case v.Kind == core.VerdictSpike:
		return st.danger.Render("SPIKE")
	case v.Kind == core.VerdictHealthy:
		return st.ok.Render("healthy")
	}
	return st.muted.Render("inconclusive")
}

// evidence is why the verdict is what it is, in one line: the word, the
// window's p-value, the counts against the traffic share, the rate ratio
// with its interval and how long the comparison has run.
func evidence(st styles, v core.SpikeVerdict, past bool) string {
	e := v.Evidence
	word := verdictWord(st, v, false)
	if past {
		word = st.muted.Render(string(v.Kind))
		if v.Kind == core.VerdictSpike {
			word = st.muted.Render("SPIKE")
		}
	}
	if e.CandidateCount+e.BaselineCount == 0 {
		// Nothing counted yet: numbers would only be noise (an interval
		// without an upper bound); the note under it says what is missing.
		return word + st.muted.Render(" · no errors counted yet · "+core.HumanDuration(e.Elapsed))
	}
	return word + st.muted.Render(fmt.Sprintf(" p=%s · %d vs %d events at %.0f%% share · %s (CI %s) · %s",
		pval(e.PValue), e.CandidateCount, e.BaselineCount, e.Share*100, e.Ratio(), e.Interval(), core.HumanDuration(e.Elapsed)))
}

// evidenceDetail opens the verdict in full: every number, every new issue.
func evidenceDetail(ref core.Ref, v core.SpikeVerdict) func(*screen) dialog {
	return func(s *screen) dialog {
		e := v.Evidence
		lines := []string{
			fmt.Sprintf(" verdict: %s for %s against %s in %s", v.Kind, v.Candidate, v.Baseline, ref.Env),
			fmt.Sprintf(" at: %s (%s ago)", v.At.In(s.opts.Location).Format("2006-01-02 15:04:05 MST"), s.ago(v.At)),
			fmt.Sprintf(" errors: %d of %s vs %d of %s at %.0f%% traffic share", e.CandidateCount, v.Candidate, e.BaselineCount, v.Baseline, e.Share*100),
			fmt.Sprintf(" rate ratio: %s (interval %s), window p=%s", e.Ratio(), e.Interval(), pval(e.PValue)),
			fmt.Sprintf(" evidence ratio: %.3g of the %.3g that calls a spike, after %s", e.EvidenceRatio, e.Threshold, core.HumanDuration(e.Elapsed)),
		}
		if past := pastVerdict(s, ref, v); past != "" {
			lines = append(lines, " "+past)
		}
		if e.Note != "" {
			lines = append(lines, " note: "+e.Note)
		}
		if len(e.NewIssues) > 0 {
			lines = append(lines, "", " new issues (first seen in this release):")
			for _, is := range e.NewIssues {
				lines = append(lines, fmt.Sprintf("   %s (%d)", is.Title, is.Count))
			}
		}
		return newDetail("Verdict · "+ref.String(), lines)
	}
}
