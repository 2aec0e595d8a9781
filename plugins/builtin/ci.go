package builtin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/plugins/githubactions"
	"github.com/ripcordhq/ripcord/plugins/gitlabci"
	"github.com/ripcordhq/ripcord/plugins/sdk"
)

// githubActionsSettings are the github-actions pipeline's block in
// ripcord.yaml. Service and download_dir are filled in by the console.
type githubActionsSettings struct {
	Service     string        `json:"service"`
	Repository  string        `json:"repository" required:"true"`
	Workflow    string        `json:"workflow" required:"true"`
	Branch      string        `json:"branch"`
	Token       string        `json:"token"`
	APIURL      string        `json:"api_url"`
	Artifact    string        `json:"artifact"`
	DownloadDir string        `json:"download_dir"`
	Poll        time.Duration `json:"poll"`
	PollActive  time.Duration `json:"poll_active"`
	History     int           `json:"history"`
	LogTail     int           `json:"log_tail"`
	DispatchRef string        `json:"dispatch_ref"`
	// MigrationsDir is the service's migrations.dir, filled in by the
	// console.
	MigrationsDir string `json:"migrations_dir"`
	Webhook       struct {
		Listen string `json:"listen" required:"true"`
		Path   string `json:"path"`
		Secret string `json:"secret" required:"true"`
	} `json:"webhook"`
}

func buildGitHubActions(raw json.RawMessage, log hclog.Logger) (ciSource, error) {
	var s githubActionsSettings
	if err := decodeStrict(raw, &s); err != nil {
		return nil, err
	}
	src, err := githubactions.New(githubactions.Config{
		Service: s.Service, Repository: s.Repository, Workflow: s.Workflow, Branch: s.Branch, Token: s.Token,
		APIURL: s.APIURL, Artifact: s.Artifact, DownloadDir: s.DownloadDir, Poll: s.Poll, PollActive: s.PollActive,
		History: s.History, LogTail: s.LogTail, DispatchRef: s.DispatchRef, MigrationsDir: s.MigrationsDir,
		Webhook: githubactions.Webhook{Listen: s.Webhook.Listen, Path: s.Webhook.Path, Secret: s.Webhook.Secret},
		Logf:    func(format string, args ...any) { log.Warn(fmt.Sprintf(format, args...)) },
	})
	if err != nil {
		return nil, sdk.SettingErrors{{Path: "", Message: err.Error()}}
	}
	return src, nil
}

// gitlabCISettings are the gitlab-ci pipeline's block in ripcord.yaml.
type gitlabCISettings struct {
	Service  string `json:"service"`
	Project  string `json:"project" required:"true"`
	Ref      string `json:"ref"`
	Token    string `json:"token"`
	APIURL   string `json:"api_url"`
	Artifact struct {
		Job         string `json:"job" required:"true"`
		Path        string `json:"path" required:"true"`
		VersionPath string `json:"version_path"`
	} `json:"artifact" required:"true"`
	DownloadDir string        `json:"download_dir"`
	Poll        time.Duration `json:"poll"`
	PollActive  time.Duration `json:"poll_active"`
	History     int           `json:"history"`
	LogTail     int           `json:"log_tail"`
	// MigrationsDir is the service's migrations.dir, filled in by the
	// console.
	MigrationsDir string `json:"migrations_dir"`
}

func buildGitLabCI(raw json.RawMessage, log hclog.Logger) (ciSource, error) {
	var s gitlabCISettings
	if err := decodeStrict(raw, &s); err != nil {
		return nil, err
	}
	src, err := gitlabci.New(gitlabci.Config{
		Service: s.Service, Project: s.Project, Ref: s.Ref, Token: s.Token, APIURL: s.APIURL,
		ArtifactJob: s.Artifact.Job, ArtifactPath: s.Artifact.Path, VersionPath: s.Artifact.VersionPath,
		DownloadDir: s.DownloadDir, Poll: s.Poll, PollActive: s.PollActive, History: s.History, LogTail: s.LogTail,
		MigrationsDir: s.MigrationsDir,
		Logf:          func(format string, args ...any) { log.Warn(fmt.Sprintf(format, args...)) },
	})
	if err != nil {
		return nil, sdk.SettingErrors{{Path: "", Message: err.Error()}}
	}
	return src, nil
}

