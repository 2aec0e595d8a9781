// Package conformance is the test kit every Ripcord provider runs against
// its real binary:
//
//	func TestConformance(t *testing.T) {
//		conformance.Run(t, conformance.Options{
//			Binary:      buildMyPlugin(t),
//			Settings:    map[string]any{"repository": "/srv/restic"},
//			BadSettings: map[string]any{"repository": 42},
//			BadPath:     "repository",
//			BackupSet:   "db",
//		})
//	}
//
// It launches the binary through the real host (lock file, AutoMTLS,
// environment allowlist) and checks the handshake, GetInfo, Configure's
// error paths, health, and for every long operation the provider offers
// (Deploy for targets, RunBackup for backup sources): event order,
// cancellation within one second, and idempotency on the operation id.
//
// Idempotency is observed through external_ref: it names the work the
// provider actually did, so two calls with one operation id must report
// the same external_ref (the second attached or replayed), and two
// operation ids must report different ones.
package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/plugins/host"
	pb "github.com/ripcordhq/ripcord/plugins/proto/ripcord/plugin/v1"
	"github.com/ripcordhq/ripcord/plugins/sdk"
	"github.com/ripcordhq/ripcord/plugins/sdk/pbconv"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Options describe the provider under test.
type Options struct {
	// Binary is the provider's executable.
	Binary string
	// Name is the plugin name the host uses (default "provider").
	Name string
	// Env is passed to the plugin (PluginSpec.Env).
	Env []string
	// Settings must be accepted by Configure. They should make a long
	// operation take well over a second, so cancellation can be observed.
	Settings map[string]any
	Secrets  map[string]string
	// BadSettings must be rejected with a SettingError at BadPath.
	BadSettings map[string]any
	BadPath     string
	// Kinds the provider must declare ("target", "pipeline", "errors",
	// "backup"); empty means whatever it declares.
	Kinds []string
	// Ref and Release are used for deploy targets.
	Ref     core.Ref
	Release core.Release
	// BackupSet is used for backup sources.
	BackupSet string
	// Service is used for pipeline sources.
	Service string
	// CancelWithin bounds how long the provider may take to honour a
	// cancellation (default 1s).
	CancelWithin time.Duration
}

