package server

import (
	"context"
	"sync"
)

// LogBook keeps the server's recent log lines for `ripcord server logs`,
// which works whether the output went to a file (an autostarted server)
// or to the journal (systemd).
type LogBook struct {
	mu      sync.Mutex
	lines   []string
	start   int // index of the oldest line in the ring
	n       int
	written uint64 // lines ever written
	changed chan struct{}
}

// NewLogBook keeps the last keep lines.
func NewLogBook(keep int) *LogBook {
	return &LogBook{lines: make([]string, keep), changed: make(chan struct{})}
}

// Add appends a line.
func (b *LogBook) Add(line string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.n < len(b.lines) {
		b.lines[(b.start+b.n)%len(b.lines)] = line
		b.n++
	} else {
		b.lines[b.start] = line
		b.start = (b.start + 1) % len(b.lines)
	}
	b.written++
	close(b.changed)
	b.changed = make(chan struct{})
}

// since returns the lines written after the count mark (at most the kept
// ones), the new mark, and a channel closed at the next Add.
func (b *LogBook) since(mark uint64) ([]string, uint64, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	missing := b.written - mark
	if missing > uint64(b.n) {
		missing = uint64(b.n)
	}
	out := make([]string, 0, missing)
	for i := b.n - int(missing); i < b.n; i++ {
		out = append(out, b.lines[(b.start+i)%len(b.lines)])
	}
	return out, b.written, b.changed
}

// Tail returns the last n lines (all kept when n <= 0) and then, while
// follow is set, calls fn with each batch of new lines until ctx ends or
// fn fails.
func (b *LogBook) Tail(ctx context.Context, n int, follow bool, fn func([]string) error) error {
	lines, mark, changed := b.since(0)
	if n > 0 && len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	if err := fn(lines); err != nil {
		return err
	}
	for follow {
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
		lines, mark, changed = b.since(mark)
		if len(lines) == 0 {
			continue
		}
		if err := fn(lines); err != nil {
			return err
		}
	}
	return nil
}
