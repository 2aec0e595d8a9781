package host

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync/atomic"
	"time"

	"github.com/ripcordhq/ripcord/core"
	pbconv "github.com/ripcordhq/ripcord/plugins/internal/convert"
	pb "github.com/ripcordhq/ripcord/plugins/internal/pluginpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Target returns the named plugin as a core.Target.
func (h *Host) Target(name string) (core.Target, error) {
	m, err := h.kind(name, pb.Kind_KIND_DEPLOY_TARGET)
	if err != nil {
		return nil, err
	}
	return &TargetAdapter{m: m}, nil
}

// Pipeline returns the named plugin as a core.PipelineSource.
func (h *Host) Pipeline(name string) (core.PipelineSource, error) {
	m, err := h.kind(name, pb.Kind_KIND_PIPELINE_SOURCE)
	if err != nil {
		return nil, err
	}
	return &pipelineAdapter{m: m}, nil
}

// Errors returns the named plugin as a core.ErrorSource.
func (h *Host) Errors(name string) (core.ErrorSource, error) {
	m, err := h.kind(name, pb.Kind_KIND_ERROR_SOURCE)
	if err != nil {
		return nil, err
	}
	return &errorsAdapter{m: m}, nil
}

// Backup returns the named plugin as a core.BackupSource.
func (h *Host) Backup(name string) (core.BackupSource, error) {
	m, err := h.kind(name, pb.Kind_KIND_BACKUP_SOURCE)
	if err != nil {
		return nil, err
	}
	return &BackupAdapter{m: m}, nil
}

// kind checks the plugin declared the kind (known once it has started).
func (h *Host) kind(name string, k pb.Kind) (*managed, error) {
	m, err := h.get(name)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	info, refused := m.info, m.refused
	m.mu.Unlock()
	if refused != nil {
		return nil, refused
	}
	if info == nil {
		return nil, fmt.Errorf("plugin %q has not started; its kinds are unknown", name)
	}
	if !slices.Contains(info.GetKinds(), k) {
		return nil, fmt.Errorf("plugin %q is not a %s provider", name, k)
	}
	return m, nil
}

// callError wraps an RPC error with the plugin and the call.
func (m *managed) callError(call string, err error) error {
	if st, ok := status.FromError(err); ok && st.Code() != codes.OK {
		// The message is the plugin's own text.
		return fmt.Errorf("plugin %q: %s: %w", m.name, call, status.Error(st.Code(), m.h.text(st.Message())))
	}
	return fmt.Errorf("plugin %q: %s: %w", m.name, call, err)
}

// gone reports whether err means the plugin process went away. Callers
// check their own context first: with it still live, Canceled means the
// supervisor closed the dead process's connection ("the client connection
// is closing") before the stream saw Unavailable.
func gone(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.Canceled:
		return true
	}
	return false
}

// unary runs an idempotent call, once more on a restarted process when the
// first one died under it.
func unary[T any](ctx context.Context, m *managed, call string, retry bool, fn func(context.Context, *grpc.ClientConn) (T, error)) (T, error) {
	var zero T
	var out T
	// The status deadline bounds the call unless the caller's own is
	// sooner; passing it cancels the call through the protocol.
	within := m.h.opts.Deadlines.Status
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < within {
		within = 0
	}
	var used *live
	err := core.WithDeadline(ctx, call, m.name, within, func(ctx context.Context) error {
		l, err := m.current(ctx, 0)
		if err != nil {
			return err
		}
		out, err = fn(ctx, l.conn)
		if err != nil && retry && gone(err) && ctx.Err() == nil {
			if l2, err2 := m.current(ctx, l.gen); err2 == nil {
				l = l2
				out, err = fn(ctx, l.conn)
			}
		}
		if err == nil {
			used = l
		}
		return err
	})
	var late *core.DeadlineError
	if errors.As(err, &late) {
		m.callLate(call, late)
		return zero, err
	}
	if used != nil {
		m.callAnswered(ctx, call, used)
	}
	if err != nil {
		return zero, m.callError(call, err)
	}
	return out, nil
}

