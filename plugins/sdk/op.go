package sdk

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/ripcordhq/ripcord/plugins/internal/pluginpb"
)

// Op is one long operation as its implementation sees it. Its methods
// record events; the SDK numbers them (seq 1, 2, 3…), stamps them, and
// sends the completion itself when the implementation returns, so an
// implementation cannot send events after completion or forget it.
//
// Op's methods are safe for concurrent use and return ErrOpFinished once
// the operation completed.
type Op struct {
	// ID is the host's operation id, the idempotency key: the SDK runs
	// the work once per ID however often the host asks.
	ID string
	// Ref is the service and environment the operation is for (backup
	// operations name their set in the request instead).
	Ref Ref
	// Actor is who asked.
	Actor Actor

	rec *opRecord
}

// ErrOpFinished is returned by Op methods after the operation completed.
var ErrOpFinished = errors.New("operation already completed")

// Progress reports how far the operation is (fraction 0..1, negative when
// unknown) with a short message for the screen.
func (o *Op) Progress(fraction float64, message string) error {
	return o.rec.emit(&pb.OperationEvent{Event: &pb.OperationEvent_Progress{
		Progress: &pb.Progress{Fraction: fraction, Message: message},
	}})
}

// Log relays one line of the operation's output.
func (o *Op) Log(stream, text string) error {
	return o.rec.emit(&pb.OperationEvent{Event: &pb.OperationEvent_Log{
		Log: &pb.LogEntry{Stream: stream, Text: text},
	}})
}

// SetExternalRef records the upstream id of the work (a deployment id, a
// job id); every later event carries it so a restarted plugin or console
// can re-attach. Without it the SDK uses a random id per operation.
func (o *Op) SetExternalRef(ref string) {
	o.rec.mu.Lock()
	o.rec.externalRef = ref
	o.rec.mu.Unlock()
}

// opRecord is an operation's event log, kept after completion so the same
// operation id replays instead of running again.
type opRecord struct {
	id string

	mu          sync.Mutex
	events      []*pb.OperationEvent
	externalRef string
	done        bool
	changed     chan struct{} // closed and replaced on every event
	finishedAt  time.Time
}

func (r *opRecord) emit(ev *pb.OperationEvent) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		return ErrOpFinished
	}
	r.appendLocked(ev)
	return nil
}

func (r *opRecord) appendLocked(ev *pb.OperationEvent) {
	ev.OperationId = r.id
	ev.Seq = int64(len(r.events) + 1)
	ev.Time = timestamppb.Now()
	ev.ExternalRef = r.externalRef
	r.events = append(r.events, ev)
	close(r.changed)
	r.changed = make(chan struct{})
}

// complete appends the completion exactly once.
func (r *opRecord) complete(c *pb.Completed) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		return
	}
	r.appendLocked(&pb.OperationEvent{Event: &pb.OperationEvent_Completed{Completed: c}})
	r.done = true
	r.finishedAt = time.Now()
}

// next returns events from index i on, whether the log is complete, and a
// channel closed when more arrive.
func (r *opRecord) next(i int) ([]*pb.OperationEvent, bool, <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.events[i:], r.done, r.changed
}

// operations runs long operations with the protocol's guarantees and
// remembers them by operation id.
type operations struct {
	keep int
	log  hclog.Logger

	mu   sync.Mutex
	byID map[string]*opRecord
	// finished lists finished ids oldest first, for eviction.
	finished []string
}

// newOperations returns a registry that remembers keep finished operations.
func newOperations(keep int, log hclog.Logger) *operations {
	if keep <= 0 {
		keep = 1000
	}
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &operations{keep: keep, log: log, byID: map[string]*opRecord{}}
}

// work is an operation's implementation. result, when non-nil, is called
// after a successful return to fill the completion (backup facts).
type work func(ctx context.Context, op *Op) (result func(*pb.Completed), err error)

// Run starts the operation named by req (or attaches to it, when its id is
// already known) and sends its events to send until completion. The work
// runs under the context of the call that started it: cancelling that call
// cancels the operation. Calls that attach only watch.
func (s *operations) run(ctx context.Context, req *pb.Operation, w work, send func(*pb.OperationEvent) error) error {
	if req.GetId() == "" {
		return status.Error(codes.InvalidArgument, "operation.id is required (the host's idempotency key)")
	}
	rec, started := s.startOrAttach(req.GetId())
	if started {
		op := &Op{ID: req.GetId(), Ref: fromRef(req.GetRef()), Actor: fromActor(req.GetActor()), rec: rec}
		go s.execute(ctx, op, w)
	}
	return s.follow(ctx, rec, send)
}

// attach follows an operation this process knows, or reports false.
func (s *operations) attach(ctx context.Context, id string, send func(*pb.OperationEvent) error) (bool, error) {
	s.mu.Lock()
	rec := s.byID[id]
	s.mu.Unlock()
	if rec == nil {
		return false, nil
	}
	return true, s.follow(ctx, rec, send)
}

func (s *operations) startOrAttach(id string) (*opRecord, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rec, ok := s.byID[id]; ok {
		return rec, false
	}
	rec := &opRecord{id: id, changed: make(chan struct{}), externalRef: "op-" + randomID()}
	s.byID[id] = rec
	return rec, true
}

func (s *operations) execute(ctx context.Context, op *Op, w work) {
	completed := &pb.Completed{}
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("operation panicked", "operation_id", op.ID, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			completed = &pb.Completed{Outcome: pb.Outcome_OUTCOME_FAILED, Error: fmt.Sprintf("provider panicked: %v", p)}
		}
		// Counted as finished before the completion is visible, so a
		// caller that saw it sees the eviction it caused.
		s.remember(op.rec.id)
		op.rec.complete(completed)
	}()
	result, err := w(ctx, op)
	switch {
	case err == nil:
		completed.Outcome = pb.Outcome_OUTCOME_SUCCEEDED
		if result != nil {
			result(completed)
		}
	case ctx.Err() != nil:
		completed.Outcome = pb.Outcome_OUTCOME_CANCELLED
		completed.Error = err.Error()
	default:
		completed.Outcome = pb.Outcome_OUTCOME_FAILED
		completed.Error = err.Error()
	}
}

// remember keeps finished operations for replay, evicting the oldest.
func (s *operations) remember(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.finished = append(s.finished, id)
	for len(s.finished) > s.keep {
		delete(s.byID, s.finished[0])
		s.finished = s.finished[1:]
	}
}

func (s *operations) follow(ctx context.Context, rec *opRecord, send func(*pb.OperationEvent) error) error {
	i := 0
	for {
		evs, done, changed := rec.next(i)
		for _, ev := range evs {
			if err := send(ev); err != nil {
				return err
			}
		}
		i += len(evs)
		if done && len(evs) == 0 {
			return nil
		}
		if done {
			continue // drain once more; next round returns
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
	}
}

func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
