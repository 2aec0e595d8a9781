package tui

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/ripcordhq/ripcord/core"
)

// header says what runs where for the watched service, who holds a lock,
// whether the providers are up, and the time. Below two columns it drops
// its decorations so versions and the lock holder still fit.
func header(s *screen, now time.Time, w int) string {
	st := s.st
	narrow := w < twoColumnMin
	gap := "   "
	left := " " + st.accent.Render("ripcord") + st.muted.Render(" · ") + st.text.Render(s.snap.Project+"/"+s.service)
	if narrow {
		gap = "  "
		left = " " + st.accent.Render(s.service)
	}
	if n := len(s.snap.Services); n > 1 && !narrow {
		left += st.muted.Render(fmt.Sprintf(" (1-%d)", min(n, 9)))
	}
	for _, env := range s.snap.Envs {
		ref := core.Ref{Service: s.service, Env: env}
		cur, cand, weight := s.versions(ref)
		if cur == "" && cand == "" {
			continue
		}
		name := st.text.Render(env)
		if s.production(env) {
			name = st.prod.Render(env)
		}
		part := gap + name + " " + st.text.Render(orDash(cur))
		if cand != "" {
			part += st.warn.Render(fmt.Sprintf(" ▸ %s %d%%", cand, weight))
		}
		left += part
	}
	left += gap + st.muted.Render("lock: ") + lockText(s, narrow)
	if p := providersText(s, narrow); p != "" {
		left += gap + p
	}
	clock := " " + st.muted.Render(now.In(s.opts.Location).Format("15:04:05")) + " "
	cw := width(clock)
	if width(left)+cw > w {
		return fit(left, max(w-cw, 0)) + clock
	}
	return left + blank(w-width(left)-cw) + clock
}

func lockText(s *screen, short bool) string {
	var held []string
	for _, env := range s.snap.Envs {
		if l, ok := s.snap.Locks[core.Ref{Service: s.service, Env: env}]; ok {
			if short {
				held = append(held, l.Holder.Name)
			} else {
				held = append(held, fmt.Sprintf("%s (%s)", l.Holder.Name, env))
			}
		}
	}
	if len(held) == 0 {
		return s.st.ok.Render("free")
	}
	return s.st.warn.Render(strings.Join(held, ", "))
}

// providersText sums up the providers' health: all healthy in one word,
// otherwise how many are not and the worst state. Empty until the first
// provider reports.
func providersText(s *screen, short bool) string {
	st := s.st
	n := len(s.snap.Providers)
	if n == 0 {
		return ""
	}
	count := map[string]int{}
	for _, h := range s.snap.Providers {
		count[h.State]++
	}
	say := func(p paint, brief, long string, k int) string {
		if short {
			return p.Render(fmt.Sprintf(brief, k))
		}
		return p.Render(fmt.Sprintf(long, k))
	}
	switch {
	case count["failed"] > 0:
		return say(st.danger, "✗%d", "providers: %d failed", count["failed"])
	case count["degraded"] > 0:
		return say(st.warn, "!%d", "providers: %d degraded", count["degraded"])
	case count["healthy"] < n:
		return say(st.muted, "…%d", "providers: %d starting", n-count["healthy"])
	}
	return say(st.ok, "✓%d", "providers: %d ok", n)
}

// item is one entry of the strip under the header.
type item struct {
	rank        int // 0 act now, 1 what happened, 2 waits on a person, 3 ready
	paint       paint
	long, brief string
}

