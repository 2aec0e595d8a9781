package host

import (
	"slices"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/ripcordhq/ripcord/core"
)

// A plugin's log line reaches the screen as a person reads it: its
// message and fields, not hclog's second timestamp, level column and
// logger names around the plugin's own words. The calls are the ones
// go-plugin makes for a line it relays from the plugin's stderr.
func TestPluginLogLinesReadAsThePluginWroteThem(t *testing.T) {
	var got []core.LogLine
	l := newLogger("snapshots@production.media", hclog.Info, func(line core.LogLine) { got = append(got, line) })
	relayed := l.Named("ripcord-provider-snapshots")
	relayed.Info("watching snapshots", "set", "media", "@module", "snapshots", "dir", "/srv/media snapshots", "timestamp", "2026-12-05T05:17:11.622Z")
	relayed.Debug("not shown at info")
	relayed.Warn("cannot read the newest snapshot", "error", "permission denied")
	relayed.Error("panic: boom\ngoroutine 1 [running]:")
	var texts []string
	for _, line := range got {
		if line.Source != "plugin/snapshots@production.media" || line.Stream != "log" || line.Time.IsZero() {
			t.Errorf("line %+v: want source plugin/snapshots@production.media, stream log and a time", line)
		}
		texts = append(texts, line.Text)
	}
	want := []string{
		`watching snapshots dir="/srv/media snapshots" set=media`,
		`warn: cannot read the newest snapshot error="permission denied"`,
		`error: panic: boom`,
		`goroutine 1 [running]:`,
	}
	if !slices.Equal(texts, want) {
		t.Fatalf("log lines:\n%q\nwant:\n%q", texts, want)
	}
}
