package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
)

// BenchmarkFiftyClientsUnderFlood is the server with 50 subscribed
// clients while the engine publishes 10,000 events a second (error
// windows of 20 releases, which coalesce, and log lines, which do not).
// Each op is one keypress's worth: a lock and an unlock sent by a client
// and answered by the server. It reports the p50/p99 of a Do, the CPU the
// one process (server and all 50 clients) used per second of wall time,
// and checks at the end that every client's view converged to the
// server's.
//
//	go test ./cmd/ripcord/internal/server/ -run XXX -bench FiftyClients -benchtime 400x
func BenchmarkFiftyClientsUnderFlood(b *testing.B) {
	p := newProject(b)
	ctx := context.Background()
	const clients = 50
	type view struct {
		mu   sync.Mutex
		snap core.Snapshot
	}
	views := make([]*view, clients)
	var follow sync.WaitGroup
	stop := make(chan struct{})
	for i := range clients {
		c := dial(b, p.sock)
		snap, sub := c.Subscribe()
		v := &view{snap: snap}
		views[i] = v
		follow.Add(1)
		go func() {
			defer follow.Done()
			defer sub.Close()
			fctx, cancel := context.WithCancel(ctx)
			go func() { <-stop; cancel() }()
			for {
				ev, err := sub.Next(fctx)
				if err != nil {
					return
				}
				v.mu.Lock()
				v.snap.Apply(ev)
				v.mu.Unlock()
			}
		}()
	}
	actor := dial(b, p.sock)

	// The flood: 10k events/s in 1 ms ticks of 10.
	flooding := make(chan struct{})
	var flood sync.WaitGroup
	flood.Add(1)
	go func() {
		defer flood.Done()
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		n := 0
		for {
			select {
			case <-flooding:
				return
			case <-tick.C:
			}
			for range 10 {
				n++
				if n%2 == 0 {
					rel := fmt.Sprintf("v%d", n%20)
					p.eng.Publish(core.Event{Kind: core.EvErrors, Ref: production, Key: "errors/" + rel,
						Errors: &core.ErrorWindow{Ref: production, Release: rel, Buckets: []core.ErrorBucket{{Count: int64(n)}}}})
				} else {
					p.eng.Publish(core.Event{Kind: core.EvLog, Ref: production, Log: &core.LogLine{Source: "flood", Text: fmt.Sprintf("line %d", n)}})
				}
			}
		}
	}()

	var before syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	start := time.Now()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		kind := core.CmdLock
		if i%2 == 1 {
			kind = core.CmdUnlock
		}
		t0 := time.Now()
		if _, err := actor.Do(ctx, core.Command{Kind: kind, Ref: production, Actor: core.Actor{Name: "ana"}, Reason: "bench"}); err != nil {
			b.Fatalf("%s: %v", kind, err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	wall := time.Since(start)
	var after syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	close(flooding)
	flood.Wait()

	cpu := time.Duration(after.Utime.Nano()+after.Stime.Nano()-before.Utime.Nano()-before.Stime.Nano()) * time.Nanosecond
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(cpu.Seconds()/wall.Seconds(), "cores")

	// Convergence: a final event after the flood; every client's error
	// windows and locks then equal the server's.
	marker := core.SpikeVerdict{Ref: production, Candidate: "done", Kind: core.VerdictHealthy}
	p.eng.Publish(core.Event{Kind: core.EvVerdict, Ref: production, Final: true, Verdict: &marker})
	want, _ := json.Marshal(struct {
		E any
		L any
	}{p.eng.Snapshot().Errors, p.eng.Snapshot().Locks})
	deadline := time.Now().Add(30 * time.Second)
	for i, v := range views {
		for {
			v.mu.Lock()
			got, _ := json.Marshal(struct {
				E any
				L any
			}{v.snap.Errors, v.snap.Locks})
			done := v.snap.Verdicts[production].Candidate == "done"
			v.mu.Unlock()
			if done {
				if string(got) != string(want) {
					b.Fatalf("client %d did not converge:\n got %s\nwant %s", i, got, want)
				}
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("client %d never saw the final event", i)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	close(stop)
	follow.Wait()
}

// BenchmarkAttach is a client's attach: connecting to the socket and
// holding the server's first full snapshot (what the console draws its
// first frame from).
//
//	go test ./cmd/ripcord/internal/server/ -run XXX -bench Attach -benchtime 200x
func BenchmarkAttach(b *testing.B) {
	p := newProject(b)
	for i := range 20 {
		rel := fmt.Sprintf("v%d", i)
		p.eng.Publish(core.Event{Kind: core.EvErrors, Ref: production, Key: "errors/" + rel,
			Errors: &core.ErrorWindow{Ref: production, Release: rel, Buckets: make([]core.ErrorBucket, 60)}})
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		c := dial(b, p.sock)
		snap, sub := c.Subscribe()
		lat = append(lat, time.Since(t0))
		if snap.Project != "shop" || len(snap.Errors[production]) != 20 {
			b.Fatalf("first snapshot: project %q, %d error windows; want shop's 20", snap.Project, len(snap.Errors[production]))
		}
		sub.Close()
		c.Close()
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
