package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ripcordhq/ripcord/core"
)

// Bounds of one step-log read: a console asks when a person opens a
// step's log, and what comes back is a screenful of history, not an
// archive.
const (
	// stepLogSteps is how many steps one read covers (a finished stage's
	// row asks for all of its steps); the last ones are read.
	stepLogSteps = 12
	// stepLogLines is how many lines of one step are kept: the last ones.
	stepLogLines = 1000
	// stepLogLineBytes cuts a longer line (a minified bundle printed by a
	// build).
	stepLogLineBytes = 4096
)

// stepLog reads the tail of pipeline steps' logs from the service's
// pipeline source once (not following), within the status deadline per
// step, and returns the lines in the result. It only reads: no lock, no
// audit entry. Lines and errors are outside text: configured secrets are
// redacted and control characters escaped.
func (w *world) stepLog(ctx context.Context, e *core.Engine, cmd core.Command) (core.Result, error) {
	src := w.pipelines[cmd.Ref.Service]
	if src == nil {
		err := fmt.Errorf("%s has no pipeline source: %w", cmd.Ref.Service, core.ErrUnavailable)
		return core.Result{Outcome: "refused", Message: err.Error()}, err
	}
	if cmd.Run == "" || len(cmd.Steps) == 0 {
		err := fmt.Errorf("step-log %s: name the run and at least one step: %w", cmd.Ref.Service, core.ErrInvalid)
		return core.Result{Outcome: "refused", Message: err.Error()}, err
	}
	steps := cmd.Steps
	if len(steps) > stepLogSteps {
		steps = steps[len(steps)-stepLogSteps:]
	}
	deadline := w.cfg.Deadlines.Core().Status
	var lines []core.LogLine
	var failed []string
	read := 0
	for _, step := range steps {
		got, err := w.readStep(ctx, src, cmd.Run, step, deadline)
		lines = append(lines, got...)
		read += len(got)
		if err != nil {
			why := core.Printable(w.cfg.Redact(err.Error()))
			failed = append(failed, step+": "+why)
			// Said where the step's lines would be, for a read of several.
			lines = append(lines, core.LogLine{Time: e.Now(), Source: core.Printable(cmd.Run + "/" + step), Stream: "ripcord", Text: "could not read the log of " + core.Printable(step) + ": " + why})
		}
	}
	msg := fmt.Sprintf("%d lines of run %s (%s)", read, cmd.Run, strings.Join(steps, ", "))
	if len(failed) > 0 {
		msg = "could not read the log of " + strings.Join(failed, "; ")
		if read == 0 && len(failed) == len(steps) {
			// Nothing read: the error says it all, once.
			return core.Result{Outcome: "failed", Message: msg}, errors.New(msg)
		}
	}
	return core.Result{Outcome: "done", Message: msg, Log: lines}, nil
}

// readStep reads one step's tail: the last stepLogLines lines the source
// sends before it ends its stream or the deadline passes.
func (w *world) readStep(ctx context.Context, src core.PipelineSource, run, step string, deadline time.Duration) ([]core.LogLine, error) {
	ctx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()
	ring := make([]core.LogLine, 0, 64)
	next := 0
	err := src.Logs(ctx, run, step, false, func(l core.LogLine) {
		// Named as the console's step filter names a step's lines,
		// whatever the plugin protocol kept of the provider's name.
		l.Source = core.Printable(run + "/" + step)
		l.Text = core.Printable(w.cfg.Redact(cut(l.Text, stepLogLineBytes)))
		if len(ring) < stepLogLines {
			ring = append(ring, l)
			return
		}
		ring[next] = l
		next = (next + 1) % stepLogLines
	})
	lines := make([]core.LogLine, 0, len(ring))
	lines = append(append(lines, ring[next:]...), ring[:next]...)
	if ctx.Err() != nil && errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("the pipeline source did not finish sending the log within %s (deadlines.status)", deadline)
	}
	return lines, err
}

// cut shortens s to at most n bytes on a character boundary, saying so.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + fmt.Sprintf(" … (%d bytes cut)", len(s)-i)
}
