package bastion

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	gossh "golang.org/x/crypto/ssh"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/core/config"
	"github.com/ripcordhq/ripcord/tui"
)

// benchRig is a bastion whose sessions run the real console, each
// reporting when a key reaches its program's update loop.
type benchRig struct {
	b     *Bastion
	eng   *core.Engine
	keys  chan time.Time // a key reached a console's update loop
	shown chan struct{}  // a console drew its first frame (first output)
}

func newBenchRig(b testing.TB, ops []config.Operator, noColor bool) *benchRig {
	b.Helper()
	r := &benchRig{keys: make(chan time.Time, 1024), shown: make(chan struct{}, 1024)}
	r.eng = core.NewEngine(core.EngineOptions{Project: "shop", Services: []string{"api"}, Envs: []string{"staging", "production"}})
	var err error
	r.b, err = Start(Options{
		Config: &config.Bastion{Listen: "127.0.0.1:0", HostKey: filepath.Join(b.TempDir(), "hk"), MaxSessions: 100, MaxSessionsPerKey: 100,
			IdleTimeout: config.Duration(time.Hour), Operators: ops},
		Project: "shop", Host: "bench", Engine: r.eng, Exe: "/bin/false", ConfigPath: "/nonexistent",
		Console: func(ctx context.Context, c Console) error {
			keyed := tea.WithFilter(func(_ tea.Model, msg tea.Msg) tea.Msg {
				if k, ok := msg.(tea.KeyPressMsg); ok && k.String() == "z" {
					r.keys <- time.Now()
				}
				return msg
			})
			return tui.Run(ctx, c.Client, tui.Options{
				Actor: c.Actor, Permit: c.Permit, NoColor: noColor, Width: c.Width, Height: c.Height,
				Program: append(c.Program, keyed), Resize: c.Resize,
			})
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(r.b.Close)
	return r
}

// session is one SSH console: its stdin, and its output drained.
type session struct {
	client *gossh.Client
	in     io.WriteCloser
}

func (r *benchRig) open(b *testing.B, p person) *session {
	b.Helper()
	client, err := gossh.Dial("tcp", r.b.Addr().String(), &gossh.ClientConfig{
		User: p.name, Auth: []gossh.AuthMethod{gossh.PublicKeys(p.signer)}, HostKeyCallback: gossh.InsecureIgnoreHostKey(),
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { client.Close() })
	s, err := client.NewSession()
	if err != nil {
		b.Fatal(err)
	}
	in, err := s.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := s.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := s.RequestPty("xterm-256color", 40, 120, gossh.TerminalModes{}); err != nil {
		b.Fatal(err)
	}
	if err := s.Shell(); err != nil {
		b.Fatal(err)
	}
	go func() {
		buf := make([]byte, 64<<10)
		first := true
		for {
			n, err := out.Read(buf)
			if n > 0 && first {
				first = false
				r.shown <- struct{}{}
			}
			if err != nil {
				return
			}
		}
	}()
	return &session{client: client, in: in}
}

// openMany opens n consoles, each a person of its own, and waits until
// each has drawn.
func (r *benchRig) openMany(b *testing.B, people []person) []*session {
	b.Helper()
	var out []*session
	for _, p := range people {
		out = append(out, r.open(b, p))
	}
	deadline := time.After(60 * time.Second)
	for range people {
		select {
		case <-r.shown:
		case <-deadline:
			b.Fatal("the consoles did not all draw within 60s")
		}
	}
	return out
}

func people(b *testing.B, n int) ([]person, []config.Operator) {
	var ps []person
	var ops []config.Operator
	for i := range n {
		p := newPerson(b, fmt.Sprintf("p%02d", i))
		ps = append(ps, p)
		ops = append(ops, config.Operator{Name: p.name, Keys: []string{p.line}, Role: "operator"})
	}
	return ps, ops
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// 50 SSH consoles (the real console over x/crypto/ssh clients) while the
// engine publishes 10k events/s: each iteration sends a key to every
// console and waits until each key has reached its console's update loop.
// Reports keypress→handled p50/p99, and the process's CPU (bastion,
// consoles and the 50 SSH clients together) and heap per session.
func BenchmarkBastion50Consoles(b *testing.B) {
	b.Run("flood=10k/s", func(b *testing.B) { bench50(b, true) })
	b.Run("flood=none", func(b *testing.B) { bench50(b, false) })
}

func bench50(b *testing.B, flooding bool) {
	n := benchN()
	ps, ops := people(b, n)
	r := newBenchRig(b, ops, true)
	heap0 := heapInUse()
	sessions := r.openMany(b, ps)
	heapPer := float64(int64(heapInUse())-int64(heap0)) / float64(n)

	stop := make(chan struct{})
	var flood sync.WaitGroup
	flood.Add(1)
	go func() {
		defer flood.Done()
		if !flooding {
			return
		}
		production := core.Ref{Service: "api", Env: "production"}
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		k := 0
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			for range 10 {
				k++
				if k%2 == 0 {
					rel := fmt.Sprintf("v%d", k%20)
					r.eng.Publish(core.Event{Kind: core.EvErrors, Ref: production, Key: "errors/" + rel,
						Errors: &core.ErrorWindow{Ref: production, Release: rel, Buckets: []core.ErrorBucket{{Count: int64(k)}}}})
				} else {
					r.eng.Publish(core.Event{Kind: core.EvLog, Ref: production, Log: &core.LogLine{Source: "flood", Text: fmt.Sprintf("line %d", k)}})
				}
			}
		}
	}()
	defer func() { close(stop); flood.Wait() }()

	var lat []time.Duration
	cpu0, wall0 := cpuTime(), time.Now()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		sent := make([]time.Time, n)
		for j, s := range sessions {
			sent[j] = time.Now()
			if _, err := s.in.Write([]byte("z")); err != nil {
				b.Fatal(err)
			}
		}
		// Keys arrive in any order; each arrival is matched to the
		// earliest send still unmatched, which can only overstate.
		for j := range n {
			select {
			case at := <-r.keys:
				lat = append(lat, at.Sub(sent[j]))
			case <-time.After(30 * time.Second):
				b.Fatalf("iteration %d: only %d of %d keys handled within 30s", i, j, n)
			}
		}
	}
	b.StopTimer()
	cpu, wall := cpuTime()-cpu0, time.Since(wall0)
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(100*cpu.Seconds()/wall.Seconds()/float64(n), "cpu-%-per-session")
	b.ReportMetric(heapPer/1024, "heap-KiB-per-session")
}

// An idle console (nothing happens in the project) costs this share of a
// core, bastion, console and its SSH client together.
func BenchmarkBastionIdleConsole(b *testing.B) {
	const n = 10
	ps, ops := people(b, n)
	r := newBenchRig(b, ops, true)
	r.openMany(b, ps)
	cpu0, wall0 := cpuTime(), time.Now()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		time.Sleep(100 * time.Millisecond) // measuring idle: time passing is the workload
	}
	b.StopTimer()
	b.ReportMetric(100*(cpuTime()-cpu0).Seconds()/time.Since(wall0).Seconds()/n, "cpu-%-per-session")
}

// benchN is the number of consoles (RIPCORD_BENCH_CONSOLES, default 50).
func benchN() int {
	if v, err := strconv.Atoi(os.Getenv("RIPCORD_BENCH_CONSOLES")); err == nil && v > 0 {
		return v
	}
	return 50
}
