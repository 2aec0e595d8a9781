// Package ssh is a deploy target for a fleet of plain servers reached over
// SSH, the way Capistrano and Kamal deploy: each release is uploaded once
// per host into releases/<version>-<digest12>/, verified there by sha256,
// a `current` link is switched atomically (a new link renamed over the
// old), a restart command runs and the host's health is checked from the
// host itself (a command over SSH, or HTTP/TCP through an SSH tunnel).
//
// A canary is a share of the hosts: a step's weight becomes a number of
// hosts (canary hosts first), and the status says the share that is real
// ("25% requested → 1 of 4 hosts"). Hosts move in batches of at most
// MaxParallel; a host that fails stops the rollout where it is, and the
// status lists every host with the release it runs. A rollback moves every
// host that moved back, reports the hosts it could not reach, and can be
// run again once they answer.
//
// Every operation is recorded in StateDir (so the same request twice does
// the work once and a restarted provider can re-attach) and leaves a
// marker file per host under <root>/.ripcord/ops, so a host that already
// did its part of an operation is not moved twice.
package ssh

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/plugins/internal/opbook"
)

// Host is one server of the environment.
type Host struct {
	// Name is how the host is named on the screen ("web-1").
	Name string
	// Address is its IP address or DNS name; Port its SSH port (22).
	Address string
	Port    int
	// User logs in; default Config.User.
	User string
	// Jump is a bastion to connect through, "[user@]host[:port]" as
	// OpenSSH's ProxyJump (same keys and known_hosts).
	Jump string
	// Root is the deploy directory on the host; default Config.Root.
	Root string
	// Canary hosts take the first steps of a rollout.
	Canary bool
	// Env is added to the restart and health commands on this host.
	Env map[string]string
}

func (h Host) addr() string { return net.JoinHostPort(h.Address, strconv.Itoa(h.Port)) }

// Config configures one environment's fleet.
type Config struct {
	Ref   core.Ref
	Hosts []Host
	// Root and User apply to every host that does not set its own.
	Root string
	User string
	Auth Auth
	// KnownHosts is the known_hosts file checked for every host and jump
	// host (default ~/.ssh/known_hosts); HostKeyPolicy says what to do with
	// a host it does not list (default strict: refuse).
	KnownHosts    string
	HostKeyPolicy HostKeyPolicy
	// Restart runs on each host after its current link moved, in the new
	// release's directory (sh; it must return: a daemon detaches itself).
	Restart string
	// Health is checked on each host after its restart: an http:// or
	// https:// URL (2xx is healthy) or tcp://host:port, both dialled from
	// the host through the SSH connection, or a command run on the host
	// (exit 0 is healthy).
	Health string
	// Env is added to the restart and health commands on every host.
	Env map[string]string
	// Keep is how many releases stay on each host (default 5); the
	// current release and the one a rollback would return to are kept too.
	Keep int
	// MaxParallel bounds the hosts worked on at once (default: all).
	MaxParallel int
	// ConnectTimeout bounds dial and handshake (default 10s),
	// RestartTimeout the restart command (default 60s), HealthTimeout the
	// wait for a host to become healthy (default 30s), HostTimeout all of
	// one host's part of an operation, upload included (default 10m).
	ConnectTimeout time.Duration
	RestartTimeout time.Duration
	HealthTimeout  time.Duration
	HostTimeout    time.Duration
	// ArtifactStore holds the artifacts named by their sha256 hex (where
	// the exec pipeline writes them); ArtifactName is the artifact's file
	// name in a release directory (default "artifact").
	ArtifactStore string
	ArtifactName  string
	// StateDir keeps the fleet's state and the operations' records on this
	// machine.
	StateDir string
	// StatusInterval is how often every host is probed (default 5s).
	StatusInterval time.Duration
}

