package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ripcordhq/ripcord/core"
)

// opFlags are the flags every rollout command shares.
type opFlags struct {
	env       string
	version   string
	reason    string
	overrides []string
	yes       bool
	wait      bool
	full      bool
	force     bool
	timeout   time.Duration
}

// newOpCmds builds the non-interactive rollout commands. They run the same
// engine and the same commands as the console, so a script, a CI job and a
// person at the screen behave alike.
func newOpCmds(g *globals) []*cobra.Command {
	promote := &cobra.Command{
		Use:   "promote SERVICE --to ENV",
		Short: "Start a rollout into ENV (the release its predecessor runs, or --version), or advance the one in flight by a step",
		Long: `Start a rollout into ENV, or advance the rollout in flight by one step.

Without --version the release is the one the environment is promoted from
runs. Gates are checked first; a failing gate exits 3 with its reason
(override one with --override GATE --reason "why", audited). A lock held by
someone else exits 4 naming the holder.

The project's server runs the rollout (a command starts one when none
runs): --wait follows it until it is healthy, rolled back, aborted or
waiting for a person; without it the command returns once the first step
is deployed (or, for a rollout in flight, once it has moved on a step) and
the server carries on.`,
		Args: cobra.ExactArgs(1),
	}
	rollback := &cobra.Command{
		Use:   "rollback SERVICE --env ENV [--to VERSION]",
		Short: "Roll back to the last good release (or --to any kept one), skipping steps and analysis",
		Long: `Roll back to the last good release (or --to any kept one), skipping steps
and analysis.

The code goes back; the schema does not. Rolling back across a contract
migration (one that dropped, renamed or rewrote what the older release
reads) is refused with the migrations, the tables and columns they changed
and the newest backup from before them; a person may go ahead with
--override migrations --reason "why" (audited).`,
		Args: cobra.ExactArgs(1),
	}
	abort := &cobra.Command{
		Use:   "abort SERVICE --env ENV",
		Short: "Send all traffic back to the stable release; the candidate stays installed for inspection",
		Args:  cobra.ExactArgs(1),
	}
	pause := &cobra.Command{Use: "pause SERVICE --env ENV", Short: "Hold the rollout in flight at its next step", Args: cobra.ExactArgs(1)}
	resume := &cobra.Command{Use: "resume SERVICE --env ENV", Short: "Let a paused rollout go on", Args: cobra.ExactArgs(1)}

	var f opFlags
	for _, c := range []*cobra.Command{promote, rollback, abort, pause, resume} {
		c.Flags().StringVar(&f.reason, "reason", "", "why (recorded in the audit log; required with --override)")
		c.Flags().BoolVar(&f.force, "force", false, "take over a lock someone else holds (audited)")
		c.Flags().DurationVar(&f.timeout, "timeout", 30*time.Minute, "give up waiting after this long")
	}
	promote.Flags().StringVar(&f.env, "to", "", "environment to promote into (required)")
	_ = promote.MarkFlagRequired("to")
	promote.Flags().StringVar(&f.version, "version", "", "release to promote (default: what the previous environment runs)")
	promote.Flags().BoolVar(&f.full, "full", false, "skip the remaining rollout steps (audited as a full promote)")
	promote.Flags().BoolVar(&f.wait, "wait", false, "follow the rollout until it settles")
	promote.Flags().StringSliceVar(&f.overrides, "override", nil, "override a failing gate (needs --reason; audited)")
	promote.Flags().BoolVarP(&f.yes, "yes", "y", false, "do not ask for confirmation (required without a terminal)")
	rollback.Flags().StringVar(&f.version, "to", "", "release to roll back to (default: the last good one)")
	rollback.Flags().StringSliceVar(&f.overrides, "override", nil, "go ahead past a failing check: migrations (needs --reason; audited)")
	for _, c := range []*cobra.Command{rollback, abort, pause, resume} {
		c.Flags().StringVar(&f.env, "env", "", "environment (required)")
		_ = c.MarkFlagRequired("env")
	}
	for _, c := range []*cobra.Command{rollback, abort} {
		c.Flags().BoolVarP(&f.yes, "yes", "y", false, "do not ask for confirmation (required without a terminal)")
	}

	promote.RunE = g.opRun(&f, func() core.CommandKind {
		if f.full {
			return core.CmdFullPromote
		}
		return core.CmdPromote
	}, true)
	rollback.RunE = g.opRun(&f, func() core.CommandKind { return core.CmdRollback }, true)
	abort.RunE = g.opRun(&f, func() core.CommandKind { return core.CmdAbort }, true)
	pause.RunE = g.opRun(&f, func() core.CommandKind { return core.CmdPause }, false)
	resume.RunE = g.opRun(&f, func() core.CommandKind { return core.CmdResume }, false)
	return []*cobra.Command{promote, rollback, abort, pause, resume}
}

