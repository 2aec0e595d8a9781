package host

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// LockFileName is the lock file's conventional name, next to ripcord.yaml.
const LockFileName = "ripcord.lock"

// Lock is ripcord.lock: the sha256 of every external plugin binary, keyed
// by plugin name. It is JSON so reviews show a readable diff:
//
//	{
//	  "version": 1,
//	  "plugins": {
//	    "kubernetes": {"path": ".ripcord/plugins/ripcord-provider-kubernetes",
//	                   "sha256": "9f3c…"}
//	  }
//	}
//
// path is relative to the lock file's directory when the binary lies
// under it, absolute otherwise. Built-in providers (the ripcord binary
// itself) have no entry.
type Lock struct {
	Version int                  `json:"version"`
	Plugins map[string]LockEntry `json:"plugins"`
}

// LockEntry pins one plugin binary.
type LockEntry struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
}

// ReadLock reads a lock file; a missing file is an empty lock.
func ReadLock(path string) (Lock, error) {
	lock := Lock{Version: 1, Plugins: map[string]LockEntry{}}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return lock, nil
	}
	if err != nil {
		return lock, fmt.Errorf("reading plugin lock %s: %w", path, err)
	}
	if err := json.Unmarshal(data, &lock); err != nil {
		return lock, fmt.Errorf("reading plugin lock %s: %w", path, err)
	}
	if lock.Version != 1 {
		return lock, fmt.Errorf("reading plugin lock %s: unsupported version %d", path, lock.Version)
	}
	if lock.Plugins == nil {
		lock.Plugins = map[string]LockEntry{}
	}
	for name, e := range lock.Plugins {
		if len(e.SHA256) != 64 || strings.Trim(strings.ToLower(e.SHA256), "0123456789abcdef") != "" {
			return lock, fmt.Errorf("reading plugin lock %s: plugin %q: sha256 must be 64 hex digits", path, name)
		}
	}
	return lock, nil
}

// FileSHA256 returns the hex sha256 of a file.
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// WriteLock pins the current binaries of the given external plugins,
// keeping entries for other plugins already in the file. Each spec needs a
// Path (resolve names with Resolve first).
func WriteLock(lockFile string, plugins []PluginSpec) error {
	lock, err := ReadLock(lockFile)
	if err != nil {
		return err
	}
	base := filepath.Dir(lockFile)
	for _, p := range plugins {
		if p.Path == "" {
			return fmt.Errorf("locking plugin %q: no path (plugin not found)", p.Name)
		}
		sum, err := FileSHA256(p.Path)
		if err != nil {
			return fmt.Errorf("locking plugin %q: %w", p.Name, err)
		}
		lock.Plugins[p.Name] = LockEntry{Path: relativeTo(base, p.Path), SHA256: sum}
	}
	data, err := json.MarshalIndent(lock, "", "  ")
	if err != nil {
		return err
	}
	tmp := lockFile + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing plugin lock: %w", err)
	}
	if err := os.Rename(tmp, lockFile); err != nil {
		return fmt.Errorf("writing plugin lock: %w", err)
	}
	return nil
}

func relativeTo(base, path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		return path
	}
	absBase, err := filepath.Abs(base)
	if err != nil {
		return abs
	}
	if rel, err := filepath.Rel(absBase, abs); err == nil && !strings.HasPrefix(rel, "..") {
		return rel
	}
	return abs
}

// ChecksumError is a plugin binary that does not match ripcord.lock, or
// (Builtin) a ripcord binary that is no longer the one that started.
type ChecksumError struct {
	Plugin   string
	Path     string
	Expected string // empty when the plugin has no lock entry
	Actual   string
	Builtin  bool
}

func (e *ChecksumError) Error() string {
	if e.Builtin {
		return fmt.Sprintf("the ripcord binary %s changed since this ripcord started (sha256 %s, now %s): built-in provider %q is not started from it; restart ripcord", e.Path, e.Expected, e.Actual, e.Plugin)
	}
	if e.Expected == "" {
		return fmt.Sprintf("plugin %q (%s) is not in the lock file (sha256 %s); run `ripcord plugins lock` to trust it", e.Plugin, e.Path, e.Actual)
	}
	return fmt.Sprintf("plugin %q (%s) does not match the lock file: expected sha256 %s, actual %s; refusing to start it", e.Plugin, e.Path, e.Expected, e.Actual)
}

