package sdk

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	pb "github.com/ripcordhq/ripcord/plugins/internal/pluginpb"
)

func runAll(t *testing.T, ops *operations, ctx context.Context, id string, w work) []*pb.OperationEvent {
	t.Helper()
	var evs []*pb.OperationEvent
	err := ops.run(ctx, &pb.Operation{Id: id}, w, func(ev *pb.OperationEvent) error {
		evs = append(evs, ev)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func checkContract(t *testing.T, evs []*pb.OperationEvent) *pb.Completed {
	t.Helper()
	for i, ev := range evs {
		if ev.GetSeq() != int64(i+1) {
			t.Fatalf("event %d has seq %d", i, ev.GetSeq())
		}
		if (ev.GetCompleted() != nil) != (i == len(evs)-1) {
			t.Fatalf("completed at %d of %d", i, len(evs))
		}
	}
	return evs[len(evs)-1].GetCompleted()
}

func TestPanickingWorkStillCompletesOnce(t *testing.T) {
	ops := newOperations(10, nil)
	evs := runAll(t, ops, context.Background(), "p", func(ctx context.Context, op *Op) (func(*pb.Completed), error) {
		_ = op.Progress(0.5, "half")
		panic("boom")
	})
	c := checkContract(t, evs)
	if c.GetOutcome() != pb.Outcome_OUTCOME_FAILED || c.GetError() != "provider panicked: boom" {
		t.Fatalf("completion = %v", c)
	}
}

func TestEventsAfterCompletionAreRefused(t *testing.T) {
	ops := newOperations(10, nil)
	var kept *Op
	evs := runAll(t, ops, context.Background(), "late", func(ctx context.Context, op *Op) (func(*pb.Completed), error) {
		kept = op
		return nil, nil
	})
	checkContract(t, evs)
	if err := kept.Progress(1, "late"); !errors.Is(err, ErrOpFinished) {
		t.Fatalf("Progress after completion = %v", err)
	}
}

func TestSameIDRunsOnceAndReplays(t *testing.T) {
	ops := newOperations(10, nil)
	var runs atomic.Int32
	work := func(ctx context.Context, op *Op) (func(*pb.Completed), error) {
		runs.Add(1)
		return nil, op.Log("stdout", "did it")
	}
	a := runAll(t, ops, context.Background(), "same", work)
	b := runAll(t, ops, context.Background(), "same", work)
	if runs.Load() != 1 || len(a) != len(b) || a[len(a)-1].GetExternalRef() != b[len(b)-1].GetExternalRef() {
		t.Fatalf("runs=%d, events %d vs %d", runs.Load(), len(a), len(b))
	}
	runAll(t, ops, context.Background(), "other", work)
	if runs.Load() != 2 {
		t.Fatalf("a new id did not run: runs=%d", runs.Load())
	}
}

func TestCancellingTheStarterCancelsTheWork(t *testing.T) {
	ops := newOperations(10, nil)
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	go func() {
		<-started
		cancel()
	}()
	err := ops.run(ctx, &pb.Operation{Id: "c"}, func(ctx context.Context, op *Op) (func(*pb.Completed), error) {
		close(started)
		<-ctx.Done()
		return nil, ctx.Err()
	}, func(*pb.OperationEvent) error { return nil })
	if err == nil {
		t.Fatal("the cancelled call returned no error")
	}
	attach, stop := context.WithTimeout(context.Background(), 5*time.Second)
	defer stop()
	evs := runAll(t, ops, attach, "c", nil)
	if c := checkContract(t, evs); c.GetOutcome() != pb.Outcome_OUTCOME_CANCELLED {
		t.Fatalf("outcome = %v", c.GetOutcome())
	}
}

func TestOldOperationsAreForgotten(t *testing.T) {
	ops := newOperations(2, nil)
	var runs atomic.Int32
	work := func(ctx context.Context, op *Op) (func(*pb.Completed), error) { runs.Add(1); return nil, nil }
	for _, id := range []string{"a", "b", "c", "a"} {
		runAll(t, ops, context.Background(), id, work)
	}
	if runs.Load() != 4 {
		t.Fatalf("runs = %d; the evicted id a should run again", runs.Load())
	}
}

func TestEmptyOperationIDIsRejected(t *testing.T) {
	err := newOperations(1, nil).run(context.Background(), &pb.Operation{}, nil, nil)
	if err == nil {
		t.Fatal("empty id accepted")
	}
}