// watch opens a stream and calls fn for each message until ctx ends or the
// stream fails.
func watch[T any](ctx context.Context, m *managed, call string, open func(context.Context, *grpc.ClientConn) (grpc.ServerStreamingClient[T], error), fn func(*T)) error {
	l, err := m.current(ctx, 0)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stream, err := open(ctx, l.conn)
	if err != nil {
		return m.callError(call, err)
	}
	beat := m.stallWatch(ctx, func() *live { return l }, call, func(why error) { cancel(why) })
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			if cause := context.Cause(ctx); ctx.Err() != nil && cause != ctx.Err() {
				return m.callError(call, cause) // stalled: the caller reconnects
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return m.callError(call, err)
		}
		beat()
		fn(msg)
	}
}

// stallWatch watches a stream for silence: each call to the returned beat
// marks a message. After Stall without one it checks the plugin still
// answers; when it does not, stalled is called with why (once).
func (m *managed) stallWatch(ctx context.Context, l func() *live, call string, stalled func(error)) (beat func()) {
	stall := m.h.opts.Deadlines.Stall
	last := make(chan struct{}, 1)
	go func() {
		t := time.NewTimer(stall)
		defer t.Stop()
		since := time.Now()
		for {
			select {
			case <-ctx.Done():
				return
			case <-last:
				since = time.Now()
				if !t.Stop() {
					select {
					case <-t.C:
					default:
					}
				}
				t.Reset(stall)
				continue
			case <-t.C:
			}
			if err := m.answers(ctx, l(), call, time.Since(since)); err != nil {
				if ctx.Err() == nil {
					stalled(err)
				}
				return
			}
			t.Reset(stall)
		}
	}()
	return func() {
		select {
		case last <- struct{}{}:
		default:
		}
	}
}

// eventStream is any of the operation streams.
type eventStream interface {
	Recv() (*pb.OperationEvent, error)
}

type eventMsg[T any] interface {
	*T
	GetEvent() *pb.OperationEvent
}

type streamOf[T any, PT eventMsg[T]] struct {
	s grpc.ServerStreamingClient[T]
}

func (s streamOf[T, PT]) Recv() (*pb.OperationEvent, error) {
	msg, err := s.s.Recv()
	if err != nil {
		return nil, err
	}
	return PT(msg).GetEvent(), nil
}

func events[T any, PT eventMsg[T]](s grpc.ServerStreamingClient[T], err error) (eventStream, error) {
	if err != nil {
		return nil, err
	}
	return streamOf[T, PT]{s}, nil
}

// OpFailedError is returned when an operation completed without success.
type OpFailedError struct {
	Plugin, Call, OperationID, Reason string
}

func (e *OpFailedError) Error() string {
	return fmt.Sprintf("plugin %q: %s (operation %s): %s", e.Plugin, e.Call, e.OperationID, e.Reason)
}

// runOp follows an operation stream, forwarding events to fn with the
// adapter's own strictly increasing seq, and guarantees fn sees exactly
// one Done, last. When the plugin dies mid-stream and reattach is given,
// it waits for the restarted process and re-attaches by operation id and
// external ref. The returned completion is nil unless it succeeded.
func (m *managed) runOp(ctx context.Context, call, opID string, open func(context.Context, *grpc.ClientConn) (eventStream, error),
	reattach func(context.Context, *grpc.ClientConn, string) (eventStream, error), fn func(core.OpEvent)) (*pb.Completed, error) {
	var seq int64
	var externalRef string
	emit := func(ev core.OpEvent) {
		seq++
		ev.Seq = seq
		if ev.ExternalRef == "" {
			ev.ExternalRef = externalRef
		}
		if fn != nil {
			fn(ev)
		}
	}
	finish := func(err error) (*pb.Completed, error) {
		emit(core.OpEvent{Time: time.Now(), Done: true, Err: err.Error()})
		return nil, err
	}
	l, err := m.current(ctx, 0)
	if err != nil {
		return finish(err)
	}
	// A silent operation gets its plugin's health checked; one that does
	// not answer is said so in the log and the plugin's health (the
	// operation's own deadline ends it).
	var cur atomic.Pointer[live]
	cur.Store(l)
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	beat := m.stallWatch(watchCtx, cur.Load, call, func(why error) {
		m.h.logf(m.name, "%s (operation %s): %v", call, opID, why)
	})
	stream, err := open(ctx, l.conn)
	for reattaches := 0; ; {
		if err != nil {
			return finish(m.callError(call, err))
		}
		ev, rerr := stream.Recv()
		if rerr == nil {
			beat()
			if ev.GetExternalRef() != "" {
				externalRef = ev.GetExternalRef()
			}
			out := m.h.scrubEvent(pbconv.OpEvent(ev))
			emit(out)
			if c := ev.GetCompleted(); c != nil {
				if c.GetOutcome() != pb.Outcome_OUTCOME_SUCCEEDED {
					return nil, &OpFailedError{Plugin: m.name, Call: call, OperationID: opID, Reason: out.Err}
				}
				return c, nil
			}
			continue
		}
		if ctx.Err() != nil {
			return finish(fmt.Errorf("plugin %q: %s (operation %s): %w", m.name, call, opID, ctx.Err()))
		}
		if errors.Is(rerr, io.EOF) {
			return finish(fmt.Errorf("plugin %q: %s (operation %s): stream ended without completion; outcome unknown", m.name, call, opID))
		}
		if !gone(rerr) || reattach == nil || reattaches >= 3 {
			return finish(m.callError(call, rerr))
		}
		reattaches++
		m.h.logf(m.name, "%s (operation %s) lost its plugin process; re-attaching (external ref %q)", call, opID, externalRef)
		if l, err = m.current(ctx, l.gen); err != nil {
			return finish(fmt.Errorf("plugin %q: %s (operation %s): re-attach: %w", m.name, call, opID, err))
		}
		cur.Store(l)
		stream, err = reattach(ctx, l.conn, externalRef)
	}
}

