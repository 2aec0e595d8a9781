package core

import (
	"context"
	"errors"
	"sync"
)

// DefaultQueueLimit bounds what one subscriber may have pending.
const DefaultQueueLimit = 4096

// ErrClosed is returned by Next after Close.
var ErrClosed = errors.New("subscription closed")

// Subscription is one client's stream of events. Publishing to it never
// blocks: events queue up to a limit; past it, pending progress events are
// dropped oldest first (their newer state follows anyway), and final events
// are kept. Should a subscriber fall so far behind that its final events
// alone exceed the limit, its queue is replaced by one EvResync event
// carrying a fresh snapshot, which holds every final state.
//
// Drain and Next are meant for one consuming goroutine.
type Subscription struct {
	engine *Engine
	limit  int
	ready  chan struct{}

	mu      sync.Mutex
	queue   []slot
	live    int            // slots not dropped
	scan    int            // no droppable slot before this index
	pending map[string]int // progress Key -> index in queue
	resync  bool
	closed  bool
	dropped uint64

	local []Event // Next's batch, owned by the consumer
}

type slot struct {
	ev   Event
	dead bool
}

func newSubscription(e *Engine, limit int) *Subscription {
	if limit <= 0 {
		limit = DefaultQueueLimit
	}
	return &Subscription{engine: e, limit: limit, ready: make(chan struct{}, 1), pending: map[string]int{}}
}

// Ready is signalled whenever events are pending. A screen waits on it and
// drains in batches on its own tick.
func (s *Subscription) Ready() <-chan struct{} { return s.ready }

// push is called by the engine with its lock held; it must not block, and
// it is O(1) amortised however far behind the subscriber is.
func (s *Subscription) push(ev Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.resync {
		return
	}
	if !ev.Final && ev.Key != "" {
		if i, ok := s.pending[ev.Key]; ok {
			// Coalesce: the older state is superseded. The newest moves to
			// the tail so delivery stays in Seq order.
			s.queue[i].dead = true
			s.live--
			s.dropped++
			delete(s.pending, ev.Key)
		}
	}
	if s.live >= s.limit && !s.dropOldestProgress() {
		// Only final events are pending and there is no room: hand the
		// subscriber a snapshot instead of growing without bound.
		s.reset()
		s.resync = true
		s.signal()
		return
	}
	if len(s.queue) >= 2*s.limit {
		s.compact()
	}
	if !ev.Final && ev.Key != "" {
		s.pending[ev.Key] = len(s.queue)
	}
	s.queue = append(s.queue, slot{ev: ev})
	s.live++
	s.signal()
}

// dropOldestProgress marks the oldest live non-final event dropped.
func (s *Subscription) dropOldestProgress() bool {
	for ; s.scan < len(s.queue); s.scan++ {
		sl := &s.queue[s.scan]
		if sl.dead || sl.ev.Final {
			continue
		}
		sl.dead = true
		s.live--
		s.dropped++
		if k := sl.ev.Key; k != "" && s.pending[k] == s.scan {
			delete(s.pending, k)
		}
		s.scan++
		return true
	}
	return false
}

// compact removes dropped slots and re-indexes pending keys.
func (s *Subscription) compact() {
	q := s.queue[:0]
	for _, sl := range s.queue {
		if !sl.dead {
			q = append(q, sl)
		}
	}
	clear(s.queue[len(q):])
	s.queue = q
	s.scan = 0
	clear(s.pending)
	for i, sl := range s.queue {
		if !sl.ev.Final && sl.ev.Key != "" {
			s.pending[sl.ev.Key] = i
		}
	}
}

func (s *Subscription) reset() {
	clear(s.queue)
	s.queue = s.queue[:0]
	s.live, s.scan = 0, 0
	clear(s.pending)
}

func (s *Subscription) signal() {
	select {
	case s.ready <- struct{}{}:
	default:
	}
}

// Drain appends every pending event to buf, oldest first, and returns it.
func (s *Subscription) Drain(buf []Event) []Event {
	s.mu.Lock()
	if s.resync {
		s.resync = false
		s.mu.Unlock()
		snap := s.engine.Snapshot()
		return append(buf, Event{Seq: snap.Seq, Kind: EvResync, Final: true, Snapshot: &snap})
	}
	for _, sl := range s.queue {
		if !sl.dead {
			buf = append(buf, sl.ev)
		}
	}
	s.reset()
	s.mu.Unlock()
	return buf
}

// Next returns the next event, waiting until one is pending or ctx ends.
func (s *Subscription) Next(ctx context.Context) (Event, error) {
	for len(s.local) == 0 {
		s.mu.Lock()
		closed := s.closed
		s.mu.Unlock()
		if closed {
			return Event{}, ErrClosed
		}
		if s.local = s.Drain(s.local[:0]); len(s.local) > 0 {
			break
		}
		select {
		case <-s.ready:
		case <-ctx.Done():
			return Event{}, ctx.Err()
		}
	}
	ev := s.local[0]
	s.local = s.local[1:]
	return ev, nil
}

// Dropped counts progress events coalesced or dropped for this subscriber.
func (s *Subscription) Dropped() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}

// Close stops delivery and releases the subscription.
func (s *Subscription) Close() {
	s.engine.unsubscribe(s)
	s.mu.Lock()
	s.closed = true
	s.reset()
	s.mu.Unlock()
	s.signal()
}
