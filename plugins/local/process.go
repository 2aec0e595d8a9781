package local

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/core/procid"
)

// process is one running release. Its output goes to files under run/ and
// not to pipes, so the service outlives a provider crash (a dead reader
// would kill it with SIGPIPE) and a restarted provider can adopt it.
type process struct {
	version string
	port    int
	pid     int // also the process group id (Setpgid)
	// ident names the process beyond its pid (start time, boot): a
	// process is signalled only while it is still the one started here.
	ident   procid.ID
	exe     string // the executable it ran when started
	adopted bool
	exited  chan struct{} // closed once the process has ended
	be      *backend      // its proxy backend, made on first use (under Target.mu)
}

// pidfile lets a restarted provider find processes started earlier. A
// pid alone proves nothing — the kernel hands it to another process once
// the release's ends — so the file also records the process's start time
// (from /proc/PID/stat) and its executable.
type pidfile struct {
	Version string    `json:"version"`
	Pid     int       `json:"pid"`
	Port    int       `json:"port"`
	Started time.Time `json:"started"`
	Process procid.ID `json:"process,omitzero"`
	Exe     string    `json:"exe,omitempty"`
}

// runSpec is what the run command template sees.
type runSpec struct {
	Port     int
	Version  string
	Artifact string
	Dir      string
	Shared   string
}

// shellSyntax lists characters that need a shell; a command without them
// runs directly, so the service is the process group leader and signals
// reach it without an intermediate sh.
const shellSyntax = "|&;<>()$`\\\"'*?[#~=%{}\n"

func (t *Target) startProcess(version string) (*process, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	spec := runSpec{
		Port: port, Version: version, Dir: t.lay.releaseDir(version),
		Artifact: t.lay.artifactPath(version), Shared: t.lay.sharedDir(),
	}
	var cmdline bytes.Buffer
	if err := t.run.Execute(&cmdline, spec); err != nil {
		return nil, fmt.Errorf("expand run command: %w", err)
	}
	line := cmdline.String()
	var cmd *exec.Cmd
	if fields := strings.Fields(line); !strings.ContainsAny(line, shellSyntax) && len(fields) > 0 {
		cmd = exec.Command(fields[0], fields[1:]...)
	} else {
		cmd = exec.Command("/bin/sh", "-c", line)
	}
	cmd.Dir = spec.Dir
	cmd.Env = releaseEnv(t.cfg.Env, port, version, spec.Shared)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var outs [2]*os.File
	for i, stream := range []string{"stdout", "stderr"} {
		f, err := os.OpenFile(t.lay.outputPath(version, stream), os.O_CREATE|os.O_TRUNC|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("open %s of %s: %w", stream, version, err)
		}
		defer f.Close()
		outs[i] = f
	}
	cmd.Stdout, cmd.Stderr = outs[0], outs[1]
	// The release runs only once its pidfile names it (see gated).
	exe, open, shut, err := gated(cmd)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", version, err)
	}
	if err := cmd.Start(); err != nil {
		shut()
		return nil, fmt.Errorf("start %s: %w", version, err)
	}
	p := &process{version: version, port: port, pid: cmd.Process.Pid, exe: exe, exited: make(chan struct{})}
	// Read before anything can reap it: until Wait, the pid is ours.
	p.ident, _ = procid.Of(p.pid)
	go func() {
		_ = cmd.Wait()
		close(p.exited)
	}()
	hook("release.started")
	if err := writeJSONAtomic(t.lay.pidfilePath(version), pidfile{Version: version, Pid: p.pid, Port: port, Started: time.Now().UTC(), Process: p.ident, Exe: p.exe}); err != nil {
		shut()
		t.stopProcess(p)
		return nil, fmt.Errorf("write pidfile of %s: %w", version, err)
	}
	if err := open(); err != nil {
		t.stopProcess(p)
		return nil, fmt.Errorf("start %s: %w", version, err)
	}
	t.followOutput(p, 0)
	return p, nil
}

// baseEnv are the variables a release inherits from the machine: where
// programs are, whose home, which language and time zone. Nothing else of
// the provider's environment — least of all the plugin handshake's
// variables — reaches a release.
var baseEnv = []string{"PATH", "HOME", "LANG", "TZ", "TMPDIR"}

// releaseEnv is a release process's whole environment: baseEnv, the
// variables Ripcord gives every release, and the target's env: block.
func releaseEnv(configured map[string]string, port int, version, shared string) []string {
	var env []string
	for _, k := range baseEnv {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	env = append(env, "PORT="+strconv.Itoa(port), "RIPCORD_RELEASE="+version, "RIPCORD_SHARED="+shared)
	keys := make([]string, 0, len(configured))
	for k := range configured {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+configured[k])
	}
	return env
}

// adoptProcess takes over a process a previous provider started. It cannot
// wait(2) for it, so it polls for its end.
func (t *Target) adoptProcess(pf pidfile) *process {
	p := &process{version: pf.Version, port: pf.Port, pid: pf.Pid, ident: pf.Process, exe: pf.Exe, adopted: true, exited: make(chan struct{})}
	if p.ident.IsZero() {
		// A pidfile from before start times were recorded: identified
		// by its executable and working directory (see ownedBy).
		p.ident, _ = procid.Of(pf.Pid)
	}
	go func() {
		for p.ident.Check() == procid.Running {
			time.Sleep(50 * time.Millisecond)
		}
		close(p.exited)
	}()
	t.followOutput(p, io.SeekEnd)
	return p
}

