// Package restic reports the freshness of a restic backup set by running
// the real restic binary, and verifies it with `restic check`.
//
// A set is the snapshots matching the configured host, paths and tags —
// restic's own grouping. restic 0.14's snapshot `time` is when the backup
// started and there is no end time; restic 0.17 added summary.backup_end,
// which is used when present.
package restic

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/plugins/internal/toolrun"
)

// Config is one restic backup set, filled from ripcord.yaml settings.
type Config struct {
	Set        string
	Repository string
	Password   string
	// Host, Paths and Tags select the set's snapshots; empty means any.
	// All Tags must be present on a snapshot.
	Host  string
	Paths []string
	Tags  []string
	// Backup names the paths `restic backup` saves for a run-now; empty
	// disables run-now.
	Backup []string
	// Binary is the restic binary; default "restic" from PATH.
	Binary string
	// CacheDir is restic's cache; default a directory per set under the
	// user's cache directory.
	CacheDir     string
	PollInterval time.Duration
}

// Provider implements core.BackupSource for one restic set.
type Provider struct {
	cfg    Config
	now    func() time.Time
	record toolrun.Record
	// onStart is a test hook handed to every tool run.
	onStart func(pid int)
}

var _ core.BackupSource = (*Provider)(nil)

// New checks the config and returns a provider.
func New(cfg Config) (*Provider, error) {
	if cfg.Set == "" {
		return nil, errors.New("restic: set name is required")
	}
	if cfg.Repository == "" {
		return nil, fmt.Errorf("restic: set %s: repository is required", cfg.Set)
	}
	if cfg.CacheDir == "" {
		cfg.CacheDir = toolrun.CacheDir("restic", cfg.Set)
	}
	return &Provider{cfg: cfg, now: time.Now}, nil
}

func (p *Provider) spec(args ...string) toolrun.Spec {
	return toolrun.Spec{
		Tool:    "restic",
		Binary:  p.cfg.Binary,
		Package: "restic",
		Args:    args,
		Env: []string{
			"RESTIC_REPOSITORY=" + p.cfg.Repository,
			"RESTIC_PASSWORD=" + p.cfg.Password,
			"RESTIC_CACHE_DIR=" + p.cfg.CacheDir,
		},
		Secrets: []string{p.cfg.Password},
		OnStart: p.onStart,
	}
}

// Snapshot is one restic snapshot as `snapshots --json` prints it.
type Snapshot struct {
	ID       string    `json:"id"`
	Time     time.Time `json:"time"`
	Hostname string    `json:"hostname"`
	Paths    []string  `json:"paths"`
	Tags     []string  `json:"tags"`
	// Summary is only written by restic 0.17 and later.
	Summary *struct {
		BackupStart         time.Time `json:"backup_start"`
		BackupEnd           time.Time `json:"backup_end"`
		TotalBytesProcessed int64     `json:"total_bytes_processed"`
	} `json:"summary,omitempty"`
}

// End is when the backup finished, zero where restic did not record it.
func (s Snapshot) End() time.Time {
	if s.Summary != nil {
		return s.Summary.BackupEnd
	}
	return time.Time{}
}

// ParseSnapshots reads `restic snapshots --json`, flat or grouped
// (--group-by), and returns the snapshots oldest first.
func ParseSnapshots(b []byte) ([]Snapshot, error) {
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("parsing restic snapshots: %w", err)
	}
	var out []Snapshot
	for _, r := range raw {
		var g struct {
			GroupKey  json.RawMessage `json:"group_key"`
			Snapshots []Snapshot      `json:"snapshots"`
		}
		if err := json.Unmarshal(r, &g); err != nil {
			return nil, fmt.Errorf("parsing restic snapshots: %w", err)
		}
		if g.GroupKey != nil {
			out = append(out, g.Snapshots...)
			continue
		}
		var s Snapshot
		if err := json.Unmarshal(r, &s); err != nil {
			return nil, fmt.Errorf("parsing restic snapshot: %w", err)
		}
		out = append(out, s)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out, nil
}

