// Package bastion is the server's SSH front door: `ssh -p 2222 bastion`
// opens a console on the server's own engine, and `ssh … rollback api
// --env production --yes` runs that CLI command against it. A person is
// known by their public key alone; what they may do is their role in each
// environment, looked up in the current config on every command, so a key
// removed from ripcord.yaml stops working at its next key press.
package bastion

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	tea "charm.land/bubbletea/v2"
	"charm.land/ssh"
	"charm.land/wish/v2"
	wishtea "charm.land/wish/v2/bubbletea"
	gossh "golang.org/x/crypto/ssh"

	"github.com/ripcordhq/ripcord/cmd/ripcord/internal/server"
	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/core/config"
)

// Options configure a bastion.
type Options struct {
	// Config is the bastion block of ripcord.yaml as the server started.
	Config *config.Bastion
	// Project and Host name the project and the server in the banner and
	// in each actor.
	Project, Host string
	// Engine is the server's engine; every session is its client.
	Engine *core.Engine
	// Ready is closed once the providers have started: commands wait for
	// it, as the server's own API does.
	Ready <-chan struct{}
	// API is the server's API as it serves its socket; commands without a
	// terminal reach a copy of it on a private socket that knows them as
	// the person their key names.
	API server.Options
	// Exe is the ripcord binary a command without a terminal runs, and
	// ConfigPath the config it runs with.
	Exe, ConfigPath string
	// Socket is where those commands reach the server as their person
	// (default: a private temporary directory).
	Socket string
	// Console shows the console in a session with a terminal until the
	// person quits or ctx ends.
	Console func(ctx context.Context, c Console) error
	// Logf writes a line to the server's log.
	Logf func(format string, a ...any)
	// Now is the clock (tests).
	Now func() time.Time
}

// Console is one SSH session's console: the engine as this person's
// client, who they are, what their role lets them do, and the session's
// terminal.
type Console struct {
	Session ssh.Session
	Client  core.Client
	Actor   core.Actor
	// Permit says whether the person may run kind in ref now (nil) or why
	// not; a screen shows the reason on the disabled key.
	Permit func(kind core.CommandKind, ref core.Ref) error
	// Program wires the session's input, output, environment, colour
	// profile and window size into the console's program.
	Program []tea.ProgramOption
	// Resize carries the session's window changes.
	Resize <-chan tea.WindowSizeMsg
	// Width and Height are the window's size at the start.
	Width, Height int
}

// limits are the session limits of one version of the config.
type limits struct {
	total, perKey int
}

// Bastion serves SSH sessions for one server.
type Bastion struct {
	o      Options
	ops    atomic.Pointer[Operators]
	limits atomic.Pointer[limits]
	srv    *ssh.Server
	ln     net.Listener
	served chan error

	api     *server.Server
	apiDir  string
	apiSock string
	apiLn   net.Listener
	apiErr  chan error

	mu       sync.Mutex
	closing  bool
	open     int
	openKey  map[string]int
	children map[int32]Person

	// ctx is the bastion's lifetime: commands from consoles run on it,
	// never on a session's, so a closed session leaves them running.
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once

	keepalives atomic.Int64 // sent to consoles (tests)
}

type ctxKey string

const refusedKey ctxKey = "ripcord-refused-key"

