package tui

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/ripcordhq/ripcord/core"
)

func logEvent(ref core.Ref, source, text string) core.Event {
	return core.Event{Kind: core.EvLog, Ref: ref, Log: &core.LogLine{Source: source, Text: text}}
}

func TestRingKeepsNewestWithinCap(t *testing.T) {
	r := newRing(3)
	for i := range 5 {
		r.add(logEntry{text: fmt.Sprint(i)})
	}
	var got []string
	r.each(func(e logEntry) { got = append(got, e.text) })
	if strings.Join(got, ",") != "2,3,4" || r.len() != 3 {
		t.Fatalf("ring holds %v, want the newest three in order", got)
	}
}

// enter on the Pipeline pane opens the selected step's log; l opens the
// environment's; lines arrive on the flush tick.
func TestStepAndEnvironmentLogs(t *testing.T) {
	m, eng := fixtureConsole(t, canarySnapshot(), testOptions())
	eng.Publish(logEvent(core.Ref{Service: "api"}, "run-88/canary/canary 25%", "shifting 25% of traffic"))
	eng.Publish(logEvent(core.Ref{Service: "api"}, "run-88/build/compile", "go build ./..."))
	eng.Publish(logEvent(production, production.String(), "health check ok"))
	update(m, flushMsg{})

	update(m, press("enter"))
	topIs[*logDialog](t, m)
	v := view(m)
	mustContain(t, v, "Log · api · canary/canary 25% · 1 lines", "shifting 25% of traffic")
	if strings.Contains(v, "go build") || strings.Contains(v, "health check") {
		t.Fatalf("the step log shows other sources' lines:\n%s", v)
	}
	// New lines appear on the next flush.
	eng.Publish(logEvent(core.Ref{Service: "api"}, "run-88/canary/canary 25%", "weight now 25"))
	update(m, flushMsg{})
	mustContain(t, view(m), "weight now 25", "2 lines")
	update(m, press("esc"))
	onMain(t, m)

	// Up selects the finished stages' line: build's log.
	update(m, press("k"))
	update(m, press("k"))
	update(m, press("enter"))
	mustContain(t, view(m), "go build ./...")
	update(m, press("esc"))

	update(m, press("l"))
	v = view(m)
	mustContain(t, v, "Logs · api/production", "health check ok")
	if strings.Contains(v, "shifting") {
		t.Fatal("environment log shows pipeline lines")
	}
}

// What a provider process logs shows in the logs of the environment it
// serves: a target's in its own, a pipeline source's in every environment
// of its service, a backup set shared by an environment's services in each
// of them; never in another service's or environment's.
func TestProviderLinesShowInTheEnvironmentsTheyServe(t *testing.T) {
	m, eng := fixtureConsole(t, canarySnapshot(), testOptions())
	eng.Publish(logEvent(production, "plugin/local@api.production", "release v2 healthy"))
	eng.Publish(logEvent(staging, "plugin/local@api.staging", "staging target line"))
	eng.Publish(logEvent(core.Ref{Service: "api"}, "plugin/exec@api", "polling the pipeline"))
	eng.Publish(logEvent(core.Ref{Service: "web"}, "plugin/exec@web", "web pipeline line"))
	eng.Publish(logEvent(core.Ref{Env: "production"}, "plugin/restic@production.orders", "snapshot read"))
	eng.Publish(logEvent(core.Ref{Env: "staging"}, "plugin/restic@staging.orders", "staging set line"))
	update(m, flushMsg{})
	update(m, press("l"))
	v := view(m)
	mustContain(t, v, "Logs · api/production", "release v2 healthy", "polling the pipeline", "snapshot read")
	for _, other := range []string{"staging target line", "web pipeline line", "staging set line"} {
		if strings.Contains(v, other) {
			t.Errorf("api/production's logs show %q:\n%s", other, v)
		}
	}
}

// However much a step prints, the console keeps logCap lines.
func TestLogMemoryIsCapped(t *testing.T) {
	m, eng := fixtureConsole(t, canarySnapshot(), testOptions())
	for i := range logCap + 500 {
		eng.Publish(logEvent(production, production.String(), fmt.Sprint("line ", i)))
		if i%1000 == 999 {
			update(m, flushMsg{})
		}
	}
	update(m, flushMsg{})
	if m.s.logs.len() != logCap || len(m.s.logs.buf) != logCap {
		t.Fatalf("ring holds %d lines in %d slots, cap %d", m.s.logs.len(), len(m.s.logs.buf), logCap)
	}
	update(m, press("l"))
	v := view(m)
	mustContain(t, v, fmt.Sprint("line ", logCap+499), fmt.Sprintf("%d lines", logCap))
}

// Opening a step's log asks the engine to read it from the pipeline
// source, once, as the person opens it: the dialog says it is fetching,
// then shows the lines read (escaped) instead of what it had streamed,
// then what streams after. A read-only console reads too; a finished
// stage's row reads each of its steps.
func TestOpeningAStepLogReadsItFromThePipelineSource(t *testing.T) {
	o := testOptions()
	o.ReadOnly = true
	m, eng := fixtureConsole(t, canarySnapshot(), o)
	wide(m)
	var asked []core.Command
	eng.Handle(core.CmdStepLog, func(_ context.Context, _ *core.Engine, cmd core.Command) (core.Result, error) {
		asked = append(asked, cmd)
		if cmd.Steps[0] == "test/unit" {
			return core.Result{Outcome: "failed"}, errors.New("gitlab-ci: read the trace of job unit: 503 \x1b[2Jbusy")
		}
		return core.Result{Outcome: "done", Log: []core.LogLine{
			{Source: "run-88/canary/canary 25%", Text: "shifting 25% of traffic"},
			{Source: "run-88/canary/canary 25%", Text: "title \x1b]0;owned\x07 set"},
		}}, nil
	})
	eng.Publish(logEvent(core.Ref{Service: "api"}, "run-88/canary/canary 25%", "shifting 25% of traffic"))
	update(m, flushMsg{})

	cmd := update(m, press("enter"))
	if cmd == nil {
		t.Fatal("opening the step's log asked nothing of the engine")
	}
	if len(asked) != 0 {
		t.Fatal("the log was read before the command ran")
	}
	mustContain(t, view(m), "fetching…")
	run(t, m, cmd)
	if len(asked) != 1 || asked[0].Run != "run-88" || len(asked[0].Steps) != 1 || asked[0].Steps[0] != "canary/canary 25%" || asked[0].Ref.Service != "api" {
		t.Fatalf("the engine was asked %+v, want one step-log of run-88 canary/canary 25%%", asked)
	}
	v := view(m)
	mustContain(t, v, "· 2 lines", `title \x1b]0;owned\x07 set`)
	if strings.Count(v, "shifting 25% of traffic") != 1 {
		t.Fatalf("a line both streamed and read shows other than once:\n%s", v)
	}
	eng.Publish(logEvent(core.Ref{Service: "api"}, "run-88/canary/canary 25%", "weight now 25"))
	update(m, flushMsg{})
	mustContain(t, view(m), "weight now 25", "· 3 lines")
	update(m, press("esc"))

	// A finished stage's row: each of its steps is read; the failure is
	// shown escaped.
	for range 3 {
		update(m, press("k"))
	}
	cmd = update(m, press("enter"))
	mustContain(t, view(m), "fetching the log of test…")
	run(t, m, cmd)
	if got := asked[len(asked)-1].Steps; strings.Join(got, ",") != "test/unit,test/lint" {
		t.Fatalf("the test stage's row read %v, want [test/unit test/lint]", got)
	}
	mustContain(t, view(m), `503 \x1b[2Jbusy`)
}