func (c *Config) setDefaults() {
	if c.Keep <= 0 {
		c.Keep = 5
	}
	if c.MaxParallel <= 0 || c.MaxParallel > len(c.Hosts) {
		c.MaxParallel = max(len(c.Hosts), 1)
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = 10 * time.Second
	}
	if c.RestartTimeout <= 0 {
		c.RestartTimeout = 60 * time.Second
	}
	if c.HealthTimeout <= 0 {
		c.HealthTimeout = 30 * time.Second
	}
	if c.HostTimeout <= 0 {
		c.HostTimeout = 10 * time.Minute
	}
	if c.ArtifactName == "" {
		c.ArtifactName = "artifact"
	}
	if c.StatusInterval <= 0 {
		c.StatusInterval = 5 * time.Second
	}
	if c.HostKeyPolicy == "" {
		c.HostKeyPolicy = HostKeyStrict
	}
	if c.KnownHosts == "" {
		if home, err := os.UserHomeDir(); err == nil {
			c.KnownHosts = filepath.Join(home, ".ssh", "known_hosts")
		}
	}
	c.KnownHosts = expandHome(c.KnownHosts)
	c.Auth.IdentityFile = expandHome(c.Auth.IdentityFile)
	for i := range c.Hosts {
		h := &c.Hosts[i]
		if h.Port == 0 {
			h.Port = 22
		}
		if h.User == "" {
			h.User = c.User
		}
		if h.Root == "" {
			h.Root = c.Root
		}
		if h.Name == "" {
			h.Name = h.Address
		}
	}
}

// expandHome reads a leading ~/ as this user's home, as ssh does.
func expandHome(p string) string {
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, rest)
		}
	}
	return p
}

func (c *Config) check() error {
	var errs []string
	if len(c.Hosts) == 0 {
		errs = append(errs, "no hosts")
	}
	if c.Restart == "" {
		errs = append(errs, "restart is required")
	}
	if c.Health == "" {
		errs = append(errs, "health is required")
	}
	if c.StateDir == "" {
		errs = append(errs, "state_dir is required")
	}
	if c.Ref.Env == "" {
		errs = append(errs, "the environment it serves (Ref) is required")
	}
	switch c.HostKeyPolicy {
	case HostKeyStrict, HostKeyAcceptNew:
	default:
		errs = append(errs, fmt.Sprintf("host_key_policy %q: want strict or accept-new", c.HostKeyPolicy))
	}
	names := map[string]bool{}
	for _, h := range c.Hosts {
		switch {
		case h.Address == "":
			errs = append(errs, fmt.Sprintf("host %s: address is required", h.Name))
		case h.User == "":
			errs = append(errs, fmt.Sprintf("host %s: no user (set user for the host or the target)", h.Name))
		case h.Root == "" || !path.IsAbs(h.Root):
			errs = append(errs, fmt.Sprintf("host %s: root must be an absolute path on the host, got %q", h.Name, h.Root))
		case names[h.Name]:
			errs = append(errs, fmt.Sprintf("host %s is listed twice", h.Name))
		}
		names[h.Name] = true
		if h.Jump != "" {
			if _, err := splitUserHostPort(h.Jump, h.User); err != nil {
				errs = append(errs, fmt.Sprintf("host %s: jump %v", h.Name, err))
			}
		}
	}
	if _, err := newHealth(c.Health); err != nil && c.Health != "" {
		errs = append(errs, err.Error())
	}
	if len(errs) > 0 {
		return errors.New("ssh target: " + strings.Join(errs, "; "))
	}
	return nil
}

// fleetState is what the target remembers on this machine between runs.
// The hosts' current links are the truth about what runs where; this says
// which release is the stable one and which the candidate.
type fleetState struct {
	Stable     string            `json:"stable,omitempty"`
	Candidate  string            `json:"candidate,omitempty"`
	History    []string          `json:"history,omitempty"`     // stable releases, in the order they served
	RolledBack []string          `json:"rolled_back,omitempty"` // releases left by a rollback
	Digests    map[string]string `json:"digests,omitempty"`     // version → artifact digest
}

// hostView is the last known state of one host.
type hostView struct {
	release   string   // version its current link points to
	releases  []string // complete releases installed, newest first
	reachable bool
	checked   bool // probed at least once
	healthy   bool
	working   string // what an operation is doing on it now
	gen       int    // bumped by every change an operation makes
	err       string
	problems  []string
}

// Target is a core.Target for one environment's fleet of SSH hosts.
type Target struct {
	cfg    Config
	logf   func(core.LogLine)
	pool   *pool
	health *health
	book   *opbook.Book

	opMu sync.Mutex // one deploy, weight change or rollback at a time

	mu       sync.Mutex
	st       fleetState
	views    map[string]*hostView
	problems []string
	changed  chan struct{}

	// active counts hosts being worked on now; peak is its high-water mark
	// (the MaxParallel bound is checked against it in tests).
	active, peak int

	stopMonitor context.CancelFunc
	monitorDone chan struct{}
}

var _ core.Target = (*Target)(nil)