func newOpID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "op-" + hex.EncodeToString(b[:])
}

// TargetAdapter is a deploy target plugin as a core.Target.
type TargetAdapter struct{ m *managed }

func (t *TargetAdapter) Status(ctx context.Context, ref core.Ref) (core.TargetStatus, error) {
	resp, err := unary(ctx, t.m, "Status", true, func(ctx context.Context, c *grpc.ClientConn) (*pb.StatusResponse, error) {
		return pb.NewDeployTargetServiceClient(c).Status(ctx, &pb.StatusRequest{Ref: pbconv.Ref(ref)})
	})
	if err != nil {
		return core.TargetStatus{}, err
	}
	return t.m.h.scrubStatus(pbconv.FromTargetStatus(resp.GetStatus())), nil
}

func (t *TargetAdapter) WatchStatus(ctx context.Context, ref core.Ref, fn func(core.TargetStatus)) error {
	return watch(ctx, t.m, "WatchStatus", func(ctx context.Context, c *grpc.ClientConn) (grpc.ServerStreamingClient[pb.WatchStatusResponse], error) {
		return pb.NewDeployTargetServiceClient(c).WatchStatus(ctx, &pb.WatchStatusRequest{Ref: pbconv.Ref(ref)})
	}, func(r *pb.WatchStatusResponse) { fn(t.m.h.scrubStatus(pbconv.FromTargetStatus(r.GetStatus()))) })
}

func (t *TargetAdapter) reattach(op core.OpRequest) func(context.Context, *grpc.ClientConn, string) (eventStream, error) {
	return func(ctx context.Context, c *grpc.ClientConn, ref string) (eventStream, error) {
		return events(pb.NewDeployTargetServiceClient(c).WatchOperation(ctx, &pb.WatchOperationRequest{Operation: pbconv.Operation(op), ExternalRef: ref}))
	}
}

func (t *TargetAdapter) Deploy(ctx context.Context, op core.OpRequest, rel core.Release, weight int, fn func(core.OpEvent)) error {
	_, err := t.m.runOp(ctx, "Deploy", op.ID, func(ctx context.Context, c *grpc.ClientConn) (eventStream, error) {
		return events(pb.NewDeployTargetServiceClient(c).Deploy(ctx, &pb.DeployRequest{Operation: pbconv.Operation(op), Release: pbconv.Release(rel), Weight: int32(weight)}))
	}, t.reattach(op), fn)
	return err
}

func (t *TargetAdapter) SetWeight(ctx context.Context, op core.OpRequest, weight int, fn func(core.OpEvent)) error {
	_, err := t.m.runOp(ctx, "SetWeight", op.ID, func(ctx context.Context, c *grpc.ClientConn) (eventStream, error) {
		return events(pb.NewDeployTargetServiceClient(c).SetWeight(ctx, &pb.SetWeightRequest{Operation: pbconv.Operation(op), Weight: int32(weight)}))
	}, t.reattach(op), fn)
	return err
}

