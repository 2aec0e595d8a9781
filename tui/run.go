package tui

import (
	"context"
	"errors"
	"os"

	tea "charm.land/bubbletea/v2"

	"github.com/ripcordhq/ripcord/core"
)

// renderFPS caps how often the terminal is redrawn.
const renderFPS = 20

// Run shows the console on the terminal (or on opts.Input and
// opts.Output) until the person quits or ctx ends, and restores the
// terminal before it returns. Either way of ending returns nil; an
// operation the person started keeps running in the engine.
//
// NO_COLOR (any non-empty value, as no-color.org says) turns colour off.
// Without opts.Theme or opts.ThemeName the theme follows the terminal's
// background: light on light, dark otherwise.
func Run(ctx context.Context, eng core.Client, opts Options) error {
	m := newModel(eng, fromEnv(opts, os.Getenv))
	defer m.sub.Close()
	// The console counts as watching the project: confirmations in every
	// other console name this person.
	var stop func()
	m.s.self, stop = eng.Watch(ctx, opts.Actor)
	defer stop()
	// Events reach the model at the flush rate (20 Hz), so drawing at the
	// same rate shows every change; the default 60 fps costs an idle
	// console about twice the CPU (1.7% against 0.7%, BenchmarkConsoleIdle).
	popts := []tea.ProgramOption{tea.WithContext(ctx), tea.WithFPS(renderFPS)}
	if opts.Input != nil {
		popts = append(popts, tea.WithInput(opts.Input))
	}
	if opts.Output != nil {
		popts = append(popts, tea.WithOutput(opts.Output))
		// Not a terminal: nothing will report a size, so use the one given.
		popts = append(popts, tea.WithWindowSize(m.w, m.h))
	}
	popts = append(popts, opts.Program...)
	p := tea.NewProgram(m, popts...)
	if opts.Resize != nil {
		done := make(chan struct{})
		defer close(done)
		go func() {
			for {
				select {
				case <-done:
					return
				case w := <-opts.Resize:
					p.Send(w)
				}
			}
		}()
	}
	_, err := p.Run()
	if err != nil && ctx.Err() != nil && errors.Is(err, tea.ErrProgramKilled) {
		return nil
	}
	return err
}

// fromEnv applies the environment's say on the screen: NO_COLOR set to
// anything turns colour off.
func fromEnv(opts Options, getenv func(string) string) Options {
	if getenv("NO_COLOR") != "" {
		opts.NoColor = true
	}
	return opts
}
