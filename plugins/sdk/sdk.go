// Package sdk is what a Ripcord provider plugin imports. A plugin is a
// program whose main calls Serve with the implementations of the kinds it
// provides (deploy target, pipeline source, error source, backup source);
// Serve speaks the go-plugin gRPC protocol (ripcord.plugin.v1) to the host.
//
// Rules the SDK enforces so plugins behave under a terminal UI:
//   - stdin is never read: go-plugin hands every plugin the console's
//     terminal as fd 0, so Serve points fd 0 at /dev/null before serving;
//   - stdout belongs to the handshake: log through the hclog logger Serve
//     gives (JSON lines on stderr, relayed into the host's log stream);
//   - long operations report through an *Op, which numbers events, sends
//     exactly one completion last (also when the work panics) and makes the
//     host's operation id an idempotency key;
//   - a plugin whose host disappears exits (Pdeathsig on Linux, plus a
//     parent watchdog for the cases Pdeathsig misses).
package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/ripcordhq/ripcord/core"
	pb "github.com/ripcordhq/ripcord/plugins/proto/ripcord/plugin/v1"
	"google.golang.org/grpc"
)

// Handshake values never change: a mismatch means "not a Ripcord plugin",
// not "another protocol version" (that is negotiated by ProtocolVersion).
const (
	MagicCookieKey   = "RIPCORD_PLUGIN"
	MagicCookieValue = "9d1c4f0b7a2e6358c1f4e0a9b3d7c2e5f8a1b6c4d9e2f7a0b5c8d3e6f1a4b7c2"
	// ProtocolVersion is the app protocol version: ripcord.plugin.v1.
	ProtocolVersion = 1
	// PluginName is the one entry of the go-plugin plugin set; every
	// service of the protocol is served on its connection.
	PluginName = "provider"
	// MaxMessageSize bounds one gRPC message in either direction.
	MaxMessageSize = 256 << 20
)

// Handshake is the go-plugin handshake shared by host and plugins.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   MagicCookieKey,
	MagicCookieValue: MagicCookieValue,
}

// Kind names, as core.ProviderHealth.Kinds reports them.
const (
	KindTarget   = "target"
	KindPipeline = "pipeline"
	KindErrors   = "errors"
	KindBackup   = "backup"
)

// ErrUnsupported is returned by a method the provider does not implement;
// the host sees codes.Unimplemented and degrades the feature.
var ErrUnsupported = errors.New("not supported by this provider")

// CapabilityRunBackup is declared by backup sources that can start a
// backup themselves ("back up now"); others only watch.
const CapabilityRunBackup = "backup.run"

// Info describes a provider. Kinds are derived from the implementations
// given to Serve.
type Info struct {
	Name         string
	Version      string
	Capabilities []string
	// ConfigSchema is the JSON Schema (an object schema) of the settings
	// Configure accepts. Empty means {"type":"object"}.
	ConfigSchema json.RawMessage
}

// SettingError is one rejected setting; Path is dotted from the provider's
// block in ripcord.yaml ("repository.password", "stages.2.run").
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

// Provider is implemented by every plugin that takes settings or can tell
// its health. Both methods are optional through ServeConfig.Provider == nil.
// A Provider that is also an io.Closer is closed when the host stops the
// plugin, to flush what it buffered; it has about two seconds.
type Provider interface {
	// Configure receives the provider's settings (a JSON object) and its
	// secrets. Return SettingErrors to reject settings; any other error
	// fails the call.
	Configure(ctx context.Context, settings json.RawMessage, secrets map[string]string) error
	// CheckHealth returns nil when healthy, a Degraded error when working
	// with problems, any other error when failed.
	CheckHealth(ctx context.Context) error
}

// DegradedError marks a CheckHealth result as degraded rather than failed.
type DegradedError struct{ Reason string }

func (e DegradedError) Error() string { return e.Reason }

// Degraded returns a DegradedError.
func Degraded(format string, args ...any) error {
	return DegradedError{Reason: fmt.Sprintf(format, args...)}
}