// Snapshots lists the set's snapshots, oldest first. A failure to read the
// repository is returned as an error whose text is fit for Unreadable.
func (p *Provider) Snapshots(ctx context.Context) ([]Snapshot, error) {
	args := []string{"snapshots", "--json", "--no-lock"}
	if p.cfg.Host != "" {
		args = append(args, "--host", p.cfg.Host)
	}
	for _, path := range p.cfg.Paths {
		args = append(args, "--path", path)
	}
	if len(p.cfg.Tags) > 0 {
		args = append(args, "--tag", strings.Join(p.cfg.Tags, ","))
	}
	out, err := p.run(ctx, args...)
	if err != nil {
		return nil, err
	}
	return ParseSnapshots(out)
}

// unreadableError is a repository problem meant for a person.
type unreadableError struct{ msg string }

func (e *unreadableError) Error() string { return e.msg }

// run runs restic and returns stdout, or an error naming the problem.
func (p *Provider) run(ctx context.Context, args ...string) ([]byte, error) {
	res, err := toolrun.Run(ctx, p.spec(args...))
	if errors.Is(err, toolrun.ErrNotFound) {
		return nil, &unreadableError{p.spec().NotFoundMessage()}
	}
	if err != nil {
		return nil, err
	}
	if res.ExitCode != 0 {
		return nil, &unreadableError{"restic: " + classify(res.Stderr)}
	}
	if res.StdoutTruncated {
		return nil, &unreadableError{"restic: output too large"}
	}
	return res.Stdout, nil
}

// classify turns restic's stderr into a short reason.
func classify(stderr []byte) string {
	msg := toolrun.Message(stderr, "Fatal: ")
	switch {
	case strings.Contains(msg, "wrong password"):
		return "wrong password or no key found"
	case strings.Contains(msg, "unable to open config file"), strings.Contains(msg, "repository does not exist"):
		return "repository not found (not initialised?)"
	case strings.Contains(msg, "already locked"):
		return "repository is locked: " + msg
	case msg == "":
		return "failed without a message"
	}
	return msg
}

// Facts reads the set once. Repository problems are reported as an
// Unreadable fact, not an error; the error is only the context ending.
func (p *Provider) Facts(ctx context.Context) ([]core.BackupFacts, error) {
	f := core.BackupFacts{Set: p.cfg.Set, Tool: "restic", CanRunNow: len(p.cfg.Backup) > 0}
	if err := p.read(ctx, &f); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		f.Unreadable = err.Error()
	}
	p.record.Apply(&f)
	f.ReportedAt = p.now()
	return []core.BackupFacts{f}, nil
}

func (p *Provider) read(ctx context.Context, f *core.BackupFacts) error {
	snaps, err := p.Snapshots(ctx)
	if err != nil {
		return err
	}
	if len(snaps) == 0 {
		f.Status = "no snapshots"
		return nil
	}
	last := snaps[len(snaps)-1]
	f.LastStart, f.LastEnd = last.Time, last.End()
	f.LastType = "snapshot"
	// Every restic snapshot restores on its own: each one is a full.
	f.LastFull = last.Time
	if !f.LastEnd.IsZero() {
		f.LastFull = f.LastEnd
	}
	// restic keeps no failed snapshots: the newest one is the last attempt
	// the repository knows of.
	f.Attempted, f.AttemptOK = last.Time, true
	if last.Summary != nil && last.Summary.TotalBytesProcessed > 0 {
		f.LastSize = last.Summary.TotalBytesProcessed
	} else if f.LastSize, err = p.restoreSize(ctx, last.ID); err != nil {
		return err
	}
	f.Status = fmt.Sprintf("%d snapshots", len(snaps))
	running, err := p.backupRunning(ctx)
	if err != nil {
		return err
	}
	f.Running = running
	return nil
}

