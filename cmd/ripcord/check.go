package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/core/config"
	"github.com/ripcordhq/ripcord/plugins/builtin"
	"github.com/ripcordhq/ripcord/plugins/host"
)

// checkProviders checks every provider block against the settings schema
// its provider publishes, with the settings start-up would send it (the
// file's, plus what the console fills in), and reports each problem at
// its file:line:col. Built-in providers' schemas are compiled in; external
// plugins are started (pinned by ripcord.lock, as at start-up) and asked
// for theirs over the plugin protocol, never configured: checking has no
// side effects. A provider neither built in nor listed under plugins is
// reported too, as start-up would fail on it.
func checkProviders(ctx context.Context, f *config.File) error {
	uses := usedProviders(f)
	registry := builtin.Registry(version)
	external := map[string]bool{}
	for _, p := range f.Plugins {
		external[p.Name] = true
	}
	schemas := map[string]json.RawMessage{}
	var lines []string
	for name, serve := range registry {
		schemas[name] = serve().Info.ConfigSchema
	}
	needed := false
	for _, u := range uses {
		if external[u.name] {
			needed = true
		}
	}
	if needed {
		got, err := externalSchemas(ctx, f)
		for name, s := range got {
			schemas[name] = s
		}
		if err != nil {
			lines = append(lines, f.Redact(err.Error()))
		}
	}
	for _, u := range uses {
		schema, ok := schemas[u.name]
		if !ok {
			if !external[u.name] {
				lines = append(lines, fmt.Sprintf("%s: provider %s is not available in this build: use a built-in (%s) or list a plugin under plugins", u.p.Pos, u.name, strings.Join(builtin.Names(), ", ")))
			}
			continue
		}
		problems, err := config.CheckSettings(schema, u.settings, u.p.BlockKeys...)
		if err != nil {
			lines = append(lines, fmt.Sprintf("%s: provider %s: %v", u.p.Pos, u.name, err))
			continue
		}
		for _, p := range problems {
			lines = append(lines, fmt.Sprintf("%s: provider %s: %s: %s", u.p.SettingAt(p.Path), u.name, p.Path, p.Message))
		}
	}
	if len(lines) == 0 {
		return nil
	}
	return errors.New(strings.Join(lines, "\n"))
}

// externalSchemas starts each external plugin once and reads the settings
// schema it publishes.
func externalSchemas(ctx context.Context, f *config.File) (map[string]json.RawMessage, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding the ripcord binary: %w", err)
	}
	var specs []host.PluginSpec
	for _, p := range f.Plugins {
		specs = append(specs, host.PluginSpec{Name: p.Name, Path: p.Path, Env: p.Env})
	}
	h, err := host.New(host.Options{
		Self: self, Plugins: specs, Workdir: f.Dir,
		LockFile: filepath.Join(f.Dir, host.LockFileName),
		Log:      func(core.LogLine) {},
	})
	if err != nil {
		return nil, err
	}
	defer h.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	startErr := h.Start(ctx)
	infos, err := h.List(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]json.RawMessage{}
	for _, in := range infos {
		if len(in.ConfigSchema) > 0 {
			out[in.Name] = in.ConfigSchema
		}
	}
	if startErr != nil {
		return out, fmt.Errorf("plugins: %w", startErr)
	}
	return out, nil
}