// stopProcess ends the whole process group: SIGTERM, then SIGKILL after the
// grace period.
//
// Only a process this target started is signalled (signalGroup): a
// release whose pid another process has taken since is left alone.
func (t *Target) stopProcess(p *process) {
	signalGroup(p, syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(t.cfg.Grace):
		signalGroup(p, syscall.SIGKILL)
		select {
		case <-p.exited:
		case <-time.After(5 * time.Second):
		}
	}
	// Members of the group that outlived the leader go too.
	signalGroup(p, syscall.SIGKILL)
	os.Remove(t.lay.pidfilePath(p.version))
}

// signalGroup sends sig to the release's process group while its leader
// is still the process started for it — same pid, same start time — or,
// the leader gone and reaped, while no other process has taken its pid
// (then only the group's stragglers can carry its id). It reports whether
// it signalled.
func signalGroup(p *process, sig syscall.Signal) bool {
	now, err := procid.Of(p.pid)
	switch {
	case err != nil:
		// No process has the pid: the group id can only be ours.
	case p.ident.Start == 0 || now.Start != p.ident.Start:
		return false // the pid now names another process
	}
	return syscall.Kill(-p.pid, sig) == nil
}

// ownedBy reports whether the process a pidfile names is still the
// release it recorded, and if not, why. With a recorded start time that
// decides; a pidfile without one (written before they were recorded) is
// trusted only for a group leader running in the release's directory.
func (t *Target) ownedBy(pf pidfile) (bool, string) {
	id := pf.Process
	if id.IsZero() {
		if procid.Group(pf.Pid) != pf.Pid {
			return false, "is not running"
		}
		if cwd := procid.Cwd(pf.Pid); !sameDir(cwd, t.lay.releaseDir(pf.Version)) {
			return false, fmt.Sprintf("now belongs to another process (working in %q, not the release's directory)", cwd)
		}
		return true, ""
	}
	switch id.Check() {
	case procid.Running:
	case procid.Gone:
		if _, err := procid.Of(pf.Pid); err == nil {
			return false, "now belongs to another process (it started later than the release did)"
		}
		return false, "is not running"
	default:
		return false, fmt.Sprintf("cannot be checked from here (recorded on %s)", id.Host)
	}
	if procid.Group(pf.Pid) != pf.Pid {
		return false, "is no longer its own process group"
	}
	// The start time settles it; the executable is checked too, allowing
	// for a launcher that exec'd the service in the release's directory.
	if exe := procid.Exe(pf.Pid); pf.Exe != "" && exe != "" && exe != pf.Exe && !sameDir(procid.Cwd(pf.Pid), t.lay.releaseDir(pf.Version)) {
		return false, fmt.Sprintf("runs %s, not %s", exe, pf.Exe)
	}
	return true, ""
}

// followOutput relays the process's output files line by line to logf
// until the process ends.
func (t *Target) followOutput(p *process, whence int) {
	if t.logf == nil {
		return
	}
	for _, stream := range []string{"stdout", "stderr"} {
		f, err := os.Open(t.lay.outputPath(p.version, stream))
		if err != nil {
			continue
		}
		if whence == io.SeekEnd {
			_, _ = f.Seek(0, io.SeekEnd)
		}
		go t.tail(f, p, stream)
	}
}

const maxLine = 16 << 10

func (t *Target) tail(f *os.File, p *process, stream string) {
	defer f.Close()
	src := "local/" + t.cfg.Ref.String() + "/" + p.version
	r := bufio.NewReaderSize(f, maxLine)
	var partial []byte
	finished := false
	for {
		chunk, err := r.ReadSlice('\n')
		partial = append(partial, chunk...)
		if err == nil || errors.Is(err, bufio.ErrBufferFull) || len(partial) >= maxLine {
			t.logf(core.LogLine{Time: time.Now(), Source: src, Stream: stream, Text: strings.TrimRight(string(partial), "\r\n")})
			partial = partial[:0]
			continue
		}
		if finished {
			if len(partial) > 0 {
				t.logf(core.LogLine{Time: time.Now(), Source: src, Stream: stream, Text: string(partial)})
			}
			return
		}
		select {
		case <-p.exited:
			finished = true // one more pass drains what was written last
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// sameDir reports whether two paths name one directory (the kernel
// reports a process's directory with symlinks resolved).
func sameDir(a, b string) bool {
	if a == "" || b == "" {
		return false
	}
	ra, err1 := filepath.EvalSymlinks(a)
	rb, err2 := filepath.EvalSymlinks(b)
	return err1 == nil && err2 == nil && ra == rb
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func removeAll(dir string) error { return os.RemoveAll(dir) }

// StopReleases ends the release processes a local target started under
// each root in roots, as their pidfiles record them — for whoever owns a
// whole world and ends it (the demo when it quits): SIGTERM, then SIGKILL
// after grace. A pidfile whose pid now names another process is skipped.
func StopReleases(roots []string, grace time.Duration) {
	var procs []*process
	for _, root := range roots {
		files, _ := filepath.Glob(filepath.Join(root, "run", "*.json"))
		for _, path := range files {
			var pf pidfile
			b, err := os.ReadFile(path)
			if err != nil || json.Unmarshal(b, &pf) != nil || pf.Pid <= 1 || pf.Process.IsZero() {
				continue
			}
			p := &process{version: pf.Version, pid: pf.Pid, ident: pf.Process}
			if signalGroup(p, syscall.SIGTERM) {
				procs = append(procs, p)
			}
		}
	}
	deadline := time.Now().Add(grace)
	for _, p := range procs {
		for p.ident.Check() == procid.Running && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		signalGroup(p, syscall.SIGKILL)
	}
}
