package builtin

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getsentry/sentry-go"
)

// vmKiB reads a "VmHWM:" or "VmRSS:" line of /proc/PID/status, in KiB.
func vmKiB(t testing.TB, pid int, field string) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("reading the ingest's memory: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, err := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// TestSentryIngestProcessMemoryIsBounded floods the real ingest process
// (the built-in, as the console starts it, with a state file) with one
// million distinct fingerprints and then 100,000 distinct release names,
// and reads the process's peak resident memory from the kernel. DSN keys
// are public in browser apps, so anyone can send this.
//
//	RIPCORD_INGEST_MEMORY=1 go test ./plugins/builtin -run TestSentryIngestProcessMemoryIsBounded -v
func TestSentryIngestProcessMemoryIsBounded(t *testing.T) {
	if os.Getenv("RIPCORD_INGEST_MEMORY") == "" {
		t.Skip("set RIPCORD_INGEST_MEMORY=1 to flood the ingest process (about a minute)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	h := startBuiltin(t, "sentry-ingest")
	settings := map[string]any{"service": "api", "env": "production", "listen": addr,
		"keys": map[string]string{"42": "publickey"}, "store": filepath.Join(t.TempDir(), "state.db"), "rate": 1e7}
	if err := h.Configure(ctx, "sentry-ingest", settings, nil); err != nil {
		t.Fatal(err)
	}
	infos, err := h.List(ctx)
	if err != nil || len(infos) != 1 || infos[0].PID == 0 {
		t.Fatalf("plugin list %+v: %v", infos, err)
	}
	pid := infos[0].PID
	base := vmKiB(t, pid, "VmRSS")

	url := "http://" + addr + "/api/42/envelope/?sentry_key=publickey"
	const perEnvelope = 100
	send := func(total int, event func(i int) string) {
		t.Helper()
		var wg sync.WaitGroup
		var mu sync.Mutex
		var failed error
		const workers = 8
		client := &http.Client{Timeout: 30 * time.Second}
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var body bytes.Buffer
				for start := w * perEnvelope; start < total; start += workers * perEnvelope {
					body.Reset()
					body.WriteString("{}\n")
					for i := start; i < min(start+perEnvelope, total); i++ {
						ev := event(i)
						fmt.Fprintf(&body, "{\"type\":\"event\",\"length\":%d}\n%s\n", len(ev), ev)
					}
					resp, err := client.Post(url, "application/x-sentry-envelope", bytes.NewReader(body.Bytes()))
					if err == nil {
						resp.Body.Close()
						if resp.StatusCode != http.StatusOK {
							err = fmt.Errorf("answered %d", resp.StatusCode)
						}
					}
					if err != nil {
						mu.Lock()
						failed = err
						mu.Unlock()
						return
					}
				}
			}()
		}
		wg.Wait()
		if failed != nil {
			t.Fatal(failed)
		}
	}
	start := time.Now()
	send(1_000_000, func(i int) string {
		return fmt.Sprintf(`{"level":"error","environment":"production","release":"v1.4.2","fingerprint":["fp-%d"],"message":"boom %d"}`, i, i)
	})
	afterFingerprints, fpTime := vmKiB(t, pid, "VmHWM"), time.Since(start)
	start = time.Now()
	send(100_000, func(i int) string {
		return fmt.Sprintf(`{"level":"error","environment":"production","release":"shop@%d-%s","message":"boom"}`, i, strings.Repeat("x", 150))
	})
	peak, relTime := vmKiB(t, pid, "VmHWM"), time.Since(start)
	t.Logf("ingest process RSS: %.1f MiB at start; peak %.1f MiB after 1,000,000 distinct fingerprints (%s); peak %.1f MiB after 100,000 distinct ~160-byte release names (%s)",
		float64(base)/1024, float64(afterFingerprints)/1024, fpTime.Round(time.Second), float64(peak)/1024, relTime.Round(time.Second))
	if peak > 64<<10 {
		t.Fatalf("the ingest process peaked at %.1f MiB, over 64 MiB", float64(peak)/1024)
	}

	// Throughput with real SDKs: 8 sentry-go clients in this process,
	// one event per envelope (what sentry-go sends), against the ingest
	// process; its own CPU time per event is read from the kernel.
	const clients, perClient = 8, 12_500
	cpu0 := cpuTime(t, pid)
	start = time.Now()
	var wg sync.WaitGroup
	for range clients {
		tr := sentry.NewHTTPTransport()
		tr.BufferSize = perClient
		c, err := sentry.NewClient(sentry.ClientOptions{Dsn: "http://publickey@" + addr + "/42", Environment: "production",
			Release: "v1.4.2", Transport: tr, DisableTelemetryBuffer: true})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			for i := range perClient {
				c.CaptureException(fmt.Errorf("checkout failed %d", i%7), nil, nil)
			}
			if !c.Flush(5 * time.Minute) {
				t.Error("sentry-go Flush timed out")
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	used := cpuTime(t, pid) - cpu0
	n := float64(clients * perClient)
	t.Logf("ingest with %d real sentry-go clients, one event per envelope: %.0f events/s end to end; the ingest process used %.1f µs CPU per event (%.0f events/s per core); peak RSS %.1f MiB",
		clients, n/took.Seconds(), float64(used.Microseconds())/n, n/used.Seconds(), float64(vmKiB(t, pid, "VmHWM"))/1024)
}

// cpuTime reads a process's user and system CPU time from /proc/PID/stat.
func cpuTime(t testing.TB, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // clock ticks (USER_HZ 100)
}
