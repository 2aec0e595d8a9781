// Package config loads ripcord.yaml: strictly (unknown keys are errors),
// with every error located as file:line:col, defaults applied, references
// checked and ${ENV} secrets expanded without ever printing their values.
package config

import (
	"fmt"
	"time"

	"github.com/ripcordhq/ripcord/core"
)

// File is a loaded ripcord.yaml.
type File struct {
	Project      string        `yaml:"project" required:"true" doc:"Project name shown in the header."`
	Services     []Service     `yaml:"services" required:"true" doc:"The services Ripcord releases."`
	Environments []Environment `yaml:"environments" required:"true" doc:"Environments in promotion order; each may name the one it is promoted from."`
	Plugins      []Plugin      `yaml:"plugins" doc:"External provider plugins."`
	Store        Store         `yaml:"store" doc:"Where Ripcord keeps its state."`
	Notify       Notify        `yaml:"notify" doc:"How the console gets a person's attention."`
	Deadlines    Deadlines     `yaml:"deadlines" doc:"How long each kind of provider call may take before it is cancelled and fails saying so."`
	Bastion      *Bastion      `yaml:"bastion" doc:"The SSH bastion: the server serves the console and the CLI over SSH, each key a person with a role per environment. Off unless listen is set."`

	// Path is the file this was loaded from; Dir its directory, against
	// which relative paths resolve.
	Path string `yaml:"-"`
	Dir  string `yaml:"-"`

	// secrets are the values ${ENV} references expanded to, kept so the
	// file can redact them wherever it is printed.
	secrets []string
}

// Service is one deployable service.
type Service struct {
	Name       string      `yaml:"name" required:"true" doc:"Service name, unique in the project."`
	Pipeline   *Provider   `yaml:"pipeline" doc:"The CI system that builds and tests releases."`
	Migrations *Migrations `yaml:"migrations" doc:"Where the service's schema migrations live."`
	Branches   []string    `yaml:"branches" doc:"Branches releases may be built from (default: main)."`
	Pos        Pos         `yaml:"-"`
}

// Migrations says where migrations live; each release lists its
// migrations classed expand or contract.
type Migrations struct {
	Dir string `yaml:"dir" required:"true" doc:"Directory of migration files, relative to this file."`
}

// Environment is one place the project's services run. Its policy
// (promotion order, gates, rollout, rollback, spike) applies to every
// service; where each service runs is a Placement.
type Environment struct {
	Name    string    `yaml:"name" required:"true" doc:"Environment name, unique in the project."`
	From    string    `yaml:"from" doc:"The environment releases are promoted from; the artifact digest must match."`
	Target  *Provider `yaml:"target" doc:"The deploy target of the project's only service (with several services, each service's target goes under services)."`
	Errors  *Provider `yaml:"errors" doc:"The error source of the project's only service, watched after a rollout (with several services: under services)."`
	Backups []Backup  `yaml:"backups" doc:"Backup sets whose freshness gates promotion. With services blocks, sets written here belong to the environment and gate every service in it (a database they share)."`
	// Services places each service in this environment when the project
	// has several. Load fills it in for a single service from the
	// environment-level target, errors and backups, so code that runs the
	// world reads only Services.
	Services []Placement `yaml:"services" doc:"Where each service runs in this environment, when the project has several services: one block per service with its own target, errors and backups."`
	Gates    []string    `yaml:"gates" doc:"Gates checked before promote: pipeline, soak DURATION, errors, backups, migrations, branch, lock."`
	// GateSpecs are Gates as the engine takes them, filled in by Load.
	GateSpecs []core.GateSpec `yaml:"-"`
	Rollout   []Step          `yaml:"rollout" doc:"Rollout steps; empty means one step to 100%."`
	Rollback  Rollback        `yaml:"rollback" doc:"Rollback policy."`
	// Production marks an environment where mistakes cost most: the
	// console names it in the production colour, and dangerous actions
	// there are confirmed by typing the service name unless Confirm says
	// otherwise. Nothing is recognised by its name.
	Production bool `yaml:"production" doc:"Marks a production environment: named in the production colour, and confirm defaults to type-name."`
	// Confirm is how a person confirms a dangerous action: y, or type-name
	// (type the service name).
	Confirm string      `yaml:"confirm" enum:"y,type-name" doc:"How dangerous actions are confirmed: y, or type-name (the default where production: true)."`
	Auto    bool        `yaml:"auto" doc:"Deploy automatically when the predecessor is green."`
	Spike   SpikePolicy `yaml:"spike" doc:"Thresholds of the error spike verdict."`
	Pos     Pos         `yaml:"-"`

	// shared is set when Backups are the environment's, shared by every
	// service (the file uses services blocks), not one service's shorthand.
	shared bool
}

