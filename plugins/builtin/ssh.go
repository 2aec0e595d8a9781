package builtin

import (
	"context"
	"fmt"
	"path"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/plugins/sdk"
	sshtarget "github.com/ripcordhq/ripcord/plugins/ssh"
)

// sshHostSettings is one entry of the ssh target's hosts list.
type sshHostSettings struct {
	Name    string            `json:"name" required:"true"`
	Address string            `json:"address" required:"true"`
	Port    int               `json:"port"`
	User    string            `json:"user"`
	Jump    string            `json:"jump"`
	Root    string            `json:"root"`
	Canary  bool              `json:"canary"`
	Env     map[string]string `json:"env"`
}

// sshSettings are the ssh target's block in ripcord.yaml.
type sshSettings struct {
	Ref            refSettings       `json:"ref" required:"true"`
	Hosts          []sshHostSettings `json:"hosts" required:"true"`
	Root           string            `json:"root"`
	User           string            `json:"user"`
	IdentityFile   string            `json:"identity_file"`
	Passphrase     string            `json:"passphrase"`
	IdentityAgent  string            `json:"identity_agent"`
	KnownHosts     string            `json:"known_hosts"`
	HostKeyPolicy  string            `json:"host_key_policy"`
	Restart        string            `json:"restart" required:"true"`
	Health         string            `json:"health" required:"true"`
	Env            map[string]string `json:"env"`
	Keep           int               `json:"keep"`
	MaxParallel    int               `json:"max_parallel"`
	ConnectTimeout time.Duration     `json:"connect_timeout"`
	RestartTimeout time.Duration     `json:"restart_timeout"`
	HealthTimeout  time.Duration     `json:"health_timeout"`
	HostTimeout    time.Duration     `json:"host_timeout"`
	StatusInterval time.Duration     `json:"status_interval"`
	// ArtifactStore is where the pipeline put the artifacts, by sha256;
	// StateDir keeps the fleet's state on this machine. The console fills
	// both in.
	ArtifactStore string `json:"artifact_store"`
	ArtifactName  string `json:"artifact_name"`
	StateDir      string `json:"state_dir" required:"true"`
}

// check reports what decoding cannot: each problem with its setting's
// path, so the console can point at the line.
func (s sshSettings) check() sdk.SettingErrors {
	var errs sdk.SettingErrors
	bad := func(p, format string, a ...any) {
		errs = append(errs, sdk.SettingError{Path: p, Message: fmt.Sprintf(format, a...)})
	}
	switch s.HostKeyPolicy {
	case "", string(sshtarget.HostKeyStrict), string(sshtarget.HostKeyAcceptNew):
	default:
		bad("host_key_policy", "%q is not a policy: want strict (the default) or accept-new", s.HostKeyPolicy)
	}
	if s.IdentityFile == "" && s.IdentityAgent == "" {
		bad("identity_file", "no way to log in: set identity_file, or identity_agent: ${SSH_AUTH_SOCK}")
	}
	if s.Root != "" && !path.IsAbs(s.Root) {
		bad("root", "must be an absolute path on the hosts, got %q", s.Root)
	}
	if s.MaxParallel < 0 {
		bad("max_parallel", "must be 1 or more (0 means every host at once), got %d", s.MaxParallel)
	}
	if s.Keep < 0 {
		bad("keep", "must be 1 or more, got %d", s.Keep)
	}
	if _, err := sshtarget.ParseHealth(s.Health); err != nil && s.Health != "" {
		bad("health", "%v", err)
	}
	seen := map[string]int{}
	for i, h := range s.Hosts {
		p := "hosts." + strconv.Itoa(i)
		if j, dup := seen[h.Name]; dup && h.Name != "" {
			bad(p+".name", "host %q is already listed as hosts[%d]", h.Name, j)
		}
		seen[h.Name] = i
		if h.Port < 0 || h.Port > 65535 {
			bad(p+".port", "%d is not a port number", h.Port)
		}
		switch {
		case h.Root != "" && !path.IsAbs(h.Root):
			bad(p+".root", "must be an absolute path on the host, got %q", h.Root)
		case h.Root == "" && s.Root == "":
			bad(p+".root", "no deploy directory: set root for the target or this host")
		}
		if h.User == "" && s.User == "" {
			bad(p+".user", "no user to log in as: set user for the target or this host")
		}
		if h.Jump != "" {
			if err := sshtarget.CheckJump(h.Jump); err != nil {
				bad(p+".jump", "%v", err)
			}
		}
	}
	if len(s.Hosts) == 0 {
		bad("hosts", "lists no host")
	}
	return errs
}

