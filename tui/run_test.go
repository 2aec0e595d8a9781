package tui

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"
)

// Run shows the console on the alternate screen, quits on q and leaves
// the terminal as it found it.
func TestRunQuitsOnQAndRestoresTerminal(t *testing.T) {
	eng := engineWith(canarySnapshot())
	var out bytes.Buffer
	o := testOptions()
	o.Input, o.Output = strings.NewReader("q"), &out
	errc := make(chan error, 1)
	go func() { errc <- Run(context.Background(), eng, o) }()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after q")
	}
	got := out.String()
	enter, leave := strings.Index(got, "\x1b[?1049h"), strings.LastIndex(got, "\x1b[?1049l")
	if enter < 0 || leave < enter {
		t.Fatalf("alternate screen not entered and left in order (enter %d, leave %d)", enter, leave)
	}
	if !strings.Contains(got, "Pipeline") {
		t.Fatal("no frame was drawn")
	}
	if eng.Subscribers() != 0 {
		t.Fatal("Run left its subscription open")
	}
}

// Ending the context ends the console without an error.
func TestRunReturnsWhenContextEnds(t *testing.T) {
	eng := engineWith(idleSnapshot())
	pr, pw := io.Pipe()
	defer pw.Close()
	var out bytes.Buffer
	o := testOptions()
	o.Input, o.Output = pr, &out
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- Run(ctx, eng, o) }()
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Run after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return when its context ended")
	}
	if eng.Subscribers() != 0 {
		t.Fatal("Run left its subscription open")
	}
}

func TestNoColorFromEnvironment(t *testing.T) {
	env := map[string]string{"NO_COLOR": "yes"}
	if !fromEnv(Options{}, func(k string) string { return env[k] }).NoColor {
		t.Fatal("NO_COLOR=yes left colour on")
	}
	if fromEnv(Options{}, func(string) string { return "" }).NoColor {
		t.Fatal("colour off without NO_COLOR")
	}
}