// SharedBackups are the backup sets written on the environment itself
// that every service in it shares; nil when they are the only service's
// (and so already its placement's).
func (e *Environment) SharedBackups() []Backup {
	if !e.shared {
		return nil
	}
	return e.Backups
}

// Placement is one service in one environment: its deploy target, error
// source and backup sets, each its own provider instance with its own
// settings.
type Placement struct {
	Name    string    `yaml:"name" required:"true" doc:"The service (from services) this block places."`
	Target  *Provider `yaml:"target" doc:"The service's deploy target in this environment."`
	Errors  *Provider `yaml:"errors" doc:"The service's error source in this environment."`
	Backups []Backup  `yaml:"backups" doc:"The service's backup sets in this environment."`
	Pos     Pos       `yaml:"-"`
	// Path is where the block is in the file ("environments[1].services[0]",
	// or "environments[1]" for the environment-level shorthand), so
	// messages about it name what a person wrote.
	Path string `yaml:"-"`
}

// Placement returns where service runs in e, or nil.
func (e *Environment) Placement(service string) *Placement {
	for i := range e.Services {
		if e.Services[i].Name == service {
			return &e.Services[i]
		}
	}
	return nil
}

// Step is one rollout step: exactly one of its fields is set.
type Step struct {
	Weight   *int     `yaml:"weight" doc:"Send this share (0-100) of traffic to the candidate."`
	Analysis string   `yaml:"analysis" enum:"errors" doc:"Run an analysis: errors."`
	For      Duration `yaml:"for" doc:"Length of an analysis or of a timed pause."`
	Pause    string   `yaml:"pause" doc:"Pause: judgment (until a person decides) or a duration."`
	Pos      Pos      `yaml:"-"`
}

// Rollback is an environment's rollback policy. A rollback always goes
// straight to the target release, skipping steps and analysis: in an
// incident, as fast as possible.
type Rollback struct {
	Auto   string `yaml:"auto" enum:"off,on-analysis-failure" doc:"Roll back by itself when an analysis fails."`
	Action string `yaml:"action" enum:"rollback,abort" doc:"What auto does: rollback (default) or abort."`
}

// SpikePolicy tunes the spike verdict.
type SpikePolicy struct {
	Alpha          float64  `yaml:"alpha" doc:"Error bound of SPIKE and of HEALTHY under continuous monitoring (default 0.01: 99% confidence)."`
	Tolerance      float64  `yaml:"tolerance" doc:"HEALTHY when the candidate's error rate is bounded below this many times the baseline's (default 1.5)."`
	OnInconclusive string   `yaml:"on_inconclusive" enum:"wait,pass,fail" doc:"What the errors gate and analysis steps do while the verdict is inconclusive: wait (default: block the gate, keep analysing), pass or fail."`
	MinEvents      int      `yaml:"min_events" doc:"Fewer errors than this: inconclusive (default 5)."`
	Window         Duration `yaml:"window" doc:"How long a release is compared with the one it replaced after a full rollout (default 30m)."`
}

