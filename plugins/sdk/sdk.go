// Package sdk is what a Ripcord provider plugin imports. A plugin is a
// program whose main calls Serve with the implementations of the kinds it
// provides (deploy target, pipeline source, error source, backup source);
// Serve speaks the plugin protocol (ripcord.plugin.v1 over go-plugin gRPC)
// to the host. README.md states what the host expects of each method.
//
// The API is the SDK's own: request structs in, the SDK's types out, so a
// field can be added to a request without breaking an implementation. The
// generated protocol code and the conversion to it stay inside.
//
// Rules the SDK enforces so plugins behave under a terminal UI:
//   - stdin is never read: go-plugin hands every plugin the console's
//     terminal as fd 0, so Serve points fd 0 at /dev/null before serving;
//   - stdout belongs to the handshake: log through the logger Serve gives
//     (JSON lines on stderr, relayed into the host's log stream);
//   - long operations report through an *Op, which numbers events, sends
//     exactly one completion last (also when the work panics) and makes the
//     host's operation id an idempotency key;
//   - a plugin whose host disappears exits.
package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
)

// ErrUnsupported is returned by a method the provider cannot do for this
// request; the host sees "not supported" and degrades the feature.
var ErrUnsupported = errors.New("not supported by this provider")

// Info describes a provider.
type Info struct {
	Name    string
	Version string
	// ConfigSchema is the JSON Schema (an object schema) of the settings
	// Configure accepts. `ripcord validate` checks every block of
	// ripcord.yaml that uses the provider against it, without starting
	// anything, so make it strict: "additionalProperties": false catches
	// a misspelt setting. Empty means {"type":"object"}.
	ConfigSchema json.RawMessage
}

// SettingError is one rejected setting; Path is dotted from the provider's
// block in ripcord.yaml ("repository", "stages.2.run"), which the host
// turns into ripcord.yaml:LINE:COL.
type SettingError struct {
	Path    string
	Message string
}

func (e SettingError) Error() string { return e.Path + ": " + e.Message }

// SettingErrors is returned by Configure to reject settings.
type SettingErrors []SettingError

func (e SettingErrors) Error() string {
	parts := make([]string, len(e))
	for i, s := range e {
		parts[i] = s.Error()
	}
	return strings.Join(parts, "; ")
}

// DegradedError marks a CheckHealth result as degraded rather than failed.
type DegradedError struct{ Reason string }

func (e DegradedError) Error() string { return e.Reason }

// Degraded returns a DegradedError.
func Degraded(format string, args ...any) error {
	return DegradedError{Reason: fmt.Sprintf(format, args...)}
}

// HealthyNote is a CheckHealth result that is healthy and says something a
// person may want to see (an API budget left, a queue's length).
type HealthyNote struct{ Note string }

func (e HealthyNote) Error() string { return e.Note }

// Healthy returns a HealthyNote.
func Healthy(format string, args ...any) error {
	return HealthyNote{Note: fmt.Sprintf(format, args...)}
}

// ConfigureRequest carries a provider's settings: its block of
// ripcord.yaml as a JSON object, with relative paths the host resolved
// and ${ENV} references expanded, and the secrets.
type ConfigureRequest struct {
	Settings json.RawMessage
	Secrets  map[string]string
}

// Provider takes settings and reports health. It is optional: a provider
// without settings leaves ServeConfig.Provider nil. A Provider that is
// also an io.Closer is closed when the host stops the plugin, to flush
// what it buffered; it has about two seconds.
type Provider interface {
	// Configure is called once the process is up, before any other call,
	// and again with the same settings after every restart. Return
	// SettingErrors to reject settings; any other error fails the call.
	Configure(ctx context.Context, req ConfigureRequest) error
	// CheckHealth returns nil (or a HealthyNote) when healthy, a DegradedError when working
	// with problems, any other error when failed.
	CheckHealth(ctx context.Context) error
}

// Requests of the deploy target's methods. The service and environment of
// an operation are op.Ref.
type (
	// StatusRequest asks what runs in Ref.
	StatusRequest struct{ Ref Ref }
	// WatchStatusRequest asks for Ref's status and every change.
	WatchStatusRequest struct{ Ref Ref }
	// DeployRequest installs Release and gives it Weight% of the traffic.
	DeployRequest struct {
		Release Release
		Weight  int
	}
	// SetWeightRequest moves the candidate's share of traffic.
	SetWeightRequest struct{ Weight int }
	// RollbackRequest makes ToVersion, a kept release, the only one
	// serving.
	RollbackRequest struct{ ToVersion string }
	// ReattachRequest follows work this process did not start.
	ReattachRequest struct{ ExternalRef string }
)

// Target deploys releases and shifts traffic. README.md states what each
// method must do; the conformance kit checks it.
type Target interface {
	Status(ctx context.Context, req StatusRequest) (TargetStatus, error)
	WatchStatus(ctx context.Context, req WatchStatusRequest, send func(TargetStatus) error) error
	Deploy(ctx context.Context, op *Op, req DeployRequest) error
	SetWeight(ctx context.Context, op *Op, req SetWeightRequest) error
	Rollback(ctx context.Context, op *Op, req RollbackRequest) error
}