// strip is the line under the header: what needs a person, worst first,
// and what just happened (a rollback, an abort), by whom and what it
// left held — so after a rollback the screen settles instead of still
// leading with the spike. Below two columns it speaks in short forms.
func strip(s *screen, now time.Time, w int) string {
	st := s.st
	narrow := w < twoColumnMin
	var items []item
	add := func(rank int, p paint, long, brief string) {
		items = append(items, item{rank, p, long, brief})
	}
	for _, env := range s.snap.Envs {
		ref := core.Ref{Service: s.service, Env: env}
		sit, hasSit := s.situation(ref)
		v, hasV := s.snap.Verdicts[ref]
		spike := hasV && v.Kind == core.VerdictSpike && pastVerdict(s, ref, v) == ""
		switch {
		case hasSit && sit.Phase == core.PhaseDegraded:
			add(0, st.danger, fmt.Sprintf("%s %s stopped at %d%%: abort or roll back", env, sit.Candidate, sit.Weight),
				fmt.Sprintf("%s stopped %d%%", env, sit.Weight))
			if spike {
				add(0, st.danger, fmt.Sprintf("SPIKE %s %s %s baseline", env, v.Candidate, v.Evidence.Ratio()), fmt.Sprintf("SPIKE %s %s", env, v.Evidence.Ratio()))
			}
		case spike:
			add(0, st.danger, fmt.Sprintf("SPIKE %s %s %s baseline", env, v.Candidate, v.Evidence.Ratio()), fmt.Sprintf("SPIKE %s %s", env, v.Evidence.Ratio()))
		}
		if !hasSit {
			continue
		}
		switch sit.Phase {
		case core.PhaseJudgment:
			add(2, st.warn, fmt.Sprintf("%s %s %d%% waiting for judgment (%s)", env, sit.Candidate, sit.Weight, age(now, sit.Since)),
				fmt.Sprintf("judgment %s %s", env, age(now, sit.Since)))
		case core.PhasePaused:
			add(2, st.warn, fmt.Sprintf("%s %s paused at %d%% by %s (%s)", env, sit.Candidate, sit.Weight, sit.By.Name, age(now, sit.Since)),
				fmt.Sprintf("paused %s", env))
		case core.PhaseRolledBack:
			long := fmt.Sprintf("%s rolled back to %s by %s %s ago", env, sit.Stable, sit.By.Name, age(now, sit.Since))
			brief := fmt.Sprintf("%s rolled back %s ago", env, age(now, sit.Since))
			if _, held := sit.Held(sit.Candidate); held {
				long += " · " + sit.Candidate + " held"
				brief += " · " + sit.Candidate + " held"
			}
			add(1, st.ok, long, brief)
		case core.PhaseAborted:
			add(1, st.ok, fmt.Sprintf("%s aborted by %s %s ago: %s serves, %s kept", env, sit.By.Name, age(now, sit.Since), sit.Stable, sit.Candidate),
				fmt.Sprintf("%s aborted %s ago", env, age(now, sit.Since)))
		}
		if sit.Ready != "" {
			add(3, st.accent, fmt.Sprintf("ready to promote %s to %s", sit.Ready, env), fmt.Sprintf("ready: %s → %s", sit.Ready, env))
		}
	}
	for _, f := range backups(s) {
		where := f.Ref.Env + " " + f.Facts.Set
		switch f.State {
		case core.FreshCritical:
			add(0, st.danger, fmt.Sprintf("%s backup %s old (expected %s)", where, core.HumanDuration(f.Age), core.HumanDuration(f.Expected)),
				fmt.Sprintf("%s %s", where, core.HumanDuration(f.Age)))
		case core.FreshWarn:
			add(2, st.warn, fmt.Sprintf("%s backup %s old (expected %s)", where, core.HumanDuration(f.Age), core.HumanDuration(f.Expected)),
				fmt.Sprintf("%s %s", where, core.HumanDuration(f.Age)))
		case core.FreshUnknown:
			add(2, st.warn, fmt.Sprintf("%s backup unknown: %s", where, f.Reason), where+" unknown")
		}
	}
	ops := make([]core.Operation, 0, len(s.snap.Operations))
	for _, op := range s.snap.Operations {
		if op.State == core.OpAttention && op.Ref.Service == s.service {
			ops = append(ops, op)
		}
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i].ID < ops[j].ID })
	for _, op := range ops {
		add(0, st.danger, fmt.Sprintf("%s %s unfinished: needs attention", op.Kind, op.Ref.Env), fmt.Sprintf("%s %s unfinished", op.Kind, op.Ref.Env))
	}
	for _, p := range unhealthyProviders(s.snap) {
		if p.State == "failed" {
			add(0, st.danger, "provider "+p.Name+" failed", p.Name+" failed")
		}
	}
	sort.SliceStable(items, func(i, j int) bool { return items[i].rank < items[j].rank })
	needs := false
	for _, it := range items {
		needs = needs || it.rank != 1
	}
	var parts []string
	for i, it := range items {
		text := it.long
		if narrow {
			text = it.brief
		}
		if i > 0 && items[0].rank == 1 && it.rank > 1 && items[i-1].rank == 1 {
			text = "! " + text // what happened came first; this still waits
		}
		parts = append(parts, it.paint.Render(text))
	}
	switch {
	case len(items) == 0:
		return " " + st.ok.Render("✓ nothing needs you")
	case !needs:
		return " " + st.ok.Render("✓ ") + strings.Join(parts, st.muted.Render(" · "))
	}
	lead := "! needs you: "
	if narrow {
		lead = "! "
	}
	if items[0].rank == 1 {
		// What happened first, calmly; then what still waits.
		lead = "✓ "
		return " " + st.ok.Render(lead) + strings.Join(parts, st.muted.Render(" · "))
	}
	return " " + st.warn.Render(lead) + strings.Join(parts, st.muted.Render(" · "))
}
