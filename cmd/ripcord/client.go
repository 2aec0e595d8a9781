package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/ripcordhq/ripcord/cmd/ripcord/internal/bastion"
	"github.com/ripcordhq/ripcord/cmd/ripcord/internal/lease"
	"github.com/ripcordhq/ripcord/cmd/ripcord/internal/remote"
	"github.com/ripcordhq/ripcord/core/config"
)

// autostartWait bounds how long a command waits for the server it started
// to answer: it answers once its store is open, before the providers.
const autostartWait = 60 * time.Second

// connection is a client of the project's server, and whether this
// command started that server.
type connection struct {
	*remote.Client
	paths   lease.Paths
	started bool
}

// startMode says whether a command may start the project's server.
type startMode int

const (
	// neverStart: read-only commands and server management.
	neverStart startMode = iota
	// startOnState starts a server on an existing state file only: a
	// command that acts on a project never takes a mistyped store.path
	// for a new one.
	startOnState
	// startCreating starts a server that creates the state when it is
	// missing: the commands that start a project by design (the console).
	startCreating
)

// connect reaches the config's server. A command that needs one starts it
// when none runs (detached, in its own session, logging beside the state)
// and waits for it to answer.
func connect(ctx context.Context, f *config.File, mode startMode) (*connection, error) {
	p := lease.For(f.Store.Path)
	if sock := os.Getenv(bastion.SocketEnv); sock != "" {
		// A command an SSH session runs: the bastion's socket is the
		// server, and it is running; nothing is started.
		c, err := remote.Dial(ctx, sock)
		if err != nil {
			return nil, fmt.Errorf("the ripcord server at %s (%s): %w", sock, bastion.SocketEnv, err)
		}
		return &connection{Client: c, paths: p}, nil
	}
	c, err := remote.Dial(ctx, p.FindSocket())
	if err == nil {
		return &connection{Client: c, paths: p}, nil
	}
	if !errors.Is(err, remote.ErrNoServer) || mode == neverStart {
		return nil, err
	}
	if mode == startOnState {
		// The state must be there and sound before a server is started
		// on it: said here, not from the server's log.
		st, err := openStore(ctx, f, false)
		if err != nil {
			return nil, err
		}
		_ = st.Close()
	}
	exited, err := autostart(f, p)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(autostartWait)
	for {
		c, err := remote.Dial(ctx, p.FindSocket())
		if err == nil {
			return &connection{Client: c, paths: p, started: true}, nil
		}
		if !errors.Is(err, remote.ErrNoServer) {
			return nil, err
		}
		select {
		case code := <-exited:
			// exitLocked: another command started a server at the same
			// moment and this one lost the race; the other will answer.
			if code != exitLocked {
				return nil, fmt.Errorf("the ripcord server started for %s exited (status %d) before it answered; its log %s ends:\n%s", f.Path, code, p.Log, logTail(p.Log, 10))
			}
			exited = nil
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the ripcord server started for %s did not answer on %s within %s; see its log %s", f.Path, p.Socket, autostartWait, p.Log)
		}
	}
}

// autostart starts `ripcord serve` for f in the background: its own
// session (no terminal, not in this command's process group, so neither
// Ctrl-C nor a closed terminal reaches it), its output appended to the
// log beside the state. The channel gets its exit status should it end
// while this command runs.
func autostart(f *config.File, p lease.Paths) (<-chan int, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding the ripcord binary: %w", err)
	}
	if err := os.MkdirAll(dirOf(p.Log), 0o755); err != nil {
		return nil, fmt.Errorf("creating the state directory: %w", err)
	}
	logf, err := os.OpenFile(p.Log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening the server log: %w", err)
	}
	defer logf.Close()
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return nil, err
	}
	defer devnull.Close()
	cfg, err := filepath.Abs(f.Path)
	if err != nil {
		return nil, fmt.Errorf("finding the config: %w", err)
	}
	fmt.Fprintf(logf, "%s started by %s (pid %d): %s serve -c %s\n", time.Now().Format(time.RFC3339), currentActor(), os.Getpid(), self, cfg)
	cmd := exec.Command(self, "serve", "-c", cfg, "--autostarted")
	cmd.Dir = f.Dir
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, logf, logf
	// The person who started it is not the server's: the server records
	// each caller as the kernel names them.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RIPCORD_ACTOR=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the ripcord server: %w", err)
	}
	exited := make(chan int, 1)
	go func() {
		_ = cmd.Wait()
		exited <- cmd.ProcessState.ExitCode()
	}()
	return exited, nil
}

func dirOf(path string) string {
	if i := strings.LastIndexByte(path, '/'); i > 0 {
		return path[:i]
	}
	return "."
}

