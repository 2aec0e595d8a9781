package host

import (
	"bytes"
	"io"
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
// (its own and the plugin's relayed stderr) goes to fn.
func newLogger(name string, level hclog.Level, fn func(core.LogLine)) hclog.Logger {
	if fn == nil {
		return hclog.NewNullLogger()
	}
	return hclog.New(&hclog.LoggerOptions{
		Name:   "plugin." + name,
		Level:  level,
		Output: newLogWriter("plugin/"+name, "log", fn),
	})
}