// New checks the config, opens the state directory and starts probing the
// hosts (Status reports them as checking until the first probe answers).
// logf receives what the hosts' commands print and what the target did to
// known_hosts; it may be nil.
func New(cfg Config, logf func(core.LogLine)) (*Target, error) {
	cfg.setDefaults()
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if logf == nil {
		logf = func(core.LogLine) {}
	}
	h, _ := newHealth(cfg.Health)
	t := &Target{cfg: cfg, logf: logf, health: h, views: map[string]*hostView{}, changed: make(chan struct{})}
	p, err := newPool(cfg.Auth, cfg.KnownHosts, cfg.HostKeyPolicy, cfg.ConnectTimeout, func(s string) { t.log("", s) })
	if err != nil {
		return nil, fmt.Errorf("ssh target: %w", err)
	}
	t.pool = p
	if err := os.MkdirAll(filepath.Join(cfg.StateDir, "ops"), 0o755); err != nil {
		return nil, fmt.Errorf("ssh target: create state directory: %w", err)
	}
	t.book = opbook.New(filepath.Join(cfg.StateDir, "ops"), "the ssh target")
	st, err := loadState(t.statePath())
	if err != nil {
		t.problems = append(t.problems, fmt.Sprintf("state file unreadable (%v): rebuilt from the hosts", err))
	}
	t.st = st
	for _, id := range t.book.Interrupted() {
		t.problems = append(t.problems, fmt.Sprintf("operation %s was cut short when the target stopped: marked failed; the hosts show where each one is", id))
		_, _ = t.book.Lookup(id)
	}
	for _, h := range cfg.Hosts {
		t.views[h.Name] = &hostView{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.stopMonitor, t.monitorDone = cancel, make(chan struct{})
	go t.monitor(ctx)
	return t, nil
}

// Close stops probing and closes every SSH connection. What runs on the
// hosts keeps running.
func (t *Target) Close() error {
	t.stopMonitor()
	<-t.monitorDone
	t.opMu.Lock()
	defer t.opMu.Unlock()
	t.pool.closeAll()
	return nil
}

func (t *Target) log(host, text string) {
	src := "ssh"
	if host != "" {
		src = "ssh " + host
	}
	t.logf(core.LogLine{Time: time.Now(), Source: src, Text: text})
}

func (t *Target) statePath() string { return filepath.Join(t.cfg.StateDir, "state.json") }

func loadState(p string) (fleetState, error) {
	var st fleetState
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return fleetState{}, err
	}
	return st, nil
}

func (t *Target) saveLocked() error {
	b, err := json.MarshalIndent(t.st, "", "  ")
	if err != nil {
		return err
	}
	tmp := t.statePath() + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("save target state: %w", err)
	}
	if err := os.Rename(tmp, t.statePath()); err != nil {
		return fmt.Errorf("save target state: %w", err)
	}
	return nil
}

func (t *Target) checkRef(ref core.Ref) error {
	if ref != t.cfg.Ref {
		return fmt.Errorf("ssh target serves %s, not %s", t.cfg.Ref, ref)
	}
	return nil
}

// Status reports the fleet as last probed.
func (t *Target) Status(ctx context.Context, ref core.Ref) (core.TargetStatus, error) {
	if err := t.checkRef(ref); err != nil {
		return core.TargetStatus{}, err
	}
	return t.status(), nil
}

func (t *Target) status() core.TargetStatus {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := core.TargetStatus{Ref: t.cfg.Ref, Current: t.st.Stable, Candidate: t.st.Candidate, Healthy: true,
		Problems: slices.Clone(t.problems)}
	onCandidate := 0
	var kept []string
	first := true
	for _, h := range t.cfg.Hosts {
		v := t.views[h.Name]
		hs := core.HostStatus{Name: h.Name, Address: h.addr(), Release: v.release}
		switch {
		case v.working != "":
			hs.State, hs.Message = core.HostWorking, v.working
		case !v.checked:
			hs.State, hs.Message = core.HostUnknown, "checking"
		case !v.reachable:
			hs.State, hs.Message = core.HostUnreachable, v.err
		case !v.healthy:
			hs.State, hs.Message = core.HostUnhealthy, v.err
		default:
			hs.State = core.HostOK
		}
		if hs.State != core.HostOK && hs.State != core.HostWorking {
			s.Healthy = false
		}
		if s.Candidate != "" && v.release == s.Candidate {
			onCandidate++
		}
		if v.reachable {
			if first {
				kept, first = slices.Clone(v.releases), false
			} else {
				kept = slices.DeleteFunc(kept, func(r string) bool { return !slices.Contains(v.releases, r) })
			}
		}
		for _, p := range v.problems {
			s.Problems = append(s.Problems, h.Name+": "+p)
		}
		s.Hosts = append(s.Hosts, hs)
	}
	s.Kept = kept
	if s.Candidate != "" {
		s.Weight = share(onCandidate, len(t.cfg.Hosts))
	}
	return s
}

