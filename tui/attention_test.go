package tui

import (
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/ripcordhq/ripcord/core"
)

// raws runs cmd as Bubble Tea would, batches included, and returns what
// it asks to write raw to the terminal. Every leaf must answer: flush's
// wait for events answers at once because events were just published.
func raws(t *testing.T, cmd tea.Cmd) string {
	t.Helper()
	if cmd == nil {
		return ""
	}
	done := make(chan tea.Msg, 1)
	go func() { done <- cmd() }()
	var msg tea.Msg
	select {
	case msg = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a command did not return")
	}
	switch msg := msg.(type) {
	case tea.BatchMsg:
		var out string
		for _, c := range msg {
			out += raws(t, c)
		}
		return out
	case tea.RawMsg:
		s, _ := msg.Msg.(string)
		return s
	}
	return ""
}

func spike(ref core.Ref, cand string) core.Event {
	return core.Event{Kind: core.EvVerdict, Ref: ref, Final: true, Verdict: &core.SpikeVerdict{Ref: ref, Candidate: cand, Baseline: "v1.42.0",
		Kind: core.VerdictSpike, Evidence: core.Evidence{RateRatio: 4.1}}}
}

func attentionConsole(t *testing.T, bell, desktop bool) (*Model, *core.Engine) {
	o := testOptions()
	o.Bell, o.Desktop = bell, desktop
	m, eng := fixtureConsole(t, idleSnapshot(), o)
	return m, eng
}

func TestAttentionRingsOncePerNewThing(t *testing.T) {
	m, eng := attentionConsole(t, true, true)
	eng.Publish(spike(production, "v1.43.0"))
	got := raws(t, update(m, flushMsg{}))
	if !strings.HasPrefix(got, "\a") || !strings.Contains(got, "\x1b]9;ripcord: SPIKE: api/production v1.43.0 4.1× errors\a") {
		t.Fatalf("a new spike wrote %q; want BEL and an OSC 9 notification", got)
	}
	// The same spike again (a newer verdict with more evidence) is not new.
	eng.Publish(spike(production, "v1.43.0"))
	if got := raws(t, update(m, flushMsg{})); got != "" {
		t.Fatalf("the same spike rang again: %q", got)
	}
	// A stale backup is a new thing.
	f := fresh("db", "restic", core.FreshCritical, 50*time.Hour, 24*time.Hour, "")
	eng.Publish(core.Event{Kind: core.EvBackup, Ref: production, Final: true, Backup: &f})
	if got := raws(t, update(m, flushMsg{})); !strings.Contains(got, "db backup is 2d 2h old") {
		t.Fatalf("a stale backup wrote %q", got)
	}
}

func TestAttentionSilentWhileFine(t *testing.T) {
	m, eng := attentionConsole(t, true, true)
	eng.Publish(core.Event{Kind: core.EvVerdict, Ref: production, Final: true, Verdict: &core.SpikeVerdict{Ref: production, Candidate: "v1.43.0", Kind: core.VerdictHealthy}})
	f := fresh("db", "restic", core.FreshOK, time.Hour, 24*time.Hour, "")
	eng.Publish(core.Event{Kind: core.EvBackup, Ref: production, Final: true, Backup: &f})
	eng.Publish(core.Event{Kind: core.EvDeployment, Ref: production, Final: true, Deployment: &core.Deployment{Ref: production, Version: "v1.43.0", State: core.DeployProgressing, Weight: 10}})
	if got := raws(t, update(m, flushMsg{})); got != "" {
		t.Fatalf("nothing needs a person, yet the console wrote %q", got)
	}
}

func TestAttentionEachKind(t *testing.T) {
	for name, ev := range map[string]core.Event{
		"judgment": {Kind: core.EvSituation, Ref: production, Final: true, Situation: &core.Situation{Ref: production, Phase: core.PhaseJudgment, Candidate: "v1.43.0", Weight: 50, Acting: true}},
		"stopped":  {Kind: core.EvSituation, Ref: production, Final: true, Situation: &core.Situation{Ref: production, Phase: core.PhaseDegraded, Candidate: "v1.43.0", Weight: 25, Acting: true}},
		"unknown": {Kind: core.EvBackup, Ref: production, Final: true, Backup: func() *core.Freshness {
			f := fresh("db", "borg", core.FreshUnknown, 0, 24*time.Hour, "locked")
			return &f
		}()},
		"ownerless": {Kind: core.EvOperation, Ref: staging, Final: true, Operation: &core.Operation{ID: "op9", Ref: staging, Kind: "rollback", State: core.OpAttention}},
	} {
		t.Run(name, func(t *testing.T) {
			m, eng := attentionConsole(t, true, false)
			eng.Publish(ev)
			if got := raws(t, update(m, flushMsg{})); got != "\a" {
				t.Fatalf("wrote %q, want only BEL (desktop off)", got)
			}
		})
	}
}

