package main

import (
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/core/config"
)

// globals are the flags every command honours.
type globals struct {
	configPath string
}

func newRootCmd() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "ripcord",
		Short:         "A terminal release console: watch a rollout, undo a bad release",
		SilenceUsage:  true,
		SilenceErrors: true,
		// An unknown command is reported by unknownCommand, one line with
		// the closest name, not cobra's multi-line suggestion.
		DisableSuggestions: true,
	}
	root.PersistentFlags().StringVarP(&g.configPath, "config", "c", "ripcord.yaml", "config file; relative paths in it resolve against its directory")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &exitError{code: exitUsage, err: fmt.Errorf("%w%s\nrun '%s --help' for usage", err, flagSuggestion(c, err), c.CommandPath())}
	})
	root.AddCommand(
		newVersionCmd(),
		newValidateCmd(g),
		newConfigCmd(g),
		newPluginsCmd(g),
		newPluginServeCmd(),
		newStatusCmd(g),
		newHistoryCmd(g),
		newAuditCmd(g),
		newStateCmd(g),
		newLockCmd(g, core.CmdLock),
		newLockCmd(g, core.CmdUnlock),
	)
	root.AddCommand(newOpCmds(g)...)
	root.AddCommand(newConsoleCmd(g), newWatchCmd(g), newDemoCmd(), newBackupCmd(g), newServeCmd(g), newServerCmd(g))
	refuseUnknownSubcommands(root)
	return root
}

// refuseUnknownSubcommands makes every command group below the root
// (plugins, audit, state, server, config) refuse a subcommand it does not
// have, exit 2 with the closest name, instead of printing its help and
// exiting 0 as if the misspelled command had run. The root's own unknown
// commands are cobra's error, reworded in run by rewordUnknownCommand.
func refuseUnknownSubcommands(c *cobra.Command) {
	for _, sub := range c.Commands() {
		refuseUnknownSubcommands(sub)
	}
	if !c.HasParent() || !c.HasSubCommands() || c.Runnable() {
		return
	}
	c.Args = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return nil
		}
		return unknownCommand(cmd, args[0])
	}
	c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
}

// unknownCommand is the usage error for a name parent has no subcommand
// for: one line, the closest name, and the names there are.
func unknownCommand(parent *cobra.Command, name string) error {
	var names []string
	for _, sub := range parent.Commands() {
		if sub.IsAvailableCommand() {
			names = append(names, sub.Name())
		}
	}
	hint := config.DidYouMean(name, names)
	if hint == "" {
		if s := parent.SuggestionsFor(name); len(s) > 0 {
			hint = fmt.Sprintf("; did you mean %q?", s[0])
		}
	}
	if hint == "" {
		hint = ";"
	}
	return &exitError{code: exitUsage, err: fmt.Errorf("unknown command %q for %q%s commands are %s", name, parent.CommandPath(), hint, strings.Join(names, ", "))}
}

// rewordUnknownCommand rewords cobra's error for an argument a command
// does not take ("unknown command "histroy" for "ripcord"", also what
// cobra.NoArgs says) as unknownCommand's, or, for a command without
// subcommands, as taking no arguments.
func rewordUnknownCommand(root *cobra.Command, err error) error {
	var name, path string
	if n, _ := fmt.Sscanf(err.Error(), "unknown command %q for %q", &name, &path); n != 2 {
		return err
	}
	c, _, ferr := root.Find(strings.Fields(path)[1:])
	if ferr != nil || c.CommandPath() != path {
		return err
	}
	if !c.HasAvailableSubCommands() {
		return &exitError{code: exitUsage, err: fmt.Errorf("%s takes no arguments, got %q", path, name)}
	}
	return unknownCommand(c, name)
}

// flagSuggestion is "; did you mean --x?" for an unknown long flag close
// to one the command has, then the flags it has, so a flag from another
// command (promote's --to against rollback's --env) is found too.
func flagSuggestion(c *cobra.Command, err error) string {
	name, ok := strings.CutPrefix(err.Error(), "unknown flag: --")
	if !ok {
		return ""
	}
	name, _, _ = strings.Cut(name, "=")
	var names []string
	c.Flags().VisitAll(func(f *pflag.Flag) {
		if !f.Hidden && f.Name != "help" {
			names = append(names, f.Name)
		}
	})
	c.InheritedFlags().VisitAll(func(f *pflag.Flag) {
		if !f.Hidden && !slices.Contains(names, f.Name) {
			names = append(names, f.Name)
		}
	})
	slices.Sort(names)
	hint := ";"
	if s := config.DidYouMean(name, names); s != "" {
		hint = strings.Replace(s, `"`, `"--`, 1)
	}
	flags := make([]string, len(names))
	for i, n := range names {
		flags[i] = "--" + n
	}
	return fmt.Sprintf("%s %s takes %s", hint, c.CommandPath(), strings.Join(flags, ", "))
}

// isUsageError recognises cobra's own argument errors.
func isUsageError(err error) bool {
	msg := err.Error()
	return strings.HasPrefix(msg, "unknown command") || strings.HasPrefix(msg, "accepts ") ||
		strings.HasPrefix(msg, "requires ") || strings.Contains(msg, "unknown flag") || strings.Contains(msg, "unknown shorthand flag") ||
		strings.HasPrefix(msg, "required flag")
}

func newVersionCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			info := map[string]string{"version": version, "commit": commit, "date": date, "go": runtime.Version()}
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(info)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "ripcord %s (commit %s, built %s, %s)\n", version, commit, date, runtime.Version())
			return nil
		},
	}
	jsonFlags(cmd, &asJSON)
	return cmd
}

// loadConfig loads the file named by -c with the built-in providers.
func (g *globals) loadConfig() (*config.File, error) {
	return config.Load(g.configPath, config.Options{Providers: config.BuiltinProviders})
}

func newValidateCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "validate [FILE]",
		Short: "Check the config file (FILE, or -c) and every provider block against its provider's settings schema; report every problem as file:line:col",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				if cmd.Flags().Changed("config") && g.configPath != args[0] {
					return &exitError{code: exitUsage, err: fmt.Errorf("validate: name the file once: -c %s or %s", g.configPath, args[0])}
				}
				g.configPath = args[0]
			}
			f, err := g.loadConfig()
			if err != nil {
				return &exitError{code: exitFailed, err: err}
			}
			if err := checkProviders(cmd.Context(), f); err != nil {
				return &exitError{code: exitFailed, err: err}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok (project %s: %s, %s)\n", f.Path, f.Project, plural(len(f.Services), "service"), plural(len(f.Environments), "environment"))
			return nil
		},
	}
}

func newConfigCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Work with ripcord.yaml"}
	cmd.AddCommand(&cobra.Command{
		Use:   "schema",
		Short: "Print the JSON Schema of ripcord.yaml (for editor completion)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := config.Schema()
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(append(b, '\n'))
			return err
		},
	})
	return cmd
}
