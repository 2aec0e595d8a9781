package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/core/config"
	"github.com/ripcordhq/ripcord/plugins/builtin"
	"github.com/ripcordhq/ripcord/plugins/host"
)

// newPluginServeCmd is how the host starts a built-in provider: it
// re-executes this binary as `ripcord plugin serve NAME`.
func newPluginServeCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "plugin", Hidden: true}
	cmd.AddCommand(&cobra.Command{
		Use:   "serve NAME",
		Short: "Serve a built-in provider over the plugin protocol (started by ripcord itself)",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			return host.ServeBuiltin(args[0], builtin.Registry(version))
		},
	})
	return cmd
}

func newPluginsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "plugins", Short: "List, lock and verify provider plugins"}
	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "Start the config's providers and report name, version, kinds, health, path and sha256",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := g.loadConfig()
			if err != nil {
				return &exitError{code: exitFailed, err: err}
			}
			return listPlugins(cmd, f, asJSON)
		},
	}
	jsonFlags(list, &asJSON)
	lock := &cobra.Command{
		Use:   "lock",
		Short: "Write ripcord.lock with the sha256 of every external plugin",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			specs, lockFile, err := g.externalPlugins()
			if err != nil {
				return err
			}
			if err := host.WriteLock(lockFile, specs); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %d plugin(s) locked\n", lockFile, len(specs))
			return nil
		},
	}
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Check every external plugin against ripcord.lock",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			specs, lockFile, err := g.externalPlugins()
			if err != nil {
				return err
			}
			if _, err := host.VerifyLock(lockFile, specs); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %d plugin(s) match\n", lockFile, len(specs))
			return nil
		},
	}
	cmd.AddCommand(list, lock, verify)
	return cmd
}

// externalPlugins resolves the config's external plugins to binaries and
// names the lock file beside the config.
func (g *globals) externalPlugins() ([]host.PluginSpec, string, error) {
	f, err := g.loadConfig()
	if err != nil {
		return nil, "", &exitError{code: exitFailed, err: err}
	}
	specs, err := host.Resolve(pluginSpecs(f), host.SearchDirs(f.Dir))
	if err != nil {
		return nil, "", err
	}
	return specs, filepath.Join(f.Dir, host.LockFileName), nil
}

// pluginSpecs lists the config's external plugins, each with one instance
// per place the config uses it: a plugin used twice runs twice, each
// process with its own settings.
func pluginSpecs(f *config.File) []host.PluginSpec {
	uses := usedProviders(f)
	var specs []host.PluginSpec
	for _, p := range f.Plugins {
		spec := host.PluginSpec{Name: p.Name, Path: p.Path, Env: p.Env}
		for _, u := range uses {
			if u.name == p.Name && !slices.Contains(spec.Instances, instance(u)) {
				spec.Instances = append(spec.Instances, instance(u))
			}
		}
		specs = append(specs, spec)
	}
	return specs
}

// providerUse is one place the config uses a provider, with its settings.
type providerUse struct {
	name     string
	settings map[string]any
	p        *config.Provider
	kind     string   // config.KindTarget, KindPipeline, KindErrors or KindBackup
	service  string   // the pipeline's service
	ref      core.Ref // the service and environment of a target, error source or backup set
	// refs are the services a backup set gates: its own, or every service
	// of the environment for a set written on the environment.
	refs   []core.Ref
	backup *config.Backup
	where  string // names the use: service, environment (service.environment with several services), then .set
}

// logRefs maps each provider process's log source ("plugin/INSTANCE") to
// the service and environment its lines belong to, so the console shows
// them in that environment's logs: a target's, an error source's or a
// service's own backup set's Ref; a pipeline's service alone (its lines
// belong to the service in every environment); a set written on an
// environment shared by several services, the environment alone.
func logRefs(uses []providerUse) map[string]core.Ref {
	out := map[string]core.Ref{}
	for _, u := range uses {
		ref := u.ref
		switch {
		case u.kind == config.KindPipeline:
			ref = core.Ref{Service: u.service}
		case len(u.refs) > 1:
			ref = core.Ref{Env: u.ref.Env}
		}
		out["plugin/"+instance(u)] = ref
	}
	return out
}

