package core

import (
	"testing"
)

// An engine that cannot act (its providers did not start) tells every
// screen so: each command of each service and environment is refused
// with the reason, and the situation says nobody here acts.
func TestUnavailableEngineRefusesEveryCommandWithTheReason(t *testing.T) {
	e := testEngine(0)
	e.SetUnavailable("providers not started: address already in use")
	snap := e.Snapshot()
	for _, env := range []string{"staging", "production"} {
		s, ok := snap.Situations[Ref{Service: "api", Env: env}]
		if !ok || s.Acting {
			t.Fatalf("%s: situation %+v", env, s)
		}
		for _, k := range CommandOrder {
			if p := s.Command(k); p.Allowed || p.Why != "providers not started: address already in use" {
				t.Fatalf("%s %s = %+v", env, k, p)
			}
		}
	}
	if c := snap.Clone(); len(c.Situations) != 2 {
		t.Fatalf("clone lost the situations: %+v", c.Situations)
	}
}

// A command the engine said nothing about is refused, saying so.
func TestSituationSilentOnACommandRefusesIt(t *testing.T) {
	s := Situation{Ref: prod}
	if p := s.Command(CmdAbort); p.Allowed || p.Why == "" {
		t.Fatalf("unspoken abort = %+v", p)
	}
}