// Backup is one backup set watched for freshness.
type Backup struct {
	Name        string   `yaml:"name" required:"true" doc:"Backup set name."`
	Provider    Provider `yaml:",inline"`
	Every       Duration `yaml:"every" doc:"Expected interval (default 24h, the daily minimum)."`
	Warn        float64  `yaml:"warn" doc:"Warn at this multiple of every (default 1.5)."`
	Critical    float64  `yaml:"critical" doc:"Critical at this multiple of every (default 2)."`
	VerifyEvery Duration `yaml:"verify_every" doc:"Verify the newest backup this often (the provider's verify: restic check, borg check, pgBackRest verify); an overdue verify is named on screen. Default: never."`
	Criticality string   `yaml:"criticality" doc:"A label for people: how much this data matters."`
	Pos         Pos      `yaml:"-"`
}

// Provider names a provider and carries its own settings, which the
// provider validates against the JSON Schema it publishes.
type Provider struct {
	Name     string         `yaml:"provider" required:"true" doc:"Provider name: a built-in or a plugin from plugins."`
	Settings map[string]any `yaml:"-"`
	// SettingPos locates each setting by its dotted path, so a provider's
	// complaint about a setting can be reported at file:line:col.
	SettingPos map[string]Pos `yaml:"-"`
	Pos        Pos            `yaml:"-"`
	// BlockKeys are the keys the block carrying the provider takes itself
	// (a backup set's name, every, verify_every…), so a misspelled one,
	// which reads as an unknown provider setting, is suggested.
	BlockKeys []string `yaml:"-"`

	// secrets are the file's expanded ${ENV} values, so a Provider printed
	// on its own is redacted too.
	secrets []string
}

// Plugin is an external provider binary.
type Plugin struct {
	Name string   `yaml:"name" required:"true" doc:"Plugin name."`
	Path string   `yaml:"path" doc:"Path of the binary; default: found as ripcord-provider-NAME."`
	Env  []string `yaml:"env" doc:"Host environment variables the plugin may see (nothing else is passed)."`
	Pos  Pos      `yaml:"-"`
}

// Store says where state lives.
type Store struct {
	Driver string `yaml:"driver" enum:"sqlite" doc:"sqlite, the only store of this build (default)."`
	Path   string `yaml:"path" doc:"SQLite file (default .ripcord/state.db)."`
}

// Deadlines bound provider calls, per kind. Past one the call is
// cancelled through the plugin protocol and the operation fails ("deploy
// did not finish within 10m (provider fleet)"); its lock is released.
type Deadlines struct {
	Deploy   Duration `yaml:"deploy" doc:"A deploy, or a shift of traffic between steps (default 10m)."`
	Rollback Duration `yaml:"rollback" doc:"A rollback, or an abort's return to the stable release (default 10m)."`
	Health   Duration `yaml:"health" doc:"A provider's health check (default 30s)."`
	Status   Duration `yaml:"status" doc:"A status read and the other quick calls (default 10s)."`
	Backup   Duration `yaml:"backup" doc:"A backup or verify started from Ripcord (default 6h)."`
	Stall    Duration `yaml:"stall" doc:"A provider stream silent this long gets its provider's health checked; one that does not answer is shown as not answering and reconnected (default 30s)."`
}

// Core returns the deadlines as the engine takes them.
func (d Deadlines) Core() core.Deadlines {
	return core.Deadlines{Deploy: d.Deploy.D(), Rollback: d.Rollback.D(), Health: d.Health.D(), Status: d.Status.D(), Backup: d.Backup.D(), Stall: d.Stall.D()}
}

// Notify configures the bell and desktop notifications.
type Notify struct {
	Bell    *bool `yaml:"bell" doc:"Ring the terminal bell when something newly needs a person (default true)."`
	Desktop *bool `yaml:"desktop" doc:"Send an OSC 9 desktop notification too (default true)."`
}

// Duration is a time.Duration written as "24h", "5m", "90s".
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Pos is a place in the config file.
type Pos struct {
	File string
	Line int
	Col  int
}

func (p Pos) String() string {
	if p.Line == 0 {
		return p.File
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}