// VerifyLock checks every given external plugin against the lock file and
// returns the locked digests by name. Every mismatch is reported (joined),
// each as a *ChecksumError naming the plugin and both digests.
func VerifyLock(lockFile string, plugins []PluginSpec) (map[string][]byte, error) {
	lock, err := ReadLock(lockFile)
	if err != nil {
		return nil, err
	}
	sums := map[string][]byte{}
	var errs []error
	for _, p := range plugins {
		sum, err := verifyOne(lock, p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		sums[p.Name] = sum
	}
	return sums, errors.Join(errs...)
}

func verifyOne(lock Lock, p PluginSpec) ([]byte, error) {
	if p.Path == "" {
		return nil, fmt.Errorf("plugin %q: binary not found", p.Name)
	}
	actual, err := FileSHA256(p.Path)
	if err != nil {
		return nil, fmt.Errorf("plugin %q: hashing %s: %w", p.Name, p.Path, err)
	}
	entry, ok := lock.Plugins[p.Name]
	if !ok {
		// Not pinned by the project: a provider shipped with the release
		// is trusted by the release's own sums.
		if sum, ok := releaseSum(p.Path); ok && sum == actual {
			b, _ := hex.DecodeString(sum)
			return b, nil
		}
		return nil, &ChecksumError{Plugin: p.Name, Path: p.Path, Actual: actual}
	}
	want := strings.ToLower(entry.SHA256)
	if subtle.ConstantTimeCompare([]byte(want), []byte(actual)) != 1 {
		return nil, &ChecksumError{Plugin: p.Name, Path: p.Path, Expected: want, Actual: actual}
	}
	sum, _ := hex.DecodeString(want)
	return sum, nil
}

// ReleaseSumsFile is the file a release writes beside the providers it
// ships: sha256sum's format, one "HEX  NAME" line per binary. The release
// archive or package that carries it is itself listed in the release's
// checksums.txt, so a provider matching it is as trusted as ripcord.
const ReleaseSumsFile = "SHA256SUMS"

// releaseSum is the sha256 the release's SHA256SUMS gives a binary in one
// of the release directories. A directory or sums file that others can
// write vouches for nothing.
func releaseSum(path string) (string, bool) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", false
	}
	dir := filepath.Dir(abs)
	inRelease := false
	for _, d := range ReleaseDirs() {
		inRelease = inRelease || d == dir
	}
	if !inRelease {
		return "", false
	}
	sums := filepath.Join(dir, ReleaseSumsFile)
	for _, p := range []string{dir, sums} {
		st, err := os.Stat(p)
		if err != nil || st.Mode().Perm()&0o022 != 0 {
			return "", false
		}
	}
	data, err := os.ReadFile(sums)
	if err != nil {
		return "", false
	}
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 2 && strings.TrimPrefix(fields[1], "*") == filepath.Base(abs) && len(fields[0]) == 64 {
			return strings.ToLower(fields[0]), true
		}
	}
	return "", false
}

// binaryID is a binary's digest and the file facts it was taken from:
// while they stay the same (same inode, size, modification and change
// times — a write or a rename changes one) the digest is not taken again.
type binaryID struct {
	path   string
	sha256 string // "" until needed, when the file is the running binary
	stat   fileFacts
	// original is where the identified content stays readable should the
	// path be replaced: the running binary's /proc/self/exe.
	original string
}

type fileFacts struct {
	dev, ino     uint64
	size         int64
	mtime, ctime int64
}

func factsOf(path string) (fileFacts, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileFacts{}, err
	}
	f := fileFacts{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	f.dev, f.ino, f.ctime = sysFacts(fi)
	return f, nil
}

func identify(path string) (binaryID, error) {
	facts, err := factsOf(path)
	if err != nil {
		return binaryID{}, err
	}
	sum, err := FileSHA256(path)
	if err != nil {
		return binaryID{}, err
	}
	return binaryID{path: path, sha256: sum, stat: facts}, nil
}

// identifySelf identifies the ripcord binary at path. When the path is
// the running executable itself (same inode), nothing needs hashing at
// start — a running binary cannot be written to, only replaced — and its
// content stays readable through /proc/self/exe for the day it is.
func identifySelf(path string) (binaryID, error) {
	facts, err := factsOf(path)
	if err != nil {
		return binaryID{}, err
	}
	if running, err := factsOf("/proc/self/exe"); err == nil && running.ino != 0 && running.dev == facts.dev && running.ino == facts.ino {
		return binaryID{path: path, stat: facts, original: "/proc/self/exe"}, nil
	}
	return identify(path)
}

// check reports a *ChecksumError when the file is no longer the binary
// identified (for the built-in named plugin).
func (b *binaryID) check(plugin string) error {
	facts, err := factsOf(b.path)
	if err != nil {
		return fmt.Errorf("plugin %q: the ripcord binary %s: %w", plugin, b.path, err)
	}
	if facts == b.stat {
		return nil
	}
	if b.sha256 == "" {
		if b.sha256, err = FileSHA256(b.original); err != nil {
			return fmt.Errorf("plugin %q: hashing the running ripcord binary: %w", plugin, err)
		}
	}
	sum, err := FileSHA256(b.path)
	if err != nil {
		return fmt.Errorf("plugin %q: hashing %s: %w", plugin, b.path, err)
	}
	if sum != b.sha256 {
		return &ChecksumError{Plugin: plugin, Path: b.path, Expected: b.sha256, Actual: sum, Builtin: true}
	}
	return nil
}