// Start listens on the config's address and serves until Close.
func Start(o Options) (_ *Bastion, err error) {
	if o.Config == nil {
		return nil, errors.New("the bastion has no config")
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Ready == nil {
		ready := make(chan struct{})
		close(ready)
		o.Ready = ready
	}
	b := &Bastion{o: o, openKey: map[string]int{}, children: map[int32]Person{}, served: make(chan error, 1), apiErr: make(chan error, 1)}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			b.Close()
		}
	}()
	if err := b.Apply(o.Config); err != nil {
		return nil, err
	}
	pemKey, created, err := hostKey(o.Config.HostKey)
	if err != nil {
		return nil, err
	}
	if created {
		o.Logf("bastion: generated the host key %s", o.Config.HostKey)
	}
	if err := b.startAPI(); err != nil {
		return nil, err
	}
	b.srv, err = wish.NewServer(
		wish.WithHostKeyPEM(pemKey),
		wish.WithBanner(b.banner()),
		wish.WithIdleTimeout(o.Config.IdleTimeout.D()),
		wish.WithPublicKeyAuth(b.publicKey),
		wish.WithKeyboardInteractiveAuth(b.refuse),
		wish.WithMiddleware(func(ssh.Handler) ssh.Handler { return b.handle }),
	)
	if err != nil {
		return nil, fmt.Errorf("setting up the bastion: %w", err)
	}
	b.srv.HandshakeTimeout = 30 * time.Second
	b.ln, err = net.Listen("tcp", o.Config.Listen)
	if err != nil {
		return nil, fmt.Errorf("bastion.listen: %w", err)
	}
	go func() { b.served <- b.srv.Serve(b.ln) }()
	ops := b.ops.Load()
	o.Logf("bastion: SSH on %s (host key %s, %d people, %d keys)", b.ln.Addr(), fingerprintOf(pemKey), ops.People(), ops.Keys())
	return b, nil
}

// Addr is where the bastion listens.
func (b *Bastion) Addr() net.Addr { return b.ln.Addr() }

// Operators are the people the bastion knows now.
func (b *Bastion) Operators() *Operators { return b.ops.Load() }

// Sessions counts the sessions open.
func (b *Bastion) Sessions() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.open
}

// Apply takes a new version of the bastion block: its operators and
// limits apply from the next key press in every open session. Keys that
// cannot be read leave the current operators in place.
func (b *Bastion) Apply(c *config.Bastion) error {
	if c == nil {
		c = &config.Bastion{}
	}
	ops, err := NewOperators(c, b.o.Now())
	if err != nil {
		return err
	}
	b.ops.Store(ops)
	b.limits.Store(&limits{total: max(c.MaxSessions, 1), perKey: max(c.MaxSessionsPerKey, 1)})
	return nil
}

// Close ends every session and stops listening. Operations sessions
// started go on only as far as the server does: Close is the server's
// own stop.
func (b *Bastion) Close() {
	b.closeOnce.Do(b.close)
}

func (b *Bastion) close() {
	b.mu.Lock()
	b.closing = true
	b.mu.Unlock()
	b.cancel()
	if b.srv != nil {
		_ = b.srv.Close()
		<-b.served
	}
	b.wg.Wait()
	if b.api != nil {
		b.api.Close()
		<-b.apiErr
	}
	if b.apiDir != "" {
		_ = os.RemoveAll(b.apiDir)
	}
	if b.apiSock != "" {
		_ = os.Remove(b.apiSock)
	}
}

// banner is shown before authentication: which project and server this is.
func (b *Bastion) banner() string {
	return fmt.Sprintf("ripcord bastion of project %s on %s (server pid %d)\n", b.o.Project, b.o.Host, os.Getpid())
}

// publicKey admits the keys of the current operators.
func (b *Bastion) publicKey(ctx ssh.Context, key ssh.PublicKey) bool {
	fp := gossh.FingerprintSHA256(key)
	if _, ok := b.ops.Load().Lookup(fp); ok {
		return true
	}
	ctx.SetValue(refusedKey, fp)
	b.o.Logf("bastion: refused the key %s (%s) of %s from %s: no operator has it", fp, key.Type(), ctx.User(), ctx.RemoteAddr())
	return false
}

// refuse answers the keyboard-interactive attempt a client makes after its
// keys were refused, with the reason: the only way to say why before a
// session exists. It never admits anyone.
func (b *Bastion) refuse(ctx ssh.Context, challenge gossh.KeyboardInteractiveChallenge) bool {
	msg := fmt.Sprintf("ripcord: the bastion of %s admits only the keys listed under bastion.operators in ripcord.yaml, and ", b.o.Project)
	if fp, ok := ctx.Value(refusedKey).(string); ok {
		msg += fmt.Sprintf("no operator has the key %s. Ask an admin to add it.\n", fp)
	} else {
		msg += "no key was offered (ssh -i KEY).\n"
	}
	_, _ = challenge("", msg, nil, nil)
	return false
}

