package ssh

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
)

// The tree under a host's root:
//
//	releases/<version>-<digest12>/<artifact>        the uploaded artifact
//	releases/<version>-<digest12>/.ripcord-release.json  written last: a complete release
//	current -> releases/<version>-<digest12>       switched by renaming current.tmp over it
//	shared/                                        data that outlives releases
//	.ripcord/ops/<op>.json                         one marker per operation that touched the host
const (
	currentName  = "current"
	currentTmp   = "current.tmp"
	manifestName = ".ripcord-release.json"
	markerDir    = ".ripcord/ops"
	maxMarkers   = 200
)

// manifest describes a release installed on a host.
type manifest struct {
	Version     string    `json:"version"`
	Digest      string    `json:"digest"`
	Size        int64     `json:"size"`
	InstalledAt time.Time `json:"installed_at"`
}

// marker is a host's record of one operation's part on it.
type marker struct {
	Op      string    `json:"op"`
	Action  string    `json:"action"`
	From    string    `json:"from,omitempty"`
	To      string    `json:"to"`
	State   string    `json:"state"` // switching, restarting, done, failed
	Message string    `json:"message,omitempty"`
	At      time.Time `json:"at"`
}

var releaseDirRE = regexp.MustCompile(`^(.+)-([0-9a-f]{12})$`)

// releaseDir names a release's directory: version and the first 12 hex
// digits of its artifact's sha256, so a version rebuilt with other bytes
// never overwrites the one that ran.
func releaseDir(version, digestHex string) string { return version + "-" + digestHex[:12] }

func versionOf(dir string) string {
	if m := releaseDirRE.FindStringSubmatch(dir); m != nil {
		return m[1]
	}
	return dir
}

// validVersion keeps versions usable as one directory name.
func validVersion(v string) error {
	if v == "" || v == "." || v == ".." || strings.ContainsAny(v, "/\\\x00'\"\n") || strings.HasPrefix(v, ".") || strings.HasPrefix(v, "-") {
		return fmt.Errorf("version %q cannot name a release directory", v)
	}
	return nil
}

func markerName(opID string) string {
	sum := sha256.Sum256([]byte(opID))
	return hex.EncodeToString(sum[:12]) + ".json"
}

// hostFacts is what one probe of a host found.
type hostFacts struct {
	current     string   // version
	currentDir  string   // release directory
	releases    []string // complete releases, newest first (versions)
	releaseDirs []string // their directories
	problems    []string
}

// readHost reads the current link, the complete releases and the
// operations the host did not finish, in one command.
func (t *Target) readHost(ctx context.Context, h Host) (hostFacts, error) {
	var f hostFacts
	script := fmt.Sprintf(`cd %s 2>/dev/null || { echo noroot; exit 0; }
printf 'current=%%s\n' "$(readlink current 2>/dev/null)"
[ -e current.tmp ] || [ -L current.tmp ] && printf 'stale=%%s\n' "$(readlink current.tmp 2>/dev/null)"
for d in $(ls -1t releases 2>/dev/null); do
  if [ -f "releases/$d/%s" ]; then printf 'release=%%s\n' "$d"; else printf 'partial=%%s\n' "$d"; fi
done
# Operations newer than the last one this host finished, newest first.
for m in $(ls -1t %s/*.json 2>/dev/null); do
  grep -q '"state":"done"' "$m" && break
  printf 'open=%%s\n' "$(cat "$m")"
done
`, shellQuote(h.Root), manifestName, markerDir)
	var r result
	err := t.withConn(ctx, h, func(c *conn) error {
		var err error
		r, err = c.run(ctx, script)
		return err
	})
	if err != nil {
		return f, err
	}
	if r.code != 0 {
		return f, fmt.Errorf("reading %s failed (exit %d): %s", h.Root, r.code, tail(r.stderr))
	}
	for _, line := range strings.Split(r.stdout, "\n") {
		k, v, _ := strings.Cut(line, "=")
		switch k {
		case "noroot":
		case "current":
			if v != "" {
				f.currentDir = path.Base(v)
				f.current = versionOf(f.currentDir)
			}
		case "stale":
			f.problems = append(f.problems, fmt.Sprintf("a %s (-> %s) was left by an interrupted switch; current was not changed", currentTmp, v))
		case "release":
			f.releases = append(f.releases, versionOf(v))
			f.releaseDirs = append(f.releaseDirs, v)
		case "partial":
			f.problems = append(f.problems, fmt.Sprintf("releases/%s is not a complete release (upload interrupted)", v))
		case "open":
			var m marker
			if json.Unmarshal([]byte(v), &m) == nil {
				f.problems = append(f.problems, fmt.Sprintf("%s to %s stopped at %q (%s)%s", m.Action, m.To, m.State, m.At.Format(time.RFC3339), suffix(m.Message)))
			}
		}
	}
	return f, nil
}

