package main

import (
	"context"
	"errors"
	"net"
	"strconv"
	"testing"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/plugins/sentryingest"
)

func TestCrashIsReportedThenRepanicsAfterRestoringTheTerminal(t *testing.T) {
	ctx := context.Background()
	ing, err := sentryingest.New(ctx, sentryingest.Config{Listen: "127.0.0.1:0", Service: "ripcord", Keys: map[string]string{"1": "selfkey"}})
	if err != nil {
		t.Fatal(err)
	}
	addr, err := ing.Listen()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ing.Close(ctx) })
	port := addr.(*net.TCPAddr).Port

	report, err := newSelfReport("http://selfkey@127.0.0.1:" + itoa(port) + "/1")
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	report.restore = func() { order = append(order, "restore") }

	var repanicked any
	func() {
		defer func() { repanicked = recover() }()
		report.guard(func() int {
			panic(errors.New("engine state corrupt"))
		})
	}()
	if repanicked == nil {
		t.Fatal("the panic was swallowed; it must propagate after reporting")
	}
	if len(order) != 1 {
		t.Fatalf("terminal restored %d times, want once before reporting", len(order))
	}
	// Ripcord's own report names no environment; the ingest keeps such
	// events apart rather than count them as production's.
	issues, err := ing.Issues(ctx, core.Ref{Service: "ripcord", Env: sentryingest.NoEnvironment}, "ripcord@"+version)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, is := range issues {
		n += is.Count
	}
	if n != 1 {
		t.Fatalf("ingest counted %d crash events for ripcord@%s, want 1 (issues %+v)", n, version, issues)
	}
}

func TestNoDSNSendsNothingAndStillRepanics(t *testing.T) {
	report, err := newSelfReport("")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("panic swallowed")
		}
	}()
	report.guard(func() int { panic("boom") })
}

func TestBadDSNIsAUsageError(t *testing.T) {
	if _, err := newSelfReport("not a dsn"); err == nil {
		t.Fatal("a malformed RIPCORD_SENTRY_DSN was accepted")
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
