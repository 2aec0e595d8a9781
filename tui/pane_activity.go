package tui

import (
	"fmt"
	"sort"
	"strings"

	"github.com/charmbracelet/x/ansi"

	"github.com/ripcordhq/ripcord/core"
)

// activityPane is the audit log, newest first — who did what, when —
// with any provider that is down above it: a provider that is down
// explains why nothing moves.
type activityPane struct{}

func (activityPane) name() string            { return "Activity" }
func (activityPane) title(*screen) string    { return "Activity" }
func (activityPane) kinds() []core.EventKind { return []core.EventKind{core.EvAudit, core.EvProvider} }
func (activityPane) ticks(*screen) bool      { return false }
func (activityPane) none() string            { return " nothing yet" }

func (activityPane) rows(s *screen, _, room int, filter string) []row {
	st := s.st
	var out []row
	for _, p := range unhealthyProviders(s.snap) {
		line := p.Name + " " + p.State
		if p.Message != "" {
			line += ": " + p.Message
		}
		if !containsFold(line, filter) {
			continue
		}
		paint := st.warn
		if p.State == "failed" {
			paint = st.danger
		}
		out = append(out, row{text: " " + paint.Render(line), id: "provider/" + p.Name, open: providerDetail(p)})
	}
	for i := len(s.snap.Audit) - 1; i >= 0; i-- {
		a := s.snap.Audit[i]
		what := a.Action + " " + a.Ref.Env
		if a.From != "" || a.To != "" {
			what += " " + a.From + "→" + a.To
		}
		// A person acting through a shared account is named with it.
		who := a.Actor.Name
		if a.Actor.Via != "" {
			who += " via " + a.Actor.Via
		}
		if !containsFold(who+" "+what+" · "+a.Outcome+" "+a.Reason, filter) {
			continue
		}
		line := " " + st.muted.Render(a.At.In(s.opts.Location).Format("15:04:05")) + " " + st.text.Render(pad(who, 8)) + " " + what + st.muted.Render(" · "+a.Outcome)
		out = append(out, row{text: line, id: fmt.Sprint("audit/", a.Seq, "/", a.Hash), open: auditDetail(a)})
	}
	return out
}

// unhealthyProviders lists the providers that are not healthy, worst
// first.
func unhealthyProviders(snap *core.Snapshot) []core.ProviderHealth {
	rank := map[string]int{"failed": 0, "degraded": 1, "starting": 2}
	var out []core.ProviderHealth
	for _, h := range snap.Providers {
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

// auditDetail opens one audit entry in full: the reason, the gates and
// overrides, the outcome and how long it took.
func auditDetail(a core.AuditEntry) func(*screen) dialog {
	return func(s *screen) dialog {
		what := a.Action + " " + a.Ref.String()
		if a.From != "" || a.To != "" {
			what += " " + orDash(a.From) + " → " + orDash(a.To)
		}
		lines := []string{
			" " + what,
			fmt.Sprintf(" when: %s (%s ago)", a.At.In(s.opts.Location).Format("2006-01-02 15:04:05 MST"), s.ago(a.At)),
			" who: " + a.Actor.String(),
			" outcome: " + a.Outcome,
		}
		if a.Reason != "" {
			lines = append(lines, " reason: "+a.Reason)
		}
		if a.Duration > 0 {
			lines = append(lines, " took: "+a.Duration.Round(1e6).String())
		}
		if len(a.Overrides) > 0 {
			lines = append(lines, " overridden gates: "+strings.Join(a.Overrides, ", "))
		}
		if len(a.Gates) > 0 {
			lines = append(lines, " gates:")
			for _, g := range a.Gates {
				mark := "✓"
				switch {
				case g.Overridden:
					mark = "! overridden:"
				case g.Status != core.GatePass:
					mark = "✗"
				}
				lines = append(lines, "   "+mark+" "+g.Gate+" "+g.Reason)
			}
		}
		lines = append(lines, fmt.Sprintf(" entry %d · hash %s", a.Seq, short(a.Hash, 16)))
		return newDetail("Activity · entry "+fmt.Sprint(a.Seq), lines)
	}
}

// providerDetail opens a provider's health in full.
func providerDetail(p core.ProviderHealth) func(*screen) dialog {
	return func(s *screen) dialog {
		lines := []string{" " + p.Name + ": " + p.State}
		if !p.Since.IsZero() {
			lines = append(lines, " since: "+s.ago(p.Since)+" ago")
		}
		if p.Message != "" {
			lines = append(lines, " "+p.Message)
		}
		lines = append(lines, " its log lines are in the log viewer (l)")
		return newDetail("Provider · "+p.Name, lines)
	}
}

func ansiStrip(s string) string { return ansi.Strip(s) }
