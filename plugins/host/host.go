package host

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/ripcordhq/ripcord/core"
	pb "github.com/ripcordhq/ripcord/plugins/internal/pluginpb"
	"github.com/ripcordhq/ripcord/plugins/internal/protocol"
	"google.golang.org/grpc"
)

// Health states reported in core.ProviderHealth.State.
const (
	StateStarting = "starting"
	StateHealthy  = "healthy"
	StateDegraded = "degraded"
	StateFailed   = "failed"
)

// PluginSpec is one external plugin.
type PluginSpec struct {
	Name string
	// Path of the binary; empty means search for ripcord-provider-NAME.
	Path string
	// Env entries the plugin gets besides the allowlist: "NAME" passes the
	// host's value of NAME through, "NAME=value" sets it.
	Env []string
	// Instances names the processes run for this plugin, one per place the
	// config uses it ("kubernetes@staging"), each configured with its own
	// settings. Empty runs one process named Name.
	Instances []string
}

// Options configure a Host.
type Options struct {
	// Self is the running ripcord binary; built-ins run as
	// `<Self> plugin serve NAME`.
	Self string
	// Builtins names the built-in providers to run. An entry may name an
	// instance as PROVIDER@INSTANCE ("local@staging"): each instance is its
	// own process with its own configuration, so two environments can use
	// the same provider with different settings.
	Builtins []string
	Plugins  []PluginSpec
	// Workdir is where ./.ripcord/plugins is searched (default: cwd).
	Workdir string
	// LockFile is ripcord.lock; external plugins must be pinned in it.
	LockFile string
	// SocketDir is this host's private directory for plugin sockets. It is
	// created 0700 and emptied at Start. Default: a per-process directory
	// under $XDG_RUNTIME_DIR/ripcord (or the temp dir), whose dead
	// siblings are removed.
	SocketDir string
	// Log receives every log line of go-plugin and of the plugins.
	Log func(core.LogLine)
	// LogLevel of the host-side plugin logger (default hclog.Debug).
	LogLevel hclog.Level
	// Health receives every health change. Calls are serialised per plugin.
	Health func(core.ProviderHealth)
	// StartTimeout bounds one plugin's handshake (default 5s).
	StartTimeout time.Duration
	// Restart backoff: MinBackoff doubling to MaxBackoff, back to MinBackoff
	// after a process stayed up for HealthyReset (100ms, 10s, 1m).
	MinBackoff, MaxBackoff, HealthyReset time.Duration
	// CallTimeout bounds unary calls made by the host itself (GetInfo,
	// Configure) (default 10s).
	CallTimeout time.Duration
	// Redact removes configured secret values from text a provider
	// reports; the host also escapes control characters in it.
	Redact func(string) string
	// Deadlines bound the calls the host makes for others: Health its
	// health checks, Status the quick unary calls (when the caller's
	// context allows longer), Backup backups and verifies; a stream silent
	// for Stall gets its provider's health checked, and one that does not
	// answer is reported and its stream ended (zero fields: the defaults).
	Deadlines core.Deadlines
}

// EnvAllowlist is passed from the host's environment to every plugin;
// nothing else is, so cloud credentials in the console's environment never
// reach a plugin that was not given them.
var EnvAllowlist = []string{"PATH", "HOME", "TZ", "LANG", "TMPDIR", protocol.EnvLogLevel}

