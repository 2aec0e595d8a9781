package main

import (
	"context"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/cmd/ripcord/internal/demo"
	"github.com/ripcordhq/ripcord/core/config"
	"github.com/ripcordhq/ripcord/tui"
)

// firstWrite closes seen on the first bytes the console writes.
type firstWrite struct {
	once sync.Once
	seen chan struct{}
}

func (f *firstWrite) Write(p []byte) (int, error) {
	f.once.Do(func() { close(f.seen) })
	return len(p), nil
}

// demoConfig writes the demo world's workspace and loads its config.
func demoConfig(b *testing.B) *config.File {
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	ws, err := demo.Workspace(b.TempDir(), demo.WorkspaceOptions{Self: self})
	if err != nil {
		b.Fatal(err)
	}
	f, err := config.Load(ws.ConfigPath, config.Options{Providers: config.BuiltinProviders})
	if err != nil {
		b.Fatal(err)
	}
	return f
}

// BenchmarkConsoleFirstFrame measures what `ripcord console` does on the
// demo world's config: from opening the store to the first frame on the
// terminal, while the plugin processes (a pipeline, two targets, an
// ingest, backup sources) are still starting behind it. It also reports
// when the providers were all up, which is what the first frame would wait
// for if the screen came after them.
//
//	go test -run XXX -bench ConsoleFirstFrame -benchtime 10x ./cmd/ripcord/
func BenchmarkConsoleFirstFrame(b *testing.B) {
	f := demoConfig(b)
	var frames, ups []time.Duration
	for b.Loop() {
		ctx, cancel := context.WithCancel(context.Background())
		start := time.Now()
		wo := worldOptions{Observe: true}
		w, err := openEngine(ctx, f, wo)
		if err != nil {
			b.Fatal(err)
		}
		w.startInBackground(ctx, wo)
		out := &firstWrite{seen: make(chan struct{})}
		in, hold := io.Pipe()
		ran := make(chan error, 1)
		go func() {
			ran <- tui.Run(ctx, w.eng, tui.Options{Actor: currentActor(), Output: out, Input: in, Width: 160, Height: 48, NoColor: true})
		}()
		<-out.seen
		frames = append(frames, time.Since(start))
		<-w.startDone
		ups = append(ups, time.Since(start))
		cancel()
		if err := <-ran; err != nil {
			b.Fatal(err)
		}
		hold.Close()
		w.Close()
	}
	slices.Sort(frames)
	slices.Sort(ups)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(frames[len(frames)/2]), "ms-first-frame-p50")
	b.ReportMetric(ms(frames[len(frames)-1]), "ms-first-frame-max")
	b.ReportMetric(ms(ups[len(ups)/2]), "ms-providers-up-p50")
}

// BenchmarkConsoleIdle runs the console on the demo world's config with
// nothing happening (no pipeline run, no traffic) for ten seconds per op
// and reports the console process's CPU use and resident memory. The
// plugin processes are separate and not counted; they would be shared by
// every person watching.
//
//	go test -run XXX -bench ConsoleIdle -benchtime 1x ./cmd/ripcord/
func BenchmarkConsoleIdle(b *testing.B) {
	f := demoConfig(b)
	const idle = 10 * time.Second
	var cpu, wall time.Duration
	var rss int64
	for b.Loop() {
		ctx, cancel := context.WithCancel(context.Background())
		wo := worldOptions{Observe: true}
		w, err := openWorld(ctx, f, wo)
		if err != nil {
			b.Fatal(err)
		}
		in, hold := io.Pipe()
		ran := make(chan error, 1)
		go func() {
			ran <- tui.Run(ctx, w.eng, tui.Options{Actor: currentActor(), Output: io.Discard, Input: in, Width: 160, Height: 48})
		}()
		// Let start-up settle, then measure a quiet stretch.
		<-time.After(2 * time.Second)
		runtime.GC()
		before, start := cpuTime(b), time.Now()
		<-time.After(idle)
		cpu += cpuTime(b) - before
		wall += time.Since(start)
		rss = max(rss, residentKiB(b))
		cancel()
		if err := <-ran; err != nil {
			b.Fatal(err)
		}
		hold.Close()
		w.Close()
	}
	b.ReportMetric(100*cpu.Seconds()/wall.Seconds(), "%cpu-idle")
	b.ReportMetric(float64(rss)/1024, "MiB-rss")
}

// cpuTime is the CPU (user + system) this process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// residentKiB reads VmRSS from /proc/self/status.
func residentKiB(b *testing.B) int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Fatal("no VmRSS in /proc/self/status")
	return 0
}