// Reattacher is implemented by targets that can follow an operation this
// process did not start (the plugin was restarted mid-deploy), by the
// external ref the operation reported.
type Reattacher interface {
	Reattach(ctx context.Context, op *Op, req ReattachRequest) error
}

// Requests of the pipeline source's methods.
type (
	// RunsRequest lists a service's newest runs, at most Limit.
	RunsRequest struct {
		Service string
		Limit   int
	}
	// WatchRunsRequest asks for a service's runs and every change.
	WatchRunsRequest struct{ Service string }
	// TriggerRequest starts a run building Version (from FromStage on,
	// when set).
	TriggerRequest struct{ Service, Version, FromStage string }
)

// PipelineSource is a CI system.
type PipelineSource interface {
	Runs(ctx context.Context, req RunsRequest) ([]PipelineRun, error)
	WatchRuns(ctx context.Context, req WatchRunsRequest, send func(PipelineRun) error) error
}

// Triggerer is implemented by pipeline sources that can start a run.
type Triggerer interface {
	Trigger(ctx context.Context, req TriggerRequest) (runID string, err error)
}

// LogsRequest asks for one step's output ("stage/step"), and with Follow
// every further line until the step ends.
type LogsRequest struct {
	RunID, Step string
	Follow      bool
}

// LogLine is one line of a step's output.
type LogLine struct {
	Time   time.Time
	Stream string // "stdout" or "stderr"
	Text   string
}

// LogStreamer is implemented by pipeline sources that keep step output.
// The host calls it, not following, when a person opens a step's log:
// send the step's last lines and return.
type LogStreamer interface {
	Logs(ctx context.Context, req LogsRequest, send func(LogLine) error) error
}

// CancelRequest asks to cancel the run RunID.
type CancelRequest struct{ RunID string }

// Canceller is implemented by pipeline sources that can cancel a run.
// This version of the host does not call it yet.
type Canceller interface {
	Cancel(ctx context.Context, req CancelRequest) error
}

// Requests of the error source's methods.
type (
	// WatchCountsRequest asks for Ref's error windows, per release.
	WatchCountsRequest struct{ Ref Ref }
	// MarkDeployRequest records that Release went out in Ref (or came
	// back, on a rollback).
	MarkDeployRequest struct {
		Ref     Ref
		Release string
	}
)

// ErrorSource is an error tracker.
type ErrorSource interface {
	WatchCounts(ctx context.Context, req WatchCountsRequest, send func(ErrorWindow) error) error
}

// DeployMarker is implemented by error sources that record deploys.
type DeployMarker interface {
	MarkDeploy(ctx context.Context, req MarkDeployRequest) error
}

// IssuesRequest asks for one release's issues in Ref.
type IssuesRequest struct {
	Ref     Ref
	Release string
}

// IssueLister is implemented by error sources that list a release's
// issues on request. This version of the host does not call it yet: the
// issues it shows arrive in ErrorWindow.Issues.
type IssueLister interface {
	Issues(ctx context.Context, req IssuesRequest) ([]ErrorIssue, error)
}

// Requests of the backup source's methods.
type (
	// WatchFreshnessRequest asks for every set's facts and every change.
	WatchFreshnessRequest struct{}
	// VerifyRequest checks that Set's newest backup restores.
	VerifyRequest struct{ Set string }
	// RunBackupRequest takes a backup of Set now.
	RunBackupRequest struct{ Set string }
)

// BackupSource is a backup tool. It reports facts; the host judges them.
type BackupSource interface {
	WatchFreshness(ctx context.Context, req WatchFreshnessRequest, send func(BackupFacts) error) error
	Verify(ctx context.Context, op *Op, req VerifyRequest) (BackupFacts, error)
}

// BackupRunner is implemented by backup sources that can take a backup
// when a person asks ("back up now").
type BackupRunner interface {
	RunBackup(ctx context.Context, op *Op, req RunBackupRequest) error
}

// ServeConfig is what Serve serves. At least one kind must be set.
type ServeConfig struct {
	Info     Info
	Provider Provider
	Target   Target
	Pipeline PipelineSource
	Errors   ErrorSource
	Backup   BackupSource
	// Logger defaults to NewLogger(Info.Name).
	Logger hclog.Logger
	// KeepOperations is how many finished operations are remembered for
	// idempotent replay (default 1000).
	KeepOperations int
}

func (c ServeConfig) validate() error {
	if c.Info.Name == "" {
		return errors.New("sdk: ServeConfig.Info.Name is empty")
	}
	if c.Info.Version == "" {
		return errors.New("sdk: ServeConfig.Info.Version is empty")
	}
	if c.Target == nil && c.Pipeline == nil && c.Errors == nil && c.Backup == nil {
		return errors.New("sdk: ServeConfig sets no kind (Target, Pipeline, Errors or Backup)")
	}
	if len(c.Info.ConfigSchema) > 0 {
		var schema map[string]any
		if err := json.Unmarshal(c.Info.ConfigSchema, &schema); err != nil {
			return fmt.Errorf("sdk: Info.ConfigSchema is not a JSON object: %w", err)
		}
	}
	return nil
}