func (s sshSettings) config() sshtarget.Config {
	cfg := sshtarget.Config{
		Ref: core.Ref{Service: s.Ref.Service, Env: s.Ref.Env}, Root: s.Root, User: s.User,
		Auth:       sshtarget.Auth{IdentityFile: s.IdentityFile, Passphrase: s.Passphrase, IdentityAgent: s.IdentityAgent},
		KnownHosts: s.KnownHosts, HostKeyPolicy: sshtarget.HostKeyPolicy(s.HostKeyPolicy),
		Restart: s.Restart, Health: s.Health, Env: s.Env, Keep: s.Keep, MaxParallel: s.MaxParallel,
		ConnectTimeout: s.ConnectTimeout, RestartTimeout: s.RestartTimeout, HealthTimeout: s.HealthTimeout,
		HostTimeout: s.HostTimeout, StatusInterval: s.StatusInterval,
		ArtifactStore: s.ArtifactStore, ArtifactName: s.ArtifactName, StateDir: s.StateDir,
	}
	for _, h := range s.Hosts {
		cfg.Hosts = append(cfg.Hosts, sshtarget.Host{Name: h.Name, Address: h.Address, Port: h.Port, User: h.User,
			Jump: h.Jump, Root: h.Root, Canary: h.Canary, Env: h.Env})
	}
	return cfg
}

// sshServer serves plugins/ssh as a built-in deploy target.
type sshServer struct {
	log hclog.Logger

	mu  sync.Mutex
	tgt *sshtarget.Target
}

var (
	_ sdk.Target     = (*sshServer)(nil)
	_ sdk.Reattacher = (*sshServer)(nil)
)

func sshConfig(version string) sdk.ServeConfig {
	log := sdk.NewLogger("ssh")
	s := &sshServer{log: log}
	return sdk.ServeConfig{
		Info:     sdk.Info{Name: "ssh", Version: version, ConfigSchema: schemaFor(sshSettings{})},
		Provider: s,
		Target:   s,
		Logger:   log,
	}
}

// Configure replaces the target (the old one's connections are closed;
// what runs on the hosts keeps running).
func (s *sshServer) Configure(_ context.Context, req sdk.ConfigureRequest) error {
	var st sshSettings
	if err := decodeStrict(req.Settings, &st); err != nil {
		return err
	}
	if errs := st.check(); len(errs) > 0 {
		return errs
	}
	tgt, err := sshtarget.New(st.config(), logTo(s.log))
	if err != nil {
		return err
	}
	s.mu.Lock()
	old := s.tgt
	s.tgt = tgt
	s.mu.Unlock()
	if old != nil {
		_ = old.Close()
	}
	return nil
}

func (s *sshServer) CheckHealth(context.Context) error {
	if s.target() == nil {
		return sdk.Degraded("ssh: waiting for its settings")
	}
	return nil
}

func (s *sshServer) target() *sshtarget.Target {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tgt
}

func (s *sshServer) ready() (*sshtarget.Target, error) {
	if t := s.target(); t != nil {
		return t, nil
	}
	return nil, fmt.Errorf("ssh: %w", errNotConfigured)
}

func (s *sshServer) status(ctx context.Context, ref core.Ref) (core.TargetStatus, error) {
	t, err := s.ready()
	if err != nil {
		return core.TargetStatus{}, err
	}
	return t.Status(ctx, ref)
}

func (s *sshServer) Status(ctx context.Context, req sdk.StatusRequest) (sdk.TargetStatus, error) {
	st, err := s.status(ctx, coreRef(req.Ref))
	return sdkTargetStatus(st), err
}

func (s *sshServer) WatchStatus(ctx context.Context, req sdk.WatchStatusRequest, send func(sdk.TargetStatus) error) error {
	t, err := s.ready()
	if err != nil {
		return err
	}
	return watchWith(ctx, send, sdkTargetStatus, func(ctx context.Context, fn func(core.TargetStatus)) error {
		return t.WatchStatus(ctx, coreRef(req.Ref), fn)
	})
}

func (s *sshServer) Deploy(ctx context.Context, op *sdk.Op, req sdk.DeployRequest) error {
	t, err := s.ready()
	if err != nil {
		return err
	}
	return t.Deploy(ctx, coreOp(op), coreRelease(req.Release), req.Weight, relayTo(op))
}

func (s *sshServer) SetWeight(ctx context.Context, op *sdk.Op, req sdk.SetWeightRequest) error {
	t, err := s.ready()
	if err != nil {
		return err
	}
	return t.SetWeight(ctx, coreOp(op), req.Weight, relayTo(op))
}

func (s *sshServer) Rollback(ctx context.Context, op *sdk.Op, req sdk.RollbackRequest) error {
	t, err := s.ready()
	if err != nil {
		return err
	}
	return t.Rollback(ctx, coreOp(op), req.ToVersion, relayTo(op))
}

// Reattach follows an operation a previous provider process started: the
// target records every operation's events in its state directory.
func (s *sshServer) Reattach(ctx context.Context, op *sdk.Op, req sdk.ReattachRequest) error {
	t, err := s.ready()
	if err != nil {
		return err
	}
	return t.WatchOperation(ctx, coreOp(op), req.ExternalRef, relayTo(op))
}