func (t *TargetAdapter) Rollback(ctx context.Context, op core.OpRequest, toVersion string, fn func(core.OpEvent)) error {
	_, err := t.m.runOp(ctx, "Rollback", op.ID, func(ctx context.Context, c *grpc.ClientConn) (eventStream, error) {
		return events(pb.NewDeployTargetServiceClient(c).Rollback(ctx, &pb.RollbackRequest{Operation: pbconv.Operation(op), ToVersion: toVersion}))
	}, t.reattach(op), fn)
	return err
}

func (t *TargetAdapter) WatchOperation(ctx context.Context, op core.OpRequest, externalRef string, fn func(core.OpEvent)) error {
	_, err := t.m.runOp(ctx, "WatchOperation", op.ID, func(ctx context.Context, c *grpc.ClientConn) (eventStream, error) {
		return t.reattach(op)(ctx, c, externalRef)
	}, t.reattach(op), fn)
	return err
}

type pipelineAdapter struct{ m *managed }

func (p *pipelineAdapter) Runs(ctx context.Context, service string, limit int) ([]core.PipelineRun, error) {
	resp, err := unary(ctx, p.m, "ListRuns", true, func(ctx context.Context, c *grpc.ClientConn) (*pb.ListRunsResponse, error) {
		return pb.NewPipelineSourceServiceClient(c).ListRuns(ctx, &pb.ListRunsRequest{Service: service, Limit: int32(limit)})
	})
	if err != nil {
		return nil, err
	}
	var out []core.PipelineRun
	for _, r := range resp.GetRuns() {
		out = append(out, p.m.h.scrubRun(pbconv.FromPipelineRun(r)))
	}
	return out, nil
}

func (p *pipelineAdapter) WatchRuns(ctx context.Context, service string, fn func(core.PipelineRun)) error {
	return watch(ctx, p.m, "WatchRuns", func(ctx context.Context, c *grpc.ClientConn) (grpc.ServerStreamingClient[pb.WatchRunsResponse], error) {
		return pb.NewPipelineSourceServiceClient(c).WatchRuns(ctx, &pb.WatchRunsRequest{Service: service})
	}, func(r *pb.WatchRunsResponse) { fn(p.m.h.scrubRun(pbconv.FromPipelineRun(r.GetRun()))) })
}

func (p *pipelineAdapter) Logs(ctx context.Context, runID, step string, follow bool, fn func(core.LogLine)) error {
	return watch(ctx, p.m, "StreamLogs", func(ctx context.Context, c *grpc.ClientConn) (grpc.ServerStreamingClient[pb.StreamLogsResponse], error) {
		return pb.NewPipelineSourceServiceClient(c).StreamLogs(ctx, &pb.StreamLogsRequest{RunId: runID, Step: step, Follow: follow})
	}, func(r *pb.StreamLogsResponse) { fn(p.m.h.scrubLine(pbconv.FromLogLine(r.GetLine()))) })
}

func (p *pipelineAdapter) Trigger(ctx context.Context, service, version, fromStage string) (string, error) {
	resp, err := unary(ctx, p.m, "Trigger", false, func(ctx context.Context, c *grpc.ClientConn) (*pb.TriggerResponse, error) {
		return pb.NewPipelineSourceServiceClient(c).Trigger(ctx, &pb.TriggerRequest{Service: service, Version: version, FromStage: fromStage})
	})
	if err != nil {
		return "", err
	}
	return resp.GetRunId(), nil
}

func (p *pipelineAdapter) Cancel(ctx context.Context, runID string) error {
	_, err := unary(ctx, p.m, "Cancel", true, func(ctx context.Context, c *grpc.ClientConn) (*pb.CancelResponse, error) {
		return pb.NewPipelineSourceServiceClient(c).Cancel(ctx, &pb.CancelRequest{RunId: runID})
	})
	return err
}

type errorsAdapter struct{ m *managed }

func (e *errorsAdapter) WatchCounts(ctx context.Context, ref core.Ref, fn func(core.ErrorWindow)) error {
	return watch(ctx, e.m, "WatchCounts", func(ctx context.Context, c *grpc.ClientConn) (grpc.ServerStreamingClient[pb.WatchCountsResponse], error) {
		return pb.NewErrorSourceServiceClient(c).WatchCounts(ctx, &pb.WatchCountsRequest{Ref: pbconv.Ref(ref)})
	}, func(r *pb.WatchCountsResponse) { fn(e.m.h.scrubWindow(pbconv.FromErrorWindow(r.GetWindow()))) })
}

