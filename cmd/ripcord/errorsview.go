package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/ripcordhq/ripcord/cmd/ripcord/internal/server"
	"github.com/ripcordhq/ripcord/core"
)

// releaseErrors is one release's errors as status shows them.
type releaseErrors = server.ReleaseErrors

// boundText says what a verdict's always-valid bounds rule out.
func boundText(v core.SpikeVerdict) string {
	e := v.Evidence
	conf := "99%"
	if e.Threshold > 1 {
		conf = strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.1f", 100*(1-1/e.Threshold)), "0"), ".") + "%"
	}
	switch v.Kind {
	case core.VerdictSpike:
		return fmt.Sprintf("at least %s× the baseline's error rate (%s confidence)", ratio(e.RateRatioLow), conf)
	case core.VerdictHealthy:
		return fmt.Sprintf("at most %s× (below the %s× tolerance, %s confidence)", ratio(e.RateRatioHigh), ratio(e.Tolerance), conf)
	}
	s := "no bound yet"
	if e.RateRatioHigh < 1e4 {
		s = fmt.Sprintf("at most %s× so far (%s confidence; HEALTHY needs below %s×)", ratio(e.RateRatioHigh), conf, ratio(e.Tolerance))
	}
	if e.NeedsMore > 0 {
		s += fmt.Sprintf(", needs ~%s more", core.HumanDuration(e.NeedsMore))
	}
	return s
}

func ratio(x float64) string {
	switch {
	case math.IsInf(x, 0) || x >= 1e4:
		return "∞"
	case x >= 10:
		return fmt.Sprintf("%.0f", x)
	}
	return fmt.Sprintf("%.3g", x)
}

// errorsLine is one environment's per-release errors on one line.
func errorsLine(ref core.Ref, rs []releaseErrors) string {
	var parts []string
	for _, r := range rs {
		switch {
		case r.Unavailable != "":
			parts = append(parts, fmt.Sprintf("%s %s", dash(r.Release), r.Unavailable))
		case r.Warning == "":
			parts = append(parts, fmt.Sprintf("%s %d (%d last minute)", r.Release, r.Errors, r.LastMinute))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return fmt.Sprintf("errors %s: %s", ref, strings.Join(parts, " · "))
}

// errorLines turns the stream of error windows into lines worth printing:
// each environment's per-release counts at most once a minute, and each
// warning the first time it appears.
type errorLines struct {
	last    map[core.Ref]time.Time
	windows map[core.Ref]map[string]core.ErrorWindow
	warned  map[string]bool
}

func newErrorLines() *errorLines {
	return &errorLines{last: map[core.Ref]time.Time{}, windows: map[core.Ref]map[string]core.ErrorWindow{}, warned: map[string]bool{}}
}

func (l *errorLines) line(ev core.Event) string {
	w := ev.Errors
	at := ev.Time.Local().Format("15:04:05")
	if l.windows[w.Ref] == nil {
		l.windows[w.Ref] = map[string]core.ErrorWindow{}
	}
	l.windows[w.Ref][w.Release] = *w
	if w.Warning != "" {
		if key := w.Ref.String() + "\x00" + w.Release; !l.warned[key] {
			l.warned[key] = true
			return fmt.Sprintf("%s errors %s ! %s: %s", at, w.Ref, w.Release, w.Warning)
		}
		return ""
	}
	if ev.Time.Sub(l.last[w.Ref]) < time.Minute {
		return ""
	}
	l.last[w.Ref] = ev.Time
	var rs []releaseErrors
	for _, w := range l.windows[w.Ref] {
		rs = append(rs, server.SummarizeErrors(w))
	}
	slices.SortFunc(rs, func(a, b releaseErrors) int { return strings.Compare(a.Release, b.Release) })
	if s := errorsLine(w.Ref, rs); s != "" {
		return at + " " + s
	}
	return ""
}
