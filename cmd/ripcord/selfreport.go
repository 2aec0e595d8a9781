package main

import (
	"fmt"
	"os"
	"time"

	"github.com/getsentry/sentry-go"
)

// selfReportEnv names the DSN Ripcord reports its own crashes to.
const selfReportEnv = "RIPCORD_SENTRY_DSN"

// selfReport reports Ripcord's own panics to Sentry when RIPCORD_SENTRY_DSN
// is set. It is off otherwise: a release console sends nothing anywhere
// unless asked to.
type selfReport struct {
	hub *sentry.Hub
	// restore puts the terminal back (leaves the alternate screen, shows
	// the cursor) before anything is printed; the console sets it.
	restore func()
}

func newSelfReport(dsn string) (*selfReport, error) {
	if dsn == "" {
		return &selfReport{}, nil
	}
	client, err := sentry.NewClient(sentry.ClientOptions{Dsn: dsn, Release: "ripcord@" + version, AttachStacktrace: true})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", selfReportEnv, err)
	}
	return &selfReport{hub: sentry.NewHub(client, sentry.NewScope())}, nil
}

// guard runs fn; on a panic it restores the terminal, reports the panic,
// flushes, and panics again so the process still dies loudly.
func (s *selfReport) guard(fn func() int) int {
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		if s.restore != nil {
			s.restore()
		}
		if s.hub != nil {
			s.hub.Recover(r)
			if !s.hub.Flush(3 * time.Second) {
				fmt.Fprintln(os.Stderr, "ripcord: could not deliver the crash report in time")
			}
		}
		panic(r)
	}()
	return fn()
}