func suffix(s string) string {
	if s == "" {
		return ""
	}
	return ": " + s
}

// install puts the release on the host unless it is there with the right
// bytes: upload to a partial file, hash it on the host, and only then
// move it into place and write the manifest.
func (t *Target) install(ctx context.Context, h Host, c *conn, version, digest string, step func(string)) error {
	local, want, err := t.artifact(digest)
	if err != nil {
		return err
	}
	dir := path.Join(h.Root, "releases", releaseDir(version, want))
	art := path.Join(dir, t.cfg.ArtifactName)
	if got, err := c.remoteSHA256(ctx, art); err == nil && got == want {
		if _, err := c.sftpStat(path.Join(dir, manifestName)); err == nil {
			step("already installed, sha256 verified on the host")
			return nil
		}
	}
	s, err := c.sftpClient()
	if err != nil {
		return err
	}
	for _, d := range []string{dir, path.Join(h.Root, "shared"), path.Join(h.Root, markerDir)} {
		if err := s.MkdirAll(d); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	src, err := os.Open(local)
	if err != nil {
		return err
	}
	defer src.Close()
	part := art + ".part"
	dst, err := s.OpenFile(part, os.O_CREATE|os.O_TRUNC|os.O_WRONLY)
	if err != nil {
		return fmt.Errorf("upload %s: %w", part, err)
	}
	n, err := io.Copy(dst, src)
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("upload %s: %w", part, err)
	}
	step(fmt.Sprintf("uploaded %d bytes", n))
	got, err := c.remoteSHA256(ctx, part)
	if err != nil {
		return err
	}
	if got != want {
		_ = s.Remove(part)
		return fmt.Errorf("uploaded artifact has sha256:%s on the host, the release says sha256:%s: refusing to install", got, want)
	}
	if err := s.Chmod(part, 0o755); err != nil {
		return fmt.Errorf("chmod %s: %w", part, err)
	}
	if err := s.PosixRename(part, art); err != nil {
		return fmt.Errorf("move %s into place: %w", art, err)
	}
	m, _ := json.Marshal(manifest{Version: version, Digest: "sha256:" + want, Size: n, InstalledAt: time.Now().UTC()})
	if err := c.writeFile(path.Join(dir, manifestName), m); err != nil {
		return fmt.Errorf("write release manifest: %w", err)
	}
	step("sha256 verified on the host")
	return nil
}

// remoteSHA256 hashes a file on the host with its own sha256sum (or
// shasum where coreutils are missing).
func (c *conn) remoteSHA256(ctx context.Context, file string) (string, error) {
	q := shellQuote(file)
	r, err := c.run(ctx, fmt.Sprintf(`[ -f %s ] || exit 3
if command -v sha256sum >/dev/null 2>&1; then sha256sum %s; else shasum -a 256 %s; fi`, q, q, q))
	if err != nil {
		return "", err
	}
	if r.code == 3 {
		return "", os.ErrNotExist
	}
	if r.code != 0 {
		return "", fmt.Errorf("sha256 of %s on the host failed (exit %d): %s", file, r.code, tail(r.stderr))
	}
	sum, _, _ := strings.Cut(strings.TrimSpace(r.stdout), " ")
	return strings.ToLower(sum), nil
}

func (c *conn) sftpStat(p string) (os.FileInfo, error) {
	s, err := c.sftpClient()
	if err != nil {
		return nil, err
	}
	return s.Stat(p)
}

