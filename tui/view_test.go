package tui

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"charm.land/lipgloss/v2"

	"github.com/ripcordhq/ripcord/core"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden views in testdata/")

func render(t testing.TB, snap core.Snapshot, w, h int) string {
	t.Helper()
	o := testOptions()
	o.Width, o.Height = w, h
	m := newModel(engineWith(snap), o)
	t.Cleanup(m.sub.Close)
	return m.View().Content
}

func TestGoldenViews(t *testing.T) {
	for _, c := range []struct {
		name string
		snap core.Snapshot
		w, h int
	}{
		{"idle_80x24", idleSnapshot(), 80, 24},
		{"idle_160x48", idleSnapshot(), 160, 48},
		{"canary_spike_80x24", canarySnapshot(), 80, 24},
		{"canary_spike_160x48", canarySnapshot(), 160, 48},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := render(t, c.snap, c.w, c.h)
			lines := strings.Split(got, "\n")
			if len(lines) > c.h {
				t.Errorf("view is %d lines, terminal is %d", len(lines), c.h)
			}
			for i, l := range lines {
				if w := lipgloss.Width(l); w > c.w {
					t.Errorf("line %d is %d cells wide, terminal is %d: %q", i+1, w, c.w, l)
				}
			}
			path := filepath.Join("testdata", c.name+".golden")
			if *updateGolden {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./tui -run TestGoldenViews -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("view differs from %s (rerun with -update if the change is intended)\ngot:\n%s\nwant:\n%s", path, got, want)
			}
		})
	}
}

// The canary screen must carry what a person needs to decide, at both
// sizes: the spike, its evidence, the stale backup and the unfinished
// operation.
func TestCanaryViewShowsWhatNeedsJudgment(t *testing.T) {
	for _, size := range [][2]int{{80, 24}, {160, 48}} {
		got := render(t, canarySnapshot(), size[0], size[1])
		for _, want := range []string{"SPIKE", "judgment", "uploads backup 26h", "▸ v1.43.0 25%", "lock: alice", "21:14:05", "p promote"} {
			if !strings.Contains(got, want) {
				t.Errorf("%dx%d view lacks %q:\n%s", size[0], size[1], want, got)
			}
		}
	}
	wide := render(t, canarySnapshot(), 160, 48)
	for _, want := range []string{"p=3.0e-09", "112 vs 18 events at 25% share", "TypeError: cart is undefined (97)", "sha256:9f3c1a2b7d4e…", "STALE", "UNKNOWN"} {
		if !strings.Contains(wide, want) {
			t.Errorf("160x48 view lacks %q", want)
		}
	}
}

func TestFullPanesStayInsideTheTerminal(t *testing.T) {
	for _, color := range []bool{false, true} {
		for _, size := range [][2]int{{80, 24}, {100, 30}, {120, 40}, {160, 48}, {200, 60}} {
			o := testOptions()
			o.NoColor = !color
			o.Width, o.Height = size[0], size[1]
			m := newModel(engineWith(fullSnapshot()), o)
			got := m.View().Content
			m.sub.Close()
			lines := strings.Split(got, "\n")
			if len(lines) != size[1] {
				t.Errorf("%dx%d colour=%v: %d lines", size[0], size[1], color, len(lines))
			}
			for i, l := range lines {
				if w := lipgloss.Width(l); w > size[0] {
					t.Errorf("%dx%d colour=%v line %d is %d wide", size[0], size[1], color, i+1, w)
				}
			}
		}
	}
}

func TestSparkline(t *testing.T) {
	got := sparkline([]core.ErrorBucket{{Count: 0}, {Count: 1}, {Count: 4}, {Count: 8}}, 4)
	if got != "▁▂▄█" {
		t.Fatalf("sparkline = %q, want ▁▂▄█", got)
	}
}

func BenchmarkViewFull160x48(b *testing.B) {
	o := testOptions()
	o.NoColor = false
	o.Width, o.Height = 160, 48
	m := newModel(engineWith(fullSnapshot()), o)
	defer m.sub.Close()
	b.ReportAllocs()
	for b.Loop() {
		_ = m.View()
	}
}