// instance names the plugin process serving one use of a provider. Every
// place a provider is used is its own process with its own settings, so
// two environments (or two services) can give one provider different
// settings; ripcord.lock pins an external plugin once, by its name.
func instance(u providerUse) string {
	return u.name + "@" + u.where
}

// usedProviders lists the providers the config names, in file order,
// with the settings the console adds for built-ins: where the provider
// sits (service, environment, backup set) and paths resolved against the
// config's directory, which a provider process cannot know.
func usedProviders(f *config.File) []providerUse {
	var uses []providerUse
	add := func(p *config.Provider, u providerUse, fill func(map[string]any)) {
		if p == nil || p.Name == "" {
			return
		}
		s := maps.Clone(p.Settings)
		if s == nil {
			s = map[string]any{}
		}
		if fill != nil {
			fill(s)
		}
		u.name, u.settings, u.p = p.Name, s, p
		uses = append(uses, u)
	}
	for _, svc := range f.Services {
		add(svc.Pipeline, providerUse{kind: config.KindPipeline, service: svc.Name, where: svc.Name}, func(s map[string]any) {
			if ciPipelines[svc.Pipeline.Name] {
				// A CI service's release artifact is downloaded where the
				// local target looks for exec's.
				s["service"] = svc.Name
				setDefault(s, "download_dir", filepath.Join(pipelineState(f, svc.Name), "artifacts"))
				// Its migrations are read in the clone the config lives
				// in, at each green run's commit.
				if svc.Migrations != nil {
					s["migrations_dir"] = svc.Migrations.Dir
				}
				resolve(f, s, "download_dir", "migrations_dir")
				return
			}
			if svc.Pipeline.Name != "exec" {
				return
			}
			s["service"] = svc.Name
			setDefault(s, "state_dir", pipelineState(f, svc.Name))
			setDefault(s, "work_dir", f.Dir)
			if svc.Migrations != nil {
				s["migrations_dir"] = svc.Migrations.Dir
			}
			resolve(f, s, "state_dir", "work_dir", "migrations_dir")
		})
	}
	backup := func(b *config.Backup, refs []core.Ref, where string) {
		add(&b.Provider, providerUse{kind: config.KindBackup, ref: refs[0], refs: refs, backup: b, where: where + "." + b.Name}, func(s map[string]any) {
			// Every backup source is told which set it reports (the
			// SDK's README says so), so its facts name the set.
			s["set"] = b.Name
			if b.Provider.Name == "dir" {
				resolve(f, s, "path")
			}
		})
	}
	for _, e := range f.Environments {
		if shared := e.SharedBackups(); len(shared) > 0 {
			var refs []core.Ref
			for _, pl := range e.Services {
				refs = append(refs, core.Ref{Service: pl.Name, Env: e.Name})
			}
			for i := range shared {
				backup(&shared[i], refs, e.Name)
			}
		}
		for _, pl := range e.Services {
			ref := core.Ref{Service: pl.Name, Env: e.Name}
			where := e.Name
			if len(f.Services) > 1 {
				where = pl.Name + "." + e.Name
			}
			add(pl.Target, providerUse{kind: config.KindTarget, ref: ref, where: where}, func(s map[string]any) {
				switch pl.Target.Name {
				case "local":
					s["ref"] = map[string]any{"service": pl.Name, "env": e.Name}
					setDefault(s, "artifact_store", filepath.Join(pipelineState(f, pl.Name), "artifacts"))
					resolve(f, s, "root", "artifact_store")
				case "ssh":
					// root is a path on the hosts: never resolved here.
					s["ref"] = map[string]any{"service": pl.Name, "env": e.Name}
					setDefault(s, "artifact_store", filepath.Join(pipelineState(f, pl.Name), "artifacts"))
					setDefault(s, "state_dir", filepath.Join(f.Dir, ".ripcord", "ssh", where))
					resolve(f, s, "artifact_store", "state_dir", "identity_file", "known_hosts")
				}
			})
			add(pl.Errors, providerUse{kind: config.KindErrors, ref: ref, where: where}, func(s map[string]any) {
				if pl.Errors.Name == "sentry-ingest" {
					s["service"] = pl.Name
					s["env"] = e.Name
					if f.Store.Driver == "" || f.Store.Driver == "sqlite" {
						setDefault(s, "store", f.Store.Path)
						resolve(f, s, "store")
					}
				}
			})
			for i := range pl.Backups {
				backup(&pl.Backups[i], []core.Ref{ref}, where)
			}
		}
	}
	return uses
}

