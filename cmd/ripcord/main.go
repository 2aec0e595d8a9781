// Command ripcord is a terminal release console: live pipeline progress,
// error spikes after rollout, backup freshness, and keyboard-driven promote
// and rollback.
package main

import (
	"github.com/ripcordhq/ripcord/core"

	"errors"
	"fmt"
	"io"
	"os"
)

// Set by the release build (-ldflags -X).
var (
	version = "dev"
	commit  = "none"
	date    = "unknown"
)

// Exit codes, documented in the README.
const (
	exitOK      = 0
	exitFailed  = 1
	exitUsage   = 2
	exitBlocked = 3
	exitLocked  = 4
)

// exitError carries an exit code out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func main() {
	report, err := newSelfReport(os.Getenv(selfReportEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, "ripcord:", err)
		os.Exit(exitUsage)
	}
	os.Exit(report.guard(func() int { return run(os.Args[1:], os.Stdout, os.Stderr) }))
}

func run(args []string, stdout, stderr io.Writer) int {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	err = rewordUnknownCommand(root, err)
	// Errors quote names, reasons and providers' words: shown, never
	// interpreted by the terminal.
	fmt.Fprintln(stderr, "ripcord:", core.PrintableLines(err.Error()))
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if isUsageError(err) {
		return exitUsage
	}
	return exitFailed
}
