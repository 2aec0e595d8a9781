package builtin

import (
	"context"
	"fmt"
	"net"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/core/sqlitestore"
	"github.com/ripcordhq/ripcord/plugins/sdk"
	"github.com/ripcordhq/ripcord/plugins/sentryingest"
)

// sentryIngestSettings are the sentry-ingest block in ripcord.yaml.
type sentryIngestSettings struct {
	// Service is filled in by the console: the service whose errors the
	// ingest counts.
	Service string `json:"service" required:"true"`
	// Env is the environment the block belongs to, filled in by the
	// console; its counts are loaded at start.
	Env string `json:"env"`
	// Listen defaults to 127.0.0.1:8765.
	Listen string `json:"listen"`
	// Keys maps a Sentry project ID to the DSN public key accepted for it.
	Keys map[string]string `json:"keys" required:"true"`
	// Envs maps an SDK's environment name to a Ripcord environment.
	Envs map[string]string `json:"envs"`
	// Store is the SQLite state file (store.path), filled in by the
	// console: counts are loaded from it at start and added to it every
	// couple of seconds, so a restart keeps the baseline a verdict needs.
	Store string `json:"store"`
	// Rate is the events per second each project key may send (default
	// 1000, burst twice that); over it the SDK is told to back off.
	Rate float64 `json:"rate"`
}

// ingestMemoryLimit is the soft memory limit of the ingest's process: the
// ingest's own tables are capped well below it (see sentryingest.Config),
// and the garbage collector works harder as the heap nears it, so what
// the process holds stays under 64 MiB whatever clients send.
const ingestMemoryLimit = 40 << 20

// sentryIngestServer serves plugins/sentryingest as a built-in error
// source, listening on its own port.
type sentryIngestServer struct {
	log hclog.Logger

	mu   sync.Mutex
	ing  *sentryingest.Ingest
	addr net.Addr
	// st is the open store and stPath its file; kept across
	// reconfigurations with the same path.
	st     *sqlitestore.Store
	stPath string
}

var (
	_ sdk.ErrorSource  = (*sentryIngestServer)(nil)
	_ sdk.DeployMarker = (*sentryIngestServer)(nil)
	_ sdk.IssueLister  = (*sentryIngestServer)(nil)
)

func sentryIngestConfig(version string) sdk.ServeConfig {
	// This runs only in the ingest's own process (ripcord plugin serve).
	debug.SetMemoryLimit(ingestMemoryLimit)
	log := sdk.NewLogger("sentry-ingest")
	s := &sentryIngestServer{log: log}
	return sdk.ServeConfig{
		Info:     sdk.Info{Name: "sentry-ingest", Version: version, ConfigSchema: schemaFor(sentryIngestSettings{})},
		Provider: s,
		Errors:   s,
		Logger:   log,
	}
}

