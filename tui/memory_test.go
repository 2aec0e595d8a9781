package tui

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/ripcordhq/ripcord/core"
)

// floodLines is how many log lines the memory budget is stated for.
const floodLines = 1_000_000

// floodBatch is how many lines arrive between two flush ticks. It stays
// under the subscription's queue limit, so no line is dropped on the way
// and the ring's content can be checked line by line.
const floodBatch = 1_000

// logHeapBound is the most the live heap may grow over a console that has
// seen no log line. What 1M lines may legitimately leave behind: the ring's
// 10,000 slots (a logEntry is 64 bytes: 640 KB) and the 10,000 texts they
// point to (about 32 bytes each: 320 KB); the log viewer's last
// max(20 screens, 1000) lines (at 40 rows, 1000 strings, under 100 KB with
// their headers); one rendered frame (120×40 cells, a few KB); the
// subscription's queue of at most one batch (1,000 events of ~150 bytes:
// 150 KB). That is under 2 MiB. A ring that kept every line would hold at
// least 1M × (64+32) bytes ≈ 92 MiB, so 32 MiB leaves a wide margin for
// the allocator without letting a leak through.
const logHeapBound = 32 << 20

// logFlatBound is the most the live heap may change between 100k and 1M
// lines: by then the ring is full and every later line replaces one of the
// same size, so any growth at all is a leak proportional to lines seen.
// 900k lines leaking even 8 bytes each would be 6.9 MiB.
const logFlatBound = 4 << 20

func liveHeap() uint64 {
	runtime.GC()
	runtime.GC() // the second cycle frees what the first one's finalizers let go
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// logFlood publishes n log lines for production to the engine, the way a
// chatty step's output arrives, and lets the console take them the way
// the program does: one flushMsg per batch (the flush tick), each followed
// by a View, with the production log viewer open. at, when set, is called
// after each batch with the number of lines sent so far.
func logFlood(tb testing.TB, m *Model, eng *core.Engine, n int, at func(sent int)) {
	tb.Helper()
	src := production.String()
	for sent := 0; sent < n; {
		for range min(floodBatch, n-sent) {
			eng.Publish(core.Event{Kind: core.EvLog, Ref: production, Log: &core.LogLine{Source: src, Text: "line " + strconv.Itoa(sent)}})
			sent++
		}
		update(m, flushMsg{})
		_ = m.View()
		if at != nil {
			at(sent)
		}
	}
}

// floodConsole is a console over the canary with the production log
// viewer open at 120×40.
func floodConsole(tb testing.TB) (*Model, *core.Engine) {
	tb.Helper()
	eng := engineWith(canarySnapshot())
	m := newModel(eng, testOptions())
	tb.Cleanup(m.sub.Close)
	update(m, tea.WindowSizeMsg{Width: 120, Height: 40})
	update(m, press("l"))
	if _, ok := m.dialogs.top().(*logDialog); !ok {
		tb.Fatal("l did not open the log viewer")
	}
	_ = m.View()
	return m, eng
}

// The console's memory stays flat however long a step talks: after a
// million lines it keeps exactly the ring's capacity, newest last, and the
// live heap is where it was after a hundred thousand.
func TestMemoryFlatAfterMillionLogLines(t *testing.T) {
	if testing.Short() {
		t.Skip("1M log lines take about 16 s under -race; skipped with -short")
	}
	m, eng := floodConsole(t)
	base := liveHeap()
	var at100k uint64
	start := time.Now()
	logFlood(t, m, eng, floodLines, func(sent int) {
		if sent == 100_000 {
			at100k = liveHeap()
		}
	})
	elapsed := time.Since(start)
	end := liveHeap()
	t.Logf("%d lines in %s: live heap %.1f MiB at start, %.1f MiB after 100k, %.1f MiB after 1M",
		floodLines, elapsed.Round(time.Millisecond), mib(base), mib(at100k), mib(end))

	if end > base && end-base > logHeapBound {
		t.Errorf("live heap grew %.1f MiB over %d lines; the bound is %.0f MiB", mib(end-base), floodLines, mib(logHeapBound))
	}
	if end > at100k && end-at100k > logFlatBound {
		t.Errorf("live heap grew %.1f MiB between 100k and 1M lines: not flat (bound %.0f MiB)", mib(end-at100k), mib(logFlatBound))
	}

	if m.s.logs.len() != logCap || len(m.s.logs.buf) != logCap || cap(m.s.logs.buf) != logCap {
		t.Fatalf("ring holds %d lines in %d slots (cap %d), want exactly %d", m.s.logs.len(), len(m.s.logs.buf), cap(m.s.logs.buf), logCap)
	}
	// The kept lines are the last logCap sent, oldest first, newest last.
	i, bad := 0, 0
	m.s.logs.each(func(e logEntry) {
		if want := "line " + strconv.Itoa(floodLines-logCap+i); e.text != want && bad < 3 {
			bad++
			t.Errorf("ring line %d is %q, want %q", i, e.text, want)
		}
		i++
	})
	if i != logCap {
		t.Fatalf("ring visited %d lines, want %d", i, logCap)
	}
	// The viewer shows the count and follows the newest line.
	lines := strings.Split(m.View().Content, "\n")
	if !strings.Contains(lines[2], fmt.Sprintf("Logs · api/production · %d lines", logCap)) {
		t.Errorf("viewer title = %q", lines[2])
	}
	if v := m.View().Content; !strings.Contains(v, fmt.Sprint("line ", floodLines-1)) {
		t.Errorf("the viewer does not show the newest line:\n%s", v)
	}
}

// BenchmarkLogFlood is 1M log lines through the console with the log
// viewer open (one flush and one View per 1,000 lines); it reports the
// rate and the live heap after them.
func BenchmarkLogFlood(b *testing.B) {
	var heap uint64
	var elapsed time.Duration
	n := 0
	for b.Loop() {
		b.StopTimer()
		m, eng := floodConsole(b)
		b.StartTimer()
		start := time.Now()
		logFlood(b, m, eng, floodLines, nil)
		elapsed += time.Since(start)
		n += floodLines
		b.StopTimer()
		heap = liveHeap()
		m.sub.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(n)/elapsed.Seconds(), "lines/s")
	b.ReportMetric(mib(heap), "heapMiB")
}
