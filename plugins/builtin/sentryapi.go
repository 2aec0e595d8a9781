package builtin

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/core/config"
	"github.com/ripcordhq/ripcord/plugins/sdk"
	"github.com/ripcordhq/ripcord/plugins/sentryapi"
)

// sentrySettings are the `sentry` errors block in ripcord.yaml: counts
// from sentry.io or a self-hosted Sentry, for teams whose SDKs already
// report there.
type sentrySettings struct {
	// Organization is the organization slug.
	Organization string `json:"organization" required:"true"`
	// Project is the numeric project ID whose errors are counted, written
	// as a number or a string of digits.
	Project sentryProject `json:"project" required:"true"`
	// Environment is Sentry's name for the environment this block belongs
	// to; default the Ripcord environment's name.
	Environment string `json:"environment"`
	// Token is an auth token with org:read, event:read, project:read and
	// project:releases; write it as a ${ENV} reference.
	Token string `json:"token" required:"true"`
	// URL is Sentry's address, default https://sentry.io.
	URL string `json:"url"`
	// ReleasePrefix turns a Ripcord version into Sentry's release name
	// ("shop@" when the SDK reports "shop@1.2.3").
	ReleasePrefix string `json:"release_prefix"`
	// Poll is how often counts are asked for, default one minute (at
	// least 10 s: Sentry's docs warn that polling trips rate limits).
	Poll time.Duration `json:"poll"`
}

// sentryProject is a Sentry project ID: ripcord.yaml may write it as the
// number it is (project: 4505321) or quoted.
type sentryProject string

func (p *sentryProject) UnmarshalJSON(b []byte) error {
	if n := strings.TrimSpace(string(b)); n != "" && n[0] >= '0' && n[0] <= '9' {
		id, err := strconv.ParseUint(n, 10, 64)
		if err != nil {
			return fmt.Errorf("a Sentry project ID is a whole number")
		}
		*p = sentryProject(strconv.FormatUint(id, 10))
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	*p = sentryProject(s)
	return nil
}

// sentrySchema is the settings schema with what Configure refuses beyond
// types written into it, so `ripcord validate` refuses the same blocks
// start-up would; Configure checks against it too.
var sentrySchema = func() json.RawMessage {
	var m map[string]any
	if err := json.Unmarshal(schemaFor(sentrySettings{}), &m); err != nil {
		panic(err)
	}
	props := m["properties"].(map[string]any)
	props["project"] = map[string]any{"type": []string{"string", "integer"}, "minimum": 0, "pattern": `^[0-9]+$`,
		"description": "a Sentry project ID, a number (Project Settings › General, or the end of the DSN)"}
	props["url"] = map[string]any{"type": "string", "pattern": `^https?://[^/?#\s]+(/.*)?$`,
		"description": "Sentry's address such as https://sentry.example.com"}
	props["poll"] = map[string]any{"type": "string", "pattern": sentryPollPattern,
		"description": "a duration of at least 10s such as 30s or 1m (polling faster trips Sentry's rate limits)"}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}()

// sentryPollPattern matches the durations of 10 s or more, written as
// ripcord.yaml writes durations (whole days, or Go's units down to s).
const sentryPollPattern = `^(0*[1-9][0-9]*d|` +
	`0*[1-9][0-9]*(\.[0-9]+)?h([0-9]+(\.[0-9]+)?m)?([0-9]+(\.[0-9]+)?s)?|` +
	`0*[1-9][0-9]*(\.[0-9]+)?m([0-9]+(\.[0-9]+)?s)?|` +
	`0*[1-9][0-9]+(\.[0-9]+)?s)$`

// sentryAPIServer serves plugins/sentryapi as the built-in `sentry` error
// source.
type sentryAPIServer struct {
	log hclog.Logger

	mu  sync.Mutex
	src *sentryapi.Source
	env string // Sentry's environment name, "" for the Ripcord one
}

var _ sdk.ErrorSource = (*sentryAPIServer)(nil)

func sentryAPIConfig(version string) sdk.ServeConfig {
	log := sdk.NewLogger("sentry")
	s := &sentryAPIServer{log: log}
	return sdk.ServeConfig{
		Info:     sdk.Info{Name: "sentry", Version: version, ConfigSchema: sentrySchema},
		Provider: s,
		Errors:   s,
		Logger:   log,
	}
}

// Configure checks the settings and builds the client; it does not call
// Sentry (a down Sentry is a failed watch, shown as counts unavailable).
func (s *sentryAPIServer) Configure(_ context.Context, req sdk.ConfigureRequest) error {
	// The schema validate checks comes first, so both refuse the same.
	var doc map[string]any
	if err := json.Unmarshal(req.Settings, &doc); err == nil && doc != nil {
		problems, err := config.CheckSettings(sentrySchema, doc)
		if err != nil {
			return err
		}
		if len(problems) > 0 {
			errs := make(sdk.SettingErrors, 0, len(problems))
			for _, p := range problems {
				errs = append(errs, sdk.SettingError{Path: p.Path, Message: p.Message})
			}
			return errs
		}
	}
	var set sentrySettings
	if err := decodeStrict(req.Settings, &set); err != nil {
		return err
	}
	if errs := missing(set); len(errs) > 0 {
		return errs
	}
	cfg := sentryapi.Config{
		BaseURL: set.URL, Org: set.Organization, Token: set.Token, Projects: []string{string(set.Project)},
		ReleasePrefix: set.ReleasePrefix, PollEvery: set.Poll,
		Logf: func(format string, args ...any) { s.log.Warn(fmt.Sprintf(format, args...)) },
	}
	src, err := sentryapi.NewSource(cfg)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.src, s.env = src, set.Environment
	s.mu.Unlock()
	return nil
}

func (s *sentryAPIServer) CheckHealth(context.Context) error {
	if src, _ := s.source(core.Ref{}); src == nil {
		return sdk.Degraded("sentry: waiting for its settings")
	}
	return nil
}

// source returns the configured source with ref's environment mapped to
// the one Sentry knows it by.
func (s *sentryAPIServer) source(ref core.Ref) (*sentryapi.Source, core.Ref) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.src != nil && s.env != "" {
		s.src.MapEnvironment(ref.Env, s.env)
	}
	return s.src, ref
}

func (s *sentryAPIServer) ready(ref core.Ref) (*sentryapi.Source, error) {
	if src, _ := s.source(ref); src != nil {
		return src, nil
	}
	return nil, fmt.Errorf("sentry: %w", errNotConfigured)
}

func (s *sentryAPIServer) WatchCounts(ctx context.Context, req sdk.WatchCountsRequest, send func(sdk.ErrorWindow) error) error {
	ref := coreRef(req.Ref)
	src, err := s.ready(ref)
	if err != nil {
		return err
	}
	return watchWith(ctx, send, sdkWindow, func(ctx context.Context, fn func(core.ErrorWindow)) error {
		return src.WatchCounts(ctx, ref, fn)
	})
}

func (s *sentryAPIServer) Issues(ctx context.Context, req sdk.IssuesRequest) ([]sdk.ErrorIssue, error) {
	ref := coreRef(req.Ref)
	src, err := s.ready(ref)
	if err != nil {
		return nil, err
	}
	issues, err := src.Issues(ctx, ref, req.Release)
	return sdkIssues(issues), err
}

func (s *sentryAPIServer) MarkDeploy(ctx context.Context, req sdk.MarkDeployRequest) error {
	ref := coreRef(req.Ref)
	src, err := s.ready(ref)
	if err != nil {
		return err
	}
	return src.MarkDeploy(ctx, ref, req.Release)
}