// Run runs the kit as subtests of t.
func Run(t *testing.T, o Options) {
	t.Helper()
	if o.Name == "" {
		o.Name = "provider"
	}
	if o.CancelWithin == 0 {
		o.CancelWithin = time.Second
	}
	if o.Ref == (core.Ref{}) {
		o.Ref = core.Ref{Service: "conformance", Env: "test"}
	}
	if o.Release.Version == "" {
		o.Release = core.Release{Service: o.Ref.Service, Version: "v0.0.1-conformance"}
	}
	dir := t.TempDir()
	spec := host.PluginSpec{Name: o.Name, Path: o.Binary, Env: o.Env}
	lock := filepath.Join(dir, host.LockFileName)
	if err := host.WriteLock(lock, []host.PluginSpec{spec}); err != nil {
		t.Fatalf("conformance: locking %s: %v", o.Binary, err)
	}
	healthCh := make(chan core.ProviderHealth, 64)
	h, err := host.New(host.Options{Plugins: []host.PluginSpec{spec}, LockFile: lock, Workdir: dir,
		SocketDir: filepath.Join(dir, "sock"), LogLevel: hclog.Warn, Log: func(l core.LogLine) { t.Log(l.Source, l.Text) },
		Health: func(ph core.ProviderHealth) {
			select {
			case healthCh <- ph:
			default:
			}
		}})
	if err != nil {
		t.Fatalf("conformance: %v", err)
	}
	t.Cleanup(func() { _ = h.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)

	if !t.Run("handshake", func(t *testing.T) {
		if err := h.Start(ctx); err != nil {
			t.Fatalf("start: %v", err)
		}
	}) {
		return
	}
	conn, err := h.Conn(ctx, o.Name)
	if err != nil {
		t.Fatalf("conformance: %v", err)
	}
	provider := pb.NewProviderServiceClient(conn)
	var info *pb.ProviderInfo
	t.Run("get_info", func(t *testing.T) {
		resp, err := provider.GetInfo(ctx, &pb.GetInfoRequest{})
		if err != nil {
			t.Fatal(err)
		}
		info = resp.GetInfo()
		if err := checkInfo(info, o.Kinds); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("health_reported", func(t *testing.T) {
		resp, err := provider.CheckHealth(ctx, &pb.CheckHealthRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetState() == pb.HealthState_HEALTH_STATE_UNSPECIFIED {
			t.Fatal("CheckHealth returned HEALTH_STATE_UNSPECIFIED")
		}
		for {
			select {
			case ph := <-healthCh:
				if ph.Name == o.Name && ph.State != host.StateStarting {
					return
				}
			default:
				t.Fatal("the host received no health report beyond starting")
			}
		}
	})
	t.Run("configure_bad_setting_names_path", func(t *testing.T) {
		if o.BadSettings == nil {
			t.Skip("Options.BadSettings not given")
		}
		err := h.Configure(ctx, o.Name, o.BadSettings, nil)
		var ce *host.ConfigError
		if !errors.As(err, &ce) {
			t.Fatalf("Configure(BadSettings) = %v, want setting errors", err)
		}
		for _, e := range ce.Errors {
			if e.Path == o.BadPath {
				return
			}
		}
		t.Fatalf("no setting error at path %q: %v", o.BadPath, ce)
	})
	t.Run("configure", func(t *testing.T) {
		if err := h.Configure(ctx, o.Name, o.Settings, o.Secrets); err != nil {
			t.Fatalf("Configure(Settings) = %v", err)
		}
	})
	if info == nil {
		return
	}
	for _, op := range operations(conn, info, o) {
		t.Run(op.name+"/stream_order", func(t *testing.T) { checkOrder(ctx, t, op) })
		t.Run(op.name+"/cancellation", func(t *testing.T) { checkCancel(ctx, t, op, o.CancelWithin) })
		t.Run(op.name+"/idempotent", func(t *testing.T) { checkIdempotent(ctx, t, op) })
	}
	if slices.Contains(info.GetKinds(), pb.Kind_KIND_PIPELINE_SOURCE) {
		t.Run("pipeline/watch_runs", func(t *testing.T) {
			checkFirst(ctx, t, func(ctx context.Context) (recv, error) {
				s, err := pb.NewPipelineSourceServiceClient(conn).WatchRuns(ctx, &pb.WatchRunsRequest{Service: o.Service})
				return recvOf(s), err
			})
		})
	}
	if slices.Contains(info.GetKinds(), pb.Kind_KIND_ERROR_SOURCE) {
		t.Run("errors/watch_counts", func(t *testing.T) {
			checkFirst(ctx, t, func(ctx context.Context) (recv, error) {
				s, err := pb.NewErrorSourceServiceClient(conn).WatchCounts(ctx, &pb.WatchCountsRequest{Ref: pbconv.Ref(o.Ref)})
				return recvOf(s), err
			})
		})
	}
	if slices.Contains(info.GetKinds(), pb.Kind_KIND_BACKUP_SOURCE) {
		t.Run("backup/watch_freshness", func(t *testing.T) {
			checkFirst(ctx, t, func(ctx context.Context) (recv, error) {
				s, err := pb.NewBackupSourceServiceClient(conn).WatchFreshness(ctx, &pb.WatchFreshnessRequest{})
				return recvOf(s), err
			})
		})
	}
}

func checkInfo(info *pb.ProviderInfo, kinds []string) error {
	if info.GetName() == "" || info.GetVersion() == "" {
		return fmt.Errorf("GetInfo: name %q and version %q must be set", info.GetName(), info.GetVersion())
	}
	if len(info.GetKinds()) == 0 {
		return errors.New("GetInfo: no kinds")
	}
	declared := map[string]bool{}
	for _, k := range info.GetKinds() {
		if k == pb.Kind_KIND_UNSPECIFIED {
			return errors.New("GetInfo: KIND_UNSPECIFIED among kinds")
		}
		declared[kindName(k)] = true
	}
	for _, k := range kinds {
		if !declared[k] {
			return fmt.Errorf("GetInfo: kind %q not declared (declared %v)", k, info.GetKinds())
		}
	}
	var schema map[string]any
	if err := json.Unmarshal([]byte(info.GetConfigSchemaJson()), &schema); err != nil {
		return fmt.Errorf("GetInfo: config schema is not a JSON object: %w", err)
	}
	if ty, ok := schema["type"]; ok && ty != "object" {
		return fmt.Errorf("GetInfo: config schema type is %v, want object", ty)
	}
	if props, ok := schema["properties"]; ok {
		m, ok := props.(map[string]any)
		if !ok {
			return errors.New("GetInfo: config schema properties is not an object")
		}
		for name, p := range m {
			if _, ok := p.(map[string]any); !ok {
				return fmt.Errorf("GetInfo: config schema property %q is not a schema object", name)
			}
		}
	}
	return nil
}

func kindName(k pb.Kind) string {
	switch k {
	case pb.Kind_KIND_DEPLOY_TARGET:
		return "target"
	case pb.Kind_KIND_PIPELINE_SOURCE:
		return "pipeline"
	case pb.Kind_KIND_ERROR_SOURCE:
		return "errors"
	case pb.Kind_KIND_BACKUP_SOURCE:
		return "backup"
	}
	return k.String()
}

type recv func() (any, error)

func recvOf[T any](s grpc.ServerStreamingClient[T]) recv {
	if s == nil {
		return nil
	}
	return func() (any, error) { return s.Recv() }
}

// checkFirst: a watch stream delivers its first message promptly.
func checkFirst(ctx context.Context, t *testing.T, open func(context.Context) (recv, error)) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	r, err := open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r(); err != nil {
		t.Fatalf("no first message: %v", err)
	}
}

// operation is one long operation of the provider, started with an id.
type operation struct {
	name  string
	start func(ctx context.Context, id string) (func() (*pb.OperationEvent, error), error)
}

func operations(conn *grpc.ClientConn, info *pb.ProviderInfo, o Options) []operation {
	var ops []operation
	if slices.Contains(info.GetKinds(), pb.Kind_KIND_DEPLOY_TARGET) {
		c := pb.NewDeployTargetServiceClient(conn)
		ops = append(ops, operation{name: "target/deploy", start: func(ctx context.Context, id string) (func() (*pb.OperationEvent, error), error) {
			s, err := c.Deploy(ctx, &pb.DeployRequest{Operation: &pb.Operation{Id: id, Ref: pbconv.Ref(o.Ref)}, Release: pbconv.Release(o.Release), Weight: 100})
			if err != nil {
				return nil, err
			}
			return func() (*pb.OperationEvent, error) { m, err := s.Recv(); return m.GetEvent(), err }, nil
		}})
	}
	if slices.Contains(info.GetKinds(), pb.Kind_KIND_BACKUP_SOURCE) {
		c := pb.NewBackupSourceServiceClient(conn)
		ops = append(ops, operation{name: "backup/verify", start: func(ctx context.Context, id string) (func() (*pb.OperationEvent, error), error) {
			s, err := c.Verify(ctx, &pb.VerifyRequest{Operation: &pb.Operation{Id: id}, Set: o.BackupSet})
			if err != nil {
				return nil, err
			}
			return func() (*pb.OperationEvent, error) { m, err := s.Recv(); return m.GetEvent(), err }, nil
		}})
	}
	// Backups run from the console only where the provider says it can
	// (a dir source watches files an external job writes).
	if slices.Contains(info.GetKinds(), pb.Kind_KIND_BACKUP_SOURCE) && slices.Contains(info.GetCapabilities(), sdk.CapabilityRunBackup) {
		c := pb.NewBackupSourceServiceClient(conn)
		ops = append(ops, operation{name: "backup/run_backup", start: func(ctx context.Context, id string) (func() (*pb.OperationEvent, error), error) {
			s, err := c.RunBackup(ctx, &pb.RunBackupRequest{Operation: &pb.Operation{Id: id}, Set: o.BackupSet})
			if err != nil {
				return nil, err
			}
			return func() (*pb.OperationEvent, error) { m, err := s.Recv(); return m.GetEvent(), err }, nil
		}})
	}
	return ops
}

var opCounter int

func newID(name string) string {
	opCounter++
	return fmt.Sprintf("conformance-%s-%d-%d", filepath.Base(name), time.Now().UnixNano(), opCounter)
}

// collect reads a whole operation stream.
func collect(ctx context.Context, op operation, id string) ([]*pb.OperationEvent, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	next, err := op.start(ctx, id)
	if err != nil {
		return nil, err
	}
	var evs []*pb.OperationEvent
	for {
		ev, err := next()
		if errors.Is(err, io.EOF) {
			return evs, nil
		}
		if err != nil {
			return evs, err
		}
		evs = append(evs, ev)
	}
}

func validate(id string, evs []*pb.OperationEvent) error {
	if len(evs) == 0 {
		return errors.New("no events")
	}
	for i, ev := range evs {
		if ev.GetOperationId() != id {
			return fmt.Errorf("event %d has operation_id %q, want %q", i, ev.GetOperationId(), id)
		}
		if i > 0 && ev.GetSeq() <= evs[i-1].GetSeq() {
			return fmt.Errorf("seq not strictly increasing: %d after %d", ev.GetSeq(), evs[i-1].GetSeq())
		}
		if (ev.GetCompleted() != nil) != (i == len(evs)-1) {
			return fmt.Errorf("completed must be sent exactly once, last (event %d of %d)", i+1, len(evs))
		}
	}
	if evs[len(evs)-1].GetExternalRef() == "" {
		return errors.New("completed carries no external_ref")
	}
	return nil
}

func checkOrder(ctx context.Context, t *testing.T, op operation) {
	id := newID(op.name)
	evs, err := collect(ctx, op, id)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate(id, evs); err != nil {
		t.Fatal(err)
	}
	if got := evs[len(evs)-1].GetCompleted().GetOutcome(); got != pb.Outcome_OUTCOME_SUCCEEDED {
		t.Fatalf("outcome %v: %s", got, evs[len(evs)-1].GetCompleted().GetError())
	}
}

// checkCancel cancels the call after its first event, then attaches with
// the same id: the recorded completion must be CANCELLED and must arrive
// within the bound, measured from the cancel.
func checkCancel(ctx context.Context, t *testing.T, op operation, within time.Duration) {
	id := newID(op.name)
	callCtx, cancel := context.WithCancel(ctx)
	next, err := op.start(callCtx, id)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if _, err := next(); err != nil {
		cancel()
		t.Fatalf("first event: %v", err)
	}
	cancel()
	cancelledAt := time.Now()
	if _, err := next(); err != nil && status.Code(err) != codes.Canceled {
		t.Logf("after cancel: %v", err)
	}
	attachCtx, done := context.WithDeadline(ctx, cancelledAt.Add(within))
	defer done()
	evs, err := collect(attachCtx, op, id)
	if err != nil {
		t.Fatalf("attaching after cancel: the provider did not complete the cancelled operation within %v: %v", within, err)
	}
	if err := validate(id, evs); err != nil {
		t.Fatal(err)
	}
	c := evs[len(evs)-1].GetCompleted()
	if c.GetOutcome() == pb.Outcome_OUTCOME_SUCCEEDED {
		// A quick operation may finish before the cancel reaches it; what
		// a person depends on is that it ended within the bound.
		t.Logf("%s finished before the cancel reached it", op.name)
		return
	}
	if c.GetOutcome() != pb.Outcome_OUTCOME_CANCELLED {
		t.Fatalf("outcome after cancel = %v, want OUTCOME_CANCELLED", c.GetOutcome())
	}
	if d := time.Since(cancelledAt); d > within {
		t.Fatalf("cancellation took %v, bound %v", d, within)
	}
}

// checkIdempotent: the same id twice does the work once (same
// external_ref, same events); another id does new work.
func checkIdempotent(ctx context.Context, t *testing.T, op operation) {
	id := newID(op.name)
	type result struct {
		evs []*pb.OperationEvent
		err error
	}
	first := make(chan result, 1)
	go func() { evs, err := collect(ctx, op, id); first <- result{evs, err} }()
	second, err := collect(ctx, op, id) // concurrently: attaches to the live one
	if err != nil {
		t.Fatal(err)
	}
	r1 := <-first
	if r1.err != nil {
		t.Fatal(r1.err)
	}
	third, err := collect(ctx, op, id) // after completion: replays
	if err != nil {
		t.Fatal(err)
	}
	for _, evs := range [][]*pb.OperationEvent{r1.evs, second, third} {
		if err := validate(id, evs); err != nil {
			t.Fatal(err)
		}
	}
	ref := r1.evs[len(r1.evs)-1].GetExternalRef()
	if second[len(second)-1].GetExternalRef() != ref || third[len(third)-1].GetExternalRef() != ref {
		t.Fatalf("one operation id did the work more than once: external refs %q, %q, %q",
			ref, second[len(second)-1].GetExternalRef(), third[len(third)-1].GetExternalRef())
	}
	if len(third) != len(r1.evs) {
		t.Fatalf("replay has %d events, the original %d", len(third), len(r1.evs))
	}
	other, err := collect(ctx, op, newID(op.name))
	if err != nil {
		t.Fatal(err)
	}
	if other[len(other)-1].GetExternalRef() == ref {
		t.Fatalf("two operation ids report the same external_ref %q; external_ref must name the work done", ref)
	}
}
