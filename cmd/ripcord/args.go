package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/core/config"
)

// cmdArgs are the names a command was given: each must name something the
// config (or, for a release, the store) knows.
type cmdArgs struct {
	Service, Env string
	// Version is a release to promote or roll back to.
	Version string
	// Overrides are gates to skip.
	Overrides []string
	// Set is a backup set.
	Set string
}

// checkArgs refuses, before anything starts, a name the config does not
// know: an unknown service or environment, a gate the environment does not
// have, a backup set it does not watch, or a release the store never
// recorded. The error exits 2 and suggests the closest name. Every
// command that acts on a service and environment calls it, wherever the
// engine runs, so a typo never prints an empty table, never reaches a
// provider, and is never accepted as a no-op.
func checkArgs(ctx context.Context, cfg *config.File, st core.Store, a cmdArgs) error {
	usage := func(format string, args ...any) error {
		return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
	}
	var services, envs []string
	for _, s := range cfg.Services {
		services = append(services, s.Name)
	}
	var env *config.Environment
	for i := range cfg.Environments {
		envs = append(envs, cfg.Environments[i].Name)
		if cfg.Environments[i].Name == a.Env {
			env = &cfg.Environments[i]
		}
	}
	if !slices.Contains(services, a.Service) {
		return usage("no service %q in %s%s services are %s", a.Service, cfg.Path, sep(a.Service, services), strings.Join(services, ", "))
	}
	if env == nil {
		return usage("no environment %q in %s%s environments are %s", a.Env, cfg.Path, sep(a.Env, envs), strings.Join(envs, ", "))
	}
	var gates []string
	for _, g := range env.GateSpecs {
		gates = append(gates, g.Name)
	}
	for _, o := range a.Overrides {
		if slices.Contains(gates, o) {
			continue
		}
		if len(gates) == 0 {
			return usage("--override %s: %s has no gates to override", o, a.Env)
		}
		return usage("--override: %s has no gate %q%s its gates are %s", a.Env, o, sep(o, gates), strings.Join(gates, ", "))
	}
	if a.Set != "" {
		var sets []string
		for _, b := range env.SharedBackups() {
			sets = append(sets, b.Name)
		}
		if pl := env.Placement(a.Service); pl != nil {
			for _, b := range pl.Backups {
				sets = append(sets, b.Name)
			}
		}
		if !slices.Contains(sets, a.Set) {
			if len(sets) == 0 {
				return usage("--set %s: %s has no backup sets for %s", a.Set, a.Env, a.Service)
			}
			return usage("--set: %s has no backup set %q for %s%s its sets are %s", a.Env, a.Set, a.Service, sep(a.Set, sets), strings.Join(sets, ", "))
		}
	}
	if a.Version != "" && st != nil {
		_, err := st.Release(ctx, a.Service, a.Version)
		if errors.Is(err, core.ErrNotFound) {
			var known []string
			if rels, lerr := st.Releases(ctx, a.Service, 50); lerr == nil {
				for _, r := range rels {
					known = append(known, r.Version)
				}
			}
			slices.Sort(known)
			msg := fmt.Sprintf("no release %s of %s is known (no pipeline recorded it)", a.Version, a.Service)
			if len(known) > 0 {
				msg = fmt.Sprintf("no release %s of %s is known (known: %s)%s", a.Version, a.Service, strings.Join(known, ", "), config.DidYouMean(a.Version, known))
			}
			return usage("%s", msg)
		}
		if err != nil {
			return fmt.Errorf("reading release %s of %s: %w", a.Version, a.Service, err)
		}
	}
	return nil
}

// sep is "; did you mean "x"?" or just ";", before the list of names.
func sep(got string, candidates []string) string {
	if s := config.DidYouMean(got, candidates); s != "" {
		return s
	}
	return ";"
}

// checkArgs checks a's names against the config and the releases its
// store records, opening the store only for that. The config's names are
// checked first, and the store only if it exists: a typo never creates
// the project's state.
func (g *globals) checkArgs(ctx context.Context, cfg *config.File, a cmdArgs) error {
	if err := checkArgs(ctx, cfg, nil, a); err != nil || a.Version == "" {
		return err
	}
	st, err := openStore(ctx, cfg, false)
	if err != nil {
		return err
	}
	defer st.Close()
	return checkArgs(ctx, cfg, st, a)
}
