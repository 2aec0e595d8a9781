// Package local is a deploy target on this machine: Capistrano-style
// releases under an environment's root, the service run as a real process
// group, health checks, an atomic `current` link, and a small reverse proxy
// on the environment's public port that makes canary weights real.
//
// The proxy always owns the public port and every release listens on its
// own private port on 127.0.0.1, so a swap starts the new release, checks
// its health and only then moves traffic: a release that fails its health
// check never receives a request.
//
// Artifacts come from an artifact store directory holding files named by
// their sha256 (the exec pipeline writes `<state>/artifacts/<hex>`). Deploy
// copies `<ArtifactStore>/<hex>` of the release's ArtifactDigest into
// `releases/<version>/<ArtifactName>` and verifies the copy's sha256 before
// anything runs it.
//
// The proxy and the services are processes of their own: the public port
// answers whether or not a provider (or the Ripcord server, or a console)
// runs, and a provider that starts adopts them — the services from their
// pidfiles, the proxy through its control socket — instead of restarting
// them. Only one provider manages a root at a time (a lock file under it).
package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"text/template"
	"time"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/plugins/internal/opbook"
)

// Config configures one environment's local target.
type Config struct {
	// Ref is the environment this target serves.
	Ref core.Ref
	// Root holds releases/, current, shared/, run/ and the target's state.
	Root string
	// Run is the command template starting a release in its directory;
	// it sees {{.Port}}, {{.Version}}, {{.Artifact}}, {{.Dir}}, {{.Shared}}.
	// Without shell syntax it runs directly, otherwise under sh -c.
	Run string
	// Port is the public port the proxy listens on (127.0.0.1); 0 picks one.
	Port int
	// Health is "http://127.0.0.1:{{.Port}}/healthz" (2xx is healthy) or
	// "tcp://127.0.0.1:{{.Port}}".
	Health string
	// Env is added to each release's environment.
	Env map[string]string
	// Keep is how many releases stay installed (default 5); the current
	// release, the candidate and the last good release are never removed.
	Keep int
	// Grace is how long a stopping release gets between SIGTERM and
	// SIGKILL (default 5s).
	Grace time.Duration
	// HealthTimeout bounds the health check of a starting release
	// (default 10s).
	HealthTimeout time.Duration
	// ArtifactStore is the directory of artifacts named by sha256 hex.
	ArtifactStore string
	// ArtifactName is the artifact's file name in a release directory
	// (default "artifact"), so Run can say "./artifact --port {{.Port}}".
	ArtifactName string
	// StatusInterval is how often the serving release is probed for
	// WatchStatus, and the proxy process checked (default 2s).
	StatusInterval time.Duration
}

func (c *Config) setDefaults() {
	if c.Keep <= 0 {
		c.Keep = 5
	}
	if c.Grace <= 0 {
		c.Grace = 5 * time.Second
	}
	if c.HealthTimeout <= 0 {
		c.HealthTimeout = 10 * time.Second
	}
	if c.ArtifactName == "" {
		c.ArtifactName = "artifact"
	}
	if c.StatusInterval <= 0 {
		c.StatusInterval = 2 * time.Second
	}
}

// state is what the target remembers between runs. The current link, not
// this file, is the truth about what is serving: the link is switched
// first, so after a crash reconciliation corrects the file from the link.
type state struct {
	Stable     string   `json:"stable,omitempty"`
	Candidate  string   `json:"candidate,omitempty"`
	Weight     int      `json:"weight,omitempty"`
	History    []string `json:"history,omitempty"`     // stable releases, in the order they served
	RolledBack []string `json:"rolled_back,omitempty"` // releases left by a rollback: never a rollback target
}

// Target is a core.Target for one environment on this machine.
type Target struct {
	cfg    Config
	logf   func(core.LogLine)
	lay    layout
	run    *template.Template
	health *checker
	book   *opbook.Book
	// lock is the root's lock file, held while this target manages it.
	lock *os.File
	// ctl steers the proxy process; addr is its public address.
	ctl  *proxyCtl
	addr string

	opMu sync.Mutex // one deploy, weight change or rollback at a time

	mu       sync.Mutex
	st       state
	procs    map[string]*process
	healthy  bool
	problems []string
	changed  chan struct{}
	// route is the routing table the proxy should have; routeErr is why
	// the last attempt to give it failed (the monitor tries again).
	route    routeSpec
	routeErr error

	stopMonitor context.CancelFunc
	monitorDone chan struct{}
}

