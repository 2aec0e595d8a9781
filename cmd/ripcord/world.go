package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/core/config"
	"github.com/ripcordhq/ripcord/core/observe"
	"github.com/ripcordhq/ripcord/core/rollout"
	"github.com/ripcordhq/ripcord/core/spike"
	"github.com/ripcordhq/ripcord/core/sqlitestore"
	"github.com/ripcordhq/ripcord/plugins/builtin"
	"github.com/ripcordhq/ripcord/plugins/host"
)

// world is a live engine built from a config: the store, the provider
// processes, the rollout controller and the observers feeding provider
// streams into the engine. `ripcord serve` (and the demo, which is the
// server of its own world) runs one; consoles and commands are its
// clients.
type world struct {
	cfg  *config.File
	st   *sqlitestore.Store
	host *host.Host
	eng  *core.Engine
	ctl  *rollout.Controller
	obs  *observe.Observer
	// marks tells the error trackers about deploys and rollbacks.
	marks *observe.DeployMarks

	pipelines map[string]core.PipelineSource
	backups   map[core.Ref][]observe.BackupSet
	// attention lists what needed a person at start: operations a previous
	// engine left unfinished.
	attention []core.Operation
	// stopStart and startDone follow a start running in the background.
	stopStart context.CancelFunc
	startDone chan struct{}
	// startErr is why the providers did not start, once startDone is
	// closed (nil when they did).
	startErr  error
	stopShare context.CancelFunc

	closeOnce sync.Once
}

// worldOptions tune how a world starts.
type worldOptions struct {
	// Observe starts the observers (targets, pipelines, errors, backups).
	// One-shot commands that only act skip the pipeline and error streams
	// but still need the targets' status for their gates.
	Observe bool
	// Self is the ripcord binary that serves the built-in providers.
	Self string
	// Log receives provider and engine log lines in addition to the
	// engine's event stream (the headless demo prints them).
	Log func(core.LogLine)
	// CreateState creates the state file when it is missing or empty:
	// only the commands that start a project's state by design (the
	// console, the demo, the server) do; every other one refuses, naming
	// the path, so a mistyped store.path is not taken for a new project.
	CreateState bool
}

// openStore opens the config's state file: created when create is set
// and it is missing, else refused with the path and the config key.
func openStore(ctx context.Context, f *config.File, create bool) (*sqlitestore.Store, error) {
	var opts []sqlitestore.Option
	if !create {
		opts = append(opts, sqlitestore.Existing())
	}
	if err := unopenableState(f); err != nil {
		return nil, err
	}
	st, err := sqlitestore.Open(ctx, f.Store.Path, opts...)
	var missing *sqlitestore.MissingError
	if errors.As(err, &missing) {
		return nil, &exitError{code: exitFailed, err: fmt.Errorf("%w (store.path in %s); this command does not create state: check store.path, or start the project's server there (`ripcord serve`, or a command that acts, such as `ripcord console`)", err, f.Path)}
	}
	var corrupt *sqlitestore.CorruptError
	if errors.As(err, &corrupt) {
		return nil, &exitError{code: exitFailed, err: err}
	}
	return st, err
}

// unopenableState says so when this account may not open the state file:
// that is not a damaged file. It names whose the file is and how to read
// it instead.
func unopenableState(f *config.File) error {
	fh, err := os.Open(f.Store.Path)
	if errors.Is(err, fs.ErrPermission) {
		return &exitError{code: exitFailed, err: fmt.Errorf("the state file %s cannot be opened by %s (permission denied): it is the project's server's; `status`, `history` and `audit` read through the server while it runs, and `audit verify` and `state check` need the server's account", f.Store.Path, osAccount())}
	}
	if err == nil {
		fh.Close()
	}
	return nil
}

// osAccount is the OS account this process runs as.
func osAccount() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return fmt.Sprintf("uid %d", os.Getuid())
}

// openWorld starts everything a config describes. On error, whatever was
// started is stopped again.
func openWorld(ctx context.Context, f *config.File, o worldOptions) (*world, error) {
	w, err := openEngine(ctx, f, o)
	if err != nil {
		return nil, err
	}
	if err := w.start(ctx, o); err != nil {
		w.Close()
		return nil, err
	}
	return w, nil
}

