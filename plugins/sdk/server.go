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
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/ripcordhq/ripcord/plugins/internal/pluginpb"
	"github.com/ripcordhq/ripcord/plugins/internal/protocol"
)

// NewLogger returns the logger plugins log through: JSON lines on stderr,
// which the host relays into its log stream (the console's logs pane,
// `ripcord watch`). The level comes from the host (default info).
func NewLogger(name string) hclog.Logger {
	level := hclog.LevelFromString(os.Getenv(protocol.EnvLogLevel))
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
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: protocol.Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{
			protocol.Version: {protocol.PluginName: &grpcPlugin{register: func(s *grpc.Server) { register(s, cfg) }}},
		},
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			opts = append(opts, grpc.MaxRecvMsgSize(protocol.MaxMessageSize), grpc.MaxSendMsgSize(protocol.MaxMessageSize))
			opts = append(opts, recoverOptions()...)
			return plugin.DefaultGRPCServer(opts)
		},
		Logger: cfg.Logger,
	})
	// The host asked the plugin to stop. A provider that holds state
	// (buffered counts, open files) gets to put it away: go-plugin waits
	// about two seconds before it kills the process.
	if c, ok := cfg.Provider.(io.Closer); ok {
		if err := c.Close(); err != nil {
			cfg.Logger.Warn("closing the provider", "error", err)
		}
	}
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

