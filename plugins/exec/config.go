// Package exec is a pipeline source that runs a service's stages as real
// processes on this machine: `run:` commands under `sh -c`, their output
// streamed line by line, exit codes and durations recorded, a failed step
// stopping its stage and skipping the stages after it.
//
// Build once, deploy everywhere: a step marked `artifact: path` records the
// sha256 of that file and copies it into `<StateDir>/artifacts/<hex>`,
// where deploy targets (plugins/local) pick it up by the run's
// ArtifactDigest ("sha256:<hex>").
//
// Runs and their logs are kept on disk under `<StateDir>/runs/<id>/` (the
// last 20 runs, the last 10,000 lines of each step) so a restarted console
// shows the last runs.
package exec

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// Config is one pipeline.
type Config struct {
	// StateDir keeps runs, logs and the artifact store.
	StateDir string
	// WorkDir is where steps run (and artifact paths are relative to). When
	// it is a git working tree, each run records its commit and branch.
	WorkDir string
	// MigrationsDir, when set, is read at each run's commit and its
	// migrations classed expand or contract.
	MigrationsDir string
	Stages        []StageConfig
	// Grace is how long a canceled or timed-out step gets between SIGTERM
	// and SIGKILL (default 2s).
	Grace time.Duration
}

// StageConfig is one stage. The simple form sets Run (and maybe Env and
// Timeout) and no Steps: the stage is one step of the same name.
type StageConfig struct {
	Name string `yaml:"name"`
	// Needs names stages that must have succeeded before this one runs;
	// they must come earlier in the list. Stages run in list order.
	Needs   []string          `yaml:"needs"`
	Steps   []StepConfig      `yaml:"steps"`
	Run     string            `yaml:"run"`
	Env     map[string]string `yaml:"env"`
	Timeout time.Duration     `yaml:"timeout"`
	// Artifact is the simple form's artifact path.
	Artifact string `yaml:"artifact"`
}

// StepConfig is one command.
type StepConfig struct {
	Name    string            `yaml:"name"`
	Run     string            `yaml:"run"`
	Env     map[string]string `yaml:"env"`
	Timeout time.Duration     `yaml:"timeout"`
	// Artifact is a file the step produces (relative to WorkDir): its
	// sha256 identifies the release and the file goes to the store.
	Artifact string `yaml:"artifact"`
}

// normalize turns simple-form stages into one-step stages and checks that
// names are unique and needs point backwards.
func normalize(stages []StageConfig) ([]StageConfig, error) {
	if len(stages) == 0 {
		return nil, errors.New("pipeline has no stages")
	}
	out := make([]StageConfig, 0, len(stages))
	var seen []string
	for _, s := range stages {
		if s.Name == "" {
			return nil, errors.New("a stage has no name")
		}
		if slices.Contains(seen, s.Name) {
			return nil, fmt.Errorf("stage %q appears twice", s.Name)
		}
		for _, n := range s.Needs {
			if !slices.Contains(seen, n) {
				return nil, fmt.Errorf("stage %q needs %q, which is not an earlier stage", s.Name, n)
			}
		}
		if s.Run != "" {
			if len(s.Steps) > 0 {
				return nil, fmt.Errorf("stage %q has both run and steps", s.Name)
			}
			s.Steps = []StepConfig{{Name: s.Name, Run: s.Run, Timeout: s.Timeout, Artifact: s.Artifact}}
		}
		if len(s.Steps) == 0 {
			return nil, fmt.Errorf("stage %q has no steps", s.Name)
		}
		var steps []string
		for i, st := range s.Steps {
			if st.Name == "" || st.Run == "" {
				return nil, fmt.Errorf("stage %q step %d needs a name and a run command", s.Name, i+1)
			}
			if slices.Contains(steps, st.Name) {
				return nil, fmt.Errorf("stage %q has two steps named %q", s.Name, st.Name)
			}
			steps = append(steps, st.Name)
		}
		seen = append(seen, s.Name)
		out = append(out, s)
	}
	return out, nil
}