func (e *errorsAdapter) Issues(ctx context.Context, ref core.Ref, release string) ([]core.ErrorIssue, error) {
	resp, err := unary(ctx, e.m, "ListIssues", true, func(ctx context.Context, c *grpc.ClientConn) (*pb.ListIssuesResponse, error) {
		return pb.NewErrorSourceServiceClient(c).ListIssues(ctx, &pb.ListIssuesRequest{Ref: pbconv.Ref(ref), Release: release})
	})
	if err != nil {
		return nil, err
	}
	var out []core.ErrorIssue
	for _, i := range resp.GetIssues() {
		out = append(out, e.m.h.scrubIssue(pbconv.FromErrorIssue(i)))
	}
	return out, nil
}

// MarkDeploy records a deploy marker; a source without deploy markers
// (it does not announce the capability) has nothing to record.
func (e *errorsAdapter) MarkDeploy(ctx context.Context, ref core.Ref, release string) error {
	_, err := unary(ctx, e.m, "MarkDeploy", false, func(ctx context.Context, c *grpc.ClientConn) (*pb.MarkDeployResponse, error) {
		return pb.NewErrorSourceServiceClient(c).MarkDeploy(ctx, &pb.MarkDeployRequest{Ref: pbconv.Ref(ref), Release: release})
	})
	if status.Code(err) == codes.Unimplemented {
		return nil
	}
	return err
}

// BackupAdapter is a backup source plugin as a core.BackupSource. Backup operations are not re-attached after a plugin crash: the
// protocol has no WatchOperation for them, and re-running a backup is the
// caller's decision.
type BackupAdapter struct{ m *managed }

func (b *BackupAdapter) WatchFreshness(ctx context.Context, fn func(core.BackupFacts)) error {
	return watch(ctx, b.m, "WatchFreshness", func(ctx context.Context, c *grpc.ClientConn) (grpc.ServerStreamingClient[pb.WatchFreshnessResponse], error) {
		return pb.NewBackupSourceServiceClient(c).WatchFreshness(ctx, &pb.WatchFreshnessRequest{})
	}, func(r *pb.WatchFreshnessResponse) { fn(b.m.h.scrubFacts(pbconv.FromBackupFacts(r.GetFacts()))) })
}

// Verify runs the set's integrity check and returns its facts afterwards.
func (b *BackupAdapter) Verify(ctx context.Context, set string) (core.BackupFacts, error) {
	return b.VerifyOp(ctx, core.OpRequest{ID: newOpID()}, set, nil)
}

// VerifyOp is Verify with the caller's operation id and progress events.
func (b *BackupAdapter) VerifyOp(ctx context.Context, op core.OpRequest, set string, fn func(core.OpEvent)) (core.BackupFacts, error) {
	var c *pb.Completed
	err := core.WithDeadline(ctx, "verify of "+set, b.m.name, b.m.h.opts.Deadlines.Backup, func(ctx context.Context) error {
		var err error
		c, err = b.m.runOp(ctx, "Verify", op.ID, func(ctx context.Context, c *grpc.ClientConn) (eventStream, error) {
			return events(pb.NewBackupSourceServiceClient(c).Verify(ctx, &pb.VerifyRequest{Operation: pbconv.Operation(op), Set: set}))
		}, nil, fn)
		return err
	})
	if err != nil {
		return core.BackupFacts{}, err
	}
	return b.m.h.scrubFacts(pbconv.FromBackupFacts(c.GetBackupFacts())), nil
}

func (b *BackupAdapter) RunNow(ctx context.Context, set string) error {
	return b.RunBackupOp(ctx, core.OpRequest{ID: newOpID()}, set, nil)
}

// RunBackupOp is RunNow with the caller's operation id and progress events.
func (b *BackupAdapter) RunBackupOp(ctx context.Context, op core.OpRequest, set string, fn func(core.OpEvent)) error {
	return core.WithDeadline(ctx, "backup of "+set, b.m.name, b.m.h.opts.Deadlines.Backup, func(ctx context.Context) error {
		_, err := b.m.runOp(ctx, "RunBackup", op.ID, func(ctx context.Context, c *grpc.ClientConn) (eventStream, error) {
			return events(pb.NewBackupSourceServiceClient(c).RunBackup(ctx, &pb.RunBackupRequest{Operation: pbconv.Operation(op), Set: set}))
		}, nil, fn)
		return err
	})
}
