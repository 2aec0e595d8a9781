// Package protocol holds what the host and the plugin SDK must agree on to
// talk at all: the go-plugin handshake, the protocol version, message
// limits, kind and capability names. Both import it, so neither side can
// change one of these without the other.
package protocol

import (
	"github.com/hashicorp/go-plugin"

	pb "github.com/ripcordhq/ripcord/plugins/internal/pluginpb"
)

// Handshake values never change: a mismatch means "not a Ripcord plugin",
// not "another protocol version" (that is negotiated by Version).
const (
	MagicCookieKey   = "RIPCORD_PLUGIN"
	MagicCookieValue = "9d1c4f0b7a2e6358c1f4e0a9b3d7c2e5f8a1b6c4d9e2f7a0b5c8d3e6f1a4b7c2"
	// Version is the app protocol version: ripcord.plugin.v1.
	Version = 1
	// PluginName is the one entry of the go-plugin plugin set; every
	// service of the protocol is served on its connection.
	PluginName = "provider"
	// MaxMessageSize bounds one gRPC message in either direction.
	MaxMessageSize = 256 << 20
	// EnvLogLevel sets a plugin's log level (trace, debug, info, warn,
	// error); the host passes it through to every plugin.
	EnvLogLevel = "RIPCORD_PLUGIN_LOG_LEVEL"
)

// Handshake is the go-plugin handshake.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  Version,
	MagicCookieKey:   MagicCookieKey,
	MagicCookieValue: MagicCookieValue,
}

// Kind names, as core.ProviderHealth.Kinds and the config name them.
const (
	KindTarget   = "target"
	KindPipeline = "pipeline"
	KindErrors   = "errors"
	KindBackup   = "backup"
)

// KindName is the name of a protocol kind.
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

// Capabilities a provider announces in ProviderInfo.capabilities: RPCs of
// its kinds it serves beyond the ones every provider of the kind must.
const (
	// CapRunBackup: the backup source can start a backup ("back up now").
	CapRunBackup = "backup.run"
	// CapReattach: the target can follow an operation by its external
	// ref after a restart (WatchOperation for an unknown operation id).
	CapReattach = "target.reattach"
	// CapTrigger: the pipeline source can start a run for a version.
	CapTrigger = "pipeline.trigger"
	// CapMarkDeploy: the error source records deploy markers.
	CapMarkDeploy = "errors.mark_deploy"
	// CapLogs: the pipeline source streams a step's output.
	CapLogs = "pipeline.logs"
	// CapCancel: the pipeline source cancels a run.
	CapCancel = "pipeline.cancel"
	// CapIssues: the error source lists a release's issues on request.
	CapIssues = "errors.issues"
)
