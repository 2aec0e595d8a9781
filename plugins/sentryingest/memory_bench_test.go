package sentryingest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// BenchmarkIngestMillionEventsHeap counts 1,000,000 error events through
// the ingest's HTTP handler (in process, no network) and reports the live
// heap afterwards. The clock advances 10 ms per event, so the million
// events spread over 2.8 hours of 10 s buckets, like a busy day.
//
//   - realistic: 3 releases × 2 levels × 50 fingerprints.
//
//   - unique: every event a fingerprint never seen before (a broken SDK
//     or an attack), which the issue and cell caps bound.
//
//   - releases: every event a release never seen before (DSN keys are
//     public in browser apps), which the per-key release cap bounds.
//
//     go test -run XXX -bench IngestMillionEventsHeap -benchtime 1x ./plugins/sentryingest/
func BenchmarkIngestMillionEventsHeap(b *testing.B) {
	for _, c := range []struct {
		name        string
		fingerprint func(i int) string
		release     func(i int) string
	}{
		{"realistic", func(i int) string { return fmt.Sprintf("checkout-%d", i%50) }, func(i int) string { return fmt.Sprintf("shop@1.%d.0", i%3) }},
		{"unique", func(i int) string { return fmt.Sprintf("fp-%d", i) }, func(i int) string { return fmt.Sprintf("shop@1.%d.0", i%3) }},
		{"releases", func(i int) string { return "checkout" }, func(i int) string { return fmt.Sprintf("shop@%d", i) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			const events = 1_000_000
			for b.Loop() {
				var mu sync.Mutex
				now := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
				clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
				ing := newIngest(b, Config{Rate: 1e9, Burst: 1e9, Now: clock})
				runtime.GC()
				var before runtime.MemStats
				runtime.ReadMemStats(&before)
				for i := range events {
					body := fmt.Sprintf(`{"level":%q,"environment":"production","release":%q,"fingerprint":[%q],"message":"boom"}`,
						[]string{"error", "fatal"}[i%2], c.release(i), c.fingerprint(i))
					req := httptest.NewRequest(http.MethodPost, "/api/1/store/?sentry_key=publickey", strings.NewReader(body))
					rec := httptest.NewRecorder()
					ing.ServeHTTP(rec, req)
					if rec.Code != http.StatusOK {
						b.Fatalf("event %d answered %d: %s", i, rec.Code, rec.Body)
					}
					mu.Lock()
					now = now.Add(10 * time.Millisecond)
					mu.Unlock()
				}
				runtime.GC()
				var after runtime.MemStats
				runtime.ReadMemStats(&after)
				b.ReportMetric(float64(after.HeapAlloc)/(1<<20), "heapMiB")
				b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/(1<<20), "grewMiB")
				ing.counts.mu.Lock()
				cells := ing.counts.cells
				ing.counts.mu.Unlock()
				b.ReportMetric(float64(cells), "cells")
			}
		})
	}
}