// Host starts, supervises and adapts provider plugins.
type Host struct {
	opts    Options
	sockDir string
	// self is the ripcord binary as it was when the host started: every
	// re-execution of a built-in checks the file is still that binary.
	self   binaryID
	selfMu sync.Mutex // check may take the digest late

	mu      sync.Mutex
	plugins map[string]*managed
	order   []string
	started bool
	closed  bool
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// New validates options; nothing is started until Start.
func New(opts Options) (*Host, error) {
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 5 * time.Second
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 100 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 10 * time.Second
	}
	if opts.HealthyReset <= 0 {
		opts.HealthyReset = time.Minute
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 10 * time.Second
	}
	opts.Deadlines = opts.Deadlines.OrDefaults()
	if opts.LogLevel == hclog.NoLevel {
		opts.LogLevel = hclog.Debug
	}
	if opts.Workdir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return nil, fmt.Errorf("plugin host: %w", err)
		}
		opts.Workdir = wd
	}
	if opts.LockFile == "" {
		opts.LockFile = filepath.Join(opts.Workdir, LockFileName)
	}
	h := &Host{opts: opts, plugins: map[string]*managed{}}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	add := func(m *managed) error {
		if _, dup := h.plugins[m.name]; dup {
			return fmt.Errorf("plugin host: plugin %q is configured twice", m.name)
		}
		h.plugins[m.name] = m
		h.order = append(h.order, m.name)
		return nil
	}
	for _, name := range opts.Builtins {
		if opts.Self == "" {
			return nil, errors.New("plugin host: built-in providers need Options.Self")
		}
		provider, _, _ := strings.Cut(name, "@")
		if err := add(&managed{h: h, name: name, provider: provider, path: opts.Self, builtin: true}); err != nil {
			return nil, err
		}
	}
	specs, err := Resolve(opts.Plugins, SearchDirs(opts.Workdir))
	if err != nil {
		return nil, fmt.Errorf("plugin host: %w", err)
	}
	for _, s := range specs {
		names := s.Instances
		if len(names) == 0 {
			names = []string{s.Name}
		}
		for _, name := range names {
			if err := add(&managed{h: h, name: name, provider: s.Name, path: s.Path, env: s.Env}); err != nil {
				return nil, err
			}
		}
	}
	for _, m := range h.plugins {
		m.changed = make(chan struct{})
		m.health = core.ProviderHealth{Name: m.name, State: StateStarting, Since: time.Now()}
	}
	return h, nil
}

// Start prepares the socket directory, verifies external plugins against
// the lock, and starts every plugin in parallel. It returns once each has
// made its first attempt; the error joins the plugins that failed (they
// keep being retried with backoff unless their binary is refused).
func (h *Host) Start(ctx context.Context) error {
	h.mu.Lock()
	if h.started || h.closed {
		h.mu.Unlock()
		return errors.New("plugin host: Start called twice or after Close")
	}
	h.started = true
	h.mu.Unlock()

	dir, err := prepareSocketDir(h.opts.SocketDir)
	if err != nil {
		return fmt.Errorf("plugin host: %w", err)
	}
	h.sockDir = dir

	if h.opts.Self != "" && len(h.opts.Builtins) > 0 {
		if h.self, err = identifySelf(h.opts.Self); err != nil {
			return fmt.Errorf("plugin host: identifying the ripcord binary: %w", err)
		}
	}

	var externals []PluginSpec
	seen := map[string]bool{}
	for _, name := range h.order {
		if m := h.plugins[name]; !m.builtin && !seen[m.provider] {
			seen[m.provider] = true
			externals = append(externals, PluginSpec{Name: m.provider, Path: m.path})
		}
	}
	if len(externals) > 0 {
		sums, err := VerifyLock(h.opts.LockFile, externals)
		for _, name := range h.order {
			m := h.plugins[name]
			if m.builtin {
				continue
			}
			if sum, ok := sums[m.provider]; ok {
				m.checksum = sum
				continue
			}
			m.refuse(pluginError(err, m.provider))
		}
	}

	firstDone := make(chan error, len(h.order))
	for _, name := range h.order {
		m := h.plugins[name]
		if m.refused != nil {
			firstDone <- m.refused
			continue
		}
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			m.supervise(h.ctx, firstDone)
		}()
	}
	var errs []error
	for range h.order {
		select {
		case err := <-firstDone:
			if err != nil {
				errs = append(errs, err)
			}
		case <-ctx.Done():
			return fmt.Errorf("plugin host: waiting for plugins: %w", ctx.Err())
		}
	}
	return errors.Join(errs...)
}

// pluginError picks the part of a joined verification error about name.
func pluginError(err error, name string) error {
	var joined interface{ Unwrap() []error }
	if errors.As(err, &joined) {
		for _, e := range joined.Unwrap() {
			var ce *ChecksumError
			if errors.As(e, &ce) && ce.Plugin == name || strings.Contains(e.Error(), strconv.Quote(name)) {
				return e
			}
		}
	}
	if err == nil {
		return fmt.Errorf("plugin %q: not verified", name)
	}
	return err
}

