// Command exampleplugin is a test provider built only on plugins/sdk. It
// serves all four kinds from memory so the host's adapters, the fault
// tests and the conformance kit run against a real subprocess.
//
// EXAMPLE_MODE selects a misbehaviour for the fault tests:
//
//	stdout-before-handshake  prints to stdout before serving
//	exit-in-handshake        exits before the handshake line
//	hang-in-handshake        never writes the handshake line
//
// Settings: step_delay (duration, default 20ms) and steps (default 5) pace
// long operations; limits.max_weight (0..100) bounds weights.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ripcordhq/ripcord/plugins/sdk"
)

const schema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "step_delay": {"type": "string", "description": "Pause between steps of an operation (Go duration)."},
    "steps": {"type": "integer", "minimum": 1},
    "limits": {
      "type": "object",
      "properties": {"max_weight": {"type": "integer", "minimum": 0, "maximum": 100}}
    }
  }
}`

type settings struct {
	StepDelay string `json:"step_delay"`
	Steps     int    `json:"steps"`
	Limits    struct {
		MaxWeight *int `json:"max_weight"`
	} `json:"limits"`
}

type example struct {
	mu        sync.Mutex
	delay     time.Duration
	steps     int
	maxWeight int
	status    map[sdk.Ref]sdk.TargetStatus
	changed   chan struct{}
	runs      atomic.Int64 // operations actually executed
}

func newExample() *example {
	return &example{delay: 20 * time.Millisecond, steps: 5, maxWeight: 100,
		status: map[sdk.Ref]sdk.TargetStatus{}, changed: make(chan struct{})}
}

func (e *example) Configure(_ context.Context, req sdk.ConfigureRequest) error {
	var s settings
	dec := json.NewDecoder(strings.NewReader(string(req.Settings)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return sdk.SettingError{Path: "", Message: err.Error()}
	}
	var errs sdk.SettingErrors
	delay := 20 * time.Millisecond
	if s.StepDelay != "" {
		d, err := time.ParseDuration(s.StepDelay)
		if err != nil || d < 0 {
			errs = append(errs, sdk.SettingError{Path: "step_delay", Message: fmt.Sprintf("%q is not a duration", s.StepDelay)})
		}
		delay = d
	}
	steps := 5
	if s.Steps != 0 {
		if s.Steps < 1 {
			errs = append(errs, sdk.SettingError{Path: "steps", Message: "must be at least 1"})
		}
		steps = s.Steps
	}
	maxWeight := 100
	if s.Limits.MaxWeight != nil {
		if w := *s.Limits.MaxWeight; w < 0 || w > 100 {
			errs = append(errs, sdk.SettingError{Path: "limits.max_weight", Message: fmt.Sprintf("%d is outside 0..100", w)})
		}
		maxWeight = *s.Limits.MaxWeight
	}
	if len(errs) > 0 {
		return errs
	}
	e.mu.Lock()
	e.delay, e.steps, e.maxWeight = delay, steps, maxWeight
	e.mu.Unlock()
	return nil
}

func (e *example) CheckHealth(context.Context) error { return nil }

func (e *example) pace() (time.Duration, int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.delay, e.steps
}

// work runs the configured number of steps, honouring cancellation.
func (e *example) work(ctx context.Context, op *sdk.Op, what string) error {
	n := e.runs.Add(1)
	op.SetExternalRef(fmt.Sprintf("%s-%d-%d", what, os.Getpid(), n))
	delay, steps := e.pace()
	for i := 1; i <= steps; i++ {
		if err := op.Progress(float64(i-1)/float64(steps), fmt.Sprintf("%s step %d/%d", what, i, steps)); err != nil {
			return err
		}
		_ = op.Log("stdout", fmt.Sprintf("%s: step %d", what, i))
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return op.Progress(1, what+" done")
}

func (e *example) update(ref sdk.Ref, fn func(*sdk.TargetStatus)) {
	e.mu.Lock()
	st := e.status[ref]
	fn(&st)
	e.status[ref] = st
	close(e.changed)
	e.changed = make(chan struct{})
	e.mu.Unlock()
}

func (e *example) Status(_ context.Context, req sdk.StatusRequest) (sdk.TargetStatus, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.status[req.Ref], nil
}

func (e *example) WatchStatus(ctx context.Context, req sdk.WatchStatusRequest, send func(sdk.TargetStatus) error) error {
	for {
		e.mu.Lock()
		st, ch := e.status[req.Ref], e.changed
		e.mu.Unlock()
		if err := send(st); err != nil {
			return err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil
		}
	}
}

func (e *example) checkWeight(w int) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if w < 0 || w > e.maxWeight {
		return fmt.Errorf("weight %d is outside 0..%d", w, e.maxWeight)
	}
	return nil
}

func (e *example) Deploy(ctx context.Context, op *sdk.Op, req sdk.DeployRequest) error {
	if err := e.checkWeight(req.Weight); err != nil {
		return err
	}
	if err := e.work(ctx, op, "deploy"); err != nil {
		return err
	}
	e.update(op.Ref, func(st *sdk.TargetStatus) {
		// Every installed release is kept, newest first, for rollback.
		st.Kept = append([]string{req.Release.Version}, slices.DeleteFunc(st.Kept, func(v string) bool { return v == req.Release.Version })...)
		if req.Weight >= 100 {
			st.Current, st.Candidate, st.Weight = req.Release.Version, "", 0
		} else {
			st.Candidate, st.Weight = req.Release.Version, req.Weight
		}
		st.Healthy = true
	})
	return nil
}

func (e *example) SetWeight(ctx context.Context, op *sdk.Op, req sdk.SetWeightRequest) error {
	if err := e.checkWeight(req.Weight); err != nil {
		return err
	}
	if err := e.work(ctx, op, "weight"); err != nil {
		return err
	}
	e.update(op.Ref, func(st *sdk.TargetStatus) {
		switch req.Weight {
		case 100: // the candidate becomes current
			if st.Candidate != "" {
				st.Current, st.Candidate = st.Candidate, ""
			}
			st.Weight = 0
		case 0: // abort: traffic back on current, the candidate kept
			st.Weight = 0
		default:
			st.Weight = req.Weight
		}
	})
	return nil
}

func (e *example) Rollback(ctx context.Context, op *sdk.Op, req sdk.RollbackRequest) error {
	if err := e.work(ctx, op, "rollback"); err != nil {
		return err
	}
	e.update(op.Ref, func(st *sdk.TargetStatus) { st.Current, st.Candidate, st.Weight = req.ToVersion, "", 0 })
	return nil
}

// Reattach follows an operation a previous process started: the example
// keeps no upstream, so it reports the ref and succeeds.
func (e *example) Reattach(_ context.Context, op *sdk.Op, req sdk.ReattachRequest) error {
	return op.Progress(1, "re-attached to "+req.ExternalRef)
}

// Pipeline source.

func (e *example) Runs(_ context.Context, req sdk.RunsRequest) ([]sdk.PipelineRun, error) {
	return []sdk.PipelineRun{{ID: "run-1", Service: req.Service, Version: "v1.0.0", State: sdk.RunSucceeded, StartedAt: time.Now().Add(-time.Minute),
		Stages: []sdk.Stage{{Name: "build", State: sdk.RunSucceeded, Steps: []sdk.Step{{Name: "make", State: sdk.RunSucceeded}}}}}}, nil
}

func (e *example) WatchRuns(ctx context.Context, req sdk.WatchRunsRequest, send func(sdk.PipelineRun) error) error {
	runs, _ := e.Runs(ctx, sdk.RunsRequest{Service: req.Service, Limit: 1})
	if err := send(runs[0]); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

// Logs sends count lines for run id "lines-COUNT", three otherwise.
func (e *example) Logs(ctx context.Context, req sdk.LogsRequest, send func(sdk.LogLine) error) error {
	count := 3
	if n, ok := strings.CutPrefix(req.RunID, "lines-"); ok {
		count, _ = strconv.Atoi(n)
	}
	now := time.Now()
	for i := range count {
		if err := send(sdk.LogLine{Time: now, Stream: "stdout", Text: "line " + strconv.Itoa(i)}); err != nil {
			return err
		}
	}
	if req.Follow {
		<-ctx.Done()
	}
	return nil
}

func (e *example) Trigger(_ context.Context, req sdk.TriggerRequest) (string, error) {
	return fmt.Sprintf("run-%s-%s", req.Service, req.Version), nil
}

func (e *example) Cancel(context.Context, string) error { return nil }

// Error source.

func (e *example) WatchCounts(ctx context.Context, req sdk.WatchCountsRequest, send func(sdk.ErrorWindow) error) error {
	if err := send(sdk.ErrorWindow{Release: "v1.0.0", Buckets: []sdk.ErrorBucket{{Start: time.Now().Truncate(10 * time.Second), Count: 3}}}); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

func (e *example) Issues(_ context.Context, req sdk.IssuesRequest) ([]sdk.ErrorIssue, error) {
	return []sdk.ErrorIssue{{Fingerprint: "f1", Title: "TypeError: cart is undefined", Count: 3, FirstRelease: req.Release}}, nil
}

func (e *example) MarkDeploy(context.Context, sdk.MarkDeployRequest) error { return nil }

// Backup source.

func (e *example) facts(set string) sdk.BackupFacts {
	now := time.Now()
	return sdk.BackupFacts{Set: set, Tool: "example", LastStart: now.Add(-time.Hour), LastEnd: now.Add(-59 * time.Minute),
		AttemptOK: true, VerifyOK: true, VerifiedAt: now, ReportedAt: now, CanRunNow: true}
}

func (e *example) WatchFreshness(ctx context.Context, _ sdk.WatchFreshnessRequest, send func(sdk.BackupFacts) error) error {
	if err := send(e.facts("db")); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

func (e *example) Verify(ctx context.Context, op *sdk.Op, req sdk.VerifyRequest) (sdk.BackupFacts, error) {
	if req.Set != "db" {
		return sdk.BackupFacts{}, errors.New("unknown backup set " + strconv.Quote(req.Set))
	}
	if err := e.work(ctx, op, "verify"); err != nil {
		return sdk.BackupFacts{}, err
	}
	return e.facts(req.Set), nil
}

func (e *example) RunBackup(ctx context.Context, op *sdk.Op, req sdk.RunBackupRequest) error {
	if req.Set != "db" {
		return errors.New("unknown backup set " + strconv.Quote(req.Set))
	}
	return e.work(ctx, op, "backup")
}

func main() {
	switch os.Getenv("EXAMPLE_MODE") {
	case "stdout-before-handshake":
		fmt.Println("hello from a library's init")
	case "exit-in-handshake":
		fmt.Fprintln(os.Stderr, "example: giving up before the handshake")
		os.Exit(3)
	case "hang-in-handshake":
		time.Sleep(time.Hour) // a bare select{} would be reported as a deadlock
	}
	e := newExample()
	sdk.Serve(sdk.ServeConfig{
		Info:     sdk.Info{Name: "example", Version: "0.1.0", ConfigSchema: json.RawMessage(schema)},
		Provider: e, Target: e, Pipeline: e, Errors: e, Backup: e,
	})
}
