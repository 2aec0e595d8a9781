package local

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// layout is the Capistrano-style tree under an environment's root:
//
//	releases/<version>/<artifact>       the release's artifact
//	releases/<version>/release.json     written last: its presence marks a complete release
//	current -> releases/<version>       swapped atomically (current.tmp, then rename(2))
//	shared/                             data that survives releases
//	run/<version>.json, .stdout, .stderr pidfile and output of a running release
//	run/proxy.sock, run/proxy.log      the proxy process's control socket and output
//	proxy.json                          the proxy process: pid, address, control socket
//	target.lock                         held by the one target managing the root
//	ops/<key>.jsonl                     recorded operation events (idempotency, re-attach)
//	state.json                          stable, candidate, weight, history
type layout struct {
	root         string
	artifactName string
}

const (
	manifestName = "release.json"
	currentName  = "current"
	currentTmp   = "current.tmp"
)

func (l layout) releasesDir() string           { return filepath.Join(l.root, "releases") }
func (l layout) releaseDir(v string) string    { return filepath.Join(l.root, "releases", v) }
func (l layout) artifactPath(v string) string  { return filepath.Join(l.releaseDir(v), l.artifactName) }
func (l layout) manifestPath(v string) string  { return filepath.Join(l.releaseDir(v), manifestName) }
func (l layout) sharedDir() string             { return filepath.Join(l.root, "shared") }
func (l layout) runDir() string                { return filepath.Join(l.root, "run") }
func (l layout) opsDir() string                { return filepath.Join(l.root, "ops") }
func (l layout) statePath() string             { return filepath.Join(l.root, "state.json") }
func (l layout) pidfilePath(v string) string   { return filepath.Join(l.runDir(), v+".json") }
func (l layout) outputPath(v, s string) string { return filepath.Join(l.runDir(), v+"."+s) }

func (l layout) ensure() error {
	for _, d := range []string{l.root, l.releasesDir(), l.sharedDir(), l.runDir(), l.opsDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	return nil
}

// manifest describes an installed release. It is written after the
// artifact has been copied and verified, so a release directory without it
// is an interrupted install.
type manifest struct {
	Version     string    `json:"version"`
	Digest      string    `json:"digest"`
	Size        int64     `json:"size"`
	InstalledAt time.Time `json:"installed_at"`
}

// validVersion keeps versions usable as one directory name.
func validVersion(v string) error {
	if v == "" || v == "." || v == ".." || strings.ContainsAny(v, "/\\\x00") || strings.HasPrefix(v, ".") {
		return fmt.Errorf("version %q cannot name a release directory", v)
	}
	return nil
}

// digestHex returns the hex part of "sha256:<hex>".
func digestHex(digest string) (string, error) {
	h, ok := strings.CutPrefix(digest, "sha256:")
	if !ok || len(h) != 64 {
		return "", fmt.Errorf("artifact digest %q is not sha256:<64 hex>", digest)
	}
	if _, err := hex.DecodeString(h); err != nil {
		return "", fmt.Errorf("artifact digest %q is not sha256:<64 hex>", digest)
	}
	return strings.ToLower(h), nil
}

// install copies the artifact named by digest from the store into the
// release directory, verifying its sha256 before anything can run it, and
// writes the manifest last. Installing the same version with the same
// digest again is a no-op.
func (l layout) install(store, version, digest string) (manifest, error) {
	want, err := digestHex(digest)
	if err != nil {
		return manifest{}, err
	}
	if m, err := l.readManifest(version); err == nil {
		if m.Digest != "sha256:"+want {
			return manifest{}, fmt.Errorf("release %s is already installed with artifact %s, not %s", version, m.Digest, digest)
		}
		if st, err := os.Stat(l.artifactPath(version)); err == nil && st.Size() == m.Size {
			return m, nil
		}
	}
	if err := os.MkdirAll(l.releaseDir(version), 0o755); err != nil {
		return manifest{}, fmt.Errorf("create release directory: %w", err)
	}
	src, err := os.Open(filepath.Join(store, want))
	if err != nil {
		return manifest{}, fmt.Errorf("open artifact %s in the artifact store: %w", digest, err)
	}
	defer src.Close()
	dst := l.artifactPath(version)
	tmp, err := os.OpenFile(dst+".tmp", os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o755)
	if err != nil {
		return manifest{}, fmt.Errorf("create artifact copy: %w", err)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), src)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp.Name())
		return manifest{}, fmt.Errorf("copy artifact %s: %w", digest, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		os.Remove(tmp.Name())
		return manifest{}, fmt.Errorf("artifact copy has sha256:%s, release says %s: refusing to install", got, digest)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return manifest{}, fmt.Errorf("install artifact: %w", err)
	}
	m := manifest{Version: version, Digest: "sha256:" + want, Size: n, InstalledAt: time.Now().UTC()}
	if err := writeJSONAtomic(l.manifestPath(version), m); err != nil {
		return manifest{}, fmt.Errorf("write release manifest: %w", err)
	}
	return m, nil
}

