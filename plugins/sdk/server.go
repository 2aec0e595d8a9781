package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/ripcordhq/ripcord/core"
	pb "github.com/ripcordhq/ripcord/plugins/proto/ripcord/plugin/v1"
	"github.com/ripcordhq/ripcord/plugins/sdk/pbconv"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// EnvLogLevel sets the plugin's log level (trace, debug, info, warn,
// error); the host passes it when configured.
const EnvLogLevel = "RIPCORD_PLUGIN_LOG_LEVEL"

// NewLogger returns the logger plugins log through: JSON lines on stderr,
// which go-plugin parses and relays into the host's log stream.
func NewLogger(name string) hclog.Logger {
	level := hclog.LevelFromString(os.Getenv(EnvLogLevel))
	if level == hclog.NoLevel {
		level = hclog.Info
	}
	return hclog.New(&hclog.LoggerOptions{Name: name, Level: level, Output: os.Stderr, JSONFormat: true})
}

// Serve serves the providers in cfg until the host stops the plugin. It
// never reads stdin. A configuration error is logged and exits 1.
func Serve(cfg ServeConfig) {
	if cfg.Logger == nil {
		cfg.Logger = NewLogger(cfg.Info.Name)
	}
	if err := cfg.validate(); err != nil {
		cfg.Logger.Error("invalid plugin configuration", "error", err)
		os.Exit(1)
	}
	detachStdin()
	go watchParent(cfg.Logger)
	plugin.Serve(ServeConfigFor(cfg))
	// The host asked the plugin to stop. A provider that holds state
	// (buffered counts, open files) gets to put it away: go-plugin waits
	// about two seconds before it kills the process.
	if c, ok := cfg.Provider.(io.Closer); ok {
		if err := c.Close(); err != nil {
			cfg.Logger.Warn("closing the provider", "error", err)
		}
	}
}

// ServeConfigFor builds the go-plugin configuration Serve uses, for tests
// and for hosts that serve in-process (go-plugin's test mode).
func ServeConfigFor(cfg ServeConfig) *plugin.ServeConfig {
	if cfg.Logger == nil {
		cfg.Logger = NewLogger(cfg.Info.Name)
	}
	return &plugin.ServeConfig{
		HandshakeConfig: Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{
			ProtocolVersion: {PluginName: &grpcPlugin{register: func(s *grpc.Server) { Register(s, cfg) }}},
		},
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			opts = append(opts, grpc.MaxRecvMsgSize(MaxMessageSize), grpc.MaxSendMsgSize(MaxMessageSize))
			return plugin.DefaultGRPCServer(opts)
		},
		Logger: cfg.Logger,
	}
}

// Register registers the services cfg provides on s.
func Register(s *grpc.Server, cfg ServeConfig) {
	ops := NewOperations(cfg.KeepOperations, cfg.Logger)
	pb.RegisterProviderServiceServer(s, &providerServer{cfg: cfg})
	if cfg.Target != nil {
		pb.RegisterDeployTargetServiceServer(s, &targetServer{impl: cfg.Target, ops: ops})
	}
	if cfg.Pipeline != nil {
		pb.RegisterPipelineSourceServiceServer(s, &pipelineServer{impl: cfg.Pipeline})
	}
	if cfg.Errors != nil {
		pb.RegisterErrorSourceServiceServer(s, &errorsServer{impl: cfg.Errors})
	}
	if cfg.Backup != nil {
		pb.RegisterBackupSourceServiceServer(s, &backupServer{impl: cfg.Backup, ops: ops})
	}
}

// watchParent exits when the host is gone: Pdeathsig covers Linux, but it
// fires on the death of the host thread that started the plugin, and other
// systems have no Pdeathsig at all.
func watchParent(log hclog.Logger) {
	parent := os.Getppid()
	for range time.Tick(500 * time.Millisecond) {
		if os.Getppid() != parent {
			log.Warn("host process is gone; exiting")
			os.Exit(2)
		}
	}
}