// openEngine opens the store and an engine restored from it: enough to
// show the state and the audit log. Providers, rollouts and observers
// come with start.
func openEngine(ctx context.Context, f *config.File, o worldOptions) (w *world, err error) {
	if f.Store.Driver != "" && f.Store.Driver != "sqlite" {
		return nil, fmt.Errorf("store driver %q is not available in this build", f.Store.Driver)
	}
	st, err := openStore(ctx, f, o.CreateState)
	if err != nil {
		return nil, err
	}
	w = &world{cfg: f, st: st, pipelines: map[string]core.PipelineSource{}, backups: map[core.Ref][]observe.BackupSet{}}
	started := w // a failing return sets w to nil before this runs
	defer func() {
		if err != nil {
			started.Close()
		}
	}()
	var services, envs []string
	for _, s := range f.Services {
		services = append(services, s.Name)
	}
	for _, e := range f.Environments {
		envs = append(envs, e.Name)
	}
	ttl, err := lockTTL()
	if err != nil {
		return nil, err
	}
	w.eng = core.NewEngine(core.EngineOptions{Project: f.Project, Services: services, Envs: envs, Store: st, LockTTL: ttl})
	if err := w.eng.Restore(ctx); err != nil {
		return nil, err
	}
	if st.Created() {
		w.notice(core.Ref{}, "created new state at "+st.Path())
	}
	return w, nil
}

// lockTTL is how long an operation's lock outlives the last heartbeat of
// the server running the operation: RIPCORD_LOCK_TTL (a Go duration), else
// the engine's default (2m). The server heartbeats every third of it. A
// person's lock (`ripcord lock`) does not depend on it: it holds until
// unlocked or its own --ttl.
func lockTTL() (time.Duration, error) {
	v := os.Getenv("RIPCORD_LOCK_TTL")
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("RIPCORD_LOCK_TTL=%q is not a positive duration such as 2m", v)
	}
	return d, nil
}

// followEvery is how often a console without providers reads the store.
const followEvery = 2 * time.Second

// startInBackground runs start while the caller shows the screen, so the
// first frame does not wait for plugin processes. A failure is published
// as a notice: the console keeps showing the stored state and says why
// nothing moves. Close waits for it.
func (w *world) startInBackground(ctx context.Context, o worldOptions) {
	ctx, cancel := context.WithCancel(ctx)
	w.stopStart = cancel
	w.startDone = make(chan struct{})
	go func() {
		defer close(w.startDone)
		if err := w.start(ctx, o); err != nil && ctx.Err() == nil {
			w.startErr = err
			// Without providers the console still shows what the store
			// records, including what another process does.
			// This console's own provider processes are of no use now;
			// their health would only hide what the other console shares.
			if w.host != nil {
				_ = w.host.Close()
			}
			w.eng.Follow(ctx, followEvery)
			why := "providers not started: " + err.Error()
			w.eng.SetUnavailable(why)
			w.notice(core.Ref{}, why+"; showing what the store records")
		}
	}()
}