var _ core.Target = (*Target)(nil)

// New opens the environment's root, reconciles it with what is actually
// there (reported in Status().Problems), starts the proxy on the public
// port and makes sure the current release is serving. logf receives the
// services' output line by line; it may be nil.
func New(cfg Config, logf func(core.LogLine)) (*Target, error) {
	cfg.setDefaults()
	if cfg.Root == "" || cfg.Run == "" || cfg.Health == "" {
		return nil, errors.New("local target: root, run and health are required")
	}
	if cfg.Ref.Env == "" {
		return nil, errors.New("local target: the environment it serves (Ref) is required")
	}
	run, err := template.New("run").Option("missingkey=error").Parse(cfg.Run)
	if err != nil {
		return nil, fmt.Errorf("local target: parse run template: %w", err)
	}
	health, err := newChecker(cfg.Health)
	if err != nil {
		return nil, fmt.Errorf("local target: %w", err)
	}
	t := &Target{
		cfg: cfg, logf: logf, run: run, health: health,
		lay:     layout{root: cfg.Root, artifactName: cfg.ArtifactName},
		procs:   map[string]*process{},
		changed: make(chan struct{}),
	}
	if err := t.lay.ensure(); err != nil {
		return nil, fmt.Errorf("local target: %w", err)
	}
	t.book = opbook.New(t.lay.opsDir(), "the local target")
	// Releases and the proxy run for long: they must not carry what this
	// process was handed (a lock file a script holds would never be let go).
	keepInheritedFiles()
	if t.lock, err = lockRoot(cfg.Root); err != nil {
		return nil, fmt.Errorf("local target: %w", err)
	}
	ctl, in, note, err := adoptOrStartProxy(t.lay.root, net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.Port)), routeSpec{})
	if err != nil {
		t.unlockRoot()
		return nil, fmt.Errorf("local target: listen on the public port: %w", err)
	}
	t.ctl, t.addr = ctl, in.Listen
	t.reconcile(context.Background())
	t.problems = append([]string{note}, t.problems...)
	ctx, cancel := context.WithCancel(context.Background())
	t.stopMonitor, t.monitorDone = cancel, make(chan struct{})
	go t.monitor(ctx)
	return t, nil
}

// Addr is the public address the proxy serves.
func (t *Target) Addr() string { return t.addr }

// Detach stops managing the environment and leaves it serving: the proxy
// and the releases keep running for the next target to adopt. A provider
// that stops or is reconfigured detaches.
func (t *Target) Detach() {
	t.stopMonitor()
	<-t.monitorDone
	t.opMu.Lock()
	defer t.opMu.Unlock()
	t.unlockRoot()
}

// Close ends the environment's traffic: it stops the proxy and every
// release process, then lets go of the root.
func (t *Target) Close() error {
	t.stopMonitor()
	<-t.monitorDone
	t.opMu.Lock()
	defer t.opMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	err := t.ctl.stop(ctx)
	cancel()
	t.mu.Lock()
	procs := t.procs
	t.procs = map[string]*process{}
	t.mu.Unlock()
	for _, p := range procs {
		t.stopProcess(p)
	}
	t.unlockRoot()
	return err
}

// lockRoot takes the root's lock file: one target manages an environment.
func lockRoot(root string) (*os.File, error) {
	path := filepath.Join(root, "target.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("another ripcord process manages %s (it holds %s): one server runs the providers of a project; stop it or use its socket", root, path)
		}
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	return f, nil
}

func (t *Target) unlockRoot() {
	if t.lock != nil {
		_ = syscall.Flock(int(t.lock.Fd()), syscall.LOCK_UN)
		_ = t.lock.Close()
		t.lock = nil
	}
}

