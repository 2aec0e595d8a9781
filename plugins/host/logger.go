package host

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/ripcordhq/ripcord/core"
)

// lineWriter turns writes into core.LogLines for the engine's log stream.
// It never writes to the terminal: go-plugin's default logger writes Trace
// lines to os.Stderr, which would draw over the screen.
type lineWriter struct {
	source, stream string
	fn             func(core.LogLine)

	mu  sync.Mutex
	buf []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		line := strings.TrimRight(string(w.buf[:i]), "\r")
		w.buf = w.buf[i+1:]
		if line != "" && w.fn != nil {
			w.fn(core.LogLine{Time: time.Now(), Source: w.source, Stream: w.stream, Text: line})
		}
	}
	return len(p), nil
}

func newLogWriter(source, stream string, fn func(core.LogLine)) io.Writer {
	if fn == nil {
		return io.Discard
	}
	return &lineWriter{source: source, stream: stream, fn: fn}
}

// newLogger is the hclog.Logger go-plugin uses for one plugin; every line
// (its own and the plugin's relayed log lines) goes to fn as a line a
// person reads: the message, then its fields sorted by name, with the
// level named from warn up. The line's time and its source ("plugin/NAME")
// already say when and who, so the logger's timestamp and name, the
// plugin's own timestamp and its @module are left out.
func newLogger(name string, level hclog.Level, fn func(core.LogLine)) hclog.Logger {
	if fn == nil {
		return hclog.NewNullLogger()
	}
	if level == hclog.NoLevel {
		level = hclog.Info
	}
	l := hclog.NewInterceptLogger(&hclog.LoggerOptions{Name: "plugin." + name, Level: level, Output: io.Discard})
	l.RegisterSink(&logSink{source: "plugin/" + name, level: level, fn: fn})
	return l
}

// logSink turns one hclog entry into core.LogLines.
type logSink struct {
	source string
	level  hclog.Level
	fn     func(core.LogLine)
}

// leftOut are fields the line's own time and source already carry.
var leftOut = map[string]bool{"timestamp": true, "@module": true, "@timestamp": true}

func (s *logSink) Accept(_ string, level hclog.Level, msg string, args ...any) {
	if level < s.level || level == hclog.Off {
		return
	}
	var b strings.Builder
	switch {
	case level >= hclog.Error:
		b.WriteString("error: ")
	case level == hclog.Warn:
		b.WriteString("warn: ")
	}
	b.WriteString(msg)
	type field struct{ k, v string }
	var fields []field
	for i := 0; i+1 < len(args); i += 2 {
		k := fmt.Sprint(args[i])
		if leftOut[k] {
			continue
		}
		v := fmt.Sprint(args[i+1])
		if v == "" || strings.ContainsAny(v, " \t\"=") {
			v = strconv.Quote(v)
		}
		fields = append(fields, field{k, v})
	}
	slices.SortStableFunc(fields, func(a, b field) int { return strings.Compare(a.k, b.k) })
	for _, f := range fields {
		fmt.Fprintf(&b, " %s=%s", f.k, f.v)
	}
	now := time.Now()
	for _, line := range strings.Split(b.String(), "\n") {
		if line = strings.TrimRight(line, "\r"); line != "" {
			s.fn(core.LogLine{Time: now, Source: s.source, Stream: "log", Text: line})
		}
	}
}