// grpcError maps an implementation's error to a gRPC status.
func grpcError(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case errors.Is(err, ErrUnsupported):
		return status.Error(codes.Unimplemented, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	return status.Error(codes.Unknown, err.Error())
}

type providerServer struct {
	pb.UnimplementedProviderServiceServer
	cfg ServeConfig
}

func (p *providerServer) GetInfo(context.Context, *pb.GetInfoRequest) (*pb.GetInfoResponse, error) {
	schema := string(p.cfg.Info.ConfigSchema)
	if schema == "" {
		schema = `{"type":"object"}`
	}
	return &pb.GetInfoResponse{Info: &pb.ProviderInfo{
		Name: p.cfg.Info.Name, Version: p.cfg.Info.Version, Kinds: p.cfg.kinds(),
		Capabilities: p.cfg.Info.Capabilities, ConfigSchemaJson: schema,
	}}, nil
}

func (p *providerServer) Configure(ctx context.Context, req *pb.ConfigureRequest) (*pb.ConfigureResponse, error) {
	settings := json.RawMessage(req.GetSettingsJson())
	if len(settings) == 0 {
		settings = json.RawMessage("{}")
	}
	var obj map[string]any
	if err := json.Unmarshal(settings, &obj); err != nil {
		return &pb.ConfigureResponse{Errors: []*pb.SettingError{{Message: "settings are not a JSON object: " + err.Error()}}}, nil
	}
	if p.cfg.Provider == nil {
		return &pb.ConfigureResponse{}, nil
	}
	err := p.cfg.Provider.Configure(ctx, settings, req.GetSecrets())
	var serrs SettingErrors
	var serr SettingError
	switch {
	case err == nil:
		return &pb.ConfigureResponse{}, nil
	case errors.As(err, &serrs):
	case errors.As(err, &serr):
		serrs = SettingErrors{serr}
	default:
		return nil, grpcError(err)
	}
	resp := &pb.ConfigureResponse{}
	for _, e := range serrs {
		resp.Errors = append(resp.Errors, &pb.SettingError{Path: e.Path, Message: e.Message})
	}
	return resp, nil
}

func (p *providerServer) CheckHealth(ctx context.Context, _ *pb.CheckHealthRequest) (*pb.CheckHealthResponse, error) {
	if p.cfg.Provider == nil {
		return &pb.CheckHealthResponse{State: pb.HealthState_HEALTH_STATE_HEALTHY}, nil
	}
	err := p.cfg.Provider.CheckHealth(ctx)
	var d DegradedError
	switch {
	case err == nil:
		return &pb.CheckHealthResponse{State: pb.HealthState_HEALTH_STATE_HEALTHY}, nil
	case errors.As(err, &d):
		return &pb.CheckHealthResponse{State: pb.HealthState_HEALTH_STATE_DEGRADED, Message: d.Reason}, nil
	default:
		return &pb.CheckHealthResponse{State: pb.HealthState_HEALTH_STATE_FAILED, Message: err.Error()}, nil
	}
}

type targetServer struct {
	pb.UnimplementedDeployTargetServiceServer
	impl Target
	ops  *Operations
}

func (t *targetServer) Status(ctx context.Context, req *pb.StatusRequest) (*pb.StatusResponse, error) {
	st, err := t.impl.Status(ctx, pbconv.FromRef(req.GetRef()))
	if err != nil {
		return nil, grpcError(err)
	}
	return &pb.StatusResponse{Status: pbconv.TargetStatus(st)}, nil
}

func (t *targetServer) WatchStatus(req *pb.WatchStatusRequest, stream grpc.ServerStreamingServer[pb.WatchStatusResponse]) error {
	return grpcError(t.impl.WatchStatus(stream.Context(), pbconv.FromRef(req.GetRef()), func(s core.TargetStatus) error {
		return stream.Send(&pb.WatchStatusResponse{Status: pbconv.TargetStatus(s)})
	}))
}

func (t *targetServer) Releases(ctx context.Context, req *pb.ReleasesRequest) (*pb.ReleasesResponse, error) {
	rels, err := t.impl.Releases(ctx, pbconv.FromRef(req.GetRef()), int(req.GetLimit()))
	if err != nil {
		return nil, grpcError(err)
	}
	resp := &pb.ReleasesResponse{}
	for _, r := range rels {
		resp.Releases = append(resp.Releases, pbconv.Release(r))
	}
	return resp, nil
}

func (t *targetServer) Plan(ctx context.Context, req *pb.PlanRequest) (*pb.PlanResponse, error) {
	changes, err := t.impl.Plan(ctx, pbconv.FromRef(req.GetRef()), pbconv.FromRelease(req.GetRelease()), int(req.GetWeight()))
	if err != nil {
		return nil, grpcError(err)
	}
	return &pb.PlanResponse{Changes: changes}, nil
}

func (t *targetServer) Deploy(req *pb.DeployRequest, stream grpc.ServerStreamingServer[pb.DeployResponse]) error {
	return t.ops.Run(stream.Context(), req.GetOperation(), func(ctx context.Context, op *Op) (func(*pb.Completed), error) {
		return nil, t.impl.Deploy(ctx, op, pbconv.FromRelease(req.GetRelease()), int(req.GetWeight()))
	}, func(ev *pb.OperationEvent) error { return stream.Send(&pb.DeployResponse{Event: ev}) })
}

func (t *targetServer) Rollback(req *pb.RollbackRequest, stream grpc.ServerStreamingServer[pb.RollbackResponse]) error {
	return t.ops.Run(stream.Context(), req.GetOperation(), func(ctx context.Context, op *Op) (func(*pb.Completed), error) {
		return nil, t.impl.Rollback(ctx, op, req.GetToVersion())
	}, func(ev *pb.OperationEvent) error { return stream.Send(&pb.RollbackResponse{Event: ev}) })
}

func (t *targetServer) SetWeight(req *pb.SetWeightRequest, stream grpc.ServerStreamingServer[pb.SetWeightResponse]) error {
	return t.ops.Run(stream.Context(), req.GetOperation(), func(ctx context.Context, op *Op) (func(*pb.Completed), error) {
		return nil, t.impl.SetWeight(ctx, op, int(req.GetWeight()))
	}, func(ev *pb.OperationEvent) error { return stream.Send(&pb.SetWeightResponse{Event: ev}) })
}

func (t *targetServer) WatchOperation(req *pb.WatchOperationRequest, stream grpc.ServerStreamingServer[pb.WatchOperationResponse]) error {
	send := func(ev *pb.OperationEvent) error { return stream.Send(&pb.WatchOperationResponse{Event: ev}) }
	found, err := t.ops.Attach(stream.Context(), req.GetOperation().GetId(), send)
	if found {
		return err
	}
	re, ok := t.impl.(Reattacher)
	if !ok || req.GetExternalRef() == "" {
		return status.Errorf(codes.NotFound, "operation %q is unknown to this provider process", req.GetOperation().GetId())
	}
	return t.ops.Run(stream.Context(), req.GetOperation(), func(ctx context.Context, op *Op) (func(*pb.Completed), error) {
		op.SetExternalRef(req.GetExternalRef())
		return nil, re.Reattach(ctx, op, req.GetExternalRef())
	}, send)
}

type pipelineServer struct {
	pb.UnimplementedPipelineSourceServiceServer
	impl PipelineSource
}

func (p *pipelineServer) ListRuns(ctx context.Context, req *pb.ListRunsRequest) (*pb.ListRunsResponse, error) {
	runs, err := p.impl.Runs(ctx, req.GetService(), int(req.GetLimit()))
	if err != nil {
		return nil, grpcError(err)
	}
	resp := &pb.ListRunsResponse{}
	for _, r := range runs {
		resp.Runs = append(resp.Runs, pbconv.PipelineRun(r))
	}
	return resp, nil
}

func (p *pipelineServer) WatchRuns(req *pb.WatchRunsRequest, stream grpc.ServerStreamingServer[pb.WatchRunsResponse]) error {
	return grpcError(p.impl.WatchRuns(stream.Context(), req.GetService(), func(r core.PipelineRun) error {
		return stream.Send(&pb.WatchRunsResponse{Run: pbconv.PipelineRun(r)})
	}))
}

func (p *pipelineServer) StreamLogs(req *pb.StreamLogsRequest, stream grpc.ServerStreamingServer[pb.StreamLogsResponse]) error {
	return grpcError(p.impl.Logs(stream.Context(), req.GetRunId(), req.GetStep(), req.GetFollow(), func(l core.LogLine) error {
		return stream.Send(&pb.StreamLogsResponse{Line: pbconv.LogLine(l)})
	}))
}

func (p *pipelineServer) Trigger(ctx context.Context, req *pb.TriggerRequest) (*pb.TriggerResponse, error) {
	id, err := p.impl.Trigger(ctx, req.GetService(), req.GetVersion(), req.GetFromStage())
	if err != nil {
		return nil, grpcError(err)
	}
	return &pb.TriggerResponse{RunId: id}, nil
}

func (p *pipelineServer) Cancel(ctx context.Context, req *pb.CancelRequest) (*pb.CancelResponse, error) {
	if err := p.impl.Cancel(ctx, req.GetRunId()); err != nil {
		return nil, grpcError(err)
	}
	return &pb.CancelResponse{}, nil
}

type errorsServer struct {
	pb.UnimplementedErrorSourceServiceServer
	impl ErrorSource
}

func (e *errorsServer) WatchCounts(req *pb.WatchCountsRequest, stream grpc.ServerStreamingServer[pb.WatchCountsResponse]) error {
	return grpcError(e.impl.WatchCounts(stream.Context(), pbconv.FromRef(req.GetRef()), func(w core.ErrorWindow) error {
		return stream.Send(&pb.WatchCountsResponse{Window: pbconv.ErrorWindow(w)})
	}))
}

func (e *errorsServer) ListIssues(ctx context.Context, req *pb.ListIssuesRequest) (*pb.ListIssuesResponse, error) {
	issues, err := e.impl.Issues(ctx, pbconv.FromRef(req.GetRef()), req.GetRelease())
	if err != nil {
		return nil, grpcError(err)
	}
	resp := &pb.ListIssuesResponse{}
	for _, i := range issues {
		resp.Issues = append(resp.Issues, pbconv.ErrorIssue(i))
	}
	return resp, nil
}

func (e *errorsServer) MarkDeploy(ctx context.Context, req *pb.MarkDeployRequest) (*pb.MarkDeployResponse, error) {
	if err := e.impl.MarkDeploy(ctx, pbconv.FromRef(req.GetRef()), req.GetRelease()); err != nil {
		return nil, grpcError(err)
	}
	return &pb.MarkDeployResponse{}, nil
}

type backupServer struct {
	pb.UnimplementedBackupSourceServiceServer
	impl BackupSource
	ops  *Operations
}

func (b *backupServer) ListSets(ctx context.Context, _ *pb.ListSetsRequest) (*pb.ListSetsResponse, error) {
	sets, err := b.impl.Sets(ctx)
	if err != nil {
		return nil, grpcError(err)
	}
	resp := &pb.ListSetsResponse{}
	for _, s := range sets {
		resp.Sets = append(resp.Sets, &pb.BackupSet{Name: s.Name, Tool: s.Tool})
	}
	return resp, nil
}

func (b *backupServer) WatchFreshness(_ *pb.WatchFreshnessRequest, stream grpc.ServerStreamingServer[pb.WatchFreshnessResponse]) error {
	return grpcError(b.impl.WatchFreshness(stream.Context(), func(f core.BackupFacts) error {
		return stream.Send(&pb.WatchFreshnessResponse{Facts: pbconv.BackupFacts(f)})
	}))
}

func (b *backupServer) Verify(req *pb.VerifyRequest, stream grpc.ServerStreamingServer[pb.VerifyResponse]) error {
	return b.ops.Run(stream.Context(), req.GetOperation(), func(ctx context.Context, op *Op) (func(*pb.Completed), error) {
		facts, err := b.impl.Verify(ctx, op, req.GetSet())
		return func(c *pb.Completed) { c.BackupFacts = pbconv.BackupFacts(facts) }, err
	}, func(ev *pb.OperationEvent) error { return stream.Send(&pb.VerifyResponse{Event: ev}) })
}

func (b *backupServer) RunBackup(req *pb.RunBackupRequest, stream grpc.ServerStreamingServer[pb.RunBackupResponse]) error {
	return b.ops.Run(stream.Context(), req.GetOperation(), func(ctx context.Context, op *Op) (func(*pb.Completed), error) {
		return nil, b.impl.RunBackup(ctx, op, req.GetSet())
	}, func(ev *pb.OperationEvent) error { return stream.Send(&pb.RunBackupResponse{Event: ev}) })
}
