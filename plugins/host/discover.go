package host

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// BinaryPrefix is the file name prefix of external plugin binaries.
const BinaryPrefix = "ripcord-provider-"

// SearchDirs returns where external plugins are looked for, in order: the
// project's ./.ripcord/plugins (relative to workdir), then
// $XDG_DATA_HOME/ripcord/plugins (default ~/.local/share/ripcord/plugins).
func SearchDirs(workdir string) []string {
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