// ciSource is a pipeline source reading a CI service: a core.PipelineSource
// that tells its health (the API budget left, a rate limit waited out)
// and stops polling when closed.
type ciSource interface {
	core.PipelineSource
	io.Closer
	Health() (degraded bool, message string)
}

// ciServer serves a CI service's pipeline source as a built-in provider.
type ciServer struct {
	name  string
	log   hclog.Logger
	build func(json.RawMessage, hclog.Logger) (ciSource, error)

	mu  sync.Mutex
	src ciSource
}

var (
	_ sdk.PipelineSource = (*ciServer)(nil)
	_ sdk.Triggerer      = (*ciServer)(nil)
	_ sdk.LogStreamer    = (*ciServer)(nil)
	_ sdk.Canceller      = (*ciServer)(nil)
)

func ciConfig(name, version string, settings any, build func(json.RawMessage, hclog.Logger) (ciSource, error)) sdk.ServeConfig {
	log := sdk.NewLogger(name)
	c := &ciServer{name: name, log: log, build: build}
	return sdk.ServeConfig{
		Info:     sdk.Info{Name: name, Version: version, ConfigSchema: schemaFor(settings)},
		Provider: c,
		Pipeline: c,
		Logger:   log,
	}
}

// Configure replaces the source; the old one stops polling first.
func (c *ciServer) Configure(_ context.Context, req sdk.ConfigureRequest) error {
	src, err := c.build(req.Settings, c.log)
	if err != nil {
		return err
	}
	c.mu.Lock()
	old := c.src
	c.src = src
	c.mu.Unlock()
	if old != nil {
		_ = old.Close()
	}
	return nil
}

// Close stops polling when the host stops the plugin.
func (c *ciServer) Close() error {
	c.mu.Lock()
	src := c.src
	c.src = nil
	c.mu.Unlock()
	if src != nil {
		return src.Close()
	}
	return nil
}

// CheckHealth is the source's own word: the budget left while healthy,
// what is wrong when degraded.
func (c *ciServer) CheckHealth(context.Context) error {
	src := c.source()
	if src == nil {
		return sdk.Degraded("%s: waiting for its settings", c.name)
	}
	degraded, msg := src.Health()
	if degraded {
		return sdk.Degraded("%s", msg)
	}
	return sdk.Healthy("%s", msg)
}

func (c *ciServer) source() ciSource {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.src
}

func (c *ciServer) ready() (ciSource, error) {
	if s := c.source(); s != nil {
		return s, nil
	}
	return nil, fmt.Errorf("%s: %w", c.name, errNotConfigured)
}

func (c *ciServer) Runs(ctx context.Context, req sdk.RunsRequest) ([]sdk.PipelineRun, error) {
	s, err := c.ready()
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

func (c *ciServer) WatchRuns(ctx context.Context, req sdk.WatchRunsRequest, send func(sdk.PipelineRun) error) error {
	s, err := c.ready()
	if err != nil {
		return err
	}
	return watchWith(ctx, send, sdkRun, func(ctx context.Context, fn func(core.PipelineRun)) error {
		return s.WatchRuns(ctx, req.Service, fn)
	})
}

func (c *ciServer) Logs(ctx context.Context, req sdk.LogsRequest, send func(sdk.LogLine) error) error {
	s, err := c.ready()
	if err != nil {
		return err
	}
	return watchWith(ctx, send, func(l core.LogLine) sdk.LogLine {
		return sdk.LogLine{Time: l.Time, Stream: l.Stream, Text: l.Text}
	}, func(ctx context.Context, fn func(core.LogLine)) error {
		return s.Logs(ctx, req.RunID, req.Step, req.Follow, fn)
	})
}

func (c *ciServer) Trigger(ctx context.Context, req sdk.TriggerRequest) (string, error) {
	s, err := c.ready()
	if err != nil {
		return "", err
	}
	return s.Trigger(ctx, req.Service, req.Version, req.FromStage)
}

func (c *ciServer) Cancel(ctx context.Context, req sdk.CancelRequest) error {
	s, err := c.ready()
	if err != nil {
		return err
	}
	return s.Cancel(ctx, req.RunID)
}
