// Package toolrun runs a backup tool's binary the way every backup provider
// needs it run: with an environment built from scratch (secrets go through
// the child's environment, never its argv), no terminal and no stdin to
// prompt on, output capped, and the whole process group killed when the
// context ends.
package toolrun

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// DefaultMaxOutput caps each of stdout and stderr. A snapshot list of a
// large repository is a few MiB; anything beyond this is a misbehaving tool.
const DefaultMaxOutput = 16 << 20

// ErrNotFound is wrapped by the error Run returns when the binary is missing.
var ErrNotFound = errors.New("binary not found")

// Spec describes one run of a tool.
type Spec struct {
	// Tool names the tool in messages ("restic").
	Tool string
	// Binary is a name looked up in PATH or a path; default Tool.
	Binary string
	// Package is the Debian package that provides the binary, named in the
	// message when it is missing.
	Package string
	// Wrapper is a command prefix the tool runs under, such as
	// ["runuser", "-u", "postgres", "--"].
	Wrapper []string
	Args    []string
	// Env is added to the child's minimal environment (PATH, LC_ALL=C,
	// TZ=UTC); the console's own environment is not inherited, so a
	// RESTIC_PASSWORD or BORG_PASSPHRASE of the person running the console
	// never reaches a tool by accident.
	Env []string
	Dir string
	// Secrets are replaced by "***" in captured output, in case a tool
	// ever echoes one back.
	Secrets []string
	// MaxOutput caps each stream; default DefaultMaxOutput.
	MaxOutput int
	// OnStart, when set, is called with the child's pid after it started
	// and before it is waited for, so the process cannot have been reaped.
	OnStart func(pid int)
}

// Result is what a finished run produced.
type Result struct {
	Stdout []byte
	// Stderr keeps the end of the stream when it was capped: tools print
	// their fatal message last.
	Stderr          []byte
	ExitCode        int
	StdoutTruncated bool
}

// NotFoundMessage is the state a provider reports for a missing binary.
func (s Spec) NotFoundMessage() string {
	bin := s.binary()
	where := "in PATH"
	if strings.ContainsRune(bin, os.PathSeparator) {
		where = "at " + bin
	}
	msg := fmt.Sprintf("%s: binary not found %s", s.Tool, where)
	if s.Package != "" {
		msg += fmt.Sprintf(" (Debian package %s)", s.Package)
	}
	return msg
}

func (s Spec) binary() string {
	if s.Binary != "" {
		return s.Binary
	}
	return s.Tool
}

// Command builds the exec.Cmd Run would start, so callers and tests can see
// exactly which argv and environment a tool gets.
func Command(ctx context.Context, s Spec) (*exec.Cmd, error) {
	path, err := exec.LookPath(s.binary())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.NotFoundMessage(), ErrNotFound)
	}
	argv := append([]string{path}, s.Args...)
	if len(s.Wrapper) > 0 {
		wrapper, err := exec.LookPath(s.Wrapper[0])
		if err != nil {
			return nil, fmt.Errorf("%s: wrapper %s not found: %w", s.Tool, s.Wrapper[0], ErrNotFound)
		}
		argv = append(append([]string{wrapper}, s.Wrapper[1:]...), argv...)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = s.Dir
	cmd.Env = append(baseEnv(), s.Env...)
	// Stdin stays nil, which os/exec connects to /dev/null; Setsid drops
	// the controlling terminal so a tool that opens /dev/tty to ask for a
	// passphrase gets an error instead of stealing the console's screen.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Cancel = func() error {
		// The session leader's pid is its process group id: end the tool
		// and anything it spawned. SIGTERM first lets restic and borg
		// remove their locks; WaitDelay follows up with SIGKILL.
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	}
	cmd.WaitDelay = 5 * time.Second
	return cmd, nil
}

func baseEnv() []string {
	path := os.Getenv("PATH")
	if path == "" {
		path = "/usr/local/bin:/usr/bin:/bin"
	}
	return []string{"PATH=" + path, "LC_ALL=C", "TZ=UTC"}
}

// Run runs the tool to completion. A non-zero exit is not an error: the
// Result carries the code and the caller decides what it means. Errors are
// a missing binary (wrapping ErrNotFound), a failure to start, or the
// context ending.
func Run(ctx context.Context, s Spec) (Result, error) {
	cmd, err := Command(ctx, s)
	if err != nil {
		return Result{}, err
	}
	limit := s.MaxOutput
	if limit <= 0 {
		limit = DefaultMaxOutput
	}
	stdout := &headBuffer{max: limit}
	stderr := &tailBuffer{max: limit}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		return Result{}, fmt.Errorf("%s: starting %s: %w", s.Tool, s.binary(), err)
	}
	if s.OnStart != nil {
		s.OnStart(cmd.Process.Pid)
	}
	werr := cmd.Wait()
	res := Result{
		Stdout:          redact(stdout.buf.Bytes(), s.Secrets),
		Stderr:          redact(stderr.bytes(), s.Secrets),
		StdoutTruncated: stdout.truncated,
		ExitCode:        cmd.ProcessState.ExitCode(),
	}
	if ctx.Err() != nil {
		return res, fmt.Errorf("%s %s: %w", s.Tool, firstArg(s.Args), ctx.Err())
	}
	var exitErr *exec.ExitError
	if werr != nil && !errors.As(werr, &exitErr) {
		return res, fmt.Errorf("%s %s: %w", s.Tool, firstArg(s.Args), werr)
	}
	return res, nil
}

func firstArg(args []string) string {
	for _, a := range args {
		if !strings.HasPrefix(a, "-") {
			return a
		}
	}
	return ""
}

func redact(b []byte, secrets []string) []byte {
	for _, s := range secrets {
		if s != "" {
			b = bytes.ReplaceAll(b, []byte(s), []byte("***"))
		}
	}
	return b
}

// headBuffer keeps the first max bytes: a cut JSON document then fails to
// parse, which is reported, rather than growing without bound.
type headBuffer struct {
	buf       bytes.Buffer
	max       int
	truncated bool
}

func (h *headBuffer) Write(p []byte) (int, error) {
	if room := h.max - h.buf.Len(); room < len(p) {
		h.truncated = true
		if room > 0 {
			h.buf.Write(p[:room])
		}
		return len(p), nil
	}
	return h.buf.Write(p)
}

// tailBuffer keeps the last max bytes.
type tailBuffer struct {
	b   []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 2*t.max {
		t.b = append(t.b[:0:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) bytes() []byte {
	if len(t.b) > t.max {
		return t.b[len(t.b)-t.max:]
	}
	return t.b
}

// Message condenses a tool's stderr into one line for a person: the last
// line starting with one of prefixes (such as "Fatal: "), without the
// prefix, or else the last non-empty line.
func Message(stderr []byte, prefixes ...string) string {
	lines := strings.Split(strings.TrimSpace(string(stderr)), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		for _, p := range prefixes {
			if strings.HasPrefix(l, p) {
				return strings.TrimSpace(strings.TrimPrefix(l, p))
			}
		}
	}
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			return l
		}
	}
	return ""
}

// CacheDir is a tool's private cache for one backup set, under the user's
// cache directory (or the temp dir where there is none).
func CacheDir(tool, set string) string {
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	return filepath.Join(base, "ripcord", tool, set)
}

// CheckSet refuses a backup set other than the one a provider watches:
// each provider instance serves one set, named in its settings.
func CheckSet(tool, watched, asked string) error {
	if asked != watched {
		return fmt.Errorf("%s: unknown backup set %q (this provider watches %q)", tool, asked, watched)
	}
	return nil
}