// ciPipelines are the built-in pipeline sources reading a CI service.
var ciPipelines = map[string]bool{"github-actions": true, "gitlab-ci": true}

// pipelineState is where the exec pipeline keeps a service's runs, logs
// and artifacts.
func pipelineState(f *config.File, service string) string {
	return filepath.Join(f.Dir, ".ripcord", "pipelines", service)
}

func setDefault(s map[string]any, key string, v any) {
	if _, ok := s[key]; !ok {
		s[key] = v
	}
}

// resolve makes relative path settings absolute against the config's
// directory.
func resolve(f *config.File, s map[string]any, keys ...string) {
	for _, k := range keys {
		if p, ok := s[k].(string); ok && p != "" && !filepath.IsAbs(p) && !strings.HasPrefix(p, "~") {
			s[k] = filepath.Join(f.Dir, p)
		}
	}
}

func listPlugins(cmd *cobra.Command, f *config.File, asJSON bool) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding the ripcord binary: %w", err)
	}
	registry := builtin.Registry(version)
	var builtins, inProcess, configured []string
	first := map[string]providerUse{}
	for _, u := range usedProviders(f) {
		name := instance(u)
		if _, seen := first[name]; seen {
			continue
		}
		first[name] = u
		if _, ok := registry[u.name]; ok {
			builtins = append(builtins, name)
			configured = append(configured, name)
		} else if slices.ContainsFunc(f.Plugins, func(p config.Plugin) bool { return p.Name == u.name }) {
			configured = append(configured, name)
		} else {
			inProcess = append(inProcess, u.name)
		}
	}
	h, err := host.New(host.Options{
		Self: self, Builtins: builtins, Plugins: pluginSpecs(f), Workdir: f.Dir,
		LockFile: filepath.Join(f.Dir, host.LockFileName),
		Log:      func(core.LogLine) {}, // plugins' chatter is not what list reports
	})
	if err != nil {
		return err
	}
	defer h.Close()
	ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
	defer cancel()
	startErr := h.Start(ctx)
	var refused []string
	for _, name := range configured {
		if err := h.Configure(ctx, name, first[name].settings, nil); err != nil {
			refused = append(refused, f.Redact(locate(err, first[name].p)))
		}
	}
	infos, err := h.List(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		out := struct {
			Plugins   []host.Info `json:"plugins"`
			InProcess []string    `json:"in_process,omitempty"`
		}{infos, inProcess}
		for i := range out.Plugins {
			out.Plugins[i].ConfigSchema = nil
		}
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return err
		}
	} else {
		w := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
		fmt.Fprintln(w, "NAME\tVERSION\tKINDS\tHEALTH\tPID\tPATH\tSHA256")
		for _, in := range infos {
			sum := in.SHA256
			if in.Builtin {
				sum = "(built in)"
			}
			health := in.Health.State
			if in.Health.Message != "" {
				health += ": " + in.Health.Message
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", in.Name, in.Version, strings.Join(in.Kinds, ","), health, in.PID, in.Path, sum)
		}
		for _, name := range inProcess {
			fmt.Fprintf(w, "%s\t\t\tnot served as a plugin yet\t\t\t\n", name)
		}
		w.Flush()
	}
	if startErr != nil {
		return startErr
	}
	if len(refused) > 0 {
		return &exitError{code: exitFailed, err: errors.New(strings.Join(refused, "\n"))}
	}
	return nil
}

// locate turns a provider's complaint about its settings into lines that
// say file:line:col, so a person can go straight to the setting.
func locate(err error, p *config.Provider) string {
	var ce *host.ConfigError
	if !errors.As(err, &ce) || p == nil {
		return err.Error()
	}
	var lines []string
	for _, se := range ce.Errors {
		pos := p.SettingAt(se.Path)
		what := se.Message
		if se.Path != "" {
			what = fmt.Sprintf("%s: %s", se.Path, se.Message)
		}
		lines = append(lines, fmt.Sprintf("%s: provider %s: %s", pos, p.Name, what))
	}
	return strings.Join(lines, "\n")
}