// Configure replaces the ingest. The old one is closed first (flushing its
// counts) so the new one can listen on the same address.
func (s *sentryIngestServer) Configure(ctx context.Context, req sdk.ConfigureRequest) error {
	var set sentryIngestSettings
	if err := decodeStrict(req.Settings, &set); err != nil {
		return err
	}
	var errs sdk.SettingErrors
	for project, key := range set.Keys {
		if _, err := strconv.ParseUint(project, 10, 64); err != nil {
			errs = append(errs, sdk.SettingError{Path: "keys." + project, Message: "a Sentry project ID is a number (the end of the DSN)"})
		} else if key == "" {
			errs = append(errs, sdk.SettingError{Path: "keys." + project, Message: "the DSN public key is empty"})
		}
	}
	if set.Rate < 0 {
		errs = append(errs, sdk.SettingError{Path: "rate", Message: fmt.Sprintf("events per second cannot be negative, got %g", set.Rate)})
	}
	if set.Listen != "" {
		if _, _, err := net.SplitHostPort(set.Listen); err != nil {
			errs = append(errs, sdk.SettingError{Path: "listen", Message: fmt.Sprintf("expected host:port, got %q", set.Listen)})
		}
	}
	if len(errs) > 0 {
		return errs
	}
	cfg := sentryingest.Config{
		Listen: set.Listen, Service: set.Service, Keys: set.Keys, Envs: set.Envs,
		Rate: set.Rate, Burst: int(2 * set.Rate),
		Logf: func(format string, args ...any) { s.log.Warn(fmt.Sprintf(format, args...)) },
	}
	if set.Env != "" {
		cfg.Environments = []string{set.Env}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	replacing := s.ing != nil
	s.closeLocked() // flushes the old ingest's counts before the new one loads them
	if err := s.openStoreLocked(ctx, set.Store); err != nil {
		return sdk.SettingErrors{{Path: "store", Message: err.Error()}}
	}
	if s.st != nil {
		cfg.Store = s.st
	}
	ing, err := sentryingest.New(ctx, cfg)
	if err != nil {
		return err
	}
	addr, err := ing.Listen()
	// The old ingest's listener is closed by its serving goroutine, which
	// may not have run yet when Close returns: give the address a moment.
	for deadline := time.Now().Add(2 * time.Second); err != nil && replacing && time.Now().Before(deadline); {
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
		if ctx.Err() != nil {
			break
		}
		addr, err = ing.Listen()
	}
	if err != nil {
		_ = ing.Close(context.Background())
		return sdk.SettingErrors{{Path: "listen", Message: err.Error()}}
	}
	s.log.Info("sentry ingest listening", "addr", addr.String())
	s.ing, s.addr = ing, addr
	return nil
}

// openStoreLocked opens the state file the counts persist to, or closes
// the one open when the settings no longer name it.
func (s *sentryIngestServer) openStoreLocked(ctx context.Context, path string) error {
	if path == s.stPath {
		return nil
	}
	if s.st != nil {
		if err := s.st.Close(); err != nil {
			s.log.Warn("closing the error-count store", "path", s.stPath, "error", err)
		}
		s.st, s.stPath = nil, ""
	}
	if path == "" {
		return nil
	}
	st, err := sqlitestore.Open(ctx, path)
	if err != nil {
		return fmt.Errorf("opening the store for error counts: %w", err)
	}
	s.st, s.stPath = st, path
	return nil
}

func (s *sentryIngestServer) closeLocked() {
	if s.ing == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.ing.Close(ctx); err != nil {
		s.log.Warn("closing the previous sentry ingest", "error", err)
	}
	s.ing, s.addr = nil, nil
}

// Close flushes the counts and closes the store when the host stops the
// plugin.
func (s *sentryIngestServer) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeLocked()
	return s.openStoreLocked(context.Background(), "")
}

func (s *sentryIngestServer) CheckHealth(context.Context) error {
	if s.ingest() == nil {
		return sdk.Degraded("sentry-ingest: waiting for its settings")
	}
	return nil
}

func (s *sentryIngestServer) ingest() *sentryingest.Ingest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ing
}

func (s *sentryIngestServer) ready() (*sentryingest.Ingest, error) {
	if ing := s.ingest(); ing != nil {
		return ing, nil
	}
	return nil, fmt.Errorf("sentry-ingest: %w", errNotConfigured)
}

func (s *sentryIngestServer) WatchCounts(ctx context.Context, req sdk.WatchCountsRequest, send func(sdk.ErrorWindow) error) error {
	ing, err := s.ready()
	if err != nil {
		return err
	}
	return watchWith(ctx, send, sdkWindow, func(ctx context.Context, fn func(core.ErrorWindow)) error {
		return ing.WatchCounts(ctx, coreRef(req.Ref), fn)
	})
}

func (s *sentryIngestServer) Issues(ctx context.Context, req sdk.IssuesRequest) ([]sdk.ErrorIssue, error) {
	ing, err := s.ready()
	if err != nil {
		return nil, err
	}
	issues, err := ing.Issues(ctx, coreRef(req.Ref), req.Release)
	return sdkIssues(issues), err
}

func (s *sentryIngestServer) MarkDeploy(ctx context.Context, req sdk.MarkDeployRequest) error {
	ing, err := s.ready()
	if err != nil {
		return err
	}
	return ing.MarkDeploy(ctx, coreRef(req.Ref), req.Release)
}
