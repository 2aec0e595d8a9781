package tui

import (
	"context"
	"fmt"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
)

func reportPercentiles(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	at := func(q float64) float64 {
		return float64(lat[min(int(q*float64(len(lat))), len(lat)-1)]) / float64(time.Millisecond)
	}
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
}

// flood publishes rate events a second until stop closes: rollout
// progress, error windows, pipeline progress and log lines, the mix a busy
// canary produces. A late tick publishes what it owes, so the rate holds
// on a busy machine.
func flood(eng *core.Engine, rate int, stop <-chan struct{}, done chan<- int) {
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	n := 0
	run := pipeline("v1.43.0", core.RunRunning, 0.5)
	start := time.Now()
	for {
		select {
		case <-stop:
			done <- n
			return
		case <-tick.C:
		}
		owed := int(time.Since(start).Seconds()*float64(rate)) - n
		for range owed {
			n++
			switch n % 10 {
			case 0:
				d := core.Deployment{ID: 7, Ref: production, Version: "v1.43.0", From: "v1.42.0", State: core.DeployProgressing, Weight: 25 + n%50, Step: 1}
				eng.Publish(core.Event{Kind: core.EvDeployment, Ref: production, Key: "dep", Deployment: &d})
			case 1, 2:
				w := window(production, "v1.43.0", []int64{int64(n % 40), 3, 5, 8})
				eng.Publish(core.Event{Kind: core.EvErrors, Ref: production, Key: "err", Errors: &w})
			case 3:
				r := run
				eng.Publish(core.Event{Kind: core.EvPipeline, Key: "pipe", Pipeline: &r})
			default:
				eng.Publish(core.Event{Kind: core.EvLog, Ref: production, Log: &core.LogLine{Source: production.String(), Text: fmt.Sprint("request ", n, " served in 3ms")}})
			}
		}
	}
}

// BenchmarkKeypressUnderFlood measures a person's keypress (p, then y to
// confirm) to the promote command reaching the engine's handler, through
// the real program loop, while about 10,000 events a second arrive.
func BenchmarkKeypressUnderFlood(b *testing.B) {
	eng := engineWith(canarySnapshot())
	// The engine says promote may run (as the rollout controller would
	// during a canary); the handler notes its arrival.
	eng.Publish(core.Event{Kind: core.EvSituation, Ref: production, Final: true, Situation: &core.Situation{Ref: production, Acting: true,
		Phase: core.PhaseRolling, Candidate: "v1.43.0", Stable: "v1.42.0", Weight: 25,
		Commands: []core.Possible{{Kind: core.CmdPromote, Allowed: true, From: "v1.42.0", To: "v1.43.0", Why: "ends the current step"}}}})
	got := make(chan struct{}, 1)
	eng.Handle(core.CmdPromote, func(context.Context, *core.Engine, core.Command) (core.Result, error) {
		got <- struct{}{}
		return core.Result{Outcome: "done"}, nil
	})
	pr, pw := io.Pipe()
	o := testOptions()
	o.NoColor = false
	o.Width, o.Height = 160, 48
	o.Input, o.Output = pr, io.Discard
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- Run(ctx, eng, o) }()

	stop, flooded := make(chan struct{}), make(chan int, 1)
	go flood(eng, 10_000, stop, flooded)
	started := time.Now()

	lat := make([]time.Duration, 0, 1024)
	for b.Loop() {
		start := time.Now()
		if _, err := pw.Write([]byte("py")); err != nil {
			b.Fatal(err)
		}
		<-got
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	close(stop)
	n := <-flooded
	b.ReportMetric(float64(n)/time.Since(started).Seconds(), "events/s")
	reportPercentiles(b, lat)
	cancel()
	_ = pw.Close()
	if err := <-ran; err != nil {
		b.Fatal(err)
	}
}
