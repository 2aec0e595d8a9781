package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/ripcordhq/ripcord/cmd/ripcord/internal/demo"
	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/core/config"
	"github.com/ripcordhq/ripcord/plugins/local"
	"github.com/ripcordhq/ripcord/tui"
)

const (
	demoStable    = "v1.4.2"
	demoCandidate = "v1.5.0"
	demoService   = "api"
	// The storefront, the demo's second service: one healthy release in
	// both environments, promoted and rolled back on its own.
	demoWeb        = "web"
	demoWebRelease = "v2.0.0"
)

type demoFlags struct {
	dir      string
	headless bool
	script   string
	rate     int
	timeout  time.Duration
}

func newDemoCmd() *cobra.Command {
	var df demoFlags
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the console on a small real world on this machine: a release goes wrong, you undo it",
		Long: `Run the console on a small real world on this machine — no cloud, no
account, nothing but this binary.

Project shop has two services, api and the storefront web (1 and 2 switch
between them). v1.4.2 of api is healthy; v1.5.0 throws errors on a share of
checkouts. The pipeline builds v1.5.0, it reaches staging, and
the console asks you to promote it to production. Press p and y: the canary
takes 25% of the traffic, the spike verdict appears with its evidence and
the canary stops. a and y send the traffic back to v1.4.2; or r, enter (the
last good release is preselected) and y roll production back to v1.4.2 and
hold v1.5.0.

--headless plays the same story without a terminal, one line per event.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runDemo(cmd, df) },
	}
	cmd.Flags().StringVar(&df.dir, "dir", "", "keep the demo workspace in this directory (default: a temporary one, removed on exit)")
	cmd.Flags().BoolVar(&df.headless, "headless", false, "play the story without a terminal, printing one line per event")
	cmd.Flags().StringVar(&df.script, "script", "promote,wait-spike,rollback", "headless story steps: promote, wait-spike, rollback")
	cmd.Flags().IntVar(&df.rate, "rate", 20, "requests per second the traffic generator sends to production")
	cmd.Flags().DurationVar(&df.timeout, "timeout", 5*time.Minute, "headless: give up after this long")
	cmd.AddCommand(demo.Commands()...)
	return cmd
}

// demoRun is one demo: its workspace, the processes it started beside the
// engine, and the engine.
type demoRun struct {
	ws    demo.World
	self  string
	temp  bool
	out   io.Writer
	procs []*exec.Cmd
}

func runDemo(cmd *cobra.Command, df demoFlags) (err error) {
	ctx, stop := signalContext(cmd.Context())
	defer stop()
	d := &demoRun{out: cmd.OutOrStdout()}
	if d.self, err = os.Executable(); err != nil {
		return fmt.Errorf("finding the ripcord binary: %w", err)
	}
	dir := df.dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "ripcord-demo-"); err != nil {
			return err
		}
		d.temp = true
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return err
	}
	defer d.cleanup(dir)
	if d.ws, err = demo.Workspace(dir, demo.WorkspaceOptions{Self: d.self}); err != nil {
		return err
	}
	f, err := config.Load(d.ws.ConfigPath, config.Options{Providers: config.BuiltinProviders})
	if err != nil {
		return err
	}
	if df.headless {
		fmt.Fprintf(d.out, "demo workspace %s\n", dir)
	}
	if err := d.startJobs(df.rate); err != nil {
		return err
	}
	// The demo is the project's server for as long as it runs: a second
	// console or a CLI command on its config attaches to it, and q stops
	// it with everything else the demo started.
	srv, err := startServer(ctx, f, serverOptions{Out: io.Discard})
	if err != nil {
		return err
	}
	defer srv.Close()
	w := srv.w
	if !df.headless {
		go func() {
			<-w.startDone
			if err := d.setUp(ctx, w); err != nil && ctx.Err() == nil {
				w.notice(core.Ref{}, err.Error())
			}
		}()
		opts, err := consoleOptions(f, consoleFlags{})
		if err != nil {
			return err
		}
		return tui.Run(ctx, w.eng, opts)
	}
	<-w.startDone
	if w.startErr != nil {
		return fmt.Errorf("demo: the providers did not start: %w", w.startErr)
	}
	story := make(chan error, 1)
	go func() { story <- d.setUp(ctx, w) }()
	return d.headless(ctx, w, df, story)
}

// startJobs starts the processes around the services: a backup job per
// environment and the traffic generator hitting production's proxies.
func (d *demoRun) startJobs(rate int) error {
	for _, e := range d.ws.Envs() {
		if err := d.spawn("demo", "backup-job", "--db", e.BackupDB, "--dir", e.BackupDir, "--every", e.BackupEvery.String(), "--keep", strconv.Itoa(e.BackupKeep)); err != nil {
			return err
		}
	}
	return d.spawn("demo", "traffic", "--rate", strconv.Itoa(rate), d.ws.Production.URL, d.ws.WebProduction.URL)
}

func (d *demoRun) spawn(args ...string) error {
	c := exec.Command(d.self, args...)
	c.SysProcAttr = jobProcAttr()
	c.Dir = d.ws.Dir
	if err := c.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", strings.Join(args, " "), err)
	}
	d.procs = append(d.procs, c)
	return nil
}

// setUp plays the story up to the decision: v1.4.2 of api (and v2.0.0 of
// web) is built and runs in both environments, then v1.5.0 is built and
// reaches staging, and the console waits for a person to promote it to
// production.
func (d *demoRun) setUp(ctx context.Context, w *world) error {
	_, sub := w.eng.Subscribe()
	defer sub.Close()
	pipeline, webPipeline := w.pipelines[demoService], w.pipelines[demoWeb]
	if pipeline == nil || webPipeline == nil {
		return errors.New("demo: the pipeline providers are not running")
	}
	staging := core.Ref{Service: demoService, Env: d.ws.Staging.Name}
	production := core.Ref{Service: demoService, Env: d.ws.Production.Name}
	// Both services build at once, each in its own pipeline.
	if _, err := webPipeline.Trigger(ctx, demoWeb, demoWebRelease, ""); err != nil {
		return fmt.Errorf("demo: building %s %s: %w", demoWeb, demoWebRelease, err)
	}
	if _, err := pipeline.Trigger(ctx, demoService, demoStable, ""); err != nil {
		return fmt.Errorf("demo: building %s: %w", demoStable, err)
	}
	setup := core.Actor{Name: "demo-setup", Host: hostname(), Automation: true}
	for _, r := range []struct{ svc, version string }{{demoService, demoStable}, {demoWeb, demoWebRelease}} {
		stg, prod := core.Ref{Service: r.svc, Env: staging.Env}, core.Ref{Service: r.svc, Env: production.Env}
		if err := waitTarget(ctx, w.eng, sub, stg, r.version); err != nil {
			return err
		}
		if _, err := w.eng.Do(ctx, core.Command{Kind: core.CmdFullPromote, Ref: prod, Version: r.version, Actor: setup, Reason: "demo: start production on the healthy release"}); err != nil {
			return fmt.Errorf("demo: putting %s %s in production: %w", r.svc, r.version, err)
		}
		if err := waitTarget(ctx, w.eng, sub, prod, r.version); err != nil {
			return err
		}
	}
	// The candidate's change lands on main before its build.
	if err := d.ws.MergeCandidate(demoCandidate); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if _, err := pipeline.Trigger(ctx, demoService, demoCandidate, ""); err != nil {
		return fmt.Errorf("demo: building %s: %w", demoCandidate, err)
	}
	if err := waitTarget(ctx, w.eng, sub, staging, demoCandidate); err != nil {
		return err
	}
	// Said once the engine says so too: staging runs the candidate a
	// moment before its promote there lets go of the lock, and p pressed
	// on the word "ready" must not meet that promote still in flight.
	ready := func(s core.Snapshot) bool { return s.Situations[production].Ready == demoCandidate }
	if err := waitEvent(ctx, w.eng, sub, func(core.Event) bool { return ready(w.eng.Snapshot()) }, ready); err != nil {
		return fmt.Errorf("demo: waiting for the engine to call %s ready for %s: %w", demoCandidate, production.Env, err)
	}
	w.notice(production, fmt.Sprintf("ready to promote %s to %s", demoCandidate, production.Env))
	return nil
}

// waitTarget waits until ref's target serves version alone and healthy
// and its deployment has settled.
func waitTarget(ctx context.Context, eng *core.Engine, sub *core.Subscription, ref core.Ref, version string) error {
	ok := func(s core.Snapshot) bool {
		ts, d := s.Targets[ref], s.Deployments[ref]
		return ts.Current == version && ts.Candidate == "" && ts.Healthy && d.Version == version && d.State == core.DeployHealthy
	}
	err := waitEvent(ctx, eng, sub, func(core.Event) bool { return ok(eng.Snapshot()) }, ok)
	if err != nil {
		return fmt.Errorf("demo: waiting for %s to run %s: %w", ref, version, err)
	}
	return nil
}

// headless plays the scripted story and prints the audit log after it.
func (d *demoRun) headless(ctx context.Context, w *world, df demoFlags, story chan error) error {
	ctx, cancel := context.WithTimeout(ctx, df.timeout)
	defer cancel()
	_, sub := w.eng.Subscribe()
	var printed sync.WaitGroup
	printed.Add(1)
	pctx, stopPrinting := context.WithCancel(ctx)
	go func() {
		defer printed.Done()
		printEvents(pctx, d.out, sub, nil)
	}()
	finish := func() {
		stopPrinting()
		printed.Wait()
		sub.Close()
	}
	if err := <-story; err != nil {
		finish()
		return err
	}
	_, steps := w.eng.Subscribe()
	defer steps.Close()
	production := core.Ref{Service: demoService, Env: d.ws.Production.Name}
	person := currentActor()
	for _, step := range strings.Split(df.script, ",") {
		var err error
		switch strings.TrimSpace(step) {
		case "promote":
			_, err = w.eng.Do(ctx, core.Command{Kind: core.CmdPromote, Ref: production, Version: demoCandidate, Actor: person, Reason: "demo"})
		case "wait-spike":
			err = waitEvent(ctx, w.eng, steps, func(ev core.Event) bool {
				return ev.Kind == core.EvVerdict && ev.Ref == production && ev.Verdict.Candidate == demoCandidate && ev.Verdict.Kind == core.VerdictSpike
			}, func(s core.Snapshot) bool {
				v, ok := s.Verdicts[production]
				return ok && v.Candidate == demoCandidate && v.Kind == core.VerdictSpike
			})
		case "rollback":
			if _, err = w.eng.Do(ctx, core.Command{Kind: core.CmdRollback, Ref: production, Actor: person, Reason: "demo: error spike"}); err == nil {
				err = waitTarget(ctx, w.eng, steps, production, demoStable)
			}
		case "":
		default:
			err = &exitError{code: exitUsage, err: fmt.Errorf("demo: unknown script step %q (promote, wait-spike, rollback)", step)}
		}
		if err != nil {
			finish()
			return fmt.Errorf("demo step %s: %w", step, err)
		}
	}
	finish()
	entries, err := w.eng.Store().Audit(context.WithoutCancel(ctx), 0, 1000)
	if err != nil {
		return err
	}
	fmt.Fprintln(d.out, "audit log:")
	for _, a := range entries {
		fmt.Fprintf(d.out, "  #%d %s %s %s %s → %s by %s: %s%s\n", a.Seq, a.At.Local().Format("15:04:05"), a.Action, a.Ref, dash(a.From), dash(a.To), a.Actor, a.Outcome, reasonSuffix(a.Reason))
	}
	return nil
}

func reasonSuffix(r string) string {
	if r == "" {
		return ""
	}
	return " (" + r + ")"
}

func waitEvent(ctx context.Context, eng *core.Engine, sub *core.Subscription, pred func(core.Event) bool, now func(core.Snapshot) bool) error {
	if now(eng.Snapshot()) {
		return nil
	}
	for {
		ev, err := sub.Next(ctx)
		if err != nil {
			return err
		}
		if pred(ev) || (ev.Kind == core.EvResync && now(*ev.Snapshot)) {
			return nil
		}
	}
}

// cleanup stops everything the demo started — the jobs, and the proxies
// and releases the local targets started (they outlive a console and the
// server by design, but not a demo) — and removes a temporary workspace.
func (d *demoRun) cleanup(dir string) {
	for _, c := range d.procs {
		_ = syscall.Kill(-c.Process.Pid, syscall.SIGTERM)
	}
	for _, c := range d.procs {
		_ = c.Wait()
	}
	stopReleases(filepath.Join(dir, ".ripcord", "envs"))
	if d.temp {
		_ = os.RemoveAll(dir)
	}
}

// stopReleases ends the traffic of the local targets rooted in envsDir/*:
// their proxy processes, then the release processes, found through their
// pid files (SIGTERM to the process group, SIGKILL after a grace period).
func stopReleases(envsDir string) {
	var roots []string
	_ = filepath.WalkDir(envsDir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && d.Name() == "run" {
			roots = append(roots, filepath.Dir(path))
			return filepath.SkipDir
		}
		return nil
	})
	for _, root := range roots {
		_ = local.StopProxy(root)
	}
	local.StopReleases(roots, 3*time.Second)
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}
