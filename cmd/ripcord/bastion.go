package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/ripcordhq/ripcord/cmd/ripcord/internal/bastion"
	"github.com/ripcordhq/ripcord/cmd/ripcord/internal/server"
	"github.com/ripcordhq/ripcord/core/config"
	"github.com/ripcordhq/ripcord/tui"
)

// configCheckEvery is how often a server looks at its config file (and
// the authorized_keys files it names) for a change to reload.
const configCheckEvery = time.Second

// startBastion opens the SSH bastion the config asks for: consoles and
// commands over SSH on this server's engine.
func (s *runningServer) startBastion(f *config.File, api server.Options, ready <-chan struct{}, self string) error {
	if self == "" {
		var err error
		if self, err = os.Executable(); err != nil {
			return fmt.Errorf("finding the ripcord binary for the bastion's commands: %w", err)
		}
	}
	cfgPath, err := filepath.Abs(f.Path)
	if err != nil {
		return fmt.Errorf("finding the config: %w", err)
	}
	host, _ := os.Hostname()
	b, err := bastion.Start(bastion.Options{
		Config: f.Bastion, Project: f.Project, Host: host,
		Engine: s.w.eng, Ready: ready, API: api,
		Exe: self, ConfigPath: cfgPath, Socket: strings.TrimSuffix(s.paths.Socket, ".sock") + ".bastion.sock",
		Console: bastionConsole(f),
		Logf:    s.logf,
	})
	if err != nil {
		return err
	}
	s.bastion = b
	return nil
}

// bastionConsole shows the console in an SSH session: the same screen as
// `ripcord console`, as the key's person, drawn at the session's size and
// colour profile.
func bastionConsole(f *config.File) func(ctx context.Context, c bastion.Console) error {
	return func(ctx context.Context, c bastion.Console) error {
		o, err := consoleOptions(f, consoleFlags{})
		if err != nil {
			return err
		}
		o.Actor, o.Permit = c.Actor, c.Permit
		o.Width, o.Height = c.Width, c.Height
		o.Program, o.Resize = c.Program, c.Resize
		// The session's environment, not the server's, says whether the
		// person wants colour.
		for _, kv := range c.Session.Environ() {
			if v, ok := strings.CutPrefix(kv, "NO_COLOR="); ok && v != "" {
				o.NoColor = true
			}
		}
		return tui.Run(ctx, c.Client, o)
	}
}

// watchConfig reloads the config when its file (or an authorized_keys
// file it names) changes, or on SIGHUP: a file that does not load is
// logged and the bastion keeps the operators it has.
func (s *runningServer) watchConfig(ctx context.Context, f *config.File, hup <-chan os.Signal) {
	files := func(f *config.File) []string {
		out := []string{f.Path}
		if f.Bastion != nil {
			for _, o := range f.Bastion.Operators {
				if o.AuthorizedKeys != "" {
					out = append(out, o.AuthorizedKeys)
				}
			}
		}
		return out
	}
	watched := files(f)
	last := fileStamps(watched)
	current := f
	t := time.NewTicker(configCheckEvery)
	defer t.Stop()
	for {
		why := ""
		select {
		case <-ctx.Done():
			return
		case <-hup:
			why = "SIGHUP"
		case <-t.C:
			now := fileStamps(watched)
			if slices.Equal(now, last) {
				continue
			}
			why = "a change of " + strings.Join(changed(watched, last, now), ", ")
			last = now
		}
		nf, err := config.Load(f.Path, config.Options{Providers: config.BuiltinProviders})
		if err != nil {
			s.logf("config reload (%s) refused, the bastion keeps its operators: %s", why, current.Redact(err.Error()))
			s.reloads.Add(1)
			continue
		}
		watched, last = files(nf), fileStamps(files(nf))
		s.applyConfig(current, nf, why)
		current = nf
	}
}

// applyConfig takes what a reloaded config changes in a running server:
// the bastion's operators and session limits.
func (s *runningServer) applyConfig(old, nf *config.File, why string) {
	defer s.reloads.Add(1)
	switch {
	case s.bastion == nil && nf.Bastion != nil:
		s.logf("config reloaded (%s): the bastion is configured now; restart the server to open it", why)
		return
	case s.bastion == nil:
		s.logf("config reloaded (%s): nothing a running server takes changed (other settings apply at the next start)", why)
		return
	}
	b := nf.Bastion
	if b == nil {
		// No operators: every key is refused from the next key press;
		// the listener itself goes at the next start.
		b = &config.Bastion{MaxSessions: 1, MaxSessionsPerKey: 1}
	}
	if err := s.bastion.Apply(b); err != nil {
		s.logf("config reload (%s) refused, the bastion keeps its operators: %s", why, nf.Redact(err.Error()))
		return
	}
	ops := s.bastion.Operators()
	s.logf("config reloaded (%s): the bastion has %d people with %d keys", why, ops.People(), ops.Keys())
	if ob := old.Bastion; ob != nil && (nf.Bastion == nil || ob.Listen != nf.Bastion.Listen || ob.HostKey != nf.Bastion.HostKey || ob.IdleTimeout != nf.Bastion.IdleTimeout) {
		s.logf("the bastion's listen, host_key and idle_timeout apply at the next start of the server")
	}
}

// fileStamps is what tells a changed file: size, modification time and
// inode (an editor that writes a new file and renames it over the old).
func fileStamps(paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			out[i] = "missing"
			continue
		}
		out[i] = fmt.Sprintf("%d/%d/%s", fi.Size(), fi.ModTime().UnixNano(), inodeOf(fi))
	}
	return out
}

func changed(paths, before, after []string) []string {
	var out []string
	for i := range paths {
		if i >= len(before) || before[i] != after[i] {
			out = append(out, paths[i])
		}
	}
	return out
}

func inodeOf(fi os.FileInfo) string {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return fmt.Sprint(st.Ino)
	}
	return ""
}
