package observe

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/ripcordhq/ripcord/core"
)

// markTimeout bounds one deploy-marker call to an error tracker.
const markTimeout = 30 * time.Second

// DeployMarks tells each environment's error tracker when a release starts
// serving there: a promotion that deployed, a rollback, an abort that put
// traffic back on the stable release. Trackers draw these as deploy
// markers next to the error graph, so whoever reads Sentry later sees
// exactly when Ripcord changed what ran.
//
// It follows the audit log, not the commands, so every way of acting (the
// console, the CLI, automation) is marked the same.
type DeployMarks struct {
	eng     *core.Engine
	sources map[core.Ref]core.ErrorSource
	sub     *core.Subscription
	stop    chan struct{}
	done    chan struct{}
	calls   sync.WaitGroup
	last    map[core.Ref]string // release marked last, per environment
	redact  func(string) string
}

// MarkDeploys starts following eng's audit entries. Close stops it after
// the entries appended so far have been marked. redact (may be nil) cleans
// a tracker's error of secrets before it is logged.
func MarkDeploys(eng *core.Engine, sources map[core.Ref]core.ErrorSource, redact func(string) string) *DeployMarks {
	if redact == nil {
		redact = func(s string) string { return s }
	}
	_, sub := eng.Subscribe()
	d := &DeployMarks{eng: eng, sources: sources, sub: sub, stop: make(chan struct{}), done: make(chan struct{}), last: map[core.Ref]string{}, redact: redact}
	go d.run()
	return d
}

func (d *DeployMarks) run() {
	defer close(d.done)
	var buf []core.Event
	for {
		select {
		case <-d.sub.Ready():
			buf = d.drain(buf)
		case <-d.stop:
			// A command's audit entry is published before the command
			// returns, so whatever a CLI command did is in the queue now.
			d.drain(buf)
			return
		}
	}
}

func (d *DeployMarks) drain(buf []core.Event) []core.Event {
	buf = d.sub.Drain(buf[:0])
	for _, ev := range buf {
		if ev.Kind != core.EvAudit || ev.Audit == nil {
			continue
		}
		release, ok := deployedRelease(*ev.Audit)
		src := d.sources[ev.Audit.Ref]
		if !ok || src == nil || d.last[ev.Audit.Ref] == release {
			continue
		}
		d.last[ev.Audit.Ref] = release
		d.calls.Add(1)
		go d.mark(src, ev.Audit.Ref, release)
	}
	return buf
}

func (d *DeployMarks) mark(src core.ErrorSource, ref core.Ref, release string) {
	defer d.calls.Done()
	ctx, cancel := context.WithTimeout(context.Background(), markTimeout)
	defer cancel()
	text := "deploy marker: " + release + " in " + ref.Env
	if err := src.MarkDeploy(ctx, ref, release); err != nil {
		text += " not recorded: " + d.redact(err.Error())
	}
	d.eng.Publish(core.Event{Kind: core.EvLog, Ref: ref, Log: &core.LogLine{Time: d.eng.Now(), Source: "errors", Text: text}})
}

// Close marks what was audited so far, waits for the trackers' answers
// (each bounded by markTimeout) and stops.
func (d *DeployMarks) Close() {
	close(d.stop)
	<-d.done
	d.calls.Wait()
	d.sub.Close()
}

// deployedRelease says which release an audit entry put into service, if
// any. Failed and blocked attempts changed nothing.
func deployedRelease(e core.AuditEntry) (string, bool) {
	if e.To == "" || strings.HasPrefix(e.Outcome, "failed") || e.Outcome == "blocked" {
		return "", false
	}
	switch core.CommandKind(e.Action) {
	case core.CmdPromote, core.CmdFullPromote, core.CmdRollback, core.CmdAbort:
		return e.To, true
	}
	return "", false
}