// handle is every session: a console when there is a terminal and no
// command, else the command.
func (b *Bastion) handle(s ssh.Session) {
	b.mu.Lock()
	if b.closing {
		b.mu.Unlock()
		return
	}
	b.wg.Add(1) // under mu: never concurrent with Close's Wait
	b.mu.Unlock()
	defer b.wg.Done()
	key := s.PublicKey()
	if key == nil {
		wish.Fatalln(s, "ripcord: no key")
		return
	}
	fp := gossh.FingerprintSHA256(key)
	p, ok := b.ops.Load().Lookup(fp)
	if !ok {
		wish.Fatalln(s, "ripcord: the key "+fp+" is no longer an operator's")
		return
	}
	release, err := b.admit(p)
	if err != nil {
		b.o.Logf("bastion: %v", err)
		wish.Fatalln(s, "ripcord: "+err.Error())
		return
	}
	defer release()
	args := s.Command()
	_, _, isPty := s.Pty()
	switch {
	case len(args) > 0:
		b.o.Logf("bastion: %s (%s) from %s runs: %s", p.Name, fp, s.RemoteAddr(), s.RawCommand())
		code := b.exec(s, p, args)
		_ = s.Exit(code)
	case isPty:
		b.o.Logf("bastion: %s (%s) opened a console from %s", p.Name, fp, s.RemoteAddr())
		stop := b.keepAlive(s)
		err := b.console(s, p)
		stop()
		if err != nil {
			b.o.Logf("bastion: the console of %s ended: %v", p.Name, err)
		} else {
			b.o.Logf("bastion: %s closed the console", p.Name)
		}
		_ = s.Exit(0)
	default:
		wish.Fatalln(s, "ripcord: open the console with a terminal (ssh -t), or name a command: status, history, audit, promote, rollback, abort, pause, resume, lock, unlock, backup, watch")
	}
}

// keepAlive keeps a console's connection from the idle timeout, which is
// for connections that do nothing: a person watching a quiet screen is not
// idle. It sends what OpenSSH servers send for ClientAliveInterval, which
// clients answer and never show.
func (b *Bastion) keepAlive(s ssh.Session) (stop func()) {
	every := b.o.Config.IdleTimeout.D() / 3
	if every <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if _, err := s.SendRequest("keepalive@openssh.com", false, nil); err != nil {
					return
				}
				b.keepalives.Add(1)
			}
		}
	}()
	return func() { close(done) }
}

// admit counts a session against the limits, or says which it exceeds.
func (b *Bastion) admit(p Person) (release func(), err error) {
	l := b.limits.Load()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.open >= l.total {
		return nil, fmt.Errorf("%s refused: the bastion has %d sessions open, its limit (bastion.max_sessions)", p.Name, b.open)
	}
	if n := b.openKey[p.Fingerprint]; n >= l.perKey {
		return nil, fmt.Errorf("%s refused: %d sessions are open with the key %s, the limit per key (bastion.max_sessions_per_key)", p.Name, n, p.Fingerprint)
	}
	b.open++
	b.openKey[p.Fingerprint]++
	return func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.open--
		if b.openKey[p.Fingerprint]--; b.openKey[p.Fingerprint] <= 0 {
			delete(b.openKey, p.Fingerprint)
		}
	}, nil
}

