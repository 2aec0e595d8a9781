package local

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// A release is started through a gate so that it never runs unrecorded:
// the target starts this binary again (see launchEnv), which waits on
// descriptor 3 until the target has written the release's pidfile, and
// only then execs the release's own command in place — same pid, same
// process group, same start time. Should the provider die between
// starting the process and recording it (kill -9 of the server, whose
// providers die with it), the gate's pipe closes unopened and the process
// exits without ever running the release: nothing serves that no pidfile
// names, so nothing is left that a later target or a cleanup cannot find.

// launchEnv, set to 1, makes any binary that links this package the gate
// of a release (see init).
const launchEnv = "RIPCORD_LOCAL_LAUNCH"

// launchExit is the gate's exit status when the release was never let
// through (its starter died) or its command could not be executed.
const launchExit = 125

func init() {
	if os.Getenv(launchEnv) == "1" {
		os.Exit(launchMain(os.Args[1:]))
	}
}

// launchMain is the gate: args are the release command's path and argv.
// It returns only when the release did not run.
func launchMain(args []string) int {
	if len(args) < 2 {
		fmt.Fprintln(os.Stderr, "ripcord: release gate: no command")
		return launchExit
	}
	gate := os.NewFile(3, "gate")
	var b [1]byte
	n, _ := gate.Read(b[:])
	gate.Close()
	if n != 1 {
		// The target never recorded this process: it died first.
		return launchExit
	}
	env := make([]string, 0, len(os.Environ()))
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, launchEnv+"=") {
			env = append(env, kv)
		}
	}
	err := syscall.Exec(args[0], args[1:], env)
	fmt.Fprintf(os.Stderr, "ripcord: starting %s: %v\n", args[0], err)
	return launchExit
}

// gated turns cmd, ready to start, into one that starts the gate, which
// execs cmd's program once open is called. It returns the executable
// cmd's program resolves to (what the pidfile records), and open, which
// lets the release run, and shut, which closes the gate unopened; the
// caller calls exactly one of them after Start (shut also when Start
// failed).
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
	self, err := os.Executable()
	if err != nil {
		return "", nil, nil, fmt.Errorf("finding the ripcord binary to start the release: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return "", nil, nil, fmt.Errorf("making the release's start gate: %w", err)
	}
	cmd.Args = append([]string{cmd.Args[0], exe}, cmd.Args...)
	cmd.Path = self
	cmd.Env = append(cmd.Env, launchEnv+"=1")
	cmd.ExtraFiles = []*os.File{r}
	closeRead := func() { r.Close() }
	open = func() error {
		closeRead()
		defer w.Close()
		if _, err := w.Write([]byte{1}); err != nil {
			return fmt.Errorf("letting the release run: %w", err)
		}
		return nil
	}
	shut = func() {
		closeRead()
		w.Close()
	}
	return exe, open, shut, nil
}
