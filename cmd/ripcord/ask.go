package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/core/config"
	"github.com/ripcordhq/ripcord/tui/prompt"
)

// needTerminal refuses a command that must be confirmed when there is
// nobody to ask: without a terminal, only --yes confirms.
func needTerminal(cmd *cobra.Command, k core.CommandKind, ref core.Ref) error {
	if in, ok := cmd.InOrStdin().(*os.File); ok && isTerminal(in) {
		return nil
	}
	return &exitError{code: exitUsage, err: fmt.Errorf("%s of %s changes what serves traffic: pass --yes to confirm without a terminal", k, ref)}
}

// confirm asks the person at the terminal the way the console does: it
// states what the command will do — the same statement the console's
// confirmation shows (package prompt), from the server's snapshot and
// situation — then asks for y, or for the service name where the
// environment's policy says type-name. A command the engine would refuse
// is not asked about: it is sent, and the engine's refusal (and its exit
// code) is the answer.
func confirm(ctx context.Context, cmd *cobra.Command, cfg *config.File, cl core.Client, c core.Command) error {
	in, ok := cmd.InOrStdin().(*os.File)
	if !ok {
		return needTerminal(cmd, c.Kind, c.Ref)
	}
	stmt, err := statement(ctx, cl, c)
	if err != nil {
		return err
	}
	if stmt.Refused != "" {
		return nil
	}
	return ask(cmd.ErrOrStderr(), in, stmt, policy(cfg, c.Ref.Env), c.Ref.Service)
}

// statement is what the confirmation says about c, from what the
// engine behind cl publishes now (its snapshot and situation), with why
// the engine would refuse it, if it would.
func statement(ctx context.Context, cl core.Client, c core.Command) (prompt.Statement, error) {
	snap, sub := cl.Subscribe()
	sub.Close()
	// Without the situation (a server not answering yet) the statement
	// refuses nothing, so the person is asked rather than the command
	// sent unasked.
	p := snap.Situations[c.Ref].CommandFor(c.Kind, c.Actor)
	in := prompt.Input{Cmd: c, Snapshot: snap, Now: time.Now()}
	if to := cmp.Or(c.Version, p.To); c.Kind == core.CmdRollback && p.From != "" && to != "" {
		crossing, err := crossingOf(ctx, cl, snap, c.Ref, p.From, to)
		if err != nil {
			return prompt.Statement{}, err
		}
		in.Crossing = crossing
	}
	return prompt.For(in), nil
}

// crossingOf is what rolling ref back from `from` to `to` leaves in the
// schema, worked out by the engine's rule (core.NewRollbackCrossing) from
// what the client reads, as the console's rollback picker does: the
// deployment being left is the newest, and a release the store does not
// hold is named as unknown.
func crossingOf(ctx context.Context, cl core.Client, snap core.Snapshot, ref core.Ref, from, to string) (*core.RollbackCrossing, error) {
	deps, err := cl.Deployments(ctx, ref, 1)
	if err != nil {
		return nil, fmt.Errorf("reading the deployments of %s: %w", ref, err)
	}
	if len(deps) == 0 {
		return nil, nil
	}
	release := func(v string) *core.Release {
		if r, err := cl.Release(ctx, ref.Service, v); err == nil {
			return &r
		}
		return nil
	}
	var sets []core.Freshness
	for _, f := range snap.Backups[ref] {
		sets = append(sets, f)
	}
	crossing := core.NewRollbackCrossing(ref, from, release(from), to, release(to), deps[0].StartedAt, sets)
	crossing.Unread(snap.Situations[ref].MigrationsUnread)
	return &crossing, nil
}

// policy is how env confirms dangerous actions: y or type-name.
func policy(cfg *config.File, env string) string {
	for _, e := range cfg.Environments {
		if e.Name == env && e.Confirm != "" {
			return e.Confirm
		}
	}
	return "y"
}

// ask prints the statement and reads the answer: only y (or the typed
// service name) confirms, as in the console; anything else, enter
// included, cancels.
func ask(out io.Writer, in io.Reader, stmt prompt.Statement, policy, service string) error {
	fmt.Fprint(out, stmt.Plain())
	want := "y"
	if policy == "type-name" {
		want = service
		fmt.Fprintf(out, "Type %q to confirm (anything else cancels): ", want)
	} else {
		fmt.Fprint(out, "Confirm? [y/N] ")
	}
	answer, _ := bufio.NewReader(in).ReadString('\n')
	if strings.TrimSpace(answer) != want {
		return &exitError{code: exitFailed, err: errors.New("not confirmed; nothing was done")}
	}
	return nil
}