func TestAttentionOffByOption(t *testing.T) {
	m, eng := attentionConsole(t, false, false)
	eng.Publish(spike(production, "v1.43.0"))
	if got := raws(t, update(m, flushMsg{})); got != "" {
		t.Fatalf("bell and desktop off, yet wrote %q", got)
	}
	m2, eng2 := attentionConsole(t, false, true)
	eng2.Publish(spike(production, "v1.43.0"))
	if got := raws(t, update(m2, flushMsg{})); strings.Contains(got, "\a\x1b") || !strings.HasPrefix(got, "\x1b]9;") {
		t.Fatalf("desktop only wrote %q", got)
	}
}

// What already waits when the console opens is on the strip; the bell is
// for what happens while the person watches.
func TestAttentionNotForWhatWasThereAtStart(t *testing.T) {
	o := testOptions()
	o.Bell, o.Desktop = true, true
	m, eng := fixtureConsole(t, canarySnapshot(), o)
	eng.Publish(spike(production, "v1.43.0"))
	if got := raws(t, update(m, flushMsg{})); got != "" {
		t.Fatalf("the spike on screen at start rang: %q", got)
	}
}

// A notification cannot carry control characters out of its sequence.
func TestOSCTextIsSanitised(t *testing.T) {
	a := attention{desktop: true, seen: map[string]bool{}}
	s := core.NewSnapshot("p", []string{"api"}, []string{"prod"})
	ref := core.Ref{Service: "api", Env: "prod"}
	s.Verdicts[ref] = core.SpikeVerdict{Ref: ref, Candidate: "v1\x1b]52;c;ZXZpbA==\a", Kind: core.VerdictSpike}
	got := a.check(&screen{snap: &s})
	if strings.Count(got, "\x1b") != 1 || strings.Count(got, "\a") != 1 {
		t.Fatalf("control characters leaked: %q", got)
	}
}

func providerEvent(name, state, msg string, since time.Time) core.Event {
	return core.Event{Kind: core.EvProvider, Final: true, Provider: &core.ProviderHealth{Name: name, State: state, Message: msg, Since: since}}
}

// The header sums up the providers, Activity names the ones that are not
// healthy with their words, and a provider that fails needs a person: it
// joins the strip and rings once.
func TestProviderHealthOnScreen(t *testing.T) {
	m, eng := attentionConsole(t, true, false)
	update(m, tea.WindowSizeMsg{Width: 160, Height: 48})
	t0 := time.Date(2026, 11, 25, 21, 0, 0, 0, time.UTC)
	eng.Publish(providerEvent("local@production", "healthy", "", t0))
	eng.Publish(providerEvent("restic@production.uploads", "starting", "", t0))
	update(m, flushMsg{})
	header := strings.SplitN(view(m), "\n", 2)[0]
	mustContain(t, header, "providers: 1 starting")
	mustContain(t, paneText(m, paneActivity), "restic@production.uploads starting")

	eng.Publish(providerEvent("restic@production.uploads", "healthy", "", t0))
	update(m, flushMsg{})
	header = strings.SplitN(view(m), "\n", 2)[0]
	mustContain(t, header, "providers: 2 ok")
	if strings.Contains(paneText(m, paneActivity), "restic@production.uploads") {
		t.Fatal("a healthy provider is still listed in Activity")
	}

	eng.Publish(providerEvent("restic@production.uploads", "failed", "repository is locked", t0.Add(time.Minute)))
	got := raws(t, update(m, flushMsg{}))
	if got != "\a" {
		t.Fatalf("a failed provider wrote %q, want one bell", got)
	}
	lines := strings.Split(view(m), "\n")
	mustContain(t, lines[0], "providers: 1 failed")
	mustContain(t, lines[1], "provider restic@production.uploads failed")
	mustContain(t, paneText(m, paneActivity), "restic@production.uploads failed: repository is locked")
	eng.Publish(providerEvent("restic@production.uploads", "failed", "repository is still locked", t0.Add(time.Minute)))
	if again := raws(t, update(m, flushMsg{})); again != "" {
		t.Fatalf("the same failure rang again: %q", again)
	}
}
