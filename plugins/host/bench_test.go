package host

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/ripcordhq/ripcord/core"
)

func benchHost(b *testing.B, builtins []string) *Host {
	self, _ := os.Executable()
	dir := b.TempDir()
	h, err := New(Options{Self: self, Builtins: builtins, Workdir: dir, SocketDir: filepath.Join(dir, "s"), LockFile: filepath.Join(dir, "none.lock")})
	if err != nil {
		b.Fatal(err)
	}
	if err := h.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	return h
}

// Cold start of one built-in plugin to healthy (re-exec, handshake with
// AutoMTLS, GetInfo, CheckHealth), and Close.
func BenchmarkColdStartOne(b *testing.B) {
	for b.Loop() {
		_ = benchHost(b, []string{"builtin0"}).Close()
	}
}

// Eight built-ins started in parallel, all healthy.
func BenchmarkColdStartEight(b *testing.B) {
	names := make([]string, 8)
	for i := range names {
		names[i] = "builtin" + strconv.Itoa(i)
	}
	for b.Loop() {
		_ = benchHost(b, names).Close()
	}
}

// One unary RPC through the core adapter (Status) on an external plugin.
func BenchmarkUnaryRoundTrip(b *testing.B) {
	h, _, err := startExample(b, "", nil)
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	target, _ := h.Target("example")
	ctx := context.Background()
	ref := core.Ref{Service: "api", Env: "prod"}
	for b.Loop() {
		if _, err := target.Status(ctx, ref); err != nil {
			b.Fatal(err)
		}
	}
}

// Stream throughput: log lines through StreamLogs and the adapter.
func BenchmarkStreamThroughput(b *testing.B) {
	h, _, err := startExample(b, "", nil)
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	pipe, _ := h.Pipeline("example")
	const lines = 100000
	ctx := context.Background()
	var total int
	for b.Loop() {
		if err := pipe.Logs(ctx, "lines-"+strconv.Itoa(lines), "s", false, func(core.LogLine) { total++ }); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "events/s")
}