// share is n of total hosts as a whole percentage.
func share(n, total int) int {
	if total == 0 {
		return 0
	}
	return (n*100 + total/2) / total
}

// WatchStatus sends the status now and again whenever it changes.
func (t *Target) WatchStatus(ctx context.Context, ref core.Ref, fn func(core.TargetStatus)) error {
	if err := t.checkRef(ref); err != nil {
		return err
	}
	var last *core.TargetStatus
	for {
		t.mu.Lock()
		changed := t.changed
		t.mu.Unlock()
		s := t.status()
		if last == nil || !reflect.DeepEqual(*last, s) {
			fn(s)
			last = &s
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (t *Target) notify() {
	t.mu.Lock()
	close(t.changed)
	t.changed = make(chan struct{})
	t.mu.Unlock()
}

// setView changes a host's view on behalf of an operation.
func (t *Target) setView(name string, f func(v *hostView)) {
	t.mu.Lock()
	v := t.views[name]
	f(v)
	v.gen++
	t.mu.Unlock()
	t.notify()
}

// monitor probes every host now and then, so the status follows the
// hosts: a host cut off shows as unreachable within one interval plus the
// connect timeout.
func (t *Target) monitor(ctx context.Context) {
	defer close(t.monitorDone)
	first := true
	for {
		t.probeAll(ctx, first)
		first = false
		select {
		case <-ctx.Done():
			return
		case <-time.After(t.cfg.StatusInterval):
		}
	}
}

func (t *Target) probeAll(ctx context.Context, first bool) {
	var wg sync.WaitGroup
	for _, h := range t.cfg.Hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.probe(ctx, h)
		}()
	}
	wg.Wait()
	if first {
		t.adoptFromHosts()
	}
}

// probe reads a host's current link, its releases and any operation it
// did not finish, and checks its health once.
func (t *Target) probe(ctx context.Context, h Host) {
	ctx, cancel := context.WithTimeout(ctx, t.cfg.ConnectTimeout+10*time.Second)
	defer cancel()
	t.mu.Lock()
	gen := t.views[h.Name].gen
	t.mu.Unlock()
	facts, err := t.readHost(ctx, h)
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return
	}
	var herr error
	if err == nil && facts.current != "" {
		herr = t.withConn(ctx, h, func(c *conn) error { return t.health.probe(ctx, c, h, t.envFor(h, facts.current)) })
	}
	t.mu.Lock()
	defer t.notify()
	defer t.mu.Unlock()
	v := t.views[h.Name]
	if v.gen != gen || v.working != "" {
		// An operation changed the host while this probe ran: its word
		// is newer than what the probe read.
		return
	}
	func() {
		v.checked = true
		if err != nil {
			v.reachable, v.healthy, v.err = false, false, err.Error()
			return
		}
		v.reachable, v.release, v.releases, v.problems = true, facts.current, facts.releases, facts.problems
		v.healthy, v.err = herr == nil, ""
		if facts.current == "" {
			v.healthy, v.err = false, "no release yet"
		} else if herr != nil {
			v.err = herr.Error()
		}
	}()
}

// adoptFromHosts corrects the remembered state from the hosts after the
// first probe: a state file lost or behind what the hosts run.
func (t *Target) adoptFromHosts() {
	t.mu.Lock()
	defer t.mu.Unlock()
	runs := map[string]int{}
	reached := 0
	for _, v := range t.views {
		if v.reachable {
			reached++
			runs[v.release]++
		}
	}
	if reached == 0 || t.st.Candidate != "" {
		return
	}
	for r, n := range runs {
		if n == reached && r != "" && r != t.st.Stable {
			if t.st.Stable != "" {
				t.problems = append(t.problems, fmt.Sprintf("state recorded %q as current but every reachable host runs %q: following the hosts", t.st.Stable, r))
			}
			t.st.Stable = r
			if n := len(t.st.History); n == 0 || t.st.History[n-1] != r {
				t.st.History = append(t.st.History, r)
			}
			_ = t.saveLocked()
		}
	}
}