// opRun runs one rollout command through the project's server (started
// in the background when none runs), so the gates see the picture the
// consoles show and the rollout goes on after the command exits.
func (g *globals) opRun(f *opFlags, kind func() core.CommandKind, dangerous bool) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		cfg, err := g.loadConfig()
		if err != nil {
			return &exitError{code: exitFailed, err: err}
		}
		k := kind()
		ref := core.Ref{Service: args[0], Env: f.env}
		if err := g.checkArgs(cmd.Context(), cfg, cmdArgs{Service: ref.Service, Env: ref.Env, Version: f.version, Overrides: f.overrides}); err != nil {
			return err
		}
		if len(f.overrides) > 0 && strings.TrimSpace(f.reason) == "" {
			return &exitError{code: exitUsage, err: errors.New("--override needs --reason: say why the gate may be skipped")}
		}
		ask := dangerous && !f.yes
		if ask {
			if err := needTerminal(cmd, k, ref); err != nil {
				return err
			}
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
		defer cancel()
		c, err := connect(ctx, cfg, startOnState)
		if err != nil {
			return opExit(err)
		}
		defer c.Close()
		command := core.Command{Kind: k, Ref: ref, Version: f.version, Actor: currentActor(), Reason: f.reason, Overrides: f.overrides, Force: f.force}
		if ask {
			// Asked once connected, so the question states what the engine
			// says now: the same statement as the console's.
			if err := confirm(ctx, cmd, cfg, c, command); err != nil {
				return err
			}
		}
		// Subscribed before the command (and after the question), so
		// nothing it causes is missed and nothing before it is taken for
		// its effect.
		before, sub := c.Subscribe()
		defer sub.Close()
		inFlight := before.Deployments[ref]
		advancing := (k == core.CmdPromote || k == core.CmdFullPromote) && inFlight.Version != "" && !inFlight.State.Terminal()

		started := time.Now()
		res, err := c.Do(ctx, command)
		out := cmd.OutOrStdout()
		for _, gr := range res.Gates {
			if gr.Status != core.GatePass || gr.Reason != "" {
				fmt.Fprintf(out, "gate %-10s %-7s %s\n", gr.Gate, gr.Status, core.Printable(gr.Reason))
			}
		}
		if err != nil {
			return opExit(err)
		}
		fmt.Fprintf(out, "%s: %s (%s)\n", k, core.Printable(res.Message), time.Since(started).Round(time.Millisecond))
		if k != core.CmdPromote && k != core.CmdFullPromote {
			return nil
		}
		if f.wait {
			from := 0 // a new rollout: a pause from its second step on is for a person
			if advancing {
				from = inFlight.Step
			}
			return followRollout(ctx, out, sub, ref, from)
		}
		// The server runs the rollout; say where it came to rest.
		return followToRest(ctx, out, sub, ref, inFlight, before.Plans[ref])
	}
}

// followToRest waits until the rollout the command started or moved on
// comes to rest — finished, waiting for a person or paused, or in a step
// that takes time (analysis, a timed pause) — and prints where it is.
// before is the deployment as it was before the command; plan is the
// environment's rollout steps.
func followToRest(ctx context.Context, out io.Writer, sub *core.Subscription, ref core.Ref, before core.Deployment, plan []core.RolloutStep) error {
	for {
		ev, err := sub.Next(ctx)
		if err != nil {
			return &exitError{code: exitFailed, err: fmt.Errorf("waiting for the rollout of %s: %w", ref, err)}
		}
		var d *core.Deployment
		switch {
		case ev.Kind == core.EvPlan && ev.Plan != nil && ev.Plan.Ref == ref:
			plan = ev.Plan.Steps
		case ev.Kind == core.EvDeployment && ev.Ref == ref:
			d = ev.Deployment
		case ev.Kind == core.EvResync && ev.Snapshot != nil:
			plan = ev.Snapshot.Plans[ref]
			if cur, ok := ev.Snapshot.Deployments[ref]; ok {
				d = &cur
			}
		}
		if d == nil || (d.ID == before.ID && d.Step == before.Step && d.State == before.State && d.Weight == before.Weight) {
			continue
		}
		if !resting(*d, plan) {
			continue
		}
		fmt.Fprintf(out, "%s %s: %s at %d%%\n", ref, d.Version, d.State, d.Weight)
		return nil
	}
}

