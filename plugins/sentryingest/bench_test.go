package sentryingest

import (
	"context"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/getsentry/sentry-go"
	"github.com/ripcordhq/ripcord/core"
)

// BenchmarkIngestRealSDK measures events counted per second with 8 real
// sentry-go clients sending over loopback in parallel. Each client uses
// the SDK's own HTTPTransport with a queue large enough to hold its share,
// so nothing is dropped client-side and every event must be counted.
func BenchmarkIngestRealSDK(b *testing.B) {
	const clients = 8
	ing := newIngest(b, Config{Rate: 1e9, Burst: 1e9})
	addr := strings.TrimPrefix(serve(b, ing), "http://")
	per := b.N/clients + 1
	cs := make([]*sentry.Client, clients)
	for i := range cs {
		tr := sentry.NewHTTPTransport()
		tr.BufferSize = per
		c, err := sentry.NewClient(sentry.ClientOptions{
			Dsn: "http://publickey@" + addr + "/1", Environment: "bench", Release: "shop@1.0.0",
			Transport: tr, DisableTelemetryBuffer: true,
		})
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		cs[i] = c
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU(b)
	start := time.Now()
	var wg sync.WaitGroup
	for i, c := range cs {
		n := b.N / clients
		if i < b.N%clients {
			n++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			scope := sentry.NewScope()
			for range n {
				c.CaptureException(&dbTimeout{}, nil, scope)
			}
			if !c.Flush(5 * time.Minute) {
				b.Error("flush timed out")
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := processCPU(b) - cpu0
	b.StopTimer()
	issues, _ := ing.Issues(context.Background(), core.Ref{Service: "shop", Env: "bench"}, "")
	var counted int64
	for _, is := range issues {
		counted += is.Count
	}
	if counted != int64(b.N) {
		b.Fatalf("counted %d of %d events", counted, b.N)
	}
	b.ReportMetric(float64(counted)/elapsed.Seconds(), "events/s")
	// CPU time of the whole process (clients and ingest) per event: on a
	// shared machine events/s moves with the neighbours' load, this much
	// less. Two idle cores would take about 2e6/cpu-us events/s.
	b.ReportMetric(cpu.Seconds()*1e6/float64(counted), "cpu-us/event")
}

// processCPU is the user and system CPU time this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkParseEnvelope parses the real sentry-go envelope and its event.
func BenchmarkParseEnvelope(b *testing.B) {
	data := realEnvelope(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		env, err := ParseEnvelope(data, ParseLimits{})
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := ParseEvent(env.Items[0].Payload); err != nil {
			b.Fatal(err)
		}
	}
}
