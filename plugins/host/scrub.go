package host

import (
	"strings"

	"github.com/ripcordhq/ripcord/core"
)

// Everything a provider reports is text from outside: before it reaches
// the engine (and from there screens, terminals, the audit log and the
// store), configured secret values in it are redacted (Options.Redact)
// and control characters escaped (core.Printable). A provider cannot
// recolour the console or forge a line, and an error title carrying a
// password shows the redaction, not the password.

// text scrubs one string a provider sent.
func (h *Host) text(s string) string {
	if s == "" {
		return s
	}
	if h.opts.Redact != nil {
		s = h.opts.Redact(s)
	}
	return core.Printable(s)
}

func (h *Host) texts(ss []string) []string {
	if len(ss) == 0 {
		return ss
	}
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = h.text(s)
	}
	return out
}

func (h *Host) scrubStatus(s core.TargetStatus) core.TargetStatus {
	s.Current, s.Candidate = h.text(s.Current), h.text(s.Candidate)
	s.Kept, s.Problems = h.texts(s.Kept), h.texts(s.Problems)
	return s
}

func (h *Host) scrubRelease(r core.Release) core.Release {
	r.Version, r.Commit, r.Branch, r.ArtifactDigest, r.HeldReason = h.text(r.Version), h.text(r.Commit), h.text(r.Branch), h.text(r.ArtifactDigest), h.text(r.HeldReason)
	for i := range r.Migrations {
		r.Migrations[i].ID = h.text(r.Migrations[i].ID)
	}
	return r
}

func (h *Host) scrubRun(r core.PipelineRun) core.PipelineRun {
	r.ID, r.Version, r.Commit, r.Branch, r.ArtifactDigest = h.text(r.ID), h.text(r.Version), h.text(r.Commit), h.text(r.Branch), h.text(r.ArtifactDigest)
	for i := range r.Stages {
		r.Stages[i].Name = h.text(r.Stages[i].Name)
		for j := range r.Stages[i].Steps {
			r.Stages[i].Steps[j].Name = h.text(r.Stages[i].Steps[j].Name)
		}
	}
	return r
}

func (h *Host) scrubLine(l core.LogLine) core.LogLine {
	l.Source, l.Stream, l.Text = h.text(l.Source), h.text(l.Stream), h.text(expandTabs(l.Text))
	return l
}

// expandTabs turns a log line's tabs into the spaces a terminal would
// show (stops every 8 columns): test runners and compilers align with
// them, and escaped they would read as \t.
func expandTabs(s string) string {
	if !strings.Contains(s, "\t") {
		return s
	}
	var b strings.Builder
	col := 0
	for _, r := range s {
		if r == '\t' {
			n := 8 - col%8
			b.WriteString(strings.Repeat(" ", n))
			col += n
			continue
		}
		b.WriteRune(r)
		col++
	}
	return b.String()
}

func (h *Host) scrubIssue(i core.ErrorIssue) core.ErrorIssue {
	i.Fingerprint, i.Title, i.FirstRelease = h.text(i.Fingerprint), h.text(i.Title), h.text(i.FirstRelease)
	return i
}

func (h *Host) scrubWindow(w core.ErrorWindow) core.ErrorWindow {
	w.Release, w.Unavailable, w.Warning = h.text(w.Release), h.text(w.Unavailable), h.text(w.Warning)
	for i := range w.Issues {
		w.Issues[i] = h.scrubIssue(w.Issues[i])
	}
	return w
}

func (h *Host) scrubFacts(f core.BackupFacts) core.BackupFacts {
	f.Set, f.Tool, f.LastType, f.Unreadable, f.Status, f.VerifyMessage = h.text(f.Set), h.text(f.Tool), h.text(f.LastType), h.text(f.Unreadable), h.text(f.Status), h.text(f.VerifyMessage)
	return f
}

func (h *Host) scrubEvent(ev core.OpEvent) core.OpEvent {
	ev.Message, ev.Log, ev.Err, ev.ExternalRef = h.text(ev.Message), h.text(ev.Log), h.text(ev.Err), h.text(ev.ExternalRef)
	return ev
}