// writeFile writes data to p atomically (a temporary file renamed over
// it).
func (c *conn) writeFile(p string, data []byte) error {
	s, err := c.sftpClient()
	if err != nil {
		return err
	}
	tmp := p + ".tmp"
	f, err := s.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return s.PosixRename(tmp, p)
}

// switchCurrent points current at a release directory atomically: a new
// link current.tmp is renamed over current (posix-rename), so the host
// never has no current link, even if the connection drops between the
// two.
func (c *conn) switchCurrent(root, dir string) error {
	s, err := c.sftpClient()
	if err != nil {
		return err
	}
	tmp := path.Join(root, currentTmp)
	if err := s.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale %s: %w", currentTmp, err)
	}
	if err := s.Symlink(path.Join("releases", dir), tmp); err != nil {
		return fmt.Errorf("link %s: %w", currentTmp, err)
	}
	if err := s.PosixRename(tmp, path.Join(root, currentName)); err != nil {
		return fmt.Errorf("rename %s over %s: %w", currentTmp, currentName, err)
	}
	return nil
}

// writeMarker records the host's part of an operation.
func (c *conn) writeMarker(root string, m marker) error {
	m.At = time.Now().UTC()
	b, _ := json.Marshal(m)
	return c.writeFile(path.Join(root, markerDir, markerName(m.Op)), b)
}

// readMarker returns the host's record of an operation, if any.
func (c *conn) readMarker(root, opID string) (marker, bool) {
	s, err := c.sftpClient()
	if err != nil {
		return marker{}, false
	}
	f, err := s.Open(path.Join(root, markerDir, markerName(opID)))
	if err != nil {
		return marker{}, false
	}
	defer f.Close()
	var m marker
	if json.NewDecoder(io.LimitReader(f, 64<<10)).Decode(&m) != nil {
		return marker{}, false
	}
	return m, true
}

// runScript runs command on the host in dir with env set, for at most
// timeout.
func (c *conn) runScript(ctx context.Context, dir string, env map[string]string, command string, timeout time.Duration) (result, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var b strings.Builder
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "export %s=%s\n", k, shellQuote(env[k]))
	}
	fmt.Fprintf(&b, "cd %s || exit 97\n%s\n", shellQuote(dir), command)
	r, err := c.runGroup(ctx, b.String())
	if errors.Is(err, context.DeadlineExceeded) {
		return r, fmt.Errorf("did not finish within %s: %w", timeout, err)
	}
	return r, err
}

// prune removes releases beyond keep on the host, never one in protect.
func (t *Target) prune(ctx context.Context, h Host, c *conn, protect []string) ([]string, error) {
	facts, err := t.readHost(ctx, h)
	if err != nil {
		return nil, err
	}
	var remove []string
	kept := 0
	for i, v := range facts.releases {
		switch {
		case slices.Contains(protect, v) || facts.releaseDirs[i] == facts.currentDir:
			kept++
		case kept < t.cfg.Keep:
			kept++
		default:
			remove = append(remove, facts.releaseDirs[i])
			continue
		}
	}
	if len(remove) == 0 {
		return nil, nil
	}
	var args []string
	for _, d := range remove {
		args = append(args, shellQuote(path.Join(h.Root, "releases", d)))
	}
	// Markers of old operations go too, newest maxMarkers kept.
	script := fmt.Sprintf("rm -rf %s\ncd %s 2>/dev/null && ls -1t | tail -n +%d | xargs -r rm -f\n",
		strings.Join(args, " "), shellQuote(path.Join(h.Root, markerDir)), maxMarkers+1)
	r, err := c.run(ctx, script)
	if err != nil {
		return nil, err
	}
	if r.code != 0 {
		return nil, fmt.Errorf("remove old releases: %s", tail(r.stderr))
	}
	return remove, nil
}

// tail is the last lines of a command's output, for an error message.
func tail(s string) string {
	s = strings.TrimSpace(s)
	lines := strings.Split(s, "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	s = strings.Join(lines, " | ")
	if len(s) > 600 {
		s = "…" + s[len(s)-600:]
	}
	if s == "" {
		return "(no output)"
	}
	return s
}
