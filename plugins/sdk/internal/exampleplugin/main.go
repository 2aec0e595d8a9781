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
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ripcordhq/ripcord/core"
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
	status    map[core.Ref]core.TargetStatus
	releases  map[core.Ref][]core.Release
	changed   chan struct{}
	runs      atomic.Int64 // operations actually executed
}

func newExample() *example {
	return &example{delay: 20 * time.Millisecond, steps: 5, maxWeight: 100,
		status: map[core.Ref]core.TargetStatus{}, releases: map[core.Ref][]core.Release{}, changed: make(chan struct{})}
}

func (e *example) Configure(_ context.Context, raw json.RawMessage, _ map[string]string) error {
	var s settings
	dec := json.NewDecoder(strings.NewReader(string(raw)))
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

func (e *example) update(ref core.Ref, fn func(*core.TargetStatus)) {
	e.mu.Lock()
	st := e.status[ref]
	st.Ref = ref
	fn(&st)
	e.status[ref] = st
	close(e.changed)
	e.changed = make(chan struct{})
	e.mu.Unlock()
}

func (e *example) Status(_ context.Context, ref core.Ref) (core.TargetStatus, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.status[ref]
	st.Ref = ref
	return st, nil
}

func (e *example) WatchStatus(ctx context.Context, ref core.Ref, send func(core.TargetStatus) error) error {
	for {
		e.mu.Lock()
		st, ch := e.status[ref], e.changed
		e.mu.Unlock()
		st.Ref = ref
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

func (e *example) Releases(_ context.Context, ref core.Ref, limit int) ([]core.Release, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	rels := e.releases[ref]
	if limit > 0 && len(rels) > limit {
		rels = rels[len(rels)-limit:]
	}
	return append([]core.Release(nil), rels...), nil
}

func (e *example) Plan(_ context.Context, ref core.Ref, rel core.Release, weight int) ([]string, error) {
	return []string{fmt.Sprintf("install %s %s into %s at %d%%", rel.Service, rel.Version, ref, weight)}, nil
}

func (e *example) checkWeight(w int) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if w < 0 || w > e.maxWeight {
		return fmt.Errorf("weight %d is outside 0..%d", w, e.maxWeight)
	}
	return nil
}

func (e *example) Deploy(ctx context.Context, op *sdk.Op, rel core.Release, weight int) error {
	if err := e.checkWeight(weight); err != nil {
		return err
	}
	if err := e.work(ctx, op, "deploy"); err != nil {
		return err
	}
	ref := op.Request.Ref
	e.mu.Lock()
	e.releases[ref] = append(e.releases[ref], rel)
	e.mu.Unlock()
	e.update(ref, func(st *core.TargetStatus) {
		if weight >= 100 {
			st.Current, st.Candidate, st.Weight = rel.Version, "", 0
		} else {
			st.Candidate, st.Weight = rel.Version, weight
		}
		st.Healthy = true
	})
	return nil
}

func (e *example) SetWeight(ctx context.Context, op *sdk.Op, weight int) error {
	if err := e.checkWeight(weight); err != nil {
		return err
	}
	if err := e.work(ctx, op, "weight"); err != nil {
		return err
	}
	e.update(op.Request.Ref, func(st *core.TargetStatus) { st.Weight = weight })
	return nil
}

func (e *example) Rollback(ctx context.Context, op *sdk.Op, to string) error {
	if err := e.work(ctx, op, "rollback"); err != nil {
		return err
	}
	e.update(op.Request.Ref, func(st *core.TargetStatus) { st.Current, st.Candidate, st.Weight = to, "", 0 })
	return nil
}

// Reattach follows an operation a previous process started: the example
// keeps no upstream, so it reports the ref and succeeds.
func (e *example) Reattach(_ context.Context, op *sdk.Op, ref string) error {
	return op.Progress(1, "re-attached to "+ref)
}

// Pipeline source.

func (e *example) Runs(_ context.Context, service string, limit int) ([]core.PipelineRun, error) {
	return []core.PipelineRun{{ID: "run-1", Service: service, Version: "v1.0.0", State: core.RunSucceeded,
		Stages: []core.Stage{{Name: "build", State: core.RunSucceeded, Steps: []core.Step{{Name: "make", State: core.RunSucceeded}}}}}}, nil
}

func (e *example) WatchRuns(ctx context.Context, service string, send func(core.PipelineRun) error) error {
	runs, _ := e.Runs(ctx, service, 1)
	if err := send(runs[0]); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

// Logs sends count lines for run id "lines-COUNT", three otherwise.
func (e *example) Logs(ctx context.Context, runID, step string, follow bool, send func(core.LogLine) error) error {
	count := 3
	if n, ok := strings.CutPrefix(runID, "lines-"); ok {
		count, _ = strconv.Atoi(n)
	}
	now := time.Now()
	for i := range count {
		if err := send(core.LogLine{Time: now, Source: runID + "/" + step, Stream: "stdout", Text: "line " + strconv.Itoa(i)}); err != nil {
			return err
		}
	}
	if follow {
		<-ctx.Done()
	}
	return nil
}

func (e *example) Trigger(_ context.Context, service, version, from string) (string, error) {
	return fmt.Sprintf("run-%s-%s", service, version), nil
}

func (e *example) Cancel(context.Context, string) error { return nil }

// Error source.

func (e *example) WatchCounts(ctx context.Context, ref core.Ref, send func(core.ErrorWindow) error) error {
	if err := send(core.ErrorWindow{Ref: ref, Release: "v1.0.0", Buckets: []core.ErrorBucket{{Start: time.Now().Truncate(10 * time.Second), Count: 3}}}); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

func (e *example) Issues(_ context.Context, ref core.Ref, release string) ([]core.ErrorIssue, error) {
	return []core.ErrorIssue{{Fingerprint: "f1", Title: "TypeError: cart is undefined", Count: 3, FirstRelease: release}}, nil
}

func (e *example) MarkDeploy(context.Context, core.Ref, string) error { return nil }

// Backup source.

func (e *example) Sets(context.Context) ([]sdk.BackupSet, error) {
	return []sdk.BackupSet{{Name: "db", Tool: "example"}}, nil
}

func (e *example) facts(set string) core.BackupFacts {
	now := time.Now()
	return core.BackupFacts{Set: set, Tool: "example", LastStart: now.Add(-time.Hour), LastEnd: now.Add(-59 * time.Minute),
		AttemptOK: true, VerifyOK: true, VerifiedAt: now, ReportedAt: now, CanRunNow: true}
}

func (e *example) WatchFreshness(ctx context.Context, send func(core.BackupFacts) error) error {
	if err := send(e.facts("db")); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

func (e *example) Verify(ctx context.Context, op *sdk.Op, set string) (core.BackupFacts, error) {
	if set != "db" {
		return core.BackupFacts{}, errors.New("unknown backup set " + strconv.Quote(set))
	}
	if err := e.work(ctx, op, "verify"); err != nil {
		return core.BackupFacts{}, err
	}
	return e.facts(set), nil
}

func (e *example) RunBackup(ctx context.Context, op *sdk.Op, set string) error {
	if set != "db" {
		return errors.New("unknown backup set " + strconv.Quote(set))
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
		Info:     sdk.Info{Name: "example", Version: "0.1.0", Capabilities: []string{"deploy.plan", "deploy.watch_operation", "backup.run"}, ConfigSchema: json.RawMessage(schema)},
		Provider: e, Target: e, Pipeline: e, Errors: e, Backup: e,
	})
}
