package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/core/config"
	"github.com/ripcordhq/ripcord/themes"
	"github.com/ripcordhq/ripcord/tui"
)

// consoleFlags are the console's own flags.
type consoleFlags struct {
	readOnly bool
	theme    string
	service  string
}

func newConsoleCmd(g *globals) *cobra.Command {
	var cf consoleFlags
	cmd := &cobra.Command{
		Use:   "console",
		Short: "Open the release console on this config's world",
		Long: `Open the release console: live pipeline, rollout, error spikes, backup
freshness, and keys to promote (p) and roll back (r).

The console is a client of the project's server (see ripcord serve), which
it starts in the background when none runs. Operations belong to the
server, not to the screen: quitting, a closed terminal or a dropped SSH
session never leaves a rollback without an owner, and traffic goes on.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := g.loadConfig()
			if err != nil {
				return &exitError{code: exitFailed, err: err}
			}
			opts, err := consoleOptions(f, cf)
			if err != nil {
				return &exitError{code: exitUsage, err: err}
			}
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			// The screen is a client of the project's server, started in
			// the background when none runs; the server answers before
			// its providers are up, and they report their health as they
			// come.
			c, err := connect(ctx, f, startCreating)
			if err != nil {
				return err
			}
			defer c.Close()
			err = tui.Run(ctx, c, opts)
			if c.started {
				fmt.Fprintln(cmd.ErrOrStderr(), "ripcord: "+keepsRunning(c))
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&cf.readOnly, "read-only", false, "watch only: every action key is refused with the reason")
	cmd.Flags().StringVar(&cf.theme, "theme", "", "colour theme: dark, light, high-contrast, okabe-ito, monochrome, or a theme file (JSON of token to \"#rrggbb\"); default: from the terminal")
	cmd.Flags().StringVar(&cf.service, "service", "", "service to show first (default: the first in the config)")
	return cmd
}

// consoleOptions turns the config's screen policy into the console's. A
// --theme that is not a built-in name is read as a theme file.
func consoleOptions(f *config.File, cf consoleFlags) (tui.Options, error) {
	o := tui.Options{
		Service: cf.service, Actor: currentActor(),
		ReadOnly: cf.readOnly, Confirm: map[string]string{},
		Bell: f.Notify.Bell == nil || *f.Notify.Bell, Desktop: f.Notify.Desktop == nil || *f.Notify.Desktop,
	}
	if cf.readOnly {
		o.ReadOnlyReason = "read-only console (--read-only)"
	}
	if cf.service != "" {
		var names []string
		for _, s := range f.Services {
			names = append(names, s.Name)
		}
		if !slices.Contains(names, cf.service) {
			return o, fmt.Errorf("--service: no service %q in %s%s services are %s", cf.service, f.Path, sep(cf.service, names), strings.Join(names, ", "))
		}
	}
	o.Production = map[string]bool{}
	for _, e := range f.Environments {
		o.Confirm[e.Name] = e.Confirm
		o.Production[e.Name] = e.Production
	}
	if cf.theme == "" {
		return o, nil
	}
	if _, err := themes.Get(cf.theme); err == nil {
		o.ThemeName = cf.theme
		return o, nil
	}
	if _, err := os.Stat(cf.theme); err != nil {
		return o, fmt.Errorf("--theme %q is neither a built-in theme (%s) nor a readable theme file", cf.theme, strings.Join(themes.Names(), ", "))
	}
	t, err := themes.Load(cf.theme)
	if err != nil {
		return o, err
	}
	o.Theme = t
	return o, nil
}

// signalContext ends on SIGINT, SIGTERM and SIGHUP (an SSH session that
// drops sends SIGHUP): the world then shuts down in order.
func signalContext(parent context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
}

// eventLine is one event as a line of text, or "" for events not worth a
// line (progress that repeats, log chatter). The headless demo and `ripcord
// watch` print these.
func eventLine(ev core.Event) string {
	at := ev.Time.Local().Format("15:04:05")
	switch ev.Kind {
	case core.EvNotice:
		return fmt.Sprintf("%s %s", at, ev.Notice)
	case core.EvPipeline:
		if !ev.Final {
			return ""
		}
		r := ev.Pipeline
		line := fmt.Sprintf("%s pipeline %s %s: %s", at, r.Service, r.Version, r.State)
		if r.ArtifactDigest != "" {
			line += " · artifact " + shortDigest(r.ArtifactDigest)
		}
		return line + buildFacts(*r)
	case core.EvDeployment:
		d := ev.Deployment
		return fmt.Sprintf("%s %s %s: %s at %d%% (by %s)", at, d.Ref, d.Version, d.State, d.Weight, d.Actor)
	case core.EvVerdict:
		if !ev.Final {
			return ""
		}
		return at + " " + verdictLine(*ev.Verdict)
	case core.EvBackup:
		if !ev.Final {
			return ""
		}
		b := ev.Backup
		return fmt.Sprintf("%s backup %s %s: %s · %s", at, b.Ref.Env, b.Facts.Set, b.State, b.Reason)
	case core.EvAudit:
		a := ev.Audit
		line := fmt.Sprintf("%s audit: %s %s %s → %s by %s: %s", at, a.Action, a.Ref, dash(a.From), dash(a.To), a.Actor, a.Outcome)
		for _, g := range a.Gates {
			if g.Gate == core.GateMigrations {
				line += " · migrations: " + g.Reason
			}
		}
		return line
	case core.EvOperation:
		op := ev.Operation
		if op.State == core.OpAttention {
			return fmt.Sprintf("%s needs attention: %s", at, op.Message)
		}
	}
	return ""
}

// providerLines says when a provider's health changes: each new unhealthy
// state once, and its recovery, so a log that said "degraded" also says
// when that ended. A provider that starts and stays healthy makes no line.
type providerLines struct {
	last map[string]string // the state and message last said, per provider
}

func newProviderLines() *providerLines { return &providerLines{last: map[string]string{}} }

func (l *providerLines) line(ev core.Event) string {
	if ev.Kind != core.EvProvider || ev.Provider == nil {
		return ""
	}
	p := ev.Provider
	at := ev.Time.Local().Format("15:04:05")
	said, ok := l.last[p.Name]
	if p.State == "starting" {
		return "" // every start; a start that fails says so
	}
	if p.State == "healthy" {
		if !ok {
			return ""
		}
		delete(l.last, p.Name)
		return fmt.Sprintf("%s provider %s healthy again", at, p.Name)
	}
	now := p.State + "\x00" + p.Message
	if ok && said == now {
		return ""
	}
	l.last[p.Name] = now
	return fmt.Sprintf("%s provider %s %s %s", at, p.Name, p.State, p.Message)
}

// buildFacts says what a run was built from: " · main@1a2b3c4d5e6f ·
// 2 migrations (0 contract)".
func buildFacts(r core.PipelineRun) string {
	var s string
	switch {
	case r.Commit == "":
	case r.Branch == "":
		s += " · " + shortCommit(r.Commit) + " on an unknown branch"
	default:
		s += " · " + r.Branch + "@" + shortCommit(r.Commit)
	}
	switch {
	case r.MigrationsUnknown != "":
		s += " · migrations unknown: " + r.MigrationsUnknown
	case len(r.Migrations) > 0:
		contract := 0
		for _, m := range r.Migrations {
			if m.Kind == core.MigrationContract {
				contract++
			}
		}
		s += fmt.Sprintf(" · %d migration(s), %d contract", len(r.Migrations), contract)
	}
	return s
}

func shortCommit(c string) string {
	if len(c) > 12 {
		return c[:12]
	}
	return c
}

// logEventLine is one log line as watch prints it: time, source, text.
func logEventLine(ev core.Event) string {
	l := ev.Log
	at := l.Time
	if at.IsZero() {
		at = ev.Time
	}
	return fmt.Sprintf("%s log %s: %s", at.Local().Format("15:04:05"), l.Source, l.Text)
}

func shortDigest(d string) string {
	d = strings.TrimPrefix(d, "sha256:")
	if len(d) > 12 {
		d = d[:12]
	}
	return "sha256:" + d
}

// printEvents writes a line per event worth one until ctx ends.
func printEvents(ctx context.Context, out io.Writer, sub *core.Subscription, fn func(core.Event)) {
	errs, providers := newErrorLines(), newProviderLines()
	for {
		ev, err := sub.Next(ctx)
		if err != nil {
			return
		}
		line := eventLine(ev)
		switch {
		case ev.Kind == core.EvErrors && ev.Errors != nil:
			line = errs.line(ev)
		case ev.Kind == core.EvProvider:
			line = providers.line(ev)
		}
		if line != "" {
			fmt.Fprintln(out, core.Printable(line))
		}
		if fn != nil {
			fn(ev)
		}
	}
}

func newWatchCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "watch",
		Short: "Follow the project's server without a screen, one line per event (for logs and CI)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := g.loadConfig()
			if err != nil {
				return &exitError{code: exitFailed, err: err}
			}
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			c, err := connect(ctx, f, startOnState)
			if err != nil {
				return err
			}
			defer c.Close()
			_, sub := c.Subscribe()
			defer sub.Close()
			out := cmd.OutOrStdout()
			// watch is the server's log for operators and CI: the lines
			// providers log, and operations' output, come with the events.
			printEvents(ctx, out, sub, func(ev core.Event) {
				if ev.Kind == core.EvLog && ev.Log != nil {
					fmt.Fprintln(out, logEventLine(ev))
				}
			})
			if c.started {
				fmt.Fprintln(cmd.ErrOrStderr(), "ripcord: "+keepsRunning(c))
			}
			return nil
		},
	}
}
