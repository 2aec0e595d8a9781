package host

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// BinaryPrefix is the file name prefix of external plugin binaries.
const BinaryPrefix = "ripcord-provider-"

// SearchDirs returns where external plugins are looked for, in order: the
// project's ./.ripcord/plugins (relative to workdir), then
// $XDG_DATA_HOME/ripcord/plugins (default ~/.local/share/ripcord/plugins),
// then the release's plugin directories (ReleaseDirs).
func SearchDirs(workdir string) []string {
	dirs := userSearchDirs(workdir)
	for _, d := range ReleaseDirs() {
		if !slices.Contains(dirs, d) {
			dirs = append(dirs, d)
		}
	}
	return dirs
}

// executable is the running binary (a variable so tests can place a
// release layout around a binary of their own).
var executable = os.Executable

// ReleaseDirs are where a Ripcord release puts the providers it ships,
// relative to the ripcord binary: plugins/ beside it (the archive) and
// ../lib/ripcord/plugins (the deb and rpm packages: /usr/bin/ripcord and
// /usr/lib/ripcord/plugins). A plugin there is trusted by the SHA256SUMS
// file the release wrote beside it (see VerifyLock).
func ReleaseDirs() []string {
	exe, err := executable()
	if err != nil {
		return nil
	}
	if resolved, err := filepath.EvalSymlinks(exe); err == nil {
		exe = resolved
	}
	dir := filepath.Dir(exe)
	return []string{filepath.Join(dir, "plugins"), filepath.Clean(filepath.Join(dir, "..", "lib", "ripcord", "plugins"))}
}

func userSearchDirs(workdir string) []string {
	dirs := []string{filepath.Join(workdir, ".ripcord", "plugins")}
	data := os.Getenv("XDG_DATA_HOME")
	if data == "" {
		if home, err := os.UserHomeDir(); err == nil {
			data = filepath.Join(home, ".local", "share")
		}
	}
	if data != "" {
		dirs = append(dirs, filepath.Join(data, "ripcord", "plugins"))
	}
	return dirs
}

// Discover lists the executable ripcord-provider-NAME files in dirs; a name
// found in an earlier directory wins over a later one.
func Discover(dirs []string) []PluginSpec {
	seen := map[string]bool{}
	var out []PluginSpec
	for _, dir := range dirs {
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range entries {
			name, ok := strings.CutPrefix(e.Name(), BinaryPrefix)
			if !ok || name == "" || seen[name] || e.IsDir() {
				continue
			}
			path := filepath.Join(dir, e.Name())
			if !isExecutable(path) {
				continue
			}
			seen[name] = true
			out = append(out, PluginSpec{Name: name, Path: path})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Resolve fills in the Path of specs that name only a plugin, searching
// dirs; explicit paths are kept (a leading ~/ is expanded).
func Resolve(specs []PluginSpec, dirs []string) ([]PluginSpec, error) {
	found := map[string]string{}
	for _, p := range Discover(dirs) {
		found[p.Name] = p.Path
	}
	out := make([]PluginSpec, len(specs))
	for i, s := range specs {
		if s.Path == "" {
			path, ok := found[s.Name]
			if !ok {
				return nil, fmt.Errorf("plugin %q: no %s%s in %s", s.Name, BinaryPrefix, s.Name, strings.Join(dirs, ", "))
			}
			s.Path = path
		} else if rest, ok := strings.CutPrefix(s.Path, "~/"); ok {
			if home, err := os.UserHomeDir(); err == nil {
				s.Path = filepath.Join(home, rest)
			}
		}
		out[i] = s
	}
	return out, nil
}

func isExecutable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}