// setRouteLocked points the proxy at stable, and at candidate for weight
// percent of requests. The caller holds t.mu. Should the proxy not take
// it, the monitor tries again (restarting the proxy if it is gone).
func (t *Target) setRouteLocked(stable, candidate *process, weight int) error {
	rt := routeSpec{Stable: specOf(stable)}
	if candidate != nil {
		rt.Candidate, rt.Weight = specOf(candidate), weight
	}
	t.route = rt
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	t.routeErr = t.ctl.setRoute(ctx, rt)
	return t.routeErr
}

func specOf(p *process) *backendSpec {
	if p == nil {
		return nil
	}
	return &backendSpec{Version: p.version, Port: p.port}
}

// checkProxy makes sure the proxy runs and routes as it should: a proxy
// that died (or was stopped by hand) is started again on the same port
// and given the route.
func (t *Target) checkProxy(ctx context.Context) {
	t.mu.Lock()
	defer t.mu.Unlock()
	in, err := t.ctl.info(ctx)
	if err != nil {
		ctl, nin, note, serr := adoptOrStartProxy(t.lay.root, t.addr, t.route)
		if serr != nil {
			t.problems = appendOnce(t.problems, fmt.Sprintf("the proxy on %s is gone and could not be started again: %v", t.addr, serr))
			t.healthy = false
			return
		}
		t.ctl, in = ctl, nin
		t.problems = appendOnce(t.problems, "the proxy stopped answering: "+note)
	}
	if t.routeErr != nil || !sameRoute(in.Route, t.route) {
		t.routeErr = t.ctl.setRoute(ctx, t.route)
	}
}

func sameRoute(a, b routeSpec) bool {
	same := func(x, y *backendSpec) bool { return (x == nil && y == nil) || (x != nil && y != nil && *x == *y) }
	return same(a.Stable, b.Stable) && same(a.Candidate, b.Candidate) && a.Weight == b.Weight
}

func appendOnce(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

func (t *Target) checkRef(ref core.Ref) error {
	if ref != t.cfg.Ref {
		return fmt.Errorf("local target serves %s, not %s", t.cfg.Ref, ref)
	}
	return nil
}

// Status reports the environment now.
func (t *Target) Status(ctx context.Context, ref core.Ref) (core.TargetStatus, error) {
	if err := t.checkRef(ref); err != nil {
		return core.TargetStatus{}, err
	}
	return t.status(), nil
}

func (t *Target) status() core.TargetStatus {
	complete, _, _ := t.lay.installed()
	t.mu.Lock()
	defer t.mu.Unlock()
	s := core.TargetStatus{
		Ref: t.cfg.Ref, Current: t.st.Stable, Candidate: t.st.Candidate, Weight: t.st.Weight,
		Healthy: t.healthy, Problems: slices.Clone(t.problems),
	}
	if s.Candidate == "" {
		s.Weight = 0
	}
	for i := len(complete) - 1; i >= 0; i-- {
		s.Kept = append(s.Kept, complete[i].Version)
	}
	return s
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

// monitor probes the serving release so Healthy follows reality.
func (t *Target) monitor(ctx context.Context) {
	defer close(t.monitorDone)
	tick := time.NewTicker(t.cfg.StatusInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		t.checkProxy(ctx)
		t.mu.Lock()
		p := t.procs[t.st.Stable]
		t.mu.Unlock()
		ok := p != nil && t.health.probe(ctx, p.port) == nil
		t.mu.Lock()
		moved := t.healthy != ok
		t.healthy = ok
		t.mu.Unlock()
		if moved {
			t.notify()
		}
	}
}

func (t *Target) saveLocked() error {
	if err := writeJSONAtomic(t.lay.statePath(), t.st); err != nil {
		return fmt.Errorf("save target state: %w", err)
	}
	return nil
}

func loadState(path string) (state, error) {
	var st state
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal(b, &st)
}

// lastGood is the release a plain rollback returns to: the latest release
// that served before the current one, was not itself rolled back, and is
// still installed.
func (t *Target) lastGood(st state) string {
	for i := len(st.History) - 1; i >= 0; i-- {
		v := st.History[i]
		if v == st.Stable || slices.Contains(st.RolledBack, v) {
			continue
		}
		if t.lay.complete(v) == nil {
			return v
		}
	}
	return ""
}