// logTail is the last n lines of a file, indented.
func logTail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return "  (unreadable: " + err.Error() + ")"
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, "  "+sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// keepsRunning is what a console that started the server says on quit.
func keepsRunning(c *connection) string {
	return fmt.Sprintf("the ripcord server keeps running rollouts and traffic; `ripcord server stop` stops it (log: %s)", c.paths.Log)
}

func newServerCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "server", Short: "The project's server: status, stop, logs"}
	cmd.AddCommand(&cobra.Command{
		Use:   "status",
		Short: "Say whether the server runs, where, since when, and who you are to it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := g.loadConfig()
			if err != nil {
				return &exitError{code: exitFailed, err: err}
			}
			c, err := connect(cmd.Context(), f, neverStart)
			if errors.Is(err, remote.ErrNoServer) {
				return &exitError{code: exitFailed, err: fmt.Errorf("no ripcord server runs for %s (%v)", f.Path, err)}
			}
			if err != nil {
				return err
			}
			defer c.Close()
			info, err := c.Info(cmd.Context())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "ripcord server for project %s: pid %d on %s since %s (%s)\n", info.Project, info.Pid, info.Host, info.Since, info.Version)
			fmt.Fprintf(out, "config  %s\nstate   %s\nsocket  %s\n", info.ConfigPath, info.StatePath, info.SocketPath)
			if info.LogPath != "" {
				fmt.Fprintf(out, "log     %s\n", info.LogPath)
			}
			how := "started by hand or by systemd"
			if info.Autostarted {
				how = "started in the background by a command"
			}
			fmt.Fprintf(out, "runs as %s, %s; %d client(s) subscribed\n", info.Account, how, info.Clients)
			switch {
			case info.NotReady != "":
				fmt.Fprintf(out, "state   %s\n", info.NotReady)
			case info.Ready:
				fmt.Fprintln(out, "state   ready")
			default:
				fmt.Fprintln(out, "state   starting its providers")
			}
			fmt.Fprintf(out, "you     %s\n", info.You)
			return nil
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "stop",
		Short: "Stop the server: rollouts pause where they are until a server runs again; traffic goes on",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := g.loadConfig()
			if err != nil {
				return &exitError{code: exitFailed, err: err}
			}
			c, err := connect(cmd.Context(), f, neverStart)
			if errors.Is(err, remote.ErrNoServer) {
				fmt.Fprintf(cmd.OutOrStdout(), "no ripcord server runs for %s\n", f.Path)
				return nil
			}
			if err != nil {
				return err
			}
			defer c.Close()
			info, err := c.Info(cmd.Context())
			if err != nil {
				return err
			}
			if err := c.Stop(cmd.Context()); err != nil {
				return err
			}
			// Stopped once the process is gone: its providers are down
			// and its lease is free for the next server.
			deadline := time.Now().Add(30 * time.Second)
			for serverAlive(int(info.Pid)) {
				if time.Now().After(deadline) {
					return fmt.Errorf("the server (pid %d) did not stop within 30s", info.Pid)
				}
				time.Sleep(20 * time.Millisecond)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "stopped the ripcord server (pid %d) for %s\n", info.Pid, f.Path)
			return nil
		},
	})
	var lines int
	var follow bool
	logs := &cobra.Command{
		Use:   "logs",
		Short: "Print the server's recent log lines (-f: and follow them)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := g.loadConfig()
			if err != nil {
				return &exitError{code: exitFailed, err: err}
			}
			out := cmd.OutOrStdout()
			c, err := connect(cmd.Context(), f, neverStart)
			if errors.Is(err, remote.ErrNoServer) {
				// Its last words (a start that failed, a crash) are in
				// the file an autostarted server wrote.
				p := lease.For(f.Store.Path)
				if _, serr := os.Stat(p.Log); serr != nil {
					return &exitError{code: exitFailed, err: fmt.Errorf("no ripcord server runs for %s, and it has no log at %s", f.Path, p.Log)}
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "no ripcord server runs for %s; its last log lines (%s):\n", f.Path, p.Log)
				for _, l := range strings.Split(logTail(p.Log, max(lines, 1)), "\n") {
					fmt.Fprintln(out, strings.TrimPrefix(l, "  "))
				}
				return nil
			}
			if err != nil {
				return err
			}
			defer c.Close()
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			return c.Logs(ctx, lines, follow, func(batch []string) {
				for _, l := range batch {
					fmt.Fprintln(out, l)
				}
			})
		},
	}
	logs.Flags().IntVarP(&lines, "lines", "n", 50, "how many recent lines (0: every line kept)")
	logs.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new lines until interrupted")
	cmd.AddCommand(logs)
	return cmd
}

// serverAlive reports whether pid still runs (EPERM: it runs as another
// account).
func serverAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
