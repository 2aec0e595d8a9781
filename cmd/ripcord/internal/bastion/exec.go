package bastion

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"charm.land/ssh"

	"github.com/ripcordhq/ripcord/cmd/ripcord/internal/server"
	"github.com/ripcordhq/ripcord/core"
)

// SocketEnv names the socket a command run for an SSH session talks to:
// the bastion's own, which knows it as the person the key names. A command
// given it never starts a server.
const SocketEnv = "RIPCORD_SOCKET"

// Commands are the CLI commands an SSH session may run. The rest manage
// the server, its files or its plugins: they are for its own account.
var Commands = []string{"status", "history", "audit", "promote", "rollback", "abort", "pause", "resume", "lock", "unlock", "backup", "watch", "version", "help"}

// killGrace is how long a command whose session ended has to finish
// after SIGTERM (a CLI client ends at once; its operation runs on in
// the server).
const killGrace = 5 * time.Second

// startAPI serves the server's API on a private socket for the commands
// sessions run: the caller is the person whose session started the
// process the kernel names (SO_PEERCRED), and each command is checked
// against that person's role.
func (b *Bastion) startAPI() (err error) {
	o := b.o.API
	o.Engine = b.o.Engine
	o.Ready = b.o.Ready
	o.Identify = nil
	o.Person = func(ctx context.Context) (core.Actor, error) {
		p, err := b.caller(ctx)
		if err != nil {
			return core.Actor{}, err
		}
		return p.Actor(b.o.Host), nil
	}
	o.Authorize = func(ctx context.Context, cmd core.Command) error {
		p, err := b.caller(ctx)
		if err != nil {
			return err
		}
		if err := b.ops.Load().Allow(p.Fingerprint, cmd); err != nil {
			b.o.Logf("bastion: refused %s %s to %s: %v", cmd.Kind, cmd.Ref, p.Name, err)
			return err
		}
		return nil
	}
	o.MayStop = func(context.Context) bool { return false }
	o.Stop = nil
	b.api = server.New(o)
	b.apiLn, err = b.listenAPI()
	if err != nil {
		return fmt.Errorf("listening for the bastion's commands: %w", err)
	}
	go func() { b.apiErr <- b.api.Serve(b.apiLn) }()
	return nil
}

// listenAPI listens on the commands' socket: Options.Socket (beside the
// server's own, where a server killed -9 leaves it to be replaced by the
// next), created under a umask that lets only this account in; or, when
// none is given or the path is too long for a socket, in a private
// directory of its own.
func (b *Bastion) listenAPI() (net.Listener, error) {
	path := b.o.Socket
	if path == "" || len(path) >= 104 {
		dir, err := os.MkdirTemp("", "ripcord-bastion-")
		if err != nil {
			return nil, err
		}
		b.apiDir = dir // MkdirTemp makes it 0700
		path = filepath.Join(dir, "api.sock")
	} else if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return nil, err // the caller holds the server's lease: a socket here is a dead server's
	}
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, err
	}
	if b.apiDir == "" {
		b.apiSock = path
	}
	return ln, nil
}

// caller is the person whose command is calling: the process the kernel
// names must be one this bastion started for a session, still running.
func (b *Bastion) caller(ctx context.Context) (Person, error) {
	peer, err := server.PeerFrom(ctx)
	if err != nil {
		return Person{}, err
	}
	b.mu.Lock()
	p, ok := b.children[peer.PID]
	b.mu.Unlock()
	if !ok || int(peer.UID) != os.Getuid() {
		return Person{}, fmt.Errorf("process %d is not a command of an SSH session", peer.PID)
	}
	return p, nil
}

// checkArgs refuses what a session may not ask of the binary: a command
// outside Commands, another config file, or the end of the flags (after
// which the bastion's own -c would be read as an argument).
func checkArgs(args []string) error {
	if len(args) == 0 {
		return errors.New("no command")
	}
	name := args[0]
	if !slices.Contains(Commands, name) {
		return fmt.Errorf("%q is not a command the bastion runs; it runs: %s", name, strings.Join(Commands, ", "))
	}
	for _, a := range args[1:] {
		switch {
		case a == "--":
			return errors.New("-- is not accepted over the bastion")
		case a == "--config" || strings.HasPrefix(a, "--config="),
			strings.HasPrefix(a, "-") && !strings.HasPrefix(a, "--") && strings.Contains(a, "c"):
			return fmt.Errorf("%s: the bastion runs commands with the server's own config; -c/--config is not accepted", a)
		}
	}
	return nil
}

// exec runs a CLI command for a session: the same binary and command a
// person would run on the server, talking to the bastion's socket as
// them, its output and exit status the session's. A session that ends
// first ends the command; the operation it asked for runs on in the
// server.
func (b *Bastion) exec(s ssh.Session, p Person, args []string) int {
	if err := checkArgs(args); err != nil {
		fmt.Fprintln(s.Stderr(), "ripcord:", err)
		return 2
	}
	cmd := exec.Command(b.o.Exe, append(slices.Clone(args), "-c", b.o.ConfigPath)...)
	cmd.Dir = filepath.Dir(b.o.ConfigPath)
	cmd.Env = []string{SocketEnv + "=" + b.apiLn.Addr().String(), "NO_COLOR=1"}
	for _, k := range []string{"PATH", "HOME", "LANG", "TZ", "TMPDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	// No stdin: without a terminal there is nobody to answer a prompt
	// (the CLI asks for --yes), and a reader that never ends would hold
	// the command open.
	cmd.Stdout, cmd.Stderr = s, s.Stderr()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// The child is recorded before any call of its can be answered:
	// caller takes the same lock.
	b.mu.Lock()
	err := cmd.Start()
	if err == nil {
		b.children[int32(cmd.Process.Pid)] = p
	}
	b.mu.Unlock()
	if err != nil {
		fmt.Fprintln(s.Stderr(), "ripcord: starting the command:", err)
		return 1
	}
	pid := cmd.Process.Pid
	defer func() {
		b.mu.Lock()
		delete(b.children, int32(pid))
		b.mu.Unlock()
	}()
	done := make(chan struct{})
	go func() {
		select {
		case <-done:
		case <-s.Context().Done():
			// The session is gone: the client goes too; what it asked
			// the server to do does not.
			_ = syscall.Kill(-pid, syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(killGrace):
				_ = syscall.Kill(-pid, syscall.SIGKILL)
			}
		}
	}()
	err = cmd.Wait()
	close(done)
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if ee.ExitCode() < 0 {
				return 1 // killed: its session is gone, nobody reads this
			}
			return ee.ExitCode()
		}
		fmt.Fprintln(s.Stderr(), "ripcord:", err)
		return 1
	}
	return 0
}