// register registers the services cfg provides on s.
func register(s *grpc.Server, cfg ServeConfig) {
	ops := newOperations(cfg.KeepOperations, cfg.Logger)
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

// kinds and capabilities follow from what cfg implements: an optional
// interface implemented is a capability announced.
func kinds(cfg ServeConfig) []pb.Kind {
	var k []pb.Kind
	if cfg.Target != nil {
		k = append(k, pb.Kind_KIND_DEPLOY_TARGET)
	}
	if cfg.Pipeline != nil {
		k = append(k, pb.Kind_KIND_PIPELINE_SOURCE)
	}
	if cfg.Errors != nil {
		k = append(k, pb.Kind_KIND_ERROR_SOURCE)
	}
	if cfg.Backup != nil {
		k = append(k, pb.Kind_KIND_BACKUP_SOURCE)
	}
	return k
}

func capabilities(cfg ServeConfig) []string {
	var caps []string
	if _, ok := cfg.Target.(Reattacher); ok {
		caps = append(caps, protocol.CapReattach)
	}
	if _, ok := cfg.Pipeline.(Triggerer); ok {
		caps = append(caps, protocol.CapTrigger)
	}
	if _, ok := cfg.Pipeline.(LogStreamer); ok {
		caps = append(caps, protocol.CapLogs)
	}
	if _, ok := cfg.Pipeline.(Canceller); ok {
		caps = append(caps, protocol.CapCancel)
	}
	if _, ok := cfg.Errors.(IssueLister); ok {
		caps = append(caps, protocol.CapIssues)
	}
	if _, ok := cfg.Errors.(DeployMarker); ok {
		caps = append(caps, protocol.CapMarkDeploy)
	}
	if _, ok := cfg.Backup.(BackupRunner); ok {
		caps = append(caps, protocol.CapRunBackup)
	}
	return caps
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

func unsupported(what string) error {
	return status.Errorf(codes.Unimplemented, "%s: %v", what, ErrUnsupported)
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
		Name: p.cfg.Info.Name, Version: p.cfg.Info.Version, Kinds: kinds(p.cfg),
		Capabilities: capabilities(p.cfg), ConfigSchemaJson: schema,
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
	err := p.cfg.Provider.Configure(ctx, ConfigureRequest{Settings: settings, Secrets: req.GetSecrets()})
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
	var note HealthyNote
	switch {
	case err == nil:
		return &pb.CheckHealthResponse{State: pb.HealthState_HEALTH_STATE_HEALTHY}, nil
	case errors.As(err, &note):
		return &pb.CheckHealthResponse{State: pb.HealthState_HEALTH_STATE_HEALTHY, Message: note.Note}, nil
	case errors.As(err, &d):
		return &pb.CheckHealthResponse{State: pb.HealthState_HEALTH_STATE_DEGRADED, Message: d.Reason}, nil
	default:
		return &pb.CheckHealthResponse{State: pb.HealthState_HEALTH_STATE_FAILED, Message: err.Error()}, nil
	}
}

// targetServer serves a Target. Releases and Plan are RPCs of the protocol
// no host calls; they answer Unimplemented.
type targetServer struct {
	pb.UnimplementedDeployTargetServiceServer
	impl Target
	ops  *operations
}

func (t *targetServer) Status(ctx context.Context, req *pb.StatusRequest) (*pb.StatusResponse, error) {
	ref := fromRef(req.GetRef())
	st, err := t.impl.Status(ctx, StatusRequest{Ref: ref})
	if err != nil {
		return nil, grpcError(err)
	}
	return &pb.StatusResponse{Status: toTargetStatus(ref, st)}, nil
}

func (t *targetServer) WatchStatus(req *pb.WatchStatusRequest, stream grpc.ServerStreamingServer[pb.WatchStatusResponse]) error {
	ref := fromRef(req.GetRef())
	return grpcError(t.impl.WatchStatus(stream.Context(), WatchStatusRequest{Ref: ref}, func(s TargetStatus) error {
		return stream.Send(&pb.WatchStatusResponse{Status: toTargetStatus(ref, s)})
	}))
}

func (t *targetServer) Deploy(req *pb.DeployRequest, stream grpc.ServerStreamingServer[pb.DeployResponse]) error {
	return t.ops.run(stream.Context(), req.GetOperation(), func(ctx context.Context, op *Op) (func(*pb.Completed), error) {
		return nil, t.impl.Deploy(ctx, op, DeployRequest{Release: fromRelease(req.GetRelease()), Weight: int(req.GetWeight())})
	}, func(ev *pb.OperationEvent) error { return stream.Send(&pb.DeployResponse{Event: ev}) })
}

func (t *targetServer) Rollback(req *pb.RollbackRequest, stream grpc.ServerStreamingServer[pb.RollbackResponse]) error {
	return t.ops.run(stream.Context(), req.GetOperation(), func(ctx context.Context, op *Op) (func(*pb.Completed), error) {
		return nil, t.impl.Rollback(ctx, op, RollbackRequest{ToVersion: req.GetToVersion()})
	}, func(ev *pb.OperationEvent) error { return stream.Send(&pb.RollbackResponse{Event: ev}) })
}

func (t *targetServer) SetWeight(req *pb.SetWeightRequest, stream grpc.ServerStreamingServer[pb.SetWeightResponse]) error {
	return t.ops.run(stream.Context(), req.GetOperation(), func(ctx context.Context, op *Op) (func(*pb.Completed), error) {
		return nil, t.impl.SetWeight(ctx, op, SetWeightRequest{Weight: int(req.GetWeight())})
	}, func(ev *pb.OperationEvent) error { return stream.Send(&pb.SetWeightResponse{Event: ev}) })
}

func (t *targetServer) WatchOperation(req *pb.WatchOperationRequest, stream grpc.ServerStreamingServer[pb.WatchOperationResponse]) error {
	send := func(ev *pb.OperationEvent) error { return stream.Send(&pb.WatchOperationResponse{Event: ev}) }
	found, err := t.ops.attach(stream.Context(), req.GetOperation().GetId(), send)
	if found {
		return err
	}
	re, ok := t.impl.(Reattacher)
	if !ok || req.GetExternalRef() == "" {
		return status.Errorf(codes.NotFound, "operation %q is unknown to this provider process", req.GetOperation().GetId())
	}
	return t.ops.run(stream.Context(), req.GetOperation(), func(ctx context.Context, op *Op) (func(*pb.Completed), error) {
		op.SetExternalRef(req.GetExternalRef())
		return nil, re.Reattach(ctx, op, ReattachRequest{ExternalRef: req.GetExternalRef()})
	}, send)
}

// pipelineServer serves a PipelineSource.
type pipelineServer struct {
	pb.UnimplementedPipelineSourceServiceServer
	impl PipelineSource
}

func (p *pipelineServer) ListRuns(ctx context.Context, req *pb.ListRunsRequest) (*pb.ListRunsResponse, error) {
	runs, err := p.impl.Runs(ctx, RunsRequest{Service: req.GetService(), Limit: int(req.GetLimit())})
	if err != nil {
		return nil, grpcError(err)
	}
	resp := &pb.ListRunsResponse{}
	for _, r := range runs {
		resp.Runs = append(resp.Runs, toPipelineRun(r))
	}
	return resp, nil
}

func (p *pipelineServer) WatchRuns(req *pb.WatchRunsRequest, stream grpc.ServerStreamingServer[pb.WatchRunsResponse]) error {
	return grpcError(p.impl.WatchRuns(stream.Context(), WatchRunsRequest{Service: req.GetService()}, func(r PipelineRun) error {
		return stream.Send(&pb.WatchRunsResponse{Run: toPipelineRun(r)})
	}))
}

func (p *pipelineServer) Trigger(ctx context.Context, req *pb.TriggerRequest) (*pb.TriggerResponse, error) {
	tr, ok := p.impl.(Triggerer)
	if !ok {
		return nil, unsupported("Trigger")
	}
	id, err := tr.Trigger(ctx, TriggerRequest{Service: req.GetService(), Version: req.GetVersion(), FromStage: req.GetFromStage()})
	if err != nil {
		return nil, grpcError(err)
	}
	return &pb.TriggerResponse{RunId: id}, nil
}

func (p *pipelineServer) StreamLogs(req *pb.StreamLogsRequest, stream grpc.ServerStreamingServer[pb.StreamLogsResponse]) error {
	ls, ok := p.impl.(LogStreamer)
	if !ok {
		return unsupported("StreamLogs")
	}
	return grpcError(ls.Logs(stream.Context(), LogsRequest{RunID: req.GetRunId(), Step: req.GetStep(), Follow: req.GetFollow()}, func(l LogLine) error {
		return stream.Send(&pb.StreamLogsResponse{Line: &pb.LogLine{Time: toTime(l.Time), Source: req.GetStep(), Stream: l.Stream, Text: l.Text}})
	}))
}

func (p *pipelineServer) Cancel(ctx context.Context, req *pb.CancelRequest) (*pb.CancelResponse, error) {
	c, ok := p.impl.(Canceller)
	if !ok {
		return nil, unsupported("Cancel")
	}
	if err := c.Cancel(ctx, CancelRequest{RunID: req.GetRunId()}); err != nil {
		return nil, grpcError(err)
	}
	return &pb.CancelResponse{}, nil
}

// errorsServer serves an ErrorSource.
type errorsServer struct {
	pb.UnimplementedErrorSourceServiceServer
	impl ErrorSource
}

func (e *errorsServer) WatchCounts(req *pb.WatchCountsRequest, stream grpc.ServerStreamingServer[pb.WatchCountsResponse]) error {
	ref := fromRef(req.GetRef())
	return grpcError(e.impl.WatchCounts(stream.Context(), WatchCountsRequest{Ref: ref}, func(w ErrorWindow) error {
		return stream.Send(&pb.WatchCountsResponse{Window: toErrorWindow(ref, w)})
	}))
}

func (e *errorsServer) MarkDeploy(ctx context.Context, req *pb.MarkDeployRequest) (*pb.MarkDeployResponse, error) {
	m, ok := e.impl.(DeployMarker)
	if !ok {
		return nil, unsupported("MarkDeploy")
	}
	if err := m.MarkDeploy(ctx, MarkDeployRequest{Ref: fromRef(req.GetRef()), Release: req.GetRelease()}); err != nil {
		return nil, grpcError(err)
	}
	return &pb.MarkDeployResponse{}, nil
}

func (e *errorsServer) ListIssues(ctx context.Context, req *pb.ListIssuesRequest) (*pb.ListIssuesResponse, error) {
	il, ok := e.impl.(IssueLister)
	if !ok {
		return nil, unsupported("ListIssues")
	}
	issues, err := il.Issues(ctx, IssuesRequest{Ref: fromRef(req.GetRef()), Release: req.GetRelease()})
	if err != nil {
		return nil, grpcError(err)
	}
	w := toErrorWindow(Ref{}, ErrorWindow{Issues: issues})
	return &pb.ListIssuesResponse{Issues: w.GetIssues()}, nil
}

// backupServer serves a BackupSource. ListSets is an RPC of the protocol
// no host calls; it answers Unimplemented.
type backupServer struct {
	pb.UnimplementedBackupSourceServiceServer
	impl BackupSource
	ops  *operations
}

func (b *backupServer) WatchFreshness(_ *pb.WatchFreshnessRequest, stream grpc.ServerStreamingServer[pb.WatchFreshnessResponse]) error {
	return grpcError(b.impl.WatchFreshness(stream.Context(), WatchFreshnessRequest{}, func(f BackupFacts) error {
		return stream.Send(&pb.WatchFreshnessResponse{Facts: toBackupFacts(f)})
	}))
}

func (b *backupServer) Verify(req *pb.VerifyRequest, stream grpc.ServerStreamingServer[pb.VerifyResponse]) error {
	return b.ops.run(stream.Context(), req.GetOperation(), func(ctx context.Context, op *Op) (func(*pb.Completed), error) {
		facts, err := b.impl.Verify(ctx, op, VerifyRequest{Set: req.GetSet()})
		return func(c *pb.Completed) { c.BackupFacts = toBackupFacts(facts) }, err
	}, func(ev *pb.OperationEvent) error { return stream.Send(&pb.VerifyResponse{Event: ev}) })
}

func (b *backupServer) RunBackup(req *pb.RunBackupRequest, stream grpc.ServerStreamingServer[pb.RunBackupResponse]) error {
	r, ok := b.impl.(BackupRunner)
	if !ok {
		return unsupported("RunBackup")
	}
	return b.ops.run(stream.Context(), req.GetOperation(), func(ctx context.Context, op *Op) (func(*pb.Completed), error) {
		return nil, r.RunBackup(ctx, op, RunBackupRequest{Set: req.GetSet()})
	}, func(ev *pb.OperationEvent) error { return stream.Send(&pb.RunBackupResponse{Event: ev}) })
}
