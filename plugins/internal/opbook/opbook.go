// Package opbook records a long operation's events on disk, keyed by the
// request ID, so the same ID twice does the work once (the second call
// replays the recording) and a console can re-attach to an operation a
// previous provider process started.
package opbook

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/ripcordhq/ripcord/core"
)

// Book records every operation's events in a directory, one JSON-lines
// file per request ID.
type Book struct {
	dir string
	// who names the provider in the failure given to an operation a
	// previous process left without its end ("the local target").
	who string
	mu  sync.Mutex
	ops map[string]*Log
}

// Log is one operation's recording.
type Log struct {
	path    string
	mu      sync.Mutex
	events  []core.OpEvent
	changed chan struct{} // closed and replaced on every event
	f       *os.File      // nil once finished or when loaded finished
	direct  func(core.OpEvent)
}

// New opens the book kept in dir; who names the provider in messages.
func New(dir, who string) *Book { return &Book{dir: dir, who: who, ops: map[string]*Log{}} }

func (b *Book) path(id string) string {
	sum := sha256.Sum256([]byte(id))
	return filepath.Join(b.dir, hex.EncodeToString(sum[:12])+".jsonl")
}

// Begin returns the operation's log and whether this call must do the work.
func (b *Book) Begin(id string, fn func(core.OpEvent)) (*Log, bool, error) {
	if strings.TrimSpace(id) == "" {
		return nil, false, errors.New("operation request has no ID")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if l, ok := b.ops[id]; ok {
		return l, false, nil
	}
	if st, err := os.Stat(b.path(id)); err == nil && st.Size() == 0 {
		// A crash between creating the record and its first event: no
		// work began, so this call does it.
		os.Remove(b.path(id))
	}
	if l, err := b.load(id); err == nil {
		b.ops[id] = l
		return l, false, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, false, err
	}
	f, err := os.OpenFile(b.path(id), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, false, fmt.Errorf("record operation %s: %w", id, err)
	}
	l := &Log{path: f.Name(), f: f, changed: make(chan struct{}), direct: fn}
	b.ops[id] = l
	return l, true, nil
}

// Lookup finds an operation started earlier, in this process or before.
func (b *Book) Lookup(id string) (*Log, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if l, ok := b.ops[id]; ok {
		return l, nil
	}
	l, err := b.load(id)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no operation %q is known to %s", id, b.who)
		}
		return nil, err
	}
	b.ops[id] = l
	return l, nil
}

// load reads a recording. One without its Done was cut short by a crash of
// the provider: it gets a failed Done so nobody waits for it forever.
func (b *Book) load(id string) (*Log, error) {
	f, err := os.Open(b.path(id))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	l := &Log{path: f.Name(), changed: make(chan struct{})}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var ev core.OpEvent
		if json.Unmarshal(sc.Bytes(), &ev) != nil {
			break // a torn last line
		}
		l.events = append(l.events, ev)
	}
	if n := len(l.events); n == 0 || !l.events[n-1].Done {
		ev := core.OpEvent{Seq: int64(n + 1), Time: time.Now(), Done: true,
			Err: "interrupted: " + b.who + " stopped before the operation finished; check the target's status"}
		l.events = append(l.events, ev)
		if af, err := os.OpenFile(l.path, os.O_APPEND|os.O_WRONLY, 0o644); err == nil {
			writeEvent(af, ev)
			af.Close()
		}
	}
	return l, nil
}

// Interrupted lists the IDs of operations a previous process left
// without a Done.
func (b *Book) Interrupted() []string {
	files, _ := filepath.Glob(filepath.Join(b.dir, "*.jsonl"))
	var out []string
	for _, p := range files {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		var first, last core.OpEvent
		if json.Unmarshal([]byte(lines[0]), &first) != nil || first.ExternalRef == "" {
			continue // nothing was recorded: the operation never began its work
		}
		if json.Unmarshal([]byte(lines[len(lines)-1]), &last) != nil || !last.Done {
			out = append(out, first.ExternalRef)
		}
	}
	return out
}

func writeEvent(f *os.File, ev core.OpEvent) {
	b, _ := json.Marshal(ev)
	_, _ = f.Write(append(b, '\n'))
}

// Emit records one event and hands it to the caller doing the work and to
// everyone following.
func (l *Log) Emit(ev core.OpEvent) {
	l.mu.Lock()
	if n := len(l.events); n > 0 && l.events[n-1].Done {
		l.mu.Unlock()
		return
	}
	ev.Seq = int64(len(l.events) + 1)
	ev.Time = time.Now()
	l.events = append(l.events, ev)
	if l.f != nil {
		writeEvent(l.f, ev)
		if ev.Done {
			_ = l.f.Sync()
			l.f.Close()
			l.f = nil
		}
	}
	close(l.changed)
	l.changed = make(chan struct{})
	fn := l.direct
	l.mu.Unlock()
	if fn != nil {
		fn(ev)
	}
}

// Follow replays the events so far and then new ones until Done, returning
// the operation's outcome.
func (l *Log) Follow(ctx context.Context, fn func(core.OpEvent)) error {
	next := 0
	for {
		l.mu.Lock()
		pending := l.events[next:]
		changed := l.changed
		l.mu.Unlock()
		for _, ev := range pending {
			fn(ev)
			next++
			if ev.Done {
				if ev.Err != "" {
					return errors.New(ev.Err)
				}
				return nil
			}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
