package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/ripcordhq/ripcord/cmd/ripcord/internal/bastion"
	"github.com/ripcordhq/ripcord/cmd/ripcord/internal/lease"
	"github.com/ripcordhq/ripcord/cmd/ripcord/internal/server"
	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/core/config"
	"github.com/ripcordhq/ripcord/plugins/local"
)

// serveFlags are `ripcord serve`'s.
type serveFlags struct {
	group       string
	autostarted bool
}

func newServeCmd(g *globals) *cobra.Command {
	var sf serveFlags
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the project's server: the engine, providers, rollouts and locks that consoles and commands talk to",
		Long: `Run the project's server until it is stopped (SIGTERM, Ctrl-C, or
` + "`ripcord server stop`" + `). It owns the state store, the provider processes, the
observers, the embedded error ingest, the rollouts in flight and the locks,
and serves consoles and CLI commands on a Unix socket beside the state
(state.db.sock). One server runs per state store: a second one refuses to
start, naming the first.

Commands that act start a server in the background when none runs, the way
tmux does; run it yourself (or under systemd, see ripcord.service) to choose
its account and who may connect. The socket is mode 0600 (only this account
may connect); --group GROUP makes it 0660 for that group.

With a bastion block in the config it also serves SSH: consoles and
commands for the people whose keys the config lists. SIGHUP (or a change
of the file) reloads the config's operators.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// A server runs for long: it keeps nothing its starter held
			// (a script's lock file, a pipe someone waits to close).
			local.CloseInheritedFiles()
			f, err := g.loadConfig()
			if err != nil {
				return &exitError{code: exitFailed, err: err}
			}
			// SIGHUP reloads the config (the bastion's operators), as
			// daemons do; SIGINT and SIGTERM stop the server.
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			out := cmd.OutOrStdout()
			s, err := startServer(ctx, f, serverOptions{Group: sf.group, Autostarted: sf.autostarted, Out: out, Reload: hup})
			if err != nil {
				var held *lease.HeldError
				if errors.As(err, &held) {
					return &exitError{code: exitLocked, err: err}
				}
				return err
			}
			select {
			case <-ctx.Done():
				s.logf("stopping: %v", context.Cause(ctx))
			case <-s.stopAsked:
				s.logf("stopping: asked to by a client")
			case <-stateRemoved(ctx, f.Store.Path):
				s.logf("stopping: the state file %s was removed", f.Store.Path)
			}
			s.Close()
			return nil
		},
	}
	cmd.Flags().StringVar(&sf.group, "group", "", "let this group's members connect (socket mode 0660); default: only this account (0600)")
	cmd.Flags().BoolVar(&sf.autostarted, "autostarted", false, "started in the background by a command (output goes to the log beside the state)")
	_ = cmd.Flags().MarkHidden("autostarted")
	return cmd
}

// serverOptions tune startServer.
type serverOptions struct {
	Group       string
	Autostarted bool
	// Out receives the server's log lines (stdout for `serve`).
	Out io.Writer
	// Self is the binary serving the built-in providers (tests), and the
	// one the bastion runs commands with.
	Self string
	// Reload asks for the config to be read again (SIGHUP); it is also
	// read again when its file changes.
	Reload <-chan os.Signal
}

// runningServer is a server started in this process: the lease on the
// state store, the world, and the API on the socket.
type runningServer struct {
	paths     lease.Paths
	lease     *lease.Lease
	w         *world
	srv       *server.Server
	log       *server.LogBook
	out       io.Writer
	stopAsked chan struct{}
	served    chan error
	stopLog   context.CancelFunc
	logDone   chan struct{}
	outMu     sync.Mutex
	closeOnce sync.Once

	// bastion serves SSH when the config has a bastion block.
	bastion *bastion.Bastion
	// reloads counts config reloads tried (applied or refused).
	reloads   atomic.Int64
	stopWatch context.CancelFunc
	watchDone chan struct{}
}

// startServer takes the state store's lease, opens the engine, serves the
// API on the socket and starts the providers behind it. A second server on
// the same store gets *lease.HeldError naming the first.
func startServer(ctx context.Context, f *config.File, o serverOptions) (_ *runningServer, err error) {
	if f.Store.Driver != "" && f.Store.Driver != "sqlite" {
		return nil, fmt.Errorf("store driver %q is not available in this build", f.Store.Driver)
	}
	mode, gid := os.FileMode(0o600), -1
	if o.Group != "" {
		grp, err := user.LookupGroup(o.Group)
		if err != nil {
			return nil, &exitError{code: exitUsage, err: fmt.Errorf("--group %s: %w", o.Group, err)}
		}
		if gid, err = strconv.Atoi(grp.Gid); err != nil {
			return nil, fmt.Errorf("--group %s: gid %q: %w", o.Group, grp.Gid, err)
		}
		mode = 0o660
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	p := lease.For(f.Store.Path)
	host, _ := os.Hostname()
	rec := lease.Record{Pid: os.Getpid(), Host: host, Since: time.Now().UTC().Truncate(time.Second), Socket: p.Socket, Version: version, Autostarted: o.Autostarted}
	if o.Autostarted {
		rec.Log = p.Log
	}
	l, err := lease.Acquire(p, rec, mode)
	if err != nil {
		return nil, err
	}
	s := &runningServer{paths: p, lease: l, log: server.NewLogBook(2000), out: o.Out, stopAsked: make(chan struct{}), served: make(chan error, 1)}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if gid >= 0 {
		for _, path := range []string{p.Lock, p.Record} {
			if err := os.Chown(path, -1, gid); err != nil {
				return nil, fmt.Errorf("giving %s to group %s: %w", path, o.Group, err)
			}
		}
	}
	wo := worldOptions{Observe: true, Self: o.Self, CreateState: true}
	if s.w, err = openEngine(ctx, f, wo); err != nil {
		return nil, err
	}
	var services, envs []string
	for _, sv := range f.Services {
		services = append(services, sv.Name)
	}
	for _, e := range f.Environments {
		envs = append(envs, e.Name)
	}
	ready := make(chan struct{})
	var notReady string
	var readyMu sync.Mutex
	var stopOnce sync.Once
	api := server.Options{
		Engine: s.w.eng, Services: services, Envs: envs, Record: rec,
		ConfigPath: f.Path, StatePath: p.State, Ready: ready, Log: s.log,
		NotReady: func() string {
			readyMu.Lock()
			defer readyMu.Unlock()
			return notReady
		},
		Stop: func() { stopOnce.Do(func() { close(s.stopAsked) }) },
	}
	s.srv = server.New(api)
	ln, err := listenSocket(p.Socket, mode, gid)
	if err != nil {
		return nil, err
	}
	go func() { s.served <- s.srv.Serve(ln) }()
	s.followLog(ctx)
	s.logf("serving %s on %s (pid %d)", f.Path, p.Socket, os.Getpid())
	if s.w.st.Created() {
		// A missing or empty state file was started afresh: say so where
		// the person running the server reads, not only to consoles.
		s.logf("created new state at %s", s.w.st.Path())
	}
	if f.Bastion != nil {
		if err := s.startBastion(f, api, ready, o.Self); err != nil {
			return nil, err
		}
	}
	wctx, stopWatch := context.WithCancel(context.WithoutCancel(ctx))
	s.stopWatch, s.watchDone = stopWatch, make(chan struct{})
	go func() {
		defer close(s.watchDone)
		s.watchConfig(wctx, f, o.Reload)
	}()
	s.w.startInBackground(ctx, wo)
	go func() {
		<-s.w.startDone
		if err := s.w.startErr; err != nil {
			readyMu.Lock()
			notReady = "providers not started: " + f.Redact(err.Error())
			readyMu.Unlock()
			s.logf("%s; serving what the store records", notReady)
		} else {
			s.logf("providers, observers and rollouts started")
			if missing := settle(ctx, s.w.eng, f, settleFor); len(missing) > 0 {
				s.logf("not reported within %s, so commands go on without them: %s", settleFor, strings.Join(missing, ", "))
			}
		}
		close(ready)
	}()
	return s, nil
}

// settleFor bounds how long a server that just started waits for its
// observers' first reports before it takes commands.
const settleFor = 15 * time.Second

// settle waits until the observers have reported what the gates read —
// each target's status, each pipeline's latest run, each backup set's
// freshness — or until within has passed, and returns what never came. A
// command that reaches a server that has just started (the one it started
// itself) is then judged on the picture a console would show, not on an
// empty one. A source with nothing to report (a pipeline without a run)
// costs the wait once, at start.
func settle(ctx context.Context, eng *core.Engine, f *config.File, within time.Duration) []string {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	_, sub := eng.Subscribe()
	defer sub.Close()
	uses := usedProviders(f)
	for {
		snap := eng.Snapshot()
		var missing []string
		for _, u := range uses {
			switch u.kind {
			case config.KindTarget:
				if _, ok := snap.Targets[u.ref]; !ok {
					missing = append(missing, "the status of "+u.ref.String())
				}
			case config.KindPipeline:
				if _, ok := snap.Pipelines[u.service]; !ok {
					missing = append(missing, "a pipeline run of "+u.service)
				}
			case config.KindBackup:
				for _, ref := range u.refs {
					if _, ok := snap.Backups[ref][u.backup.Name]; !ok {
						missing = append(missing, "backup set "+u.backup.Name+" of "+ref.String())
						break
					}
				}
			}
		}
		if len(missing) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return missing
		case <-sub.Ready():
			sub.Drain(nil)
		}
	}
}

// stateRemovedEvery is how often a server checks that its state file is
// still there.
const stateRemovedEvery = 5 * time.Second

// stateRemoved is closed when the state file is gone (its project was
// deleted): a server of nothing has nothing to do.
func stateRemoved(ctx context.Context, path string) <-chan struct{} {
	gone := make(chan struct{})
	go func() {
		t := time.NewTicker(stateRemovedEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
				close(gone)
				return
			}
		}
	}()
	return gone
}

// listenSocket listens on a Unix socket only mode lets in: created under
// a umask that already excludes everyone else (no window in which another
// user could connect), then given to gid. A socket left by a dead server
// is removed first: the caller holds the lease, so nothing else uses it.
func listenSocket(path string, mode os.FileMode, gid int) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("creating the socket's directory: %w", err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("removing the stale socket %s: %w", path, err)
	}
	old := syscall.Umask(int(0o777 &^ mode))
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", path, err)
	}
	if gid >= 0 {
		if err := os.Chown(path, -1, gid); err != nil {
			ln.Close()
			return nil, fmt.Errorf("giving the socket to its group: %w", err)
		}
		// The group must reach the socket: its directory (the state's,
		// created private) lets the group through, and no more: the
		// state file itself stays the server's alone.
		dir := filepath.Dir(path)
		if fi, err := os.Stat(dir); err == nil && fi.Mode().Perm()&0o010 == 0 {
			if err := os.Chown(dir, -1, gid); err != nil {
				ln.Close()
				return nil, fmt.Errorf("giving %s to the socket's group: %w", dir, err)
			}
			if err := os.Chmod(dir, fi.Mode().Perm()|0o010); err != nil {
				ln.Close()
				return nil, fmt.Errorf("letting the socket's group through %s: %w", dir, err)
			}
		}
	}
	if err := os.Chmod(path, mode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("setting the socket's mode: %w", err)
	}
	return ln, nil
}

// logf writes a line of the server's own to its output and log book.
func (s *runningServer) logf(format string, a ...any) {
	s.line(time.Now().Local().Format("15:04:05") + " " + fmt.Sprintf(format, a...))
}

func (s *runningServer) line(text string) {
	s.log.Add(text)
	s.outMu.Lock()
	fmt.Fprintln(s.out, text)
	s.outMu.Unlock()
}

// followLog writes a line per event worth one (as `ripcord watch` prints
// them) and the providers' own log lines; a release's output stays in its
// files under the target's root.
func (s *runningServer) followLog(ctx context.Context) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.stopLog, s.logDone = cancel, make(chan struct{})
	_, sub := s.w.eng.Subscribe()
	go func() {
		defer close(s.logDone)
		defer sub.Close()
		providers := newProviderLines()
		for {
			ev, err := sub.Next(ctx)
			if err != nil {
				return
			}
			line := eventLine(ev)
			if ev.Kind == core.EvProvider {
				line = providers.line(ev)
			}
			if line != "" {
				s.line(line)
			} else if ev.Kind == core.EvLog && ev.Log != nil && !strings.HasPrefix(ev.Log.Source, "local/") {
				s.line(ev.Time.Local().Format("15:04:05") + " " + ev.Log.Source + ": " + ev.Log.Text)
			}
		}
	}()
}

// Close stops serving (clients see the connection end and reconnect to the
// next server), then the world; rollouts stay journaled for the next
// server, and traffic goes on: the releases and the local proxy are
// processes of their own.
func (s *runningServer) Close() {
	s.closeOnce.Do(func() {
		if s.stopWatch != nil {
			s.stopWatch()
			<-s.watchDone
		}
		if s.bastion != nil {
			s.bastion.Close()
		}
		if s.srv != nil {
			s.srv.Close()
			<-s.served
			_ = os.Remove(s.paths.Socket)
		}
		if s.w != nil {
			s.w.Close()
		}
		if s.stopLog != nil {
			s.stopLog()
			<-s.logDone
		}
		s.lease.Release()
	})
}
