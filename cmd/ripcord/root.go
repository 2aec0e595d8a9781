package main

import (
	"encoding/json"
	"fmt"
	"runtime"
	"strings"

	"github.com/spf13/cobra"

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
	}
	root.PersistentFlags().StringVarP(&g.configPath, "config", "c", "ripcord.yaml", "config file; relative paths in it resolve against its directory")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &exitError{code: exitUsage, err: fmt.Errorf("%w\nrun '%s --help' for usage", err, c.CommandPath())}
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
	return root
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
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// loadConfig loads the file named by -c with the built-in providers.
func (g *globals) loadConfig() (*config.File, error) {
	return config.Load(g.configPath, config.Options{Providers: config.BuiltinProviders})
}

func newValidateCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "validate",
		Short: "Check the config file and every provider block against its provider's settings schema; report every problem as file:line:col",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := g.loadConfig()
			if err != nil {
				return &exitError{code: exitFailed, err: err}
			}
			if err := checkProviders(cmd.Context(), f); err != nil {
				return &exitError{code: exitFailed, err: err}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok (project %s: %d services, %d environments)\n", f.Path, f.Project, len(f.Services), len(f.Environments))
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