// Close stops every plugin (cancel first, then kill) and removes the
// socket directory. It is safe to call more than once.
func (h *Host) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	cancel := h.cancel
	h.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	h.wg.Wait()
	if h.sockDir != "" && h.opts.SocketDir == "" {
		_ = os.RemoveAll(h.sockDir)
	}
	return nil
}

// Cleanup kills every plugin process any Host started; cmd defers it in
// main so a panic past Close still leaves no plugin behind.
func Cleanup() { plugin.CleanupClients() }

// Info describes one plugin for `ripcord plugins list`.
type Info struct {
	Name         string              `json:"name"`
	Version      string              `json:"version,omitempty"`
	Kinds        []string            `json:"kinds"`
	Capabilities []string            `json:"capabilities,omitempty"`
	Health       core.ProviderHealth `json:"health"`
	Builtin      bool                `json:"builtin"`
	Path         string              `json:"path"`
	SHA256       string              `json:"sha256,omitempty"`
	PID          int                 `json:"pid,omitempty"`
	ConfigSchema json.RawMessage     `json:"config_schema,omitempty"`
}

// List reports every plugin, in configuration order.
func (h *Host) List(ctx context.Context) ([]Info, error) {
	out := make([]Info, 0, len(h.order))
	for _, name := range h.order {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		m := h.plugins[name]
		m.mu.Lock()
		info := Info{Name: m.name, Health: m.health, Builtin: m.builtin, Path: m.path, Kinds: m.health.Kinds}
		if m.checksum != nil {
			info.SHA256 = hex.EncodeToString(m.checksum)
		}
		if m.live != nil {
			info.PID = m.live.pid
		}
		if m.info != nil {
			info.Version = m.info.GetVersion()
			info.Capabilities = m.info.GetCapabilities()
			info.ConfigSchema = json.RawMessage(m.info.GetConfigSchemaJson())
		}
		m.mu.Unlock()
		out = append(out, info)
	}
	return out, nil
}

// Conn returns the live gRPC connection of a plugin, waiting for it while
// the plugin (re)starts. It is for diagnostics and the conformance kit;
// the engine uses the core adapters.
func (h *Host) Conn(ctx context.Context, name string) (*grpc.ClientConn, error) {
	m, err := h.get(name)
	if err != nil {
		return nil, err
	}
	l, err := m.current(ctx, 0)
	if err != nil {
		return nil, err
	}
	return l.conn, nil
}

func (h *Host) get(name string) (*managed, error) {
	m, ok := h.plugins[name]
	if !ok {
		return nil, fmt.Errorf("plugin %q is not configured", name)
	}
	return m, nil
}

// Configure sends a provider its settings (its block of ripcord.yaml) and
// secrets. Rejected settings come back as a *ConfigError whose entries
// carry dotted paths to locate in ripcord.yaml. The settings are kept and
// sent again to every restarted process.
func (h *Host) Configure(ctx context.Context, name string, settings map[string]any, secrets map[string]string) error {
	m, err := h.get(name)
	if err != nil {
		return err
	}
	data, err := json.Marshal(settings)
	if err != nil {
		return fmt.Errorf("plugin %q: encoding settings: %w", name, err)
	}
	l, err := m.current(ctx, 0)
	if err != nil {
		return err
	}
	if err := m.configure(ctx, l, data, secrets); err != nil {
		return err
	}
	m.mu.Lock()
	m.settings, m.secrets = data, secrets
	m.mu.Unlock()
	// Settings usually change a provider's health (from "waiting for its
	// settings" to healthy, or to degraded on a bad repository).
	m.setHealth(m.checkHealth(ctx, l))
	return nil
}

// SettingError is one setting a provider rejected.
type SettingError struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

// ConfigError lists the settings a provider rejected.
type ConfigError struct {
	Plugin string
	Errors []SettingError
}

func (e *ConfigError) Error() string {
	parts := make([]string, len(e.Errors))
	for i, s := range e.Errors {
		if s.Path == "" {
			parts[i] = s.Message
		} else {
			parts[i] = s.Path + ": " + s.Message
		}
	}
	return fmt.Sprintf("plugin %q rejected its settings: %s", e.Plugin, strings.Join(parts, "; "))
}