// start starts the providers, the rollout controller (recovering what a
// previous engine left) and, with o.Observe, the observers.
func (w *world) start(ctx context.Context, o worldOptions) (err error) {
	f := w.cfg
	uses := usedProviders(f)
	logRef := logRefs(uses)
	registry := builtin.Registry(version)
	var builtins []string
	for _, u := range uses {
		if _, ok := registry[u.name]; ok && !slices.Contains(builtins, instance(u)) {
			builtins = append(builtins, instance(u))
		}
	}
	self := o.Self
	if self == "" {
		if self, err = os.Executable(); err != nil {
			return fmt.Errorf("finding the ripcord binary: %w", err)
		}
	}
	w.host, err = host.New(host.Options{
		Self: self, Builtins: builtins, Plugins: pluginSpecs(f), Workdir: f.Dir,
		LockFile: filepath.Join(f.Dir, host.LockFileName), Deadlines: f.Deadlines.Core(), Redact: f.Redact,
		// What providers log at info and above reaches the logs pane and
		// watch; go-plugin's own start-up chatter is debug.
		LogLevel: hclog.Info,
		Log: func(l core.LogLine) {
			l.Text = core.Printable(f.Redact(l.Text))
			if o.Log != nil {
				o.Log(l)
			}
			w.eng.Publish(core.Event{Kind: core.EvLog, Ref: logRef[l.Source], Log: &l})
		},
		Health: func(h core.ProviderHealth) {
			h.Message = core.Printable(f.Redact(h.Message))
			w.eng.Publish(core.Event{Kind: core.EvProvider, Final: true, Provider: &h})
		},
	})
	if err != nil {
		return err
	}
	if err := w.host.Start(ctx); err != nil {
		// A provider that failed to start is retried by the host and shown
		// as unhealthy; the rest of the world still runs.
		w.notice(core.Ref{}, "providers: "+f.Redact(err.Error()))
	}
	configured := map[string]bool{}
	for _, u := range uses {
		name := instance(u)
		if configured[name] {
			continue
		}
		configured[name] = true
		if err := w.host.Configure(ctx, name, u.settings, nil); err != nil {
			msg := f.Redact(locate(err, u.p))
			if strings.Contains(msg, "address already in use") {
				// One server runs per state store, so the cause is
				// another program: a server of another store (a copy of
				// this config) or an unrelated service.
				msg += " (another process on this machine holds the port: a ripcord server for another state store with the same ports, or an unrelated service; `ss -ltnp` names it)"
			}
			return errors.New(msg)
		}
	}

	ropts := rollout.Options{Deadlines: f.Deadlines.Core()}
	providerOf := map[core.Ref]string{} // the target's process, named in messages
	oopts := observe.Options{
		Engine: w.eng, Targets: map[core.Ref]core.Target{}, Pipelines: w.pipelines,
		Errors: map[core.Ref]core.ErrorSource{}, Backups: w.backups,
		Spike: map[core.Ref]spike.Policy{}, Windows: map[core.Ref]time.Duration{}, From: map[core.Ref]string{}, Auto: map[core.Ref]bool{},
	}
	branches, unread := map[string][]string{}, map[string]string{}
	for _, s := range f.Services {
		branches[s.Name] = s.Branches
		unread[s.Name] = migrationsUnread(s)
	}
	// Each use is its own provider instance, wired to the service and
	// environment it was written for.
	for _, u := range uses {
		name := instance(u)
		switch u.kind {
		case config.KindPipeline:
			if w.pipelines[u.service], err = w.host.Pipeline(name); err != nil {
				return err
			}
		case config.KindTarget:
			if oopts.Targets[u.ref], err = w.host.Target(name); err != nil {
				return err
			}
			providerOf[u.ref] = name
		case config.KindErrors:
			if oopts.Errors[u.ref], err = w.host.Errors(name); err != nil {
				return err
			}
		case config.KindBackup:
			src, err := w.host.Backup(name)
			if err != nil {
				return err
			}
			// A set the environment shares gates each of its services;
			// the observer watches its one source once.
			for _, ref := range u.refs {
				w.backups[ref] = append(w.backups[ref], observe.BackupSet{Name: u.backup.Name, Source: src, Policy: backupPolicy(u.backup)})
			}
		}
	}
	for _, e := range f.Environments {
		steps, err := rolloutSteps(e)
		if err != nil {
			return err
		}
		for _, pl := range e.Services {
			ref := core.Ref{Service: pl.Name, Env: e.Name}
			ropts.Envs = append(ropts.Envs, rollout.Env{Ref: ref, From: e.From, Target: oopts.Targets[ref], Steps: steps, Gates: e.GateSpecs,
				Branches: branches[pl.Name], AutoRollback: e.Rollback.Auto == "on-analysis-failure", AutoAbort: e.Rollback.Action == "abort",
				Provider: providerOf[ref], OnInconclusive: core.InconclusivePolicy(e.Spike.OnInconclusive), MigrationsUnread: unread[pl.Name]})
			oopts.Spike[ref] = spike.Policy{Alpha: e.Spike.Alpha, Tolerance: e.Spike.Tolerance, MinEvents: int64(e.Spike.MinEvents)}
			oopts.Windows[ref] = e.Spike.Window.D()
			oopts.From[ref] = e.From
			oopts.Auto[ref] = e.Auto
		}
	}
	w.ctl = rollout.New(w.eng, ropts)
	if len(oopts.Errors) > 0 {
		w.marks = observe.MarkDeploys(w.eng, oopts.Errors, f.Redact)
	}
	w.eng.Handle(core.CmdBackupNow, w.backupNow)
	w.eng.Handle(core.CmdStepLog, w.stepLog)
	if w.attention, err = w.ctl.Recover(ctx); err != nil {
		return err
	}
	if o.Observe {
		w.obs = observe.Start(context.WithoutCancel(ctx), oopts)
		// Another console on this store cannot run these providers (they
		// own ports here): it shows what they report through the store.
		shareCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		w.stopShare = cancel
		w.eng.Share(shareCtx, followEvery)
		// A lock whose TTL ran out is released, and the audit log says so.
		w.eng.KeepLocks(shareCtx, 30*time.Second)
	} else {
		// The gates read the targets' status from the engine: fetch it once.
		for ref, t := range oopts.Targets {
			ts, err := t.Status(ctx, ref) // within the status deadline
			if err != nil {
				return fmt.Errorf("reading the status of %s: %w", ref, err)
			}
			ts.Ref = ref
			w.eng.Publish(core.Event{Kind: core.EvTarget, Ref: ref, Final: true, Target: &ts})
		}
	}
	return nil
}

func (w *world) notice(ref core.Ref, text string) {
	w.eng.Publish(core.Event{Kind: core.EvNotice, Ref: ref, Final: true, Notice: text})
}