// resting reports whether a rollout stays where it is for a while: it
// ended, waits for a person, or is in a step that takes time.
func resting(d core.Deployment, plan []core.RolloutStep) bool {
	switch d.State {
	case core.DeployProgressing, core.DeployPending:
		return d.Step < len(plan) && plan[d.Step].Kind != core.StepWeight
	}
	return true
}

// followRollout prints a rollout's progress until it settles: healthy,
// rolled back, aborted, failed, or waiting for a person.
// A pause at or before step `from` is the one the command just moved past.
func followRollout(ctx context.Context, out io.Writer, sub *core.Subscription, ref core.Ref, from int) error {
	for {
		ev, err := sub.Next(ctx)
		if err != nil {
			return &exitError{code: exitFailed, err: fmt.Errorf("waiting for the rollout of %s: %w", ref, err)}
		}
		if ev.Ref != ref {
			continue
		}
		switch ev.Kind {
		case core.EvNotice:
			fmt.Fprintln(out, core.Printable(ev.Notice))
		case core.EvVerdict:
			if ev.Final {
				fmt.Fprintln(out, core.Printable(verdictLine(*ev.Verdict)))
			}
		case core.EvDeployment:
			d := ev.Deployment
			fmt.Fprintf(out, "%s %s: %s at %d%%\n", ref, core.Printable(d.Version), d.State, d.Weight)
			switch d.State {
			case core.DeployHealthy:
				return nil
			case core.DeployJudgment:
				if d.Step <= from {
					continue
				}
				fmt.Fprintf(out, "waiting for a person: run `ripcord promote %s --to %s` to go on, or rollback\n", ref.Service, ref.Env)
				return nil
			case core.DeployRolledBack, core.DeployAborted, core.DeployFailed:
				return &exitError{code: exitFailed, err: fmt.Errorf("rollout of %s to %s ended %s", d.Version, ref, d.State)}
			}
		}
	}
}

// verdictLine is one line of a spike verdict with its evidence.
func verdictLine(v core.SpikeVerdict) string {
	e := v.Evidence
	line := fmt.Sprintf("verdict %s: %s in %s against %s", strings.ToUpper(string(v.Kind)), v.Candidate, v.Ref.Env, v.Baseline)
	if e.CandidateCount+e.BaselineCount > 0 {
		line += fmt.Sprintf(" · %d vs %d errors at %.0f%% share · %s · %s · evidence %.3g/%.3g · %s",
			e.CandidateCount, e.BaselineCount, e.Share*100, e.Ratio(), boundText(v),
			e.EvidenceRatio, e.Threshold, e.Elapsed.Round(time.Second))
	}
	if e.Note != "" {
		line += " · " + e.Note
	}
	return line
}

// opExit maps an engine refusal to the documented exit codes.
func opExit(err error) error {
	var held *core.LockHeldError
	switch {
	case errors.As(err, &held):
		return &exitError{code: exitLocked, err: err}
	case errors.Is(err, core.ErrBlocked):
		return &exitError{code: exitBlocked, err: err}
	case errors.Is(err, core.ErrInvalid):
		return &exitError{code: exitUsage, err: err}
	}
	return &exitError{code: exitFailed, err: err}
}

func newBackupCmd(g *globals) *cobra.Command {
	var env, set, reason string
	cmd := &cobra.Command{
		Use:   "backup SERVICE --env ENV [--set NAME]",
		Short: "Back up now: run the backup of an environment's sets whose provider can (audited)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := g.loadConfig()
			if err != nil {
				return &exitError{code: exitFailed, err: err}
			}
			ref := core.Ref{Service: args[0], Env: env}
			if err := checkArgs(cmd.Context(), cfg, nil, cmdArgs{Service: ref.Service, Env: ref.Env, Set: set}); err != nil {
				return err
			}
			c, err := connect(cmd.Context(), cfg, startOnState)
			if err != nil {
				return opExit(err)
			}
			defer c.Close()
			res, err := c.Do(cmd.Context(), core.Command{Kind: core.CmdBackupNow, Ref: ref, Version: set, Actor: currentActor(), Reason: reason})
			if err != nil {
				return opExit(err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), res.Message)
			return nil
		},
	}
	cmd.Flags().StringVar(&env, "env", "", "environment (required)")
	_ = cmd.MarkFlagRequired("env")
	cmd.Flags().StringVar(&set, "set", "", "backup set (default: every set whose provider can back up)")
	cmd.Flags().StringVar(&reason, "reason", "", "why (recorded in the audit log)")
	return cmd
}
