package local

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ripcordhq/ripcord/core"
)

// process is one running release. Its output goes to files under run/ and
// not to pipes, so the service outlives a provider crash (a dead reader
// would kill it with SIGPIPE) and a restarted provider can adopt it.
type process struct {
	version string
	port    int
	pid     int // also the process group id (Setpgid)
	adopted bool
	exited  chan struct{} // closed once the process has ended
	be      *backend      // its proxy backend, made on first use (under Target.mu)
}

// pidfile lets a restarted provider find processes started earlier.
type pidfile struct {
	Version string    `json:"version"`
	Pid     int       `json:"pid"`
	Port    int       `json:"port"`
	Started time.Time `json:"started"`
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
	cmd.Env = append(os.Environ(),
		"PORT="+strconv.Itoa(port), "RIPCORD_RELEASE="+version, "RIPCORD_SHARED="+spec.Shared)
	for k, v := range t.cfg.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
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
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", version, err)
	}
	p := &process{version: version, port: port, pid: cmd.Process.Pid, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.exited)
	}()
	if err := writeJSONAtomic(t.lay.pidfilePath(version), pidfile{Version: version, Pid: p.pid, Port: port, Started: time.Now().UTC()}); err != nil {
		t.stopProcess(p)
		return nil, fmt.Errorf("write pidfile of %s: %w", version, err)
	}
	t.followOutput(p, 0)
	return p, nil
}

// adoptProcess takes over a process a previous provider started. It cannot
// wait(2) for it, so it polls for its end.
func (t *Target) adoptProcess(pf pidfile) *process {
	p := &process{version: pf.Version, port: pf.Port, pid: pf.Pid, adopted: true, exited: make(chan struct{})}
	go func() {
		for alive(p.pid) {
			time.Sleep(50 * time.Millisecond)
		}
		close(p.exited)
	}()
	t.followOutput(p, io.SeekEnd)
	return p
}

// stopProcess ends the whole process group: SIGTERM, then SIGKILL after the
// grace period.
func (t *Target) stopProcess(p *process) {
	_ = syscall.Kill(-p.pid, syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(t.cfg.Grace):
		_ = syscall.Kill(-p.pid, syscall.SIGKILL)
		select {
		case <-p.exited:
		case <-time.After(5 * time.Second):
		}
	}
	// Members of the group that outlived the leader go too.
	_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	os.Remove(t.lay.pidfilePath(p.version))
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

// alive reports whether pid is a running process of its own group. A
// zombie counts as dead: nobody may be left to reap it.
func alive(pid int) bool {
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return false
	}
	if pgid, err := syscall.Getpgid(pid); err != nil || pgid != pid {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	// The state follows the parenthesised command name.
	if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) && (b[i+2] == 'Z' || b[i+2] == 'X') {
		return false
	}
	return true
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