// withConn runs f on the host's pooled connection. When ctx ends first,
// the connection is closed (a cut-off host never answers, and SFTP calls
// do not take a context) and ctx's error is returned, naming the deadline.
func (t *Target) withConn(ctx context.Context, h Host, f func(*conn) error) error {
	ep := endpoint{name: h.Name, addr: h.addr(), user: h.User}
	var jump *endpoint
	if h.Jump != "" {
		j, _ := splitUserHostPort(h.Jump, h.User)
		jump = &j
	}
	c, err := t.pool.get(ctx, ep, jump)
	if err != nil {
		return &unreachableError{err}
	}
	done := make(chan error, 1)
	go func() { done <- f(c) }()
	select {
	case err := <-done:
		if err != nil && isConnError(err) {
			t.pool.drop(ep, c)
		}
		return err
	case <-ctx.Done():
		// Closing the connection ends what runs on it, as a rule. A call
		// that does not end (a library waiting on a silent host in a way
		// the close does not reach; the close itself, through a silent
		// jump host) would hold the whole operation, and its lock, without
		// a bound: it is given abandonAfter, then left to end on its own.
		// Its result is not used.
		t.pool.forget(ep, c)
		go c.close()
		select {
		case <-done:
		case <-time.After(abandonAfter):
			t.log(h.Name, fmt.Sprintf("a call on the closed connection to %s did not end within %s of its deadline; abandoned", h.addr(), abandonAfter))
		}
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return &unreachableError{errors.New("no answer before the deadline: connection closed")}
		}
		return ctx.Err()
	}
}

// abandonAfter is how long a call on a connection closed at its context's
// end is waited for before the host is reported unreachable without it.
const abandonAfter = 5 * time.Second

// unreachableError is a host that could not be reached, or stopped
// answering: the status shows it as unreachable.
type unreachableError struct{ err error }

func (e *unreachableError) Error() string { return e.err.Error() }
func (e *unreachableError) Unwrap() error { return e.err }

func isConnError(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "connection lost")
}

// hostErr names the host in an error, once.
func hostErr(h Host, err error) error {
	return fmt.Errorf("host %s (%s): %w", h.Name, h.addr(), err)
}

// envFor is the environment of the restart and health commands on h.
func (t *Target) envFor(h Host, version string) map[string]string {
	env := map[string]string{
		"RIPCORD_SERVICE": t.cfg.Ref.Service, "RIPCORD_ENV": t.cfg.Ref.Env, "RIPCORD_HOST": h.Name,
		"RIPCORD_RELEASE": version, "RIPCORD_ROOT": h.Root,
		"RIPCORD_CURRENT": path.Join(h.Root, currentName), "RIPCORD_SHARED": path.Join(h.Root, "shared"),
	}
	for k, v := range t.cfg.Env {
		env[k] = v
	}
	for k, v := range h.Env {
		env[k] = v
	}
	return env
}

// artifact returns the local artifact file of a digest, checked once.
func (t *Target) artifact(digest string) (string, string, error) {
	want, err := digestHex(digest)
	if err != nil {
		return "", "", err
	}
	if t.cfg.ArtifactStore == "" {
		return "", "", errors.New("no artifact_store: cannot upload a release")
	}
	p := filepath.Join(t.cfg.ArtifactStore, want)
	f, err := os.Open(p)
	if err != nil {
		return "", "", fmt.Errorf("artifact %s in the artifact store: %w", digest, err)
	}
	defer f.Close()
	sum := sha256.New()
	if _, err := io.Copy(sum, f); err != nil {
		return "", "", fmt.Errorf("read artifact %s: %w", digest, err)
	}
	if got := hex.EncodeToString(sum.Sum(nil)); got != want {
		return "", "", fmt.Errorf("artifact store file %s has sha256:%s, not %s: refusing to upload it", p, got, digest)
	}
	return p, want, nil
}

// digestHex returns the hex part of "sha256:<hex>".
func digestHex(digest string) (string, error) {
	h, ok := strings.CutPrefix(digest, "sha256:")
	if !ok || len(h) != 64 {
		return "", fmt.Errorf("artifact digest %q is not sha256:<64 hex>", digest)
	}
	if _, err := hex.DecodeString(h); err != nil {
		return "", fmt.Errorf("artifact digest %q is not sha256:<64 hex>", digest)
	}
	return strings.ToLower(h), nil
}
