package exec

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/plugins/internal/gitfacts"
	"github.com/ripcordhq/ripcord/plugins/internal/migrations"
)

// sourceFacts is what a run is built from. The commit and branch come
// first; the migrations follow on their own channel, since parsing them
// takes longer and only has to be done before the run ends.
type sourceFacts struct {
	commit, branch string
	migrations     chan sourceFacts
	list           []core.Migration
	unknown        string
}

// factsTimeout bounds the git and parser work for one run.
const factsTimeout = 2 * time.Minute

// readFacts reads the work dir's commit and branch, and then the
// migrations at that commit, logging what it found as the run's own lines.
func (s *Source) readFacts(runID string) <-chan sourceFacts {
	out := make(chan sourceFacts, 1)
	say := func(format string, args ...any) {
		if s.logf != nil {
			s.logfMu.Lock()
			s.logf(core.LogLine{Time: time.Now().UTC(), Source: runID + "/ripcord", Stream: "ripcord", Text: fmt.Sprintf(format, args...)})
			s.logfMu.Unlock()
		}
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), factsTimeout)
		f := sourceFacts{migrations: make(chan sourceFacts, 1)}
		g, err := gitfacts.Read(ctx, s.cfg.WorkDir, os.Getenv)
		switch {
		case err != nil:
			say("commit and branch unknown: %v", err)
		case g.Branch == "":
			say("built from commit %s on an unknown branch: %s", g.Commit, g.How)
		default:
			say("built from commit %s on %s (%s)", g.Commit, g.Branch, g.How)
		}
		if g.Dirty {
			say("the working tree has uncommitted changes to tracked files: the build is not exactly commit %s", g.Commit)
		}
		f.commit, f.branch = g.Commit, g.Branch
		out <- f
		defer cancel()
		var m sourceFacts
		switch {
		case s.cfg.MigrationsDir == "":
		case g.Commit == "":
			m.unknown = "the pipeline's work dir " + s.cfg.WorkDir + " is not a git working tree, so the migrations at the release's commit cannot be read"
		default:
			list, err := migrations.ReadAt(ctx, s.cfg.WorkDir, s.cfg.MigrationsDir, g.Commit)
			if err != nil {
				m.unknown = err.Error()
				break
			}
			m.list = list
			contract := 0
			for _, mg := range m.list {
				if mg.Kind == core.MigrationContract {
					contract++
				}
			}
			say("%d migrations at %s (%d contract)", len(m.list), gitfacts.Short(g.Commit), contract)
		}
		if m.unknown != "" {
			say("migrations unknown: %s", m.unknown)
		}
		f.migrations <- m
	}()
	return out
}