// Close stops the observers and rollout goroutines (their state stays in
// the store for the next engine), then the provider processes. Services a
// target started keep running: they are the release, not the console.
func (w *world) Close() {
	w.closeOnce.Do(func() {
		if w.startDone != nil {
			w.stopStart()
			<-w.startDone
		}
		if w.stopShare != nil {
			w.stopShare()
		}
		if w.obs != nil {
			w.obs.Close()
		}
		if w.ctl != nil {
			w.ctl.Close()
		}
		if w.marks != nil {
			w.marks.Close() // before the host: the trackers are plugins
		}
		if w.host != nil {
			_ = w.host.Close()
		}
		if w.st != nil {
			_ = w.st.Close()
		}
	})
}

func backupPolicy(b *config.Backup) core.BackupPolicy {
	return core.BackupPolicy{Every: b.Every.D(), Warn: b.Warn, Critical: b.Critical, VerifyEvery: b.VerifyEvery.D(), Criticality: b.Criticality}
}

// rolloutSteps turns an environment's configured steps into the
// controller's.
func rolloutSteps(e config.Environment) ([]rollout.Step, error) {
	var steps []rollout.Step
	for _, s := range e.Rollout {
		switch {
		case s.Weight != nil:
			steps = append(steps, rollout.Step{Kind: rollout.StepWeight, Weight: *s.Weight})
		case s.Analysis != "":
			steps = append(steps, rollout.Step{Kind: rollout.StepAnalysis, For: s.For.D()})
		case s.Pause != "":
			st := rollout.Step{Kind: rollout.StepPause}
			if !strings.EqualFold(s.Pause, "judgment") {
				d, err := config.ParseDuration(s.Pause)
				if err != nil {
					return nil, fmt.Errorf("%s: pause %q: %w", s.Pos, s.Pause, err)
				}
				st.For = d.D()
			}
			steps = append(steps, st)
		}
	}
	return steps, nil
}

// backupNow runs the backup of one set (Command.Version names it; empty
// means every set of the environment whose provider can), audited: the
// freshness gate offers it when a contract migration needs a newer backup.
func (w *world) backupNow(ctx context.Context, e *core.Engine, cmd core.Command) (core.Result, error) {
	var ran, failed []string
	for _, set := range w.backups[cmd.Ref] {
		if cmd.Version != "" && set.Name != cmd.Version {
			continue
		}
		start := e.Now()
		err := set.Source.RunNow(ctx, set.Name)
		outcome := "started"
		if err != nil {
			outcome = "failed: " + w.cfg.Redact(err.Error())
		}
		if _, aerr := e.Audit(ctx, core.AuditEntry{Actor: cmd.Actor, Action: "backup-now", Ref: cmd.Ref, To: set.Name, Reason: cmd.Reason, Outcome: outcome, Duration: e.Now().Sub(start)}); aerr != nil {
			return core.Result{}, aerr
		}
		if err != nil {
			failed = append(failed, set.Name+": "+outcome)
			continue
		}
		ran = append(ran, set.Name)
	}
	if len(failed) > 0 {
		msg := strings.Join(failed, "; ")
		return core.Result{Outcome: "failed", Message: msg}, fmt.Errorf("back up now in %s: %s", cmd.Ref, msg)
	}
	if len(ran) == 0 {
		err := fmt.Errorf("%s: no backup set %q is watched here: %w", cmd.Ref, cmd.Version, core.ErrNotFound)
		return core.Result{Outcome: "refused", Message: err.Error()}, err
	}
	return core.Result{Outcome: "done", Message: "backed up " + strings.Join(ran, ", ")}, nil
}

// migrationsUnread says why nothing reads a service's migrations, or ""
// when its pipeline does: exec and the CI sources read them from
// migrations.dir (the CI sources in the clone it is in, at each run's
// commit), and an external pipeline source sends what it reads.
// The migrations gate then says it did not check instead of "no
// migrations".
func migrationsUnread(s config.Service) string {
	switch {
	case s.Pipeline == nil:
		return s.Name + " has no pipeline, so nothing reads its releases' migrations"
	case (s.Pipeline.Name == "exec" || ciPipelines[s.Pipeline.Name]) && s.Migrations == nil:
		return s.Name + " sets no migrations.dir"
	case s.Pipeline.Name != "exec" && !ciPipelines[s.Pipeline.Name] && config.BuiltinProviders[s.Pipeline.Name] != "":
		return fmt.Sprintf("%s's pipeline, %s, does not read a release's migrations (exec, github-actions and gitlab-ci read them from migrations.dir)", s.Name, s.Pipeline.Name)
	}
	return ""
}
