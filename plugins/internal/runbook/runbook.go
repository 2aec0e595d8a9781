// Package runbook is the run bookkeeping the pipeline sources share: the
// runs a source knows, each under the revision of its last change, listed
// newest first and fed to watchers as they change.
//
// It exists because every source kept its own copy of the same book
// (storing a run, numbering its changes, copying it out, waking the
// watchers), and the copies could drift apart. What differs between the
// sources stays with them: how an upstream's answers map to runs, which
// changes are worth telling, what a run carries beside its view.
//
// Neither Feed nor Book has a lock of its own: the source's mutex guards
// them together with the rest of its state, and the Watch methods take it.
package runbook

import (
	"cmp"
	"context"
	"iter"
	"maps"
	"slices"
	"sync"

	"github.com/ripcordhq/ripcord/core"
)

// Feed numbers the changes of a source's runs and wakes the watchers.
// Its zero value is ready to use.
type Feed struct {
	rev     int64
	changed chan struct{} // closed at the next change
}

// Publish numbers a change and wakes everyone watching; it returns the
// change's revision (the first is 1).
func (f *Feed) Publish() int64 {
	f.rev++
	if f.changed != nil {
		close(f.changed)
	}
	f.changed = make(chan struct{})
	return f.rev
}

// Watch sends what pending returns, then again each time a change is
// published, until ctx ends. pending is called with mu held and the
// revision sent last (0 the first time); it must return copies, for fn is
// called without mu.
func (f *Feed) Watch(ctx context.Context, mu sync.Locker, pending func(seen int64) []core.PipelineRun, fn func(core.PipelineRun)) error {
	var seen int64
	for {
		mu.Lock()
		infos := pending(seen)
		seen = f.rev
		if f.changed == nil {
			f.changed = make(chan struct{})
		}
		changed := f.changed
		mu.Unlock()
		for _, info := range infos {
			fn(info)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Run is what the book keeps of a run: its view as last published. A
// source's own run type embeds it beside what only the source needs.
type Run struct {
	Info core.PipelineRun
	rev  int64 // of its last change; 0 until published
}

func (r *Run) entry() *Run { return r }

// Entry is a source's run type: a pointer to a struct embedding Run.
type Entry interface{ entry() *Run }

// Book is the runs a CI source knows, by the upstream's id of each.
type Book[K comparable, R Entry] struct {
	feed Feed
	runs map[K]R
	same func(a, b core.PipelineRun) bool
}

// New returns an empty book. same says whether two views of a run show
// the same, so that an update changing nothing worth telling wakes no one.
func New[K comparable, R Entry](same func(a, b core.PipelineRun) bool) *Book[K, R] {
	return &Book[K, R]{runs: map[K]R{}, same: same}
}

// Get returns the run kept under k.
func (b *Book[K, R]) Get(k K) (R, bool) {
	r, ok := b.runs[k]
	return r, ok
}

// Len is how many runs the book keeps.
func (b *Book[K, R]) Len() int { return len(b.runs) }

// All yields every run kept, in no order.
func (b *Book[K, R]) All() iter.Seq[R] { return maps.Values(b.runs) }

// Put keeps r under k; watchers hear of it once it is published (Update).
func (b *Book[K, R]) Put(k K, r R) { b.runs[k] = r }

// Update publishes info as r's view, unless r was published before and
// info shows the same.
func (b *Book[K, R]) Update(r R, info core.PipelineRun) {
	e := r.entry()
	if e.rev != 0 && b.same(e.Info, info) {
		return
	}
	e.rev = b.feed.Publish()
	e.Info = info
}

// List returns copies of the service's runs, the newest started first, at
// most limit of them (every one when limit is 0).
func (b *Book[K, R]) List(service string, limit int) []core.PipelineRun {
	var out []core.PipelineRun
	for _, r := range b.runs {
		if e := r.entry(); e.Info.Service == service {
			out = append(out, Clone(e.Info))
		}
	}
	slices.SortFunc(out, func(a, b core.PipelineRun) int { return b.StartedAt.Compare(a.StartedAt) })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}

// Watch sends a copy of every published run of the service in the order
// they started, then of each run again when it changes, until ctx ends.
// mu is the lock that guards the book.
func (b *Book[K, R]) Watch(ctx context.Context, mu sync.Locker, service string, fn func(core.PipelineRun)) error {
	return b.feed.Watch(ctx, mu, func(seen int64) []core.PipelineRun {
		var send []*Run
		for _, r := range b.runs {
			if e := r.entry(); e.rev > seen && e.Info.Service == service {
				send = append(send, e)
			}
		}
		slices.SortFunc(send, func(x, y *Run) int {
			return cmp.Or(x.Info.StartedAt.Compare(y.Info.StartedAt), cmp.Compare(x.rev, y.rev))
		})
		infos := make([]core.PipelineRun, len(send))
		for i, e := range send {
			infos[i] = Clone(e.Info)
		}
		return infos
	}, fn)
}

// Same says whether two views of a run show the same state, release and
// stages, each step's state and times included. Start and finish times
// are left to the caller.
func Same(a, b core.PipelineRun) bool {
	if a.State != b.State || a.Version != b.Version || a.ArtifactDigest != b.ArtifactDigest || len(a.Stages) != len(b.Stages) {
		return false
	}
	for i := range a.Stages {
		x, y := a.Stages[i], b.Stages[i]
		if x.Name != y.Name || x.State != y.State || !slices.EqualFunc(x.Steps, y.Steps, func(p, q core.Step) bool {
			return p.Name == q.Name && p.State == q.State && p.StartedAt.Equal(q.StartedAt) && p.FinishedAt.Equal(q.FinishedAt)
		}) {
			return false
		}
	}
	return true
}

// Clone is a deep copy of a run's view: its stages and their steps are
// its own, so whoever gets it may keep it while the source changes.
func Clone(r core.PipelineRun) core.PipelineRun {
	st := make([]core.Stage, len(r.Stages))
	for i, x := range r.Stages {
		x.Steps = slices.Clone(x.Steps)
		st[i] = x
	}
	r.Stages = st
	return r
}