// Target is a deploy target. Operations report through op and return nil
// on success; returning after ctx is done records the operation cancelled.
type Target interface {
	Status(ctx context.Context, ref core.Ref) (core.TargetStatus, error)
	// WatchStatus sends the status, then every change, until ctx ends.
	WatchStatus(ctx context.Context, ref core.Ref, send func(core.TargetStatus) error) error
	Releases(ctx context.Context, ref core.Ref, limit int) ([]core.Release, error)
	Plan(ctx context.Context, ref core.Ref, rel core.Release, weight int) ([]string, error)
	Deploy(ctx context.Context, op *Op, rel core.Release, weight int) error
	SetWeight(ctx context.Context, op *Op, weight int) error
	Rollback(ctx context.Context, op *Op, toVersion string) error
}

// Reattacher is implemented by targets that can follow an operation this
// process did not start (after a plugin restart), by its external ref.
type Reattacher interface {
	Reattach(ctx context.Context, op *Op, externalRef string) error
}

// PipelineSource is a CI system.
type PipelineSource interface {
	Runs(ctx context.Context, service string, limit int) ([]core.PipelineRun, error)
	WatchRuns(ctx context.Context, service string, send func(core.PipelineRun) error) error
	Logs(ctx context.Context, runID, step string, follow bool, send func(core.LogLine) error) error
	Trigger(ctx context.Context, service, version, fromStage string) (runID string, err error)
	Cancel(ctx context.Context, runID string) error
}

// ErrorSource is an error tracker.
type ErrorSource interface {
	WatchCounts(ctx context.Context, ref core.Ref, send func(core.ErrorWindow) error) error
	Issues(ctx context.Context, ref core.Ref, release string) ([]core.ErrorIssue, error)
	MarkDeploy(ctx context.Context, ref core.Ref, release string) error
}

// BackupSet names one set a backup source knows.
type BackupSet struct {
	Name string
	Tool string
}

// BackupSource is a backup tool. It reports facts; the host judges them.
type BackupSource interface {
	Sets(ctx context.Context) ([]BackupSet, error)
	// WatchFreshness sends every set's facts, then changes, until ctx ends.
	WatchFreshness(ctx context.Context, send func(core.BackupFacts) error) error
	Verify(ctx context.Context, op *Op, set string) (core.BackupFacts, error)
	RunBackup(ctx context.Context, op *Op, set string) error
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

func (c ServeConfig) kinds() []pb.Kind {
	var k []pb.Kind
	if c.Target != nil {
		k = append(k, pb.Kind_KIND_DEPLOY_TARGET)
	}
	if c.Pipeline != nil {
		k = append(k, pb.Kind_KIND_PIPELINE_SOURCE)
	}
	if c.Errors != nil {
		k = append(k, pb.Kind_KIND_ERROR_SOURCE)
	}
	if c.Backup != nil {
		k = append(k, pb.Kind_KIND_BACKUP_SOURCE)
	}
	return k
}

func (c ServeConfig) validate() error {
	if c.Info.Name == "" {
		return errors.New("sdk: ServeConfig.Info.Name is empty")
	}
	if c.Info.Version == "" {
		return errors.New("sdk: ServeConfig.Info.Version is empty")
	}
	if len(c.kinds()) == 0 {
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

// KindName maps a protocol kind to core's name for it.
func KindName(k pb.Kind) string {
	switch k {
	case pb.Kind_KIND_DEPLOY_TARGET:
		return KindTarget
	case pb.Kind_KIND_PIPELINE_SOURCE:
		return KindPipeline
	case pb.Kind_KIND_ERROR_SOURCE:
		return KindErrors
	case pb.Kind_KIND_BACKUP_SOURCE:
		return KindBackup
	}
	return "unknown"
}

// grpcPlugin registers every configured service on the plugin's server.
type grpcPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	register func(*grpc.Server)
}

func (p *grpcPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	p.register(s)
	return nil
}

func (p *grpcPlugin) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, errors.New("sdk: the plugin side has no client")
}