// restoreSize is the size a restore of the snapshot writes.
func (p *Provider) restoreSize(ctx context.Context, id string) (int64, error) {
	out, err := p.run(ctx, "stats", "--json", "--no-lock", "--mode", "restore-size", id)
	if err != nil {
		return 0, err
	}
	var st struct {
		TotalSize int64 `json:"total_size"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		return 0, fmt.Errorf("parsing restic stats: %w", err)
	}
	return st.TotalSize, nil
}

// staleLock is restic's own limit: a lock not refreshed for 30 minutes
// belongs to a dead process.
const staleLock = 30 * time.Minute

// backupRunning reports whether a live non-exclusive lock exists. Backups
// take non-exclusive locks; check and prune take exclusive ones.
func (p *Provider) backupRunning(ctx context.Context) (bool, error) {
	out, err := p.run(ctx, "list", "locks", "--no-lock")
	if err != nil {
		return false, err
	}
	ids := strings.Fields(string(out))
	if len(ids) > 5 {
		ids = ids[:5]
	}
	for _, id := range ids {
		b, err := p.run(ctx, "cat", "lock", id, "--no-lock")
		if err != nil {
			continue // removed between list and cat: that process ended
		}
		var l struct {
			Time      time.Time `json:"time"`
			Exclusive bool      `json:"exclusive"`
		}
		if json.Unmarshal(b, &l) == nil && !l.Exclusive && p.now().Sub(l.Time) < staleLock {
			return true, nil
		}
	}
	return false, nil
}

// WatchFreshness reports the set every PollInterval until ctx ends.
func (p *Provider) WatchFreshness(ctx context.Context, fn func(core.BackupFacts)) error {
	return toolrun.Watch(ctx, p.cfg.PollInterval, p.Facts, fn)
}

// Verify runs `restic check`. A failed check is a fact (VerifyOK false,
// VerifyMessage in restic's words), not an error.
func (p *Provider) Verify(ctx context.Context, set string) (core.BackupFacts, error) {
	if err := toolrun.CheckSet("restic", p.cfg.Set, set); err != nil {
		return core.BackupFacts{}, err
	}
	at := p.now()
	res, err := toolrun.Run(ctx, p.spec("check"))
	switch {
	case errors.Is(err, toolrun.ErrNotFound):
		p.record.Verified(at, false, p.spec().NotFoundMessage())
	case err != nil:
		return core.BackupFacts{}, fmt.Errorf("verifying restic set %s: %w", set, err)
	case res.ExitCode == 0:
		p.record.Verified(at, true, toolrun.Message(res.Stdout))
	default:
		p.record.Verified(at, false, checkFindings(res.Stdout, res.Stderr))
	}
	fs, err := p.Facts(ctx)
	if err != nil {
		return core.BackupFacts{}, err
	}
	return fs[0], nil
}

// checkFindings joins restic check's fatal line with the first problem it
// named, e.g. "repository contains errors: pack 0a4e7e5a: unexpected file
// size: got 100, expected 300212".
func checkFindings(stdout, stderr []byte) string {
	fatal := classify(stderr)
	for _, l := range strings.Split(string(stderr)+"\n"+string(stdout), "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "pack ") || strings.HasPrefix(l, "error ") || strings.HasPrefix(l, "tree ") {
			return fatal + ": " + l
		}
	}
	return fatal
}

// RunNow runs `restic backup` of the configured paths, tagged and hosted
// like the set so the new snapshot belongs to it.
func (p *Provider) RunNow(ctx context.Context, set string) error {
	if err := toolrun.CheckSet("restic", p.cfg.Set, set); err != nil {
		return err
	}
	if len(p.cfg.Backup) == 0 {
		return fmt.Errorf("restic: set %s has no paths to back up configured", set)
	}
	if !p.record.BeginRun(p.now()) {
		return fmt.Errorf("restic: a backup of set %s is already running", set)
	}
	args := []string{"backup", "--json"}
	if p.cfg.Host != "" {
		args = append(args, "--host", p.cfg.Host)
	}
	for _, t := range p.cfg.Tags {
		args = append(args, "--tag", t)
	}
	args = append(args, p.cfg.Backup...)
	_, err := p.run(ctx, args...)
	if err != nil {
		p.record.EndRun(false, err.Error())
		return fmt.Errorf("backing up restic set %s: %w", set, err)
	}
	p.record.EndRun(true, "")
	return nil
}