// console runs one session's console until the person quits, the session
// ends or the bastion stops.
func (b *Bastion) console(s ssh.Session, p Person) error {
	pty, windows, _ := s.Pty()
	ctx, cancel := context.WithCancel(s.Context())
	defer cancel()
	stop := context.AfterFunc(b.ctx, cancel)
	defer stop()
	resize := make(chan tea.WindowSizeMsg, 1)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case w, ok := <-windows:
				if !ok {
					return
				}
				// Only the newest size matters.
				select {
				case <-resize:
				default:
				}
				resize <- tea.WindowSizeMsg{Width: w.Width, Height: w.Height}
			}
		}
	}()
	c := &client{b: b, fp: p.Fingerprint, actor: p.Actor(b.o.Host)}
	return b.o.Console(ctx, Console{
		Session: s, Client: c, Actor: c.actor, Permit: c.permit,
		Program: wishtea.MakeOptions(s), Resize: resize,
		Width: pty.Window.Width, Height: pty.Window.Height,
	})
}

// client is the server's engine as one key's holder sees it: every
// command is theirs, checked against their role in the config of the
// moment, and run on the bastion's lifetime rather than the session's.
type client struct {
	b     *Bastion
	fp    string
	actor core.Actor
}

var _ core.Client = (*client)(nil)

func (c *client) Subscribe() (core.Snapshot, *core.Subscription) { return c.b.o.Engine.Subscribe() }

func (c *client) permit(kind core.CommandKind, ref core.Ref) error {
	return c.b.ops.Load().Allow(c.fp, core.Command{Kind: kind, Ref: ref})
}

func (c *client) Do(ctx context.Context, cmd core.Command) (core.Result, error) {
	cmd.Actor = c.actor
	if err := c.b.ops.Load().Allow(c.fp, cmd); err != nil {
		c.b.o.Logf("bastion: refused %s %s to %s: %v", cmd.Kind, cmd.Ref, c.actor.Name, err)
		return core.Result{Outcome: "refused", Message: err.Error()}, err
	}
	select {
	case <-c.b.o.Ready:
	case <-ctx.Done():
		return core.Result{}, ctx.Err()
	}
	return c.b.o.Engine.Do(c.b.ctx, cmd)
}

func (c *client) Deployments(ctx context.Context, ref core.Ref, limit int) ([]core.Deployment, error) {
	return c.b.o.Engine.Deployments(ctx, ref, limit)
}

func (c *client) Release(ctx context.Context, service, version string) (core.Release, error) {
	return c.b.o.Engine.Release(ctx, service, version)
}

func (c *client) Watch(ctx context.Context, _ core.Actor) (string, func()) {
	return c.b.o.Engine.Watch(ctx, c.actor)
}

// hostKey reads the host key at path, or makes one (ed25519, 0600, its
// directory 0700 when new) when there is none.
func hostKey(path string) (pemKey []byte, created bool, err error) {
	if path == "" {
		return nil, false, errors.New("bastion.host_key: no path")
	}
	data, err := os.ReadFile(path)
	if err == nil {
		if _, err := gossh.ParsePrivateKey(data); err != nil {
			return nil, false, fmt.Errorf("bastion.host_key %s: %w", path, err)
		}
		return data, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, false, fmt.Errorf("bastion.host_key: %w", err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, false, fmt.Errorf("generating the host key: %w", err)
	}
	block, err := gossh.MarshalPrivateKey(priv, "ripcord bastion host key")
	if err != nil {
		return nil, false, fmt.Errorf("encoding the host key: %w", err)
	}
	data = pem.EncodeToMemory(block)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, fmt.Errorf("bastion.host_key: %w", err)
	}
	// O_EXCL: two servers never write one key over the other's.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("bastion.host_key: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return nil, false, fmt.Errorf("writing the host key: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, false, fmt.Errorf("writing the host key: %w", err)
	}
	return data, true, nil
}

// fingerprintOf is the host key's public fingerprint, for the log: what
// people compare on first connect.
func fingerprintOf(pemKey []byte) string {
	s, err := gossh.ParsePrivateKey(pemKey)
	if err != nil {
		return "?"
	}
	return gossh.FingerprintSHA256(s.PublicKey())
}
