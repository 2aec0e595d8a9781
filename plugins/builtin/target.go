package builtin

import (
	"context"
	"fmt"
	"sync"
	"text/template"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/plugins/local"
	"github.com/ripcordhq/ripcord/plugins/sdk"
)

// refSettings is the environment a target serves. The console fills it in
// from the environment entry the target block belongs to.
type refSettings struct {
	Service string `json:"service" required:"true"`
	Env     string `json:"env" required:"true"`
}

// localSettings are the local target's block in ripcord.yaml.
type localSettings struct {
	Ref    refSettings       `json:"ref" required:"true"`
	Root   string            `json:"root" required:"true"`
	Run    string            `json:"run" required:"true"`
	Health string            `json:"health" required:"true"`
	Port   int               `json:"port"`
	Env    map[string]string `json:"env"`
	Keep   int               `json:"keep"`
	Grace  time.Duration     `json:"grace"`
	// HealthTimeout bounds a starting release's health check.
	HealthTimeout time.Duration `json:"health_timeout"`
	// ArtifactStore is where the pipeline put the artifacts, by sha256.
	ArtifactStore string `json:"artifact_store"`
	ArtifactName  string `json:"artifact_name"`
}

// localServer serves plugins/local as a built-in deploy target.
type localServer struct {
	log hclog.Logger

	mu  sync.Mutex
	tgt *local.Target
}

var (
	_ sdk.Target     = (*localServer)(nil)
	_ sdk.Reattacher = (*localServer)(nil)
)

func localConfig(version string) sdk.ServeConfig {
	log := sdk.NewLogger("local")
	l := &localServer{log: log}
	return sdk.ServeConfig{
		Info:     sdk.Info{Name: "local", Version: version, ConfigSchema: schemaFor(localSettings{})},
		Provider: l,
		Target:   l,
		Logger:   log,
	}
}

// Configure replaces the target. The old one lets go first: the new one
// takes over the same root, and adopts the proxy and the releases the old
// one left running.
func (l *localServer) Configure(_ context.Context, req sdk.ConfigureRequest) error {
	var s localSettings
	if err := decodeStrict(req.Settings, &s); err != nil {
		return err
	}
	var errs sdk.SettingErrors
	if s.Port < 0 || s.Port > 65535 {
		errs = append(errs, sdk.SettingError{Path: "port", Message: fmt.Sprintf("%d is not a port number", s.Port)})
	}
	for _, f := range []struct{ path, text string }{{"run", s.Run}, {"health", s.Health}} {
		if _, err := template.New(f.path).Parse(f.text); err != nil {
			errs = append(errs, sdk.SettingError{Path: f.path, Message: "is not a valid template: " + err.Error()})
		}
	}
	if len(errs) > 0 {
		return errs
	}
	cfg := local.Config{
		Ref: core.Ref{Service: s.Ref.Service, Env: s.Ref.Env}, Root: s.Root, Run: s.Run, Port: s.Port,
		Health: s.Health, Env: s.Env, Keep: s.Keep, Grace: s.Grace, HealthTimeout: s.HealthTimeout,
		ArtifactStore: s.ArtifactStore, ArtifactName: s.ArtifactName,
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.tgt != nil {
		l.tgt.Detach()
		l.tgt = nil
	}
	tgt, err := local.New(cfg, logTo(l.log))
	if err != nil {
		return err
	}
	l.tgt = tgt
	return nil
}

func (l *localServer) CheckHealth(context.Context) error {
	if l.target() == nil {
		return sdk.Degraded("local: waiting for its settings")
	}
	return nil
}

func (l *localServer) target() *local.Target {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.tgt
}

func (l *localServer) ready() (*local.Target, error) {
	if t := l.target(); t != nil {
		return t, nil
	}
	return nil, fmt.Errorf("local: %w", errNotConfigured)
}

func (l *localServer) Status(ctx context.Context, req sdk.StatusRequest) (sdk.TargetStatus, error) {
	t, err := l.ready()
	if err != nil {
		return sdk.TargetStatus{}, err
	}
	st, err := t.Status(ctx, coreRef(req.Ref))
	return sdkTargetStatus(st), err
}

func (l *localServer) WatchStatus(ctx context.Context, req sdk.WatchStatusRequest, send func(sdk.TargetStatus) error) error {
	t, err := l.ready()
	if err != nil {
		return err
	}
	return watchWith(ctx, send, sdkTargetStatus, func(ctx context.Context, fn func(core.TargetStatus)) error {
		return t.WatchStatus(ctx, coreRef(req.Ref), fn)
	})
}

func (l *localServer) Deploy(ctx context.Context, op *sdk.Op, req sdk.DeployRequest) error {
	t, err := l.ready()
	if err != nil {
		return err
	}
	return t.Deploy(ctx, coreOp(op), coreRelease(req.Release), req.Weight, relayTo(op))
}

func (l *localServer) SetWeight(ctx context.Context, op *sdk.Op, req sdk.SetWeightRequest) error {
	t, err := l.ready()
	if err != nil {
		return err
	}
	return t.SetWeight(ctx, coreOp(op), req.Weight, relayTo(op))
}

func (l *localServer) Rollback(ctx context.Context, op *sdk.Op, req sdk.RollbackRequest) error {
	t, err := l.ready()
	if err != nil {
		return err
	}
	return t.Rollback(ctx, coreOp(op), req.ToVersion, relayTo(op))
}

// Reattach follows an operation a previous provider process started: the
// local target keeps every operation's events under its root.
func (l *localServer) Reattach(ctx context.Context, op *sdk.Op, req sdk.ReattachRequest) error {
	t, err := l.ready()
	if err != nil {
		return err
	}
	return t.WatchOperation(ctx, coreOp(op), req.ExternalRef, relayTo(op))
}

// relayTo turns a provider's operation events into the op's. The final
// event is not relayed: the SDK sends the completion itself from the
// returned error.
func relayTo(op *sdk.Op) func(core.OpEvent) {
	return func(ev core.OpEvent) {
		if ev.ExternalRef != "" {
			op.SetExternalRef(ev.ExternalRef)
		}
		if ev.Done {
			return
		}
		if ev.Log != "" {
			_ = op.Log("stdout", ev.Log)
		}
		if ev.Message != "" || ev.Progress > 0 {
			_ = op.Progress(ev.Progress, ev.Message)
		}
	}
}

// logTo relays a provider's output lines (a service's, a step's) to the
// plugin's log, which the host passes on to the console's log stream.
func logTo(log hclog.Logger) func(core.LogLine) {
	return func(line core.LogLine) {
		log.Info(line.Text, "source", line.Source, "stream", line.Stream)
	}
}

// watchWith runs a callback-style watch of core values, sending each
// update converted to the SDK's type; the first failed send ends the
// watch with that error.
func watchWith[C, S any](ctx context.Context, send func(S) error, conv func(C) S, watch func(context.Context, func(C)) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	err := watch(ctx, func(v C) {
		if ctx.Err() != nil {
			return
		}
		if err := send(conv(v)); err != nil {
			cancel(err)
		}
	})
	if cause := context.Cause(ctx); cause != nil && cause != context.Canceled {
		return cause
	}
	return err
}
