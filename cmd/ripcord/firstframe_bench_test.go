package main

import (
	"context"
	"io"
	"os"
	"slices"
	"sync"
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

// BenchmarkConsoleFirstFrame measures what `ripcord console` does on the
// demo world's config: from opening the store to the first frame on the
// terminal, while the plugin processes (a pipeline, two targets, an
// ingest, backup sources) are still starting behind it. It also reports
// when the providers were all up, which is what the first frame would wait
// for if the screen came after them.
//
//	go test -run XXX -bench ConsoleFirstFrame -benchtime 10x ./cmd/ripcord/
func BenchmarkConsoleFirstFrame(b *testing.B) {
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
