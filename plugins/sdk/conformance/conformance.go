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
// error paths, health, the watches' first messages, a target's traffic
// contract (with Options.Candidate), and for every long operation the
// provider offers (Deploy, Verify, RunBackup): event order, cancellation
// within one second, and idempotency on the operation id. Every failure
// says what the contract in plugins/sdk/README.md requires.
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
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/plugins/host"
	pb "github.com/ripcordhq/ripcord/plugins/internal/pluginpb"
	"github.com/ripcordhq/ripcord/plugins/internal/protocol"
	"github.com/ripcordhq/ripcord/plugins/sdk"
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
	// Ref and Release are used for deploy targets: Release is deployed at
	// 100% into Ref.
	Ref     sdk.Ref
	Release sdk.Release
	// Candidate, for deploy targets, is a second release the kit runs a
	// canary of beside Release: Deploy at 10%, SetWeight 0 (abort),
	// SetWeight 100 (the candidate becomes current), then Rollback to
	// Release. Empty skips that part.
	Candidate sdk.Release
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
	if o.Ref == (sdk.Ref{}) {
		o.Ref = sdk.Ref{Service: "conformance", Env: "test"}
	}
	if o.Release.Version == "" {
		o.Release = sdk.Release{Service: o.Ref.Service, Version: "v0.0.1-conformance"}
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
			t.Fatalf("start: %v\nthe contract: the binary calls sdk.Serve (or speaks the go-plugin handshake of ripcord.plugin.v1) and writes nothing else to stdout", err)
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
			t.Fatal("CheckHealth returned HEALTH_STATE_UNSPECIFIED; the contract: healthy, degraded (sdk.Degraded) or failed")
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
			t.Fatalf("Configure(BadSettings) = %v; the contract: reject settings with sdk.SettingErrors, each with the dotted path of the setting, so the user sees ripcord.yaml:LINE:COL", err)
		}
		for _, e := range ce.Errors {
			if e.Path == o.BadPath {
				return
			}
		}
		t.Fatalf("no setting error at path %q: %v; the contract: SettingError.Path is the dotted path from the provider's block (\"limits.max_weight\", \"stages.2.run\")", o.BadPath, ce)
	})
	t.Run("configure", func(t *testing.T) {
		if err := h.Configure(ctx, o.Name, o.Settings, o.Secrets); err != nil {
			t.Fatalf("Configure(Settings) = %v; the contract: good settings are accepted, and Configure may be called again with the same settings after a restart", err)
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
	if slices.Contains(info.GetKinds(), pb.Kind_KIND_DEPLOY_TARGET) {
		c := pb.NewDeployTargetServiceClient(conn)
		t.Run("target/watch_status", func(t *testing.T) {
			checkWatch(ctx, t, "WatchStatus", true, "sends the current status at once, then every change", func(ctx context.Context) (recv, error) {
				s, err := c.WatchStatus(ctx, &pb.WatchStatusRequest{Ref: toRef(o.Ref)})
				return recvOf(s), err
			})
		})
		t.Run("target/deploy_makes_current", func(t *testing.T) { checkDeployCurrent(ctx, t, c, o) })
		t.Run("target/canary", func(t *testing.T) { checkCanary(ctx, t, c, o) })
	}
	if slices.Contains(info.GetKinds(), pb.Kind_KIND_PIPELINE_SOURCE) {
		t.Run("pipeline/watch_runs", func(t *testing.T) {
			c := pb.NewPipelineSourceServiceClient(conn)
			list, err := c.ListRuns(ctx, &pb.ListRunsRequest{Service: o.Service, Limit: 10})
			if err != nil {
				t.Fatalf("Runs: %v; the contract: Runs lists the service's newest runs, possibly none", err)
			}
			// With runs to show, the first comes at once; without, the
			// stream waits for the first run, open.
			checkWatch(ctx, t, "WatchRuns", len(list.GetRuns()) > 0, "sends the runs it knows at once (in the order they started), then every change, and keeps the stream open until the host cancels it", func(ctx context.Context) (recv, error) {
				s, err := c.WatchRuns(ctx, &pb.WatchRunsRequest{Service: o.Service})
				return recvOf(s), err
			})
		})
	}
	if slices.Contains(info.GetKinds(), pb.Kind_KIND_ERROR_SOURCE) {
		t.Run("errors/watch_counts", func(t *testing.T) {
			checkWatch(ctx, t, "WatchCounts", false, "sends each release's window as its counts change, and keeps the stream open until the host cancels it", func(ctx context.Context) (recv, error) {
				s, err := pb.NewErrorSourceServiceClient(conn).WatchCounts(ctx, &pb.WatchCountsRequest{Ref: toRef(o.Ref)})
				return recvOf(s), err
			})
		})
	}
	if slices.Contains(info.GetKinds(), pb.Kind_KIND_BACKUP_SOURCE) {
		t.Run("backup/watch_freshness", func(t *testing.T) {
			checkWatch(ctx, t, "WatchFreshness", true, "sends every set's facts at once (an unreadable set with its reason), then every change", func(ctx context.Context) (recv, error) {
				s, err := pb.NewBackupSourceServiceClient(conn).WatchFreshness(ctx, &pb.WatchFreshnessRequest{})
				return recvOf(s), err
			})
		})
	}
}

func toRef(r sdk.Ref) *pb.Ref { return &pb.Ref{Service: r.Service, Env: r.Env} }

func toRelease(r sdk.Release) *pb.Release {
	return &pb.Release{Service: r.Service, Version: r.Version, Commit: r.Commit, Branch: r.Branch, ArtifactDigest: r.ArtifactDigest}
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

// firstWithin bounds a watch's first message — "at once" includes the
// first read of a slow tool (borg on a busy machine takes seconds) — and
// openFor is how long a watch with nothing to send must at least stay open.
const (
	firstWithin = 30 * time.Second
	openFor     = 2 * time.Second
)

// checkWatch opens a watch. With wantFirst its first message must arrive
// within firstWithin; without, the stream must not end by itself within
// openFor (a watch returns only when the host cancels it).
func checkWatch(ctx context.Context, t *testing.T, name string, wantFirst bool, contract string, open func(context.Context) (recv, error)) {
	limit := openFor
	if wantFirst {
		limit = firstWithin
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	start := time.Now()
	r, err := open(ctx)
	if err != nil {
		t.Fatalf("%s: %v; the contract: %s %s", name, err, name, contract)
	}
	_, err = r()
	switch {
	case err == nil:
	case !wantFirst && status.Code(err) == codes.DeadlineExceeded:
		// Nothing to send yet, and the stream stayed open: as required.
	case wantFirst && status.Code(err) == codes.DeadlineExceeded:
		t.Fatalf("%s sent nothing within %v; the contract: %s %s", name, firstWithin, name, contract)
	default:
		t.Fatalf("%s ended after %v without a message (%v); the contract: %s %s", name, time.Since(start).Round(time.Millisecond), err, name, contract)
	}
}

// status reads a target's status.
func targetStatus(ctx context.Context, c pb.DeployTargetServiceClient, ref sdk.Ref) (*pb.TargetStatus, error) {
	resp, err := c.Status(ctx, &pb.StatusRequest{Ref: toRef(ref)})
	return resp.GetStatus(), err
}

// runTargetOp runs one target operation to its end and returns the
// completion.
func runTargetOp(ctx context.Context, start func(context.Context) (func() (*pb.OperationEvent, error), error)) (*pb.Completed, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	next, err := start(ctx)
	if err != nil {
		return nil, err
	}
	for {
		ev, err := next()
		if err != nil {
			return nil, err
		}
		if c := ev.GetCompleted(); c != nil {
			if c.GetOutcome() != pb.Outcome_OUTCOME_SUCCEEDED {
				return c, fmt.Errorf("outcome %v: %s", c.GetOutcome(), c.GetError())
			}
			return c, nil
		}
	}
}

func deploy(c pb.DeployTargetServiceClient, o Options, rel sdk.Release, weight int) func(context.Context) (func() (*pb.OperationEvent, error), error) {
	return func(ctx context.Context) (func() (*pb.OperationEvent, error), error) {
		s, err := c.Deploy(ctx, &pb.DeployRequest{Operation: &pb.Operation{Id: newID("deploy"), Ref: toRef(o.Ref)}, Release: toRelease(rel), Weight: int32(weight)})
		return func() (*pb.OperationEvent, error) { m, err := s.Recv(); return m.GetEvent(), err }, err
	}
}

func setWeight(c pb.DeployTargetServiceClient, o Options, weight int) func(context.Context) (func() (*pb.OperationEvent, error), error) {
	return func(ctx context.Context) (func() (*pb.OperationEvent, error), error) {
		s, err := c.SetWeight(ctx, &pb.SetWeightRequest{Operation: &pb.Operation{Id: newID("weight"), Ref: toRef(o.Ref)}, Weight: int32(weight)})
		return func() (*pb.OperationEvent, error) { m, err := s.Recv(); return m.GetEvent(), err }, err
	}
}

func rollback(c pb.DeployTargetServiceClient, o Options, to string) func(context.Context) (func() (*pb.OperationEvent, error), error) {
	return func(ctx context.Context) (func() (*pb.OperationEvent, error), error) {
		s, err := c.Rollback(ctx, &pb.RollbackRequest{Operation: &pb.Operation{Id: newID("rollback"), Ref: toRef(o.Ref)}, ToVersion: to})
		return func() (*pb.OperationEvent, error) { m, err := s.Recv(); return m.GetEvent(), err }, err
	}
}

// checkDeployCurrent: a deploy at 100% makes the release the one serving.
func checkDeployCurrent(ctx context.Context, t *testing.T, c pb.DeployTargetServiceClient, o Options) {
	if _, err := runTargetOp(ctx, deploy(c, o, o.Release, 100)); err != nil {
		t.Fatalf("Deploy(%s, 100): %v", o.Release.Version, err)
	}
	st, err := targetStatus(ctx, c, o.Ref)
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	if st.GetCurrent() != o.Release.Version || st.GetCandidate() != "" {
		t.Fatalf("after Deploy(%s, 100) Status says current %q, candidate %q; the contract: Deploy at 100 replaces the current release, so Status reports it current with no candidate",
			o.Release.Version, st.GetCurrent(), st.GetCandidate())
	}
}

// checkCanary walks the traffic contract: a canary beside the current
// release, abort, promote, rollback.
func checkCanary(ctx context.Context, t *testing.T, c pb.DeployTargetServiceClient, o Options) {
	if o.Candidate.Version == "" {
		t.Skip("Options.Candidate not given")
	}
	if _, err := runTargetOp(ctx, deploy(c, o, o.Release, 100)); err != nil {
		t.Fatalf("Deploy(%s, 100): %v", o.Release.Version, err)
	}
	expect := func(step, current, candidate string, weight int, contract string) {
		t.Helper()
		st, err := targetStatus(ctx, c, o.Ref)
		if err != nil {
			t.Fatalf("%s: Status: %v", step, err)
		}
		if st.GetCurrent() != current || st.GetCandidate() != candidate || int(st.GetWeight()) != weight {
			t.Fatalf("after %s Status says current %q, candidate %q at %d%%; want %q, %q at %d%%; the contract: %s",
				step, st.GetCurrent(), st.GetCandidate(), st.GetWeight(), current, candidate, weight, contract)
		}
	}
	if _, err := runTargetOp(ctx, deploy(c, o, o.Candidate, 10)); err != nil {
		t.Fatalf("Deploy(%s, 10): %v", o.Candidate.Version, err)
	}
	expect("Deploy(candidate, 10)", o.Release.Version, o.Candidate.Version, 10,
		"Deploy below 100 installs the release beside the current one and gives it that share of traffic; the current release keeps serving the rest")
	if _, err := runTargetOp(ctx, setWeight(c, o, 0)); err != nil {
		t.Fatalf("SetWeight(0): %v", err)
	}
	expect("SetWeight(0)", o.Release.Version, o.Candidate.Version, 0,
		"SetWeight(0) is an abort: all traffic back on the current release, the candidate kept installed for inspection")
	if _, err := runTargetOp(ctx, setWeight(c, o, 100)); err != nil {
		t.Fatalf("SetWeight(100): %v", err)
	}
	expect("SetWeight(100)", o.Candidate.Version, "", 0,
		"SetWeight(100) makes the candidate the current release; nothing is left beside it")
	if _, err := runTargetOp(ctx, rollback(c, o, o.Release.Version)); err != nil {
		t.Fatalf("Rollback(%s): %v", o.Release.Version, err)
	}
	expect("Rollback(first release)", o.Release.Version, "", 0,
		"Rollback makes a kept release the only one serving, at once, without steps")
	st, _ := targetStatus(ctx, c, o.Ref)
	if !slices.Contains(st.GetKept(), o.Candidate.Version) {
		t.Fatalf("after the rollback Kept = %v; the contract: Kept lists the releases still installed, which a rollback can return to (the rolled-back %s among them)", st.GetKept(), o.Candidate.Version)
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
			s, err := c.Deploy(ctx, &pb.DeployRequest{Operation: &pb.Operation{Id: id, Ref: toRef(o.Ref)}, Release: toRelease(o.Release), Weight: 100})
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
	if slices.Contains(info.GetKinds(), pb.Kind_KIND_BACKUP_SOURCE) && slices.Contains(info.GetCapabilities(), protocol.CapRunBackup) {
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
		return errors.New("no events; the contract: an operation's stream ends with exactly one completion (the SDK sends it when the method returns)")
	}
	for i, ev := range evs {
		if ev.GetOperationId() != id {
			return fmt.Errorf("event %d has operation_id %q, want %q; the contract: every event names the host's operation id", i, ev.GetOperationId(), id)
		}
		if i > 0 && ev.GetSeq() <= evs[i-1].GetSeq() {
			return fmt.Errorf("seq not strictly increasing: %d after %d; the contract: seq starts at 1 and increases within an operation", ev.GetSeq(), evs[i-1].GetSeq())
		}
		if (ev.GetCompleted() != nil) != (i == len(evs)-1) {
			return fmt.Errorf("completed must be sent exactly once, last (event %d of %d); the contract: nothing after the completion", i+1, len(evs))
		}
	}
	if evs[len(evs)-1].GetExternalRef() == "" {
		return errors.New("completed carries no external_ref; the contract: external_ref names the work done (Op.SetExternalRef, or the SDK's own id)")
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
		t.Fatalf("outcome %v: %s; the contract: with good settings the operation succeeds", got, evs[len(evs)-1].GetCompleted().GetError())
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
		t.Fatalf("attaching after cancel: the provider did not complete the cancelled operation within %v: %v; the contract: return within a second of ctx being done", within, err)
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
		t.Fatalf("outcome after cancel = %v, want OUTCOME_CANCELLED; the contract: when ctx is done, stop and return (the SDK records the cancellation)", c.GetOutcome())
	}
	if d := time.Since(cancelledAt); d > within {
		t.Fatalf("cancellation took %v, bound %v; the contract: return within a second of ctx being done", d, within)
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
		t.Fatalf("one operation id did the work more than once: external refs %q, %q, %q; the contract: the host's operation id is an idempotency key (the SDK attaches and replays; keep the external ref stable for one id)",
			ref, second[len(second)-1].GetExternalRef(), third[len(third)-1].GetExternalRef())
	}
	if len(third) != len(r1.evs) {
		t.Fatalf("replay has %d events, the original %d; the contract: asking again for a finished operation replays its events", len(third), len(r1.evs))
	}
	other, err := collect(ctx, op, newID(op.name))
	if err != nil {
		t.Fatal(err)
	}
	if other[len(other)-1].GetExternalRef() == ref {
		t.Fatalf("two operation ids report the same external_ref %q; external_ref must name the work done", ref)
	}
}
