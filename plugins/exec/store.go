package exec

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/ripcordhq/ripcord/core"
)

const (
	keepRuns  = 20
	ringLines = 10_000
	maxLine   = 4096 // longer lines are cut: one line must not hold megabytes
)

// stepLog keeps a step's last ringLines lines in memory and on disk as
// JSON lines. The file is compacted back to the ring whenever it reaches
// twice the ring, so disk use is bounded as well.
type stepLog struct {
	mu       sync.Mutex
	ring     []core.LogLine
	start    int   // index of the oldest line in ring once it is full
	total    int64 // lines ever added
	finished bool
	changed  chan struct{}
	waiting  bool // someone waits on changed

	path      string
	f         *os.File
	w         *bufio.Writer
	onDisk    int
	lastFlush time.Time
}

func newStepLog(path string) (*stepLog, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open step log: %w", err)
	}
	return &stepLog{path: path, f: f, w: bufio.NewWriterSize(f, 64<<10), changed: make(chan struct{})}, nil
}

// loadStepLog reads a finished step's log from disk.
func loadStepLog(path string) (*stepLog, error) {
	l := &stepLog{path: path, finished: true, changed: make(chan struct{})}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return l, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open step log: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var line core.LogLine
		if json.Unmarshal(sc.Bytes(), &line) == nil {
			l.push(line)
		}
	}
	return l, nil
}

func (l *stepLog) push(line core.LogLine) {
	if len(l.ring) < ringLines {
		l.ring = append(l.ring, line)
	} else {
		l.ring[l.start] = line
		l.start = (l.start + 1) % ringLines
	}
	l.total++
}

// add records one line.
func (l *stepLog) add(line core.LogLine) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.push(line)
	if l.w != nil {
		b, _ := json.Marshal(line)
		l.w.Write(append(b, '\n'))
		l.onDisk++
		if l.onDisk >= 2*ringLines {
			l.compactLocked()
		} else if now := time.Now(); now.Sub(l.lastFlush) > 200*time.Millisecond {
			l.w.Flush()
			l.lastFlush = now
		}
	}
	if l.waiting {
		close(l.changed)
		l.changed, l.waiting = make(chan struct{}), false
	}
}

// compactLocked rewrites the file with just the ring.
func (l *stepLog) compactLocked() {
	l.w.Flush()
	l.f.Close()
	tmp := l.path + ".tmp"
	f, err := os.Create(tmp)
	if err == nil {
		w := bufio.NewWriterSize(f, 64<<10)
		for _, line := range l.linesLocked() {
			b, _ := json.Marshal(line)
			w.Write(append(b, '\n'))
		}
		w.Flush()
		f.Close()
		err = os.Rename(tmp, l.path)
	}
	l.f, err = os.OpenFile(l.path, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		l.f, l.w = nil, nil
		return
	}
	l.w.Reset(l.f)
	l.onDisk = len(l.ring)
}

func (l *stepLog) linesLocked() []core.LogLine {
	out := make([]core.LogLine, 0, len(l.ring))
	out = append(out, l.ring[l.start:]...)
	return append(out, l.ring[:l.start]...)
}

// finish flushes the file and wakes followers for the last time.
func (l *stepLog) finish() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.w != nil {
		l.w.Flush()
		l.f.Close()
		l.w, l.f = nil, nil
	}
	l.finished = true
	close(l.changed)
	l.changed, l.waiting = make(chan struct{}), false
}

// since returns lines from absolute index next on (skipping what the ring
// no longer holds), the index after them, whether the step finished, and
// a channel closed on the next change.
func (l *stepLog) since(next int64) ([]core.LogLine, int64, bool, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	oldest := l.total - int64(len(l.ring))
	if next < oldest {
		next = oldest
	}
	all := l.linesLocked()
	out := all[next-oldest:]
	l.waiting = true
	return out, l.total, l.finished, l.changed
}

// runDir, runFile and logFile name a run's files.
func (s *Source) runDir(id string) string  { return filepath.Join(s.cfg.StateDir, "runs", id) }
func (s *Source) runFile(id string) string { return filepath.Join(s.runDir(id), "run.json") }
func (s *Source) logFile(id, stage, step string) string {
	return filepath.Join(s.runDir(id), stage+"."+step+".jsonl")
}

func (s *Source) saveRun(info core.PipelineRun) error {
	b, err := json.Marshal(info)
	if err != nil {
		return err
	}
	tmp := s.runFile(info.ID) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("save run %s: %w", info.ID, err)
	}
	return os.Rename(tmp, s.runFile(info.ID))
}

// loadRuns reads the kept runs. A run left unfinished by a previous
// process is marked failed: nothing watches its processes any more.
func (s *Source) loadRuns() ([]core.PipelineRun, error) {
	dirs, err := filepath.Glob(filepath.Join(s.cfg.StateDir, "runs", "*", "run.json"))
	if err != nil {
		return nil, err
	}
	var runs []core.PipelineRun
	for _, p := range dirs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		var r core.PipelineRun
		if json.Unmarshal(b, &r) != nil || r.ID == "" {
			continue
		}
		if !r.State.Terminal() {
			markInterrupted(&r)
			_ = s.saveRun(r)
		}
		runs = append(runs, r)
	}
	sort.Slice(runs, func(i, j int) bool { return runs[i].ID < runs[j].ID })
	return runs, nil
}

func markInterrupted(r *core.PipelineRun) {
	now := time.Now().UTC()
	for i := range r.Stages {
		st := &r.Stages[i]
		for j := range st.Steps {
			sp := &st.Steps[j]
			switch sp.State {
			case core.RunRunning:
				sp.State, sp.ExitCode, sp.FinishedAt = core.RunFailed, -1, now
				st.State = core.RunFailed
			case core.RunQueued, core.RunWaiting:
				sp.State = core.RunSkipped
			}
		}
		if !st.State.Terminal() {
			st.State = core.RunSkipped
		}
	}
	r.State, r.FinishedAt = core.RunFailed, now
}

// pruneRuns removes runs beyond the newest keepRuns.
func (s *Source) pruneRunsLocked() {
	for len(s.order) > keepRuns {
		id := s.order[0]
		if r := s.runs[id]; r != nil && !r.info.State.Terminal() {
			return // never remove a live run
		}
		s.order = s.order[1:]
		delete(s.runs, id)
		os.RemoveAll(s.runDir(id))
	}
}
