package builtin

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/plugins/exec"
	"github.com/ripcordhq/ripcord/plugins/sdk"
)

// execSettings are the exec pipeline's block in ripcord.yaml.
type execSettings struct {
	// Service is filled in by the console from the service entry; runs
	// are kept per service as Trigger names it.
	Service string `json:"service"`
	// StateDir keeps runs, logs and the artifact store.
	StateDir string `json:"state_dir" required:"true"`
	// WorkDir is where steps run; default the provider's working directory.
	WorkDir string `json:"work_dir"`
	// MigrationsDir is filled in by the console from the service's
	// migrations.dir: read at each run's commit.
	MigrationsDir string              `json:"migrations_dir"`
	Grace         time.Duration       `json:"grace"`
	Stages        []execStageSettings `json:"stages" required:"true"`
}

type execStageSettings struct {
	Name     string             `json:"name" required:"true"`
	Needs    []string           `json:"needs"`
	Run      string             `json:"run"`
	Env      map[string]string  `json:"env"`
	Timeout  time.Duration      `json:"timeout"`
	Artifact string             `json:"artifact"`
	Steps    []execStepSettings `json:"steps"`
}

type execStepSettings struct {
	Name     string            `json:"name" required:"true"`
	Run      string            `json:"run" required:"true"`
	Env      map[string]string `json:"env"`
	Timeout  time.Duration     `json:"timeout"`
	Artifact string            `json:"artifact"`
}

// execServer serves plugins/exec as a built-in pipeline source.
type execServer struct {
	log hclog.Logger

	mu  sync.Mutex
	src *exec.Source
}

var (
	_ sdk.PipelineSource = (*execServer)(nil)
	_ sdk.Triggerer      = (*execServer)(nil)
	_ sdk.LogStreamer    = (*execServer)(nil)
	_ sdk.Canceller      = (*execServer)(nil)
)

func execConfig(version string) sdk.ServeConfig {
	log := sdk.NewLogger("exec")
	e := &execServer{log: log}
	return sdk.ServeConfig{
		Info:     sdk.Info{Name: "exec", Version: version, ConfigSchema: schemaFor(execSettings{})},
		Provider: e,
		Pipeline: e,
		Logger:   log,
	}
}

// Configure replaces the pipeline. The old one is closed first, which
// cancels its runs: they ran the old stages.
func (e *execServer) Configure(_ context.Context, req sdk.ConfigureRequest) error {
	var s execSettings
	if err := decodeStrict(req.Settings, &s); err != nil {
		return err
	}
	cfg := exec.Config{StateDir: s.StateDir, WorkDir: s.WorkDir, MigrationsDir: s.MigrationsDir, Grace: s.Grace}
	for i, st := range s.Stages {
		if st.Run != "" && len(st.Steps) > 0 {
			return sdk.SettingErrors{{Path: fmt.Sprintf("stages.%d", i), Message: "has both run and steps; use one"}}
		}
		if st.Run == "" && len(st.Steps) == 0 {
			return sdk.SettingErrors{{Path: fmt.Sprintf("stages.%d.run", i), Message: "is required (or steps)"}}
		}
		sc := exec.StageConfig{Name: st.Name, Needs: st.Needs, Run: st.Run, Env: st.Env, Timeout: st.Timeout, Artifact: st.Artifact}
		for _, step := range st.Steps {
			sc.Steps = append(sc.Steps, exec.StepConfig{Name: step.Name, Run: step.Run, Env: step.Env, Timeout: step.Timeout, Artifact: step.Artifact})
		}
		cfg.Stages = append(cfg.Stages, sc)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.src != nil {
		if err := e.src.Close(); err != nil {
			e.log.Warn("closing the previous exec pipeline", "error", err)
		}
		e.src = nil
	}
	src, err := exec.New(cfg, logTo(e.log))
	if err != nil {
		// The pipeline's own checks (unique names, needs pointing back)
		// are about the stages.
		return sdk.SettingErrors{{Path: "stages", Message: err.Error()}}
	}
	e.src = src
	return nil
}

func (e *execServer) CheckHealth(context.Context) error {
	if e.source() == nil {
		return sdk.Degraded("exec: waiting for its settings")
	}
	return nil
}

func (e *execServer) source() *exec.Source {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.src
}

func (e *execServer) ready() (*exec.Source, error) {
	if s := e.source(); s != nil {
		return s, nil
	}
	return nil, fmt.Errorf("exec: %w", errNotConfigured)
}

func (e *execServer) Runs(ctx context.Context, req sdk.RunsRequest) ([]sdk.PipelineRun, error) {
	s, err := e.ready()
	if err != nil {
		return nil, err
	}
	runs, err := s.Runs(ctx, req.Service, req.Limit)
	out := make([]sdk.PipelineRun, 0, len(runs))
	for _, r := range runs {
		out = append(out, sdkRun(r))
	}
	return out, err
}

func (e *execServer) WatchRuns(ctx context.Context, req sdk.WatchRunsRequest, send func(sdk.PipelineRun) error) error {
	s, err := e.ready()
	if err != nil {
		return err
	}
	// exec's WatchRuns sends the runs that changed in this process, not
	// those kept from an earlier one: every kept run goes first, in the
	// order they started, so a restarted console shows the last runs at
	// once. A run may then arrive twice; the host keys runs by ID and
	// orders them by start.
	kept, err := s.Runs(ctx, req.Service, 0)
	if err != nil {
		return err
	}
	for i := len(kept) - 1; i >= 0; i-- {
		if err := send(sdkRun(kept[i])); err != nil {
			return err
		}
	}
	return watchWith(ctx, send, sdkRun, func(ctx context.Context, fn func(core.PipelineRun)) error {
		return s.WatchRuns(ctx, req.Service, fn)
	})
}

func (e *execServer) Logs(ctx context.Context, req sdk.LogsRequest, send func(sdk.LogLine) error) error {
	s, err := e.ready()
	if err != nil {
		return err
	}
	return watchWith(ctx, send, func(l core.LogLine) sdk.LogLine {
		return sdk.LogLine{Time: l.Time, Stream: l.Stream, Text: l.Text}
	}, func(ctx context.Context, fn func(core.LogLine)) error {
		return s.Logs(ctx, req.RunID, req.Step, req.Follow, fn)
	})
}

func (e *execServer) Trigger(ctx context.Context, req sdk.TriggerRequest) (string, error) {
	s, err := e.ready()
	if err != nil {
		return "", err
	}
	return s.Trigger(ctx, req.Service, req.Version, req.FromStage)
}

func (e *execServer) Cancel(ctx context.Context, req sdk.CancelRequest) error {
	s, err := e.ready()
	if err != nil {
		return err
	}
	return s.Cancel(ctx, req.RunID)
}
