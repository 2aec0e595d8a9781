package builtin

import (
	"context"
	"encoding/json"
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

var _ sdk.PipelineSource = (*execServer)(nil)

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
func (e *execServer) Configure(_ context.Context, settings json.RawMessage, _ map[string]string) error {
	var s execSettings
	if err := decodeStrict(settings, &s); err != nil {
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

func (e *execServer) Runs(ctx context.Context, service string, limit int) ([]core.PipelineRun, error) {
	s, err := e.ready()
	if err != nil {
		return nil, err
	}
	return s.Runs(ctx, service, limit)
}

func (e *execServer) WatchRuns(ctx context.Context, service string, send func(core.PipelineRun) error) error {
	s, err := e.ready()
	if err != nil {
		return err
	}
	// exec's WatchRuns sends the runs that changed in this process, not
	// those kept from an earlier one: every kept run goes first, oldest
	// first, so a restarted console shows the last runs at once. A run
	// may then arrive twice; watchers key runs by ID.
	kept, err := s.Runs(ctx, service, 0)
	if err != nil {
		return err
	}
	for i := len(kept) - 1; i >= 0; i-- {
		if err := send(kept[i]); err != nil {
			return err
		}
	}
	return watchWith(ctx, send, func(ctx context.Context, fn func(core.PipelineRun)) error {
		return s.WatchRuns(ctx, service, fn)
	})
}

func (e *execServer) Logs(ctx context.Context, runID, step string, follow bool, send func(core.LogLine) error) error {
	s, err := e.ready()
	if err != nil {
		return err
	}
	return watchWith(ctx, send, func(ctx context.Context, fn func(core.LogLine)) error {
		return s.Logs(ctx, runID, step, follow, fn)
	})
}

func (e *execServer) Trigger(ctx context.Context, service, version, fromStage string) (string, error) {
	s, err := e.ready()
	if err != nil {
		return "", err
	}
	return s.Trigger(ctx, service, version, fromStage)
}

func (e *execServer) Cancel(ctx context.Context, runID string) error {
	s, err := e.ready()
	if err != nil {
		return err
	}
	return s.Cancel(ctx, runID)
}