// prepareSocketDir creates the host's private socket directory (0700) and
// removes what earlier hosts left behind: a SIGKILLed plugin leaves its
// socket file.
func prepareSocketDir(explicit string) (string, error) {
	if explicit != "" {
		if err := os.MkdirAll(explicit, 0o700); err != nil {
			return "", fmt.Errorf("socket dir: %w", err)
		}
		if err := checkPrivate(explicit); err != nil {
			return "", err
		}
		entries, _ := os.ReadDir(explicit)
		for _, e := range entries {
			_ = os.RemoveAll(filepath.Join(explicit, e.Name()))
		}
		return explicit, nil
	}
	base := os.Getenv("XDG_RUNTIME_DIR")
	if base == "" {
		base = filepath.Join(os.TempDir(), "ripcord-"+strconv.Itoa(os.Getuid()))
	} else {
		base = filepath.Join(base, "ripcord")
	}
	if err := os.MkdirAll(base, 0o700); err != nil {
		return "", fmt.Errorf("socket dir: %w", err)
	}
	if err := checkPrivate(base); err != nil {
		return "", err
	}
	entries, _ := os.ReadDir(base)
	for _, e := range entries {
		pid, ok := strings.CutPrefix(e.Name(), "plugins-")
		if n, err := strconv.Atoi(pid); ok && err == nil && !processAlive(n) {
			_ = os.RemoveAll(filepath.Join(base, e.Name()))
		}
	}
	dir := filepath.Join(base, "plugins-"+strconv.Itoa(os.Getpid()))
	_ = os.RemoveAll(dir)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return "", fmt.Errorf("socket dir: %w", err)
	}
	return dir, nil
}

// checkPrivate refuses a socket directory other users could write to.
func checkPrivate(dir string) error {
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("socket dir: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("socket dir %s is not private (%v): %w", dir, st.Mode().Perm(), err)
		}
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && int(sys.Uid) != os.Getuid() {
		return fmt.Errorf("socket dir %s belongs to uid %d, not to this user", dir, sys.Uid)
	}
	return nil
}

