package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/cmd/ripcord/internal/remote"
	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/tui"
)

// BenchmarkFiftyClientsUnderFlood is the server with 50 subscribed
// clients while the engine publishes 10,000 events a second (error
// windows of 20 releases, which coalesce, and log lines, which do not).
// The 50 clients run in a process of their own, so the CPU reported is
// the server's (with the flood's publisher and the one acting client).
// Each op is one keypress's worth: a lock or an unlock sent by a client
// and answered by the server; p50/p99 of those are reported. At the end
// every one of the 50 views must equal the server's snapshot.
//
//	go test ./cmd/ripcord/internal/server/ -run XXX -bench FiftyClients -benchtime 2000x
func BenchmarkFiftyClientsUnderFlood(b *testing.B) {
	p := newProject(b)
	ctx := context.Background()
	const clients = 50
	child := exec.Command(os.Args[0], "-test.run=^TestSubscribedClientsProcess$")
	child.Env = append(os.Environ(), "RIPCORD_BENCH_SOCKET="+p.sock, fmt.Sprintf("RIPCORD_BENCH_CLIENTS=%d", clients))
	out, err := child.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = child.Process.Kill(); _ = child.Wait() })
	lines := bufio.NewScanner(out)
	lines.Buffer(make([]byte, 1<<20), 1<<24)
	if !lines.Scan() || lines.Text() != "attached" {
		b.Fatalf("the clients' process: %q %v", lines.Text(), lines.Err())
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

	cpu := time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
	reportLatency(b, lat)
	b.ReportMetric(cpu.Seconds()/wall.Seconds(), "server-cores")

	// Convergence: a final event after the flood; each client then prints
	// its error windows and locks, which must be the server's.
	p.eng.Publish(core.Event{Kind: core.EvVerdict, Ref: production, Final: true, Verdict: &doneMarker})
	want := string(viewOf(p.eng.Snapshot()))
	for i := range clients {
		if !lines.Scan() {
			b.Fatalf("client %d never reported its view: %v", i, lines.Err())
		}
		if got := lines.Text(); got != want {
			b.Fatalf("client %d did not converge:\n got %s\nwant %s", i, got, want)
		}
	}
}

// doneMarker is the final event a flood ends with.
var doneMarker = core.SpikeVerdict{Ref: production, Candidate: "done", Kind: core.VerdictHealthy}

// viewOf is what convergence compares: the error windows and the locks.
func viewOf(s core.Snapshot) []byte {
	b, _ := json.Marshal(struct {
		Errors any
		Locks  any
	}{s.Errors, s.Locks})
	return b
}

// TestSubscribedClientsProcess is the benchmark's clients' process, run
// by BenchmarkFiftyClientsUnderFlood; on its own it does nothing.
func TestSubscribedClientsProcess(t *testing.T) {
	sock := os.Getenv("RIPCORD_BENCH_SOCKET")
	if sock == "" {
		return
	}
	n, _ := strconv.Atoi(os.Getenv("RIPCORD_BENCH_CLIENTS"))
	views := make(chan []byte, n)
	for range n {
		c := dial(t, sock)
		snap, sub := c.Subscribe()
		go func() {
			defer sub.Close()
			for snap.Verdicts[production].Candidate != "done" {
				ev, err := sub.Next(context.Background())
				if err != nil {
					views <- []byte("lost: " + err.Error())
					return
				}
				snap.Apply(ev)
			}
			views <- viewOf(snap)
		}()
	}
	fmt.Println("attached")
	for range n {
		fmt.Printf("%s\n", <-views)
	}
}

// reportLatency sorts lat and reports its median and 99th percentile in
// milliseconds.
func reportLatency(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// projectWithErrorWindows is a project whose snapshot carries 20 error
// windows of 60 buckets: a busy service's attach, not an empty one's.
func projectWithErrorWindows(b *testing.B) *project {
	p := newProject(b)
	for i := range 20 {
		rel := fmt.Sprintf("v%d", i)
		p.eng.Publish(core.Event{Kind: core.EvErrors, Ref: production, Key: "errors/" + rel,
			Errors: &core.ErrorWindow{Ref: production, Release: rel, Buckets: make([]core.ErrorBucket, 60)}})
	}
	return p
}

// BenchmarkAttach is a client's attach: connecting to the socket and
// holding the server's first full snapshot (what the console draws its
// first frame from).
//
//	go test ./cmd/ripcord/internal/server/ -run XXX -bench Attach -benchtime 200x
func BenchmarkAttach(b *testing.B) {
	p := projectWithErrorWindows(b)
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
	reportLatency(b, lat)
}

// frameWriter closes seen once the console's output holds marker: the
// first frame, drawn in full, names it.
type frameWriter struct {
	mu     sync.Mutex
	buf    []byte
	marker string
	seen   chan struct{}
}

func (f *frameWriter) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.buf == nil {
		return len(p), nil // seen already
	}
	f.buf = append(f.buf, p...)
	if strings.Contains(string(f.buf), f.marker) {
		close(f.seen)
		f.buf = nil
	}
	return len(p), nil
}

// BenchmarkAttachFirstFrame is a console's attach as a person sees it:
// from connecting to the socket to the console's first frame on the
// terminal (160×48, drawn from the server's snapshot; the frame is
// counted once it shows the staging and production panes' names).
//
//	go test ./cmd/ripcord/internal/server/ -run XXX -bench AttachFirstFrame -benchtime 50x
func BenchmarkAttachFirstFrame(b *testing.B) {
	p := projectWithErrorWindows(b)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		c, err := remote.Dial(context.Background(), p.sock)
		if err != nil {
			b.Fatal(err)
		}
		out := &frameWriter{buf: []byte{}, marker: "production", seen: make(chan struct{})}
		in, hold := io.Pipe()
		ctx, cancel := context.WithCancel(context.Background())
		ran := make(chan error, 1)
		go func() {
			ran <- tui.Run(ctx, c, tui.Options{Actor: core.Actor{Name: "ana"}, Output: out, Input: in, Width: 160, Height: 48, NoColor: true})
		}()
		select {
		case <-out.seen:
		case err := <-ran:
			b.Fatalf("the console ended before its first frame: %v", err)
		case <-time.After(30 * time.Second):
			b.Fatal("no first frame within 30s")
		}
		lat = append(lat, time.Since(t0))
		cancel()
		if err := <-ran; err != nil && !errors.Is(err, context.Canceled) {
			b.Fatal(err)
		}
		hold.Close()
		c.Close()
	}
	b.StopTimer()
	reportLatency(b, lat)
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
}
