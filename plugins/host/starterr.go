package host

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/ripcordhq/ripcord/core"
)

// StartError is a plugin that did not complete its handshake: it exited,
// printed something else, or did not answer within the start timeout.
// It quotes the end of what the plugin wrote to stderr, which is where a
// plugin says why it cannot start.
type StartError struct {
	Plugin, Path string
	Cause        string   // go-plugin's first line
	Stderr       []string // the plugin's last stderr lines
	err          error
}

func (e *StartError) Error() string {
	msg := fmt.Sprintf("plugin %q (%s) did not start: %s", e.Plugin, e.Path, e.Cause)
	if len(e.Stderr) > 0 {
		msg += "; it wrote: " + strings.Join(e.Stderr, " | ")
	} else {
		msg += "; it wrote nothing to stderr"
	}
	return msg
}

func (e *StartError) Unwrap() error { return e.err }

// startCause says in a person's words what go-plugin's start error means.
func startCause(err error, timeout time.Duration) string {
	msg := firstLine(err.Error())
	switch {
	case strings.HasPrefix(msg, "Unrecognized remote plugin message"):
		return "it ended, or printed something else, before its handshake"
	case strings.Contains(msg, "timeout while waiting for plugin to start"):
		return fmt.Sprintf("no handshake within %s", core.ShortDuration(timeout))
	case strings.Contains(msg, "plugin exited before we could connect"):
		return "it ended before its handshake"
	}
	return msg
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = strings.TrimSpace(s[:i])
	}
	return strings.TrimSuffix(s, ":")
}

// stderrTail keeps the last lines a plugin wrote to stderr.
type stderrTail struct {
	mu      sync.Mutex
	partial []byte
	last    []string
}

const tailLines, tailLineBytes = 8, 400

func (t *stderrTail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.partial = append(t.partial, p...)
	for {
		i := strings.IndexByte(string(t.partial), '\n')
		if i < 0 {
			break
		}
		t.add(string(t.partial[:i]))
		t.partial = t.partial[i+1:]
	}
	if len(t.partial) > tailLineBytes {
		t.add(string(t.partial))
		t.partial = t.partial[:0]
	}
	return len(p), nil
}

func (t *stderrTail) add(line string) {
	line = strings.TrimSpace(line)
	if line == "" {
		return
	}
	if len(line) > tailLineBytes {
		line = line[:tailLineBytes] + "…"
	}
	t.last = append(t.last, line)
	if len(t.last) > tailLines {
		t.last = t.last[len(t.last)-tailLines:]
	}
}

func (t *stderrTail) lines() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := append([]string(nil), t.last...)
	if len(t.partial) > 0 {
		out = append(out, strings.TrimSpace(string(t.partial)))
	}
	return out
}