func (l layout) readManifest(version string) (manifest, error) {
	var m manifest
	b, err := os.ReadFile(l.manifestPath(version))
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("read manifest of %s: %w", version, err)
	}
	return m, nil
}

// complete reports whether a release is installed with its artifact intact
// (by size: hashing every release at start-up would be slow for big
// artifacts, and the hash was verified at install).
func (l layout) complete(version string) error {
	m, err := l.readManifest(version)
	if err != nil {
		return fmt.Errorf("release %s has no manifest (install interrupted)", version)
	}
	st, err := os.Stat(l.artifactPath(version))
	if err != nil {
		return fmt.Errorf("release %s has no artifact", version)
	}
	if st.Size() != m.Size {
		return fmt.Errorf("release %s artifact is %d bytes, manifest says %d", version, st.Size(), m.Size)
	}
	return nil
}

// installed lists the complete releases, oldest install first, and the
// directories that are not complete releases.
func (l layout) installed() (complete []manifest, broken []string, err error) {
	entries, err := os.ReadDir(l.releasesDir())
	if err != nil {
		return nil, nil, fmt.Errorf("list releases: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if l.complete(e.Name()) != nil {
			broken = append(broken, e.Name())
			continue
		}
		m, _ := l.readManifest(e.Name())
		complete = append(complete, m)
	}
	sort.Slice(complete, func(i, j int) bool { return complete[i].InstalledAt.Before(complete[j].InstalledAt) })
	return complete, broken, nil
}

// currentVersion reads the current link; "" when there is none.
func (l layout) currentVersion() (string, error) {
	return l.linkVersion(currentName)
}

func (l layout) linkVersion(name string) (string, error) {
	dest, err := os.Readlink(filepath.Join(l.root, name))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read %s link: %w", name, err)
	}
	return filepath.Base(dest), nil
}

// switchCurrent points current at a release atomically: a new link is
// written as current.tmp and renamed over current, so a reader (or a crash)
// sees either the old target or the new, never a missing link.
func (l layout) switchCurrent(version string) error {
	tmp := filepath.Join(l.root, currentTmp)
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale %s: %w", currentTmp, err)
	}
	if err := os.Symlink(filepath.Join("releases", version), tmp); err != nil {
		return fmt.Errorf("link %s: %w", currentTmp, err)
	}
	hook("current.tmp-linked")
	if err := os.Rename(tmp, filepath.Join(l.root, currentName)); err != nil {
		return fmt.Errorf("rename %s over %s: %w", currentTmp, currentName, err)
	}
	return syncDir(l.root)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func writeJSONAtomic(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// testHook, when set by a test, is called at named points of an operation
// so a test can crash the process exactly there.
var testHook func(point string)

func hook(point string) {
	if testHook != nil {
		testHook(point)
	}
}
