package bastion

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/core/config"
)

// person is a key pair a test connects with.
type person struct {
	name   string
	signer gossh.Signer
	line   string // authorized_keys line
	fp     string
}

func newPerson(t testing.TB, name string) person {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return person{name: name, signer: s, line: strings.TrimSpace(string(gossh.MarshalAuthorizedKey(s.PublicKey()))), fp: gossh.FingerprintSHA256(s.PublicKey())}
}

// rig is a bastion on 127.0.0.1 in front of an engine whose commands are
// recorded, and held until the test lets them finish.
type rig struct {
	b    *Bastion
	eng  *core.Engine
	addr string

	mu       sync.Mutex
	ran      []core.Command
	hold     chan struct{}
	started  chan core.Command
	finished chan error
	consoles chan Console
}

func newRig(t *testing.T, c *config.Bastion) *rig {
	t.Helper()
	r := &rig{started: make(chan core.Command, 16), finished: make(chan error, 16), consoles: make(chan Console, 4)}
	r.eng = core.NewEngine(core.EngineOptions{Project: "shop", Services: []string{"api"}, Envs: []string{"staging", "production"}})
	handler := func(ctx context.Context, _ *core.Engine, cmd core.Command) (core.Result, error) {
		r.mu.Lock()
		r.ran = append(r.ran, cmd)
		hold := r.hold
		r.mu.Unlock()
		r.started <- cmd
		if hold != nil {
			select {
			case <-hold:
			case <-ctx.Done():
				r.finished <- ctx.Err()
				return core.Result{}, ctx.Err()
			}
		}
		r.finished <- nil
		return core.Result{Outcome: "done"}, nil
	}
	for _, k := range core.CommandOrder {
		r.eng.Handle(k, handler)
	}
	r.eng.Handle(core.CmdLock, handler)
	r.eng.Handle(core.CmdUnlock, handler)
	if c.Listen == "" {
		c.Listen = "127.0.0.1:0"
	}
	if c.HostKey == "" {
		c.HostKey = filepath.Join(t.TempDir(), "host_key")
	}
	if c.MaxSessions == 0 {
		c.MaxSessions = 10
	}
	if c.MaxSessionsPerKey == 0 {
		c.MaxSessionsPerKey = 4
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = config.Duration(time.Minute)
	}
	var err error
	r.b, err = Start(Options{
		Config: c, Project: "shop", Host: "bastion-test", Engine: r.eng,
		Exe: "/bin/false", ConfigPath: "/nonexistent/ripcord.yaml",
		Console: func(ctx context.Context, c Console) error {
			r.consoles <- c
			<-ctx.Done()
			return nil
		},
		Logf: t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.b.Close)
	r.addr = r.b.Addr().String()
	return r
}

func operators(ps ...struct {
	p    person
	role string
}) []config.Operator {
	var out []config.Operator
	for _, x := range ps {
		out = append(out, config.Operator{Name: x.p.name, Keys: []string{x.p.line}, Role: x.role})
	}
	return out
}

func op(p person, role string) struct {
	p    person
	role string
} {
	return struct {
		p    person
		role string
	}{p, role}
}

// dial connects as p; the keyboard-interactive answer (the refusal's
// reason) is returned with the error.
func dial(t *testing.T, addr string, p person) (*gossh.Client, string, error) {
	t.Helper()
	var said strings.Builder
	client, err := gossh.Dial("tcp", addr, &gossh.ClientConfig{
		User: p.name,
		Auth: []gossh.AuthMethod{
			gossh.PublicKeys(p.signer),
			gossh.KeyboardInteractive(func(_, instruction string, _ []string, _ []bool) ([]string, error) {
				said.WriteString(instruction)
				return nil, nil
			}),
		},
		HostKeyCallback: gossh.InsecureIgnoreHostKey(),
		Timeout:         10 * time.Second,
	})
	return client, said.String(), err
}

// openConsole opens a session with a terminal as p and returns the
// console the bastion made for it.
func (r *rig) openConsole(t *testing.T, p person) (*gossh.Client, *gossh.Session, Console) {
	t.Helper()
	client, _, err := dial(t, r.addr, p)
	if err != nil {
		t.Fatalf("%s: %v", p.name, err)
	}
	t.Cleanup(func() { client.Close() })
	s, err := client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RequestPty("xterm-256color", 40, 120, gossh.TerminalModes{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Shell(); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-r.consoles:
		return client, s, c
	case <-time.After(10 * time.Second):
		t.Fatal("no console for the session")
	}
	return nil, nil, Console{}
}

// A key no operator has is refused at authentication, and the client is
// told why with the key's fingerprint; no session is opened.
func TestUnknownKeyIsRefusedWithTheReason(t *testing.T) {
	ana, eve := newPerson(t, "ana"), newPerson(t, "eve")
	r := newRig(t, &config.Bastion{Operators: operators(op(ana, "operator"))})
	client, said, err := dial(t, r.addr, eve)
	if err == nil {
		client.Close()
		t.Fatal("eve's key was admitted")
	}
	if !strings.Contains(said, "no operator has the key "+eve.fp) {
		t.Fatalf("the refusal says %q; want it to name the key %s", said, eve.fp)
	}
	if !strings.Contains(err.Error(), "unable to authenticate") {
		t.Fatalf("err = %v", err)
	}
	if r.b.Sessions() != 0 {
		t.Fatalf("%d sessions open after a refused key", r.b.Sessions())
	}
	// Ana's key gets in.
	client, _, err = dial(t, r.addr, ana)
	if err != nil {
		t.Fatalf("ana: %v", err)
	}
	client.Close()
}

// A console's commands are its key's person's, refused by role with the
// reason, and checked against the operators of the moment: a key removed
// while the session is open is refused at its next command.
func TestConsoleCommandsAreCheckedOnEveryCommand(t *testing.T) {
	ana, bo := newPerson(t, "ana"), newPerson(t, "bo")
	cfg := &config.Bastion{Operators: operators(op(ana, "operator"), op(bo, "viewer"))}
	cfg.Operators[1].Roles = map[string]string{"staging": "releaser"}
	r := newRig(t, cfg)
	_, _, anaC := r.openConsole(t, ana)
	_, _, boC := r.openConsole(t, bo)
	prod := core.Ref{Service: "api", Env: "production"}
	staging := core.Ref{Service: "api", Env: "staging"}

	if err := boC.Permit(core.CmdRollback, prod); err == nil || err.Error() != "rollback needs role operator in production; you are viewer" {
		t.Fatalf("bo's rollback key: %v", err)
	}
	if err := boC.Permit(core.CmdPromote, staging); err != nil {
		t.Fatalf("bo is releaser in staging: %v", err)
	}
	if err := anaC.Permit(core.CmdPromote, prod); err == nil || err.Error() != "promote needs role releaser in production; you are operator" {
		t.Fatalf("ana's promote key: %v", err)
	}
	ctx := context.Background()
	_, err := boC.Client.Do(ctx, core.Command{Kind: core.CmdRollback, Ref: prod, Actor: core.Actor{Name: "ana"}})
	if !errors.Is(err, core.ErrBlocked) || !strings.Contains(err.Error(), "you are viewer") {
		t.Fatalf("bo's rollback: %v; want a refusal by role", err)
	}
	if _, err := anaC.Client.Do(ctx, core.Command{Kind: core.CmdRollback, Ref: prod, Actor: core.Actor{Name: "somebody else"}}); err != nil {
		t.Fatalf("ana's rollback: %v", err)
	}
	r.mu.Lock()
	ran := append([]core.Command(nil), r.ran...)
	r.mu.Unlock()
	if len(ran) != 1 || ran[0].Actor.Name != "ana" || ran[0].Actor.KeyFingerprint != ana.fp {
		t.Fatalf("the engine ran %+v; want one rollback by ana with her key %s, whatever the screen claimed", ran, ana.fp)
	}

	// Ana's key goes from the config while her console is open.
	cfg2 := &config.Bastion{MaxSessions: 10, MaxSessionsPerKey: 4, Operators: operators(op(bo, "admin"))}
	if err := r.b.Apply(cfg2); err != nil {
		t.Fatal(err)
	}
	_, err = anaC.Client.Do(ctx, core.Command{Kind: core.CmdRollback, Ref: prod})
	if !errors.Is(err, core.ErrBlocked) || !strings.Contains(err.Error(), "the key "+ana.fp+" is no longer an operator's") {
		t.Fatalf("ana's rollback after her key was removed: %v", err)
	}
	if err := boC.Permit(core.CmdRollback, prod); err != nil {
		t.Fatalf("bo, admin now, at his next key press: %v", err)
	}
	if _, _, err := dial(t, r.addr, ana); err == nil {
		t.Fatal("ana's removed key still authenticates")
	}
}

// A command from a console runs on the bastion's lifetime: the session
// dropping in the middle leaves it running to its end.
func TestDroppedSessionLeavesItsCommandRunning(t *testing.T) {
	ana := newPerson(t, "ana")
	r := newRig(t, &config.Bastion{Operators: operators(op(ana, "operator"))})
	r.hold = make(chan struct{})
	client, _, c := r.openConsole(t, ana)
	done := make(chan error, 1)
	go func() {
		_, err := c.Client.Do(context.Background(), core.Command{Kind: core.CmdRollback, Ref: core.Ref{Service: "api", Env: "production"}})
		done <- err
	}()
	<-r.started
	client.Close() // the connection drops mid-command
	waitFor(t, "the session to end", func() bool { return r.b.Sessions() == 0 })
	close(r.hold)
	if err := <-r.finished; err != nil {
		t.Fatalf("the rollback was cut short by the dropped session: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// Sessions are limited per key and overall, with a message naming the
// limit.
func TestSessionLimits(t *testing.T) {
	ana, bo := newPerson(t, "ana"), newPerson(t, "bo")
	r := newRig(t, &config.Bastion{MaxSessions: 2, MaxSessionsPerKey: 1, Operators: operators(op(ana, "viewer"), op(bo, "viewer"))})
	r.openConsole(t, ana)
	refused := func(p person, want string) {
		t.Helper()
		client, _, err := dial(t, r.addr, p)
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		s, err := client.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		s.Stderr = &stderr
		_ = s.RequestPty("xterm", 24, 80, gossh.TerminalModes{})
		err = s.Run("")
		var exit *gossh.ExitError
		if !errors.As(err, &exit) || exit.ExitStatus() != 1 || !strings.Contains(stderr.String(), want) {
			t.Fatalf("%s's session: %v, stderr %q; want exit 1 saying %q", p.name, err, stderr.String(), want)
		}
	}
	refused(ana, "the limit per key (bastion.max_sessions_per_key)")
	r.openConsole(t, bo)
	carl := newPerson(t, "carl")
	cfg := &config.Bastion{MaxSessions: 2, MaxSessionsPerKey: 1, Operators: operators(op(ana, "viewer"), op(bo, "viewer"), op(carl, "viewer"))}
	if err := r.b.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	refused(carl, "the bastion has 2 sessions open, its limit (bastion.max_sessions)")
}

// The host key is made on first start, 0600, and kept: the next start
// presents the same key.
func TestHostKeyIsMadeOnceAndKept(t *testing.T) {
	ana := newPerson(t, "ana")
	path := filepath.Join(t.TempDir(), "keys", "host")
	hostKeyOf := func() string {
		r := newRig(t, &config.Bastion{HostKey: path, Operators: operators(op(ana, "viewer"))})
		defer r.b.Close()
		var got string
		client, err := gossh.Dial("tcp", r.addr, &gossh.ClientConfig{
			User: "ana", Auth: []gossh.AuthMethod{gossh.PublicKeys(ana.signer)},
			HostKeyCallback: func(_ string, _ net.Addr, key gossh.PublicKey) error {
				got = gossh.FingerprintSHA256(key)
				return nil
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		client.Close()
		return got
	}
	first := hostKeyOf()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("host key mode %04o, want 0600", fi.Mode().Perm())
	}
	if second := hostKeyOf(); second != first {
		t.Fatalf("the host key changed between starts: %s, then %s", first, second)
	}
}

// Each role may do what the one before may, and no more.
func TestRolesTable(t *testing.T) {
	for _, tc := range []struct {
		cmd  core.Command
		need Role
	}{
		{core.Command{Kind: core.CmdRollback}, Operator},
		{core.Command{Kind: core.CmdAbort}, Operator},
		{core.Command{Kind: core.CmdPause}, Operator},
		{core.Command{Kind: core.CmdResume}, Operator},
		{core.Command{Kind: core.CmdLock}, Operator},
		{core.Command{Kind: core.CmdUnlock}, Operator},
		{core.Command{Kind: core.CmdBackupNow}, Operator},
		{core.Command{Kind: core.CmdStepLog}, Viewer},
		{core.Command{Kind: core.CmdPromote}, Releaser},
		{core.Command{Kind: core.CmdFullPromote}, Releaser},
		{core.Command{Kind: core.CmdClearHold}, Releaser},
		{core.Command{Kind: core.CmdUnlock, Force: true}, Admin},
		{core.Command{Kind: core.CmdLock, Force: true}, Admin},
		{core.Command{Kind: core.CmdRollback, Overrides: []string{"migrations"}}, Admin},
		{core.Command{Kind: core.CmdPromote, Overrides: []string{"soak"}}, Admin},
		{core.Command{Kind: "something-new"}, Admin},
	} {
		if got := Needs(tc.cmd); got != tc.need {
			t.Errorf("%s: needs %s, want %s", what(tc.cmd), got, tc.need)
		}
	}
}

// Commands a session may not run are refused before anything starts.
func TestCheckArgs(t *testing.T) {
	for _, args := range [][]string{{"serve"}, {"server", "stop"}, {"demo"}, {"state", "check"}, {"status", "-c", "/etc/x.yaml"}, {"status", "--config=/x"}, {"rollback", "api", "--", "-c"}} {
		if err := checkArgs(args); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
	for _, args := range [][]string{{"status", "--json"}, {"rollback", "api", "--env", "production", "--yes"}, {"audit"}, {"lock", "api", "--env", "production"}} {
		if err := checkArgs(args); err != nil {
			t.Errorf("%v: %v", args, err)
		}
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal(fmt.Sprintf("%s: not within 10s", what))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A connection that does nothing is closed after the idle timeout; one
// with a console open is kept alive however quiet its screen.
func TestIdleConnectionsCloseConsolesStay(t *testing.T) {
	ana := newPerson(t, "ana")
	r := newRig(t, &config.Bastion{IdleTimeout: config.Duration(300 * time.Millisecond), Operators: operators(op(ana, "viewer"))})
	idle, _, err := dial(t, r.addr, ana)
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	go func() { closed <- idle.Wait() }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		idle.Close()
		t.Fatal("an idle connection was not closed within 10s of a 300ms idle timeout")
	}

	client, _, _ := r.openConsole(t, ana)
	// Five keepalives at a third of the timeout: the console has been
	// quiet for well over the idle timeout.
	waitFor(t, "five keepalives", func() bool { return r.b.keepalives.Load() >= 5 })
	if _, _, err := client.SendRequest("keepalive@openssh.com", true, nil); err != nil {
		t.Fatalf("the console's connection was closed: %v", err)
	}
	if r.b.Sessions() != 1 {
		t.Fatalf("%d sessions open; want the console's", r.b.Sessions())
	}
}

// The console is drawn in the colour profile of the session's terminal:
// colours for an xterm-256color, none for a dumb terminal.
func TestConsoleUsesTheSessionsColourProfile(t *testing.T) {
	ana := newPerson(t, "ana")
	r := newBenchRig(t, []config.Operator{{Name: "ana", Keys: []string{ana.line}, Role: "viewer"}}, false)
	screen := func(term string) string {
		t.Helper()
		client, _, err := dial(t, r.b.Addr().String(), ana)
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		s, err := client.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		out, err := s.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := s.RequestPty(term, 40, 120, gossh.TerminalModes{}); err != nil {
			t.Fatal(err)
		}
		if err := s.Shell(); err != nil {
			t.Fatal(err)
		}
		// Read until the header (the project's name) and the frame's end
		// have been drawn.
		got := make(chan string, 1)
		go func() {
			var all []byte
			buf := make([]byte, 32<<10)
			for {
				n, err := out.Read(buf)
				all = append(all, buf[:n]...)
				if strings.Contains(string(all), "shop") && strings.Count(string(all), "\n") >= 30 || err != nil {
					got <- string(all)
					return
				}
			}
		}()
		select {
		case s := <-got:
			return s
		case <-time.After(30 * time.Second):
			t.Fatalf("no frame for TERM=%s within 30s", term)
		}
		return ""
	}
	if s := screen("xterm-256color"); !strings.Contains(s, "\x1b[38;") {
		t.Fatalf("TERM=xterm-256color: no foreground colour in the frame:\n%q", s[:min(len(s), 2000)])
	}
	if s := screen("dumb"); !strings.Contains(s, "shop") || strings.Contains(s, "\x1b[38;") {
		t.Fatalf("TERM=dumb: colours in the frame:\n%q", s[:min(len(s), 2000)])
	}
}