func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// environment builds a plugin's whole environment: the allowlist, the
// plugin's own entries, and its socket directory.
func (h *Host) environment(extra []string) []string {
	var env []string
	for _, k := range EnvAllowlist {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	for _, e := range extra {
		if strings.Contains(e, "=") {
			env = append(env, e)
		} else if v, ok := os.LookupEnv(e); ok {
			env = append(env, e+"="+v)
		}
	}
	return append(env, plugin.EnvUnixSocketDir+"="+h.sockDir)
}

// connPlugin hands the host the raw connection and the context go-plugin
// cancels when the plugin process exits (there is no exit callback).
type connPlugin struct{ plugin.NetRPCUnsupportedPlugin }

type dispensed struct {
	conn   *grpc.ClientConn
	exited context.Context
}

func (connPlugin) GRPCServer(*plugin.GRPCBroker, *grpc.Server) error {
	return errors.New("host side serves nothing")
}

func (connPlugin) GRPCClient(ctx context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return &dispensed{conn: c, exited: ctx}, nil
}

// live is one running plugin process. A go-plugin Client is single-use:
// each restart makes a new live with a new Client and exec.Cmd.
type live struct {
	gen    int
	client *plugin.Client
	conn   *grpc.ClientConn
	exited context.Context
	pid    int
	socket string
	up     time.Time
}

func (l *live) kill() {
	l.client.Kill()
	if l.socket != "" {
		_ = os.Remove(l.socket) // left behind when the process was SIGKILLed
	}
}

// managed supervises one plugin across restarts.
type managed struct {
	h        *Host
	name     string
	provider string // the built-in `plugin serve` runs, or the external plugin's name (name may add @instance)
	path     string
	builtin  bool
	env      []string
	checksum []byte

	mu       sync.Mutex
	live     *live
	gen      int
	info     *pb.ProviderInfo
	health   core.ProviderHealth
	refused  error // permanent: never started (e.g. checksum mismatch)
	lastErr  error
	changed  chan struct{} // closed and replaced whenever live changes
	settings []byte
	secrets  map[string]string
	healthMu sync.Mutex // serialises Health callbacks
	// late are the calls whose last try passed its deadline, with why:
	// a process that answers its health check but not the calls the
	// engine makes is not healthy, whatever the check says.
	late map[string]string
}

func (m *managed) refuse(err error) {
	m.mu.Lock()
	m.refused = err
	m.mu.Unlock()
	m.setHealth(StateFailed, err.Error())
}

func (m *managed) setHealth(state, msg string) {
	m.healthMu.Lock()
	defer m.healthMu.Unlock()
	m.mu.Lock()
	if why := m.lateWhy(); why != "" && state == StateHealthy {
		state, msg = StateDegraded, why
	}
	h := m.health
	if h.State != state {
		h.Since = time.Now()
	}
	h.State, h.Message = state, msg
	if m.info != nil {
		h.Version = m.info.GetVersion()
		h.Kinds = nil
		for _, k := range m.info.GetKinds() {
			h.Kinds = append(h.Kinds, protocol.KindName(k))
		}
	}
	m.health = h
	m.mu.Unlock()
	if m.h.opts.Health != nil {
		m.h.opts.Health(h)
	}
}

// lateWhy is why a call is late, "" when none is; m.mu is held.
func (m *managed) lateWhy() string {
	calls := make([]string, 0, len(m.late))
	for c := range m.late {
		calls = append(calls, c)
	}
	if len(calls) == 0 {
		return ""
	}
	slices.Sort(calls)
	return m.late[calls[0]]
}

// callLate records that call passed its deadline: the provider shows as
// not answering until that call answers again (or the process restarts).
func (m *managed) callLate(call string, late *core.DeadlineError) {
	why := "not answering: " + late.Error()
	m.mu.Lock()
	if m.late == nil {
		m.late = map[string]string{}
	}
	m.late[call] = why
	m.mu.Unlock()
	m.setHealth(StateDegraded, why)
}

// callAnswered clears a late call once it answers; with none left late,
// the provider's health is asked again.
func (m *managed) callAnswered(ctx context.Context, call string, l *live) {
	m.mu.Lock()
	_, was := m.late[call]
	delete(m.late, call)
	left := len(m.late)
	m.mu.Unlock()
	if was && left == 0 {
		m.setHealth(m.checkHealth(ctx, l))
	}
}

func (m *managed) notifyLocked() {
	close(m.changed)
	m.changed = make(chan struct{})
}

// current returns the live process newer than generation after (0: any),
// waiting while the plugin restarts.
func (m *managed) current(ctx context.Context, after int) (*live, error) {
	for {
		m.mu.Lock()
		l, refused, ch, lastErr := m.live, m.refused, m.changed, m.lastErr
		m.mu.Unlock()
		if refused != nil {
			return nil, refused
		}
		if l != nil && l.gen > after && l.exited.Err() == nil {
			return l, nil
		}
		if l == nil && lastErr != nil && m.gen == 0 {
			// Never started: its restarts go on, but nobody waits on them.
			return nil, lastErr
		}
		select {
		case <-ch:
		case <-ctx.Done():
			if lastErr != nil {
				return nil, fmt.Errorf("plugin %q is not running (last error: %v): %w", m.name, lastErr, ctx.Err())
			}
			return nil, fmt.Errorf("plugin %q is not running: %w", m.name, ctx.Err())
		case <-m.h.ctx.Done():
			return nil, fmt.Errorf("plugin %q: host is closed", m.name)
		}
	}
}

// supervise starts the plugin and restarts it with backoff whenever its
// process exits, until the host closes. The first attempt's outcome goes
// to first.
func (m *managed) supervise(ctx context.Context, first chan<- error) {
	backoff := m.h.opts.MinBackoff
	for attempt := 0; ; attempt++ {
		l, err := m.launch(ctx)
		// Health is reported before Start hears of the first attempt, so
		// whoever Start returns to sees the plugin's state already.
		if err != nil {
			m.mu.Lock()
			m.lastErr = err
			m.notifyLocked()
			m.mu.Unlock()
			var ce *ChecksumError
			if errors.As(err, &ce) && attempt == 0 {
				m.refuse(err)
				first <- err
				return
			}
			if errors.As(err, &ce) {
				// A restart the lock refused is tried again, in case the
				// binary is put back or pinned anew; each refusal says so.
				msg := fmt.Sprintf("%v; checking again in %v", err, backoff)
				m.h.logf(m.name, "%s", msg)
				m.setHealth(StateFailed, msg)
			} else {
				m.setHealth(StateFailed, err.Error())
			}
		}
		if attempt == 0 {
			first <- err
		}
		if err == nil {
			select {
			case <-l.exited.Done():
			case <-ctx.Done():
			}
			m.mu.Lock()
			m.live = nil
			m.notifyLocked()
			m.mu.Unlock()
			l.kill()
			if ctx.Err() != nil {
				return
			}
			if time.Since(l.up) >= m.h.opts.HealthyReset {
				backoff = m.h.opts.MinBackoff
			}
			msg := fmt.Sprintf("plugin %q (pid %d) exited; restarting in %v", m.name, l.pid, backoff)
			m.h.logf(m.name, "%s", msg)
			m.setHealth(StateDegraded, msg)
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return
		}
		backoff = min(backoff*2, m.h.opts.MaxBackoff)
	}
}

func (h *Host) logf(name, format string, args ...any) {
	if h.opts.Log != nil {
		h.opts.Log(core.LogLine{Time: time.Now(), Source: "plugin/" + name, Stream: "host", Text: fmt.Sprintf(format, args...)})
	}
}

// launch starts one new process with a new Client, handshakes, asks for
// its info, re-sends its settings and checks its health.
func (m *managed) launch(ctx context.Context) (*live, error) {
	if m.builtin {
		// A built-in is the ripcord binary re-executed: it must still be
		// the binary this ripcord started from, not one put in its place.
		m.h.selfMu.Lock()
		err := m.h.self.check(m.name)
		m.h.selfMu.Unlock()
		if err != nil {
			return nil, err
		}
	} else {
		// Checked here as well as by go-plugin so a refusal names the
		// plugin and both digests (go-plugin only says "checksums did
		// not match"), and at every launch: the file may have changed,
		// and so may the lock (re-pinned with `ripcord plugins lock`).
		sums, err := VerifyLock(m.h.opts.LockFile, []PluginSpec{{Name: m.provider, Path: m.path}})
		if err != nil {
			return nil, err
		}
		m.mu.Lock()
		m.checksum = sums[m.provider]
		m.mu.Unlock()
	}
	tail := &stderrTail{}
	var cmd *exec.Cmd
	if m.builtin {
		cmd = exec.Command(m.path, "plugin", "serve", m.provider)
	} else {
		cmd = exec.Command(m.path)
	}
	cmd.Env = m.h.environment(m.env)
	cmd.SysProcAttr = procAttr()
	var secure *plugin.SecureConfig
	if !m.builtin {
		secure = &plugin.SecureConfig{Checksum: m.checksum, Hash: sha256.New()}
	}
	logFn := m.h.opts.Log
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  protocol.Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{protocol.Version: {protocol.PluginName: connPlugin{}}},
		Cmd:              cmd,
		SecureConfig:     secure,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		Managed:          true,
		SkipHostEnv:      true,
		StartTimeout:     m.h.opts.StartTimeout,
		Logger:           newLogger(m.name, m.h.opts.LogLevel, logFn),
		Stderr:           tail, // also parsed into Logger; kept to explain a failed start
		SyncStdout:       newLogWriter("plugin/"+m.name, "stdout", logFn),
		SyncStderr:       newLogWriter("plugin/"+m.name, "stderr", logFn),
		GRPCDialOptions: []grpc.DialOption{grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(protocol.MaxMessageSize), grpc.MaxCallSendMsgSize(protocol.MaxMessageSize))},
	})
	fail := func(stage string, err error) (*live, error) {
		client.Kill()
		return nil, fmt.Errorf("plugin %q (%s): %s: %w", m.name, m.path, stage, err)
	}
	rpc, err := client.Client()
	if err != nil {
		// go-plugin's own text guesses at causes; what the plugin wrote
		// on its way out usually names the real one.
		client.Kill()
		return nil, &StartError{Plugin: m.name, Path: m.path, Cause: startCause(err, m.h.opts.StartTimeout), Stderr: tail.lines(), err: err}
	}
	raw, err := rpc.Dispense(protocol.PluginName)
	if err != nil {
		return fail("dispense", err)
	}
	d := raw.(*dispensed)
	l := &live{client: client, conn: d.conn, exited: d.exited, up: time.Now()}
	if rc := client.ReattachConfig(); rc != nil {
		l.pid = rc.Pid
		if rc.Addr != nil && rc.Addr.Network() == "unix" {
			l.socket = rc.Addr.String()
		}
	}

	callCtx, cancel := context.WithTimeout(ctx, m.h.opts.CallTimeout)
	defer cancel()
	infoResp, err := pb.NewProviderServiceClient(l.conn).GetInfo(callCtx, &pb.GetInfoRequest{})
	if err != nil {
		return fail("GetInfo", err)
	}
	m.mu.Lock()
	m.info = infoResp.GetInfo()
	settings, secrets := m.settings, m.secrets
	m.mu.Unlock()
	if settings != nil {
		if err := m.configure(callCtx, l, settings, secrets); err != nil {
			return fail("re-configure after start", err)
		}
	}
	state, msg := m.checkHealth(callCtx, l)
	m.mu.Lock()
	m.gen++
	l.gen = m.gen
	m.live = l
	m.lastErr = nil
	m.late = nil // a new process: the calls late on the old one are gone with it
	m.notifyLocked()
	m.mu.Unlock()
	m.setHealth(state, msg)
	return l, nil
}

