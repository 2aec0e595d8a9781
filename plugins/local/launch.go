package local

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// A release is started through a gate so that it never runs unrecorded:
// the target starts a shell that waits on descriptor 3 until the target
// has written the release's pidfile, and only then execs the release's
// own command in place — same pid, same process group, same start time.
// Should the provider die between starting the process and recording it
// (kill -9 of the server, whose providers die with it), the gate's pipe
// closes unopened and the shell exits without ever running the release:
// nothing serves that no pidfile names, so nothing is left that a later
// target or a cleanup cannot find. A shell rather than this binary again:
// it costs a millisecond, adds nothing to the release's environment, and
// works when the ripcord binary was replaced under a running server.
const gateScript = `IFS= read -r x <&3 || exit 125; exec 3<&-; exec "$@"`

// gateName is the gate's $0, what ps shows while it waits.
const gateName = "ripcord-release-gate"

// gated turns cmd, ready to start, into one that starts the gate, which
// execs cmd's program once open is called. It returns the executable
// cmd's program resolves to (what the pidfile records), open, which lets
// the release run, and shut, which closes the gate unopened; after Start
// the caller calls exactly one of them (shut also when Start failed).
func gated(cmd *exec.Cmd) (exe string, open func() error, shut func(), err error) {
	if cmd.Err != nil {
		return "", nil, nil, cmd.Err
	}
	exe = cmd.Path
	if !filepath.IsAbs(exe) {
		exe = filepath.Join(cmd.Dir, exe)
	}
	// What Start would refuse, refused here with the same words.
	if err := unix.Access(exe, unix.X_OK); err != nil {
		return "", nil, nil, &os.PathError{Op: "fork/exec", Path: cmd.Path, Err: err}
	}
	// As the kernel will report it (/proc/PID/exe has links resolved).
	if real, err := filepath.EvalSymlinks(exe); err == nil {
		exe = real
	}
	r, w, err := os.Pipe()
	if err != nil {
		return "", nil, nil, fmt.Errorf("making the release's start gate: %w", err)
	}
	cmd.Args = append([]string{"/bin/sh", "-c", gateScript, gateName, exe}, cmd.Args[1:]...)
	cmd.Path = "/bin/sh"
	cmd.ExtraFiles = []*os.File{r}
	open = func() error {
		r.Close()
		defer w.Close()
		if _, err := w.Write([]byte{'\n'}); err != nil {
			return fmt.Errorf("letting the release run: %w", err)
		}
		return nil
	}
	shut = func() {
		r.Close()
		w.Close()
	}
	return exe, open, shut, nil
}