// checkHealth asks a live plugin how it is, within the health deadline.
func (m *managed) checkHealth(ctx context.Context, l *live) (state, msg string) {
	var hr *pb.CheckHealthResponse
	err := core.WithDeadline(ctx, "CheckHealth", m.name, m.h.opts.Deadlines.Health, func(ctx context.Context) error {
		var err error
		hr, err = pb.NewProviderServiceClient(l.conn).CheckHealth(ctx, &pb.CheckHealthRequest{})
		return err
	})
	var late *core.DeadlineError
	switch {
	case errors.As(err, &late):
		return StateDegraded, "not answering: " + late.Error()
	case err != nil:
		return StateDegraded, "CheckHealth: " + err.Error()
	case hr.GetState() == pb.HealthState_HEALTH_STATE_DEGRADED:
		return StateDegraded, hr.GetMessage()
	case hr.GetState() == pb.HealthState_HEALTH_STATE_FAILED:
		return StateFailed, hr.GetMessage()
	}
	return StateHealthy, hr.GetMessage()
}

// answers reports whether the plugin still answers a health check, for a
// stream that has been silent for the stall time: quiet is normal, a
// process that does not answer is not. It says so in the plugin's health
// when it does not.
func (m *managed) answers(ctx context.Context, l *live, call string, silent time.Duration) error {
	state, msg := m.checkHealth(ctx, l)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if state == StateHealthy || !strings.HasPrefix(msg, "not answering") {
		// A quiet stream's provider still says how it is (a CI source's
		// API budget, a rate limit it waits out): keep that current.
		m.mu.Lock()
		same := m.health.State == state && m.health.Message == msg
		m.mu.Unlock()
		if !same && !strings.HasPrefix(msg, "CheckHealth: ") {
			m.setHealth(state, msg)
		}
		return nil
	}
	why := fmt.Sprintf("%s has been silent for %s and %s", call, core.ShortDuration(silent), strings.TrimPrefix(msg, "not answering: "))
	m.setHealth(StateDegraded, "not answering: "+why)
	return errors.New(why)
}

func (m *managed) configure(ctx context.Context, l *live, settings []byte, secrets map[string]string) error {
	resp, err := pb.NewProviderServiceClient(l.conn).Configure(ctx, &pb.ConfigureRequest{SettingsJson: settings, Secrets: secrets})
	if err != nil {
		return fmt.Errorf("plugin %q: Configure: %w", m.name, err)
	}
	if len(resp.GetErrors()) == 0 {
		return nil
	}
	ce := &ConfigError{Plugin: m.name}
	for _, e := range resp.GetErrors() {
		ce.Errors = append(ce.Errors, SettingError{Path: e.GetPath(), Message: e.GetMessage()})
	}
	sort.SliceStable(ce.Errors, func(i, j int) bool { return ce.Errors[i].Path < ce.Errors[j].Path })
	return ce
}
