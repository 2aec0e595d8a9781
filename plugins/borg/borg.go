// Package borg reports the freshness of a BorgBackup set by running the
// real borg binary, and verifies it with `borg check`.
//
// Borg 1.x has no tags: a set is the archives whose names match a glob
// (the "web-01-{now}" naming convention). Borg prints local time without a
// zone, so every run gets TZ=UTC and times are read as UTC.
package borg

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/plugins/internal/toolrun"
)

// Config is one borg backup set, filled from ripcord.yaml settings.
type Config struct {
	Set        string
	Repository string
	Passphrase string
	// Glob selects the set's archives by name, e.g. "web-01-*"; empty
	// means every archive.
	Glob string
	// Backup names the paths `borg create` saves for a run-now; empty
	// disables run-now. ArchivePrefix starts the new archive's name
	// (default: Glob without its trailing "*").
	Backup        []string
	ArchivePrefix string
	// BaseDir is BORG_BASE_DIR, where borg keeps keys, security records
	// and its cache; default a directory per set under the user's cache
	// directory.
	BaseDir string
	// AcceptUnknownUnencrypted and AcceptRelocated answer borg's two
	// "are you sure" questions; both default to no, so borg refuses an
	// unencrypted repository it has never seen or one that moved, instead
	// of waiting on a prompt nobody sees.
	AcceptUnknownUnencrypted bool
	AcceptRelocated          bool
	Binary                   string
	PollInterval             time.Duration
}

// Provider implements core.BackupSource for one borg set.
type Provider struct {
	cfg     Config
	now     func() time.Time
	record  toolrun.Record
	onStart func(pid int)
}

var _ core.BackupSource = (*Provider)(nil)

// New checks the config and returns a provider.
func New(cfg Config) (*Provider, error) {
	if cfg.Set == "" {
		return nil, errors.New("borg: set name is required")
	}
	if cfg.Repository == "" {
		return nil, fmt.Errorf("borg: set %s: repository is required", cfg.Set)
	}
	if cfg.BaseDir == "" {
		cfg.BaseDir = toolrun.CacheDir("borg", cfg.Set)
	}
	if cfg.ArchivePrefix == "" {
		cfg.ArchivePrefix = strings.TrimSuffix(cfg.Glob, "*")
	}
	return &Provider{cfg: cfg, now: time.Now}, nil
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func (p *Provider) spec(args ...string) toolrun.Spec {
	return toolrun.Spec{
		Tool:    "borg",
		Binary:  p.cfg.Binary,
		Package: "borgbackup",
		Args:    args,
		Env: []string{
			"TZ=UTC", // borg's JSON times are local and zone-less
			"BORG_PASSPHRASE=" + p.cfg.Passphrase,
			"BORG_BASE_DIR=" + p.cfg.BaseDir,
			"BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=" + yesNo(p.cfg.AcceptUnknownUnencrypted),
			"BORG_RELOCATED_REPO_ACCESS_IS_OK=" + yesNo(p.cfg.AcceptRelocated),
			"BORG_CHECK_I_KNOW_WHAT_I_AM_DOING=NO",
			"BORG_DELETE_I_KNOW_WHAT_I_AM_DOING=NO",
			"BORG_DISPLAY_PASSPHRASE=no",
		},
		Secrets: []string{p.cfg.Passphrase},
		OnStart: p.onStart,
	}
}

// Time is borg's zone-less timestamp, read as UTC.
type Time struct{ time.Time }

const borgTimeLayout = "2006-01-02T15:04:05.999999"

// UnmarshalJSON reads "2026-11-25T21:23:43.000000" as UTC: correct only
// because the provider runs borg with TZ=UTC.
func (t *Time) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	if s == "" {
		t.Time = time.Time{}
		return nil
	}
	v, err := time.ParseInLocation(borgTimeLayout, s, time.UTC)
	if err != nil {
		return fmt.Errorf("borg time %q: %w", s, err)
	}
	t.Time = v
	return nil
}

// Archive is one archive as `borg list --json` / `borg info --json` print it.
type Archive struct {
	Name  string `json:"name"`
	Start Time   `json:"start"`
	// End is printed by info, and by list when --format names {end}.
	End   Time `json:"end"`
	Stats *struct {
		OriginalSize     int64 `json:"original_size"`
		DeduplicatedSize int64 `json:"deduplicated_size"`
		NFiles           int64 `json:"nfiles"`
	} `json:"stats,omitempty"`
}

// Listing is `borg list --json` or `borg info --json` of a repository.
type Listing struct {
	Archives   []Archive `json:"archives"`
	Repository struct {
		LastModified Time `json:"last_modified"`
	} `json:"repository"`
}

// ParseListing reads borg's list or info JSON; archives oldest first.
func ParseListing(b []byte) (Listing, error) {
	var l Listing
	if err := json.Unmarshal(b, &l); err != nil {
		return Listing{}, fmt.Errorf("parsing borg listing: %w", err)
	}
	sort.SliceStable(l.Archives, func(i, j int) bool { return l.Archives[i].Start.Before(l.Archives[j].Start.Time) })
	return l, nil
}

type unreadableError struct{ msg string }

func (e *unreadableError) Error() string { return e.msg }

// logLine is one line of borg's --log-json stderr.
type logLine struct {
	Type    string `json:"type"`
	Message string `json:"message"`
	MsgID   string `json:"msgid"`
	Level   string `json:"levelname"`
}

// classify reads borg's --log-json stderr: the msgid names the problem
// reliably, the message explains it.
func classify(stderr []byte) string {
	var last logLine
	for _, l := range bytes.Split(stderr, []byte("\n")) {
		var ll logLine
		if json.Unmarshal(l, &ll) == nil && ll.Type == "log_message" && (ll.Level == "ERROR" || ll.Level == "CRITICAL") {
			last = ll
		}
	}
	switch last.MsgID {
	case "PassphraseWrong":
		return "wrong passphrase"
	case "Repository.DoesNotExist":
		return "repository not found"
	case "Repository.InvalidRepository":
		return "not a borg repository"
	case "LockTimeout", "LockFailed", "LockError":
		return "repository is locked: " + last.Message
	case "Cache.RepositoryAccessAborted", "Cache.CacheInitAbortedError":
		return "refused a repository borg has not seen before or that moved (set accept_unknown_unencrypted or accept_relocated if it is yours): " + last.Message
	}
	if last.Message != "" {
		return last.Message
	}
	if msg := toolrun.Message(stderr); msg != "" {
		return msg
	}
	return "failed without a message"
}

// run runs borg and returns stdout. Exit code 1 is borg's "warning": the
// command did its work.
func (p *Provider) run(ctx context.Context, args ...string) ([]byte, error) {
	res, err := toolrun.Run(ctx, p.spec(args...))
	if errors.Is(err, toolrun.ErrNotFound) {
		return nil, &unreadableError{p.spec().NotFoundMessage()}
	}
	if err != nil {
		return nil, err
	}
	if res.ExitCode > 1 {
		return nil, &unreadableError{"borg: " + classify(res.Stderr)}
	}
	if res.StdoutTruncated {
		return nil, &unreadableError{"borg: output too large"}
	}
	return res.Stdout, nil
}

func (p *Provider) filter() []string {
	if p.cfg.Glob == "" {
		return nil
	}
	return []string{"--glob-archives", p.cfg.Glob}
}

// Archives lists the set's archives, oldest first, with start and end.
// Reads bypass borg's lock: taking it could make a scheduled
// `borg create` fail on a lock timeout.
func (p *Provider) Archives(ctx context.Context) ([]Archive, error) {
	args := append([]string{"list", "--json", "--log-json", "--bypass-lock", "--format", "{archive}{start}{end}"}, p.filter()...)
	out, err := p.run(ctx, append(args, p.cfg.Repository)...)
	if err != nil {
		return nil, err
	}
	l, err := ParseListing(out)
	if err != nil {
		return nil, err
	}
	return l.Archives, nil
}

// Facts reads the set once. Repository problems are reported as an
// Unreadable fact, not an error; the error is only the context ending.
func (p *Provider) Facts(ctx context.Context) ([]core.BackupFacts, error) {
	f := core.BackupFacts{Set: p.cfg.Set, Tool: "borg", CanRunNow: len(p.cfg.Backup) > 0}
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
	archives, err := p.Archives(ctx)
	if err != nil {
		return err
	}
	f.Running = p.lockHeld()
	if len(archives) == 0 {
		f.Status = "no archives"
		return nil
	}
	args := append([]string{"info", "--json", "--log-json", "--bypass-lock", "--last", "1"}, p.filter()...)
	out, err := p.run(ctx, append(args, p.cfg.Repository)...)
	if err != nil {
		return err
	}
	info, err := ParseListing(out)
	if err != nil {
		return err
	}
	if len(info.Archives) == 0 {
		return &unreadableError{"borg: info lists no archive though list showed " + fmt.Sprint(len(archives))}
	}
	last := info.Archives[len(info.Archives)-1]
	f.LastStart, f.LastEnd = last.Start.Time, last.End.Time
	f.LastType = "archive"
	f.LastFull = f.LastEnd // every archive restores on its own
	if f.LastFull.IsZero() {
		f.LastFull = f.LastStart
	}
	// Borg hides checkpoints of interrupted runs: the newest archive is the
	// last attempt the repository knows of.
	f.Attempted, f.AttemptOK = last.Start.Time, true
	if last.Stats != nil {
		f.LastSize = last.Stats.OriginalSize
	}
	f.Status = fmt.Sprintf("%d archives", len(archives))
	return nil
}

// lockHeld reports a running borg on a local repository: borg holds
// lock.exclusive while it writes. Remote repositories are not looked at.
func (p *Provider) lockHeld() bool {
	repo := p.cfg.Repository
	if strings.Contains(repo, "://") || strings.Contains(strings.SplitN(repo, "/", 2)[0], ":") {
		return false
	}
	_, err := os.Stat(filepath.Join(repo, "lock.exclusive"))
	return err == nil
}

// WatchFreshness reports the set every PollInterval until ctx ends.
func (p *Provider) WatchFreshness(ctx context.Context, fn func(core.BackupFacts)) error {
	return toolrun.Watch(ctx, p.cfg.PollInterval, p.Facts, fn)
}

// Verify runs `borg check`. A failed check is a fact (VerifyOK false,
// VerifyMessage in borg's words), not an error.
func (p *Provider) Verify(ctx context.Context, set string) (core.BackupFacts, error) {
	if err := toolrun.CheckSet("borg", p.cfg.Set, set); err != nil {
		return core.BackupFacts{}, err
	}
	at := p.now()
	args := append([]string{"check", "--log-json"}, p.filter()...)
	res, err := toolrun.Run(ctx, p.spec(append(args, p.cfg.Repository)...))
	switch {
	case errors.Is(err, toolrun.ErrNotFound):
		p.record.Verified(at, false, p.spec().NotFoundMessage())
	case err != nil:
		return core.BackupFacts{}, fmt.Errorf("verifying borg set %s: %w", set, err)
	case res.ExitCode == 0:
		p.record.Verified(at, true, "no problems found")
	default:
		p.record.Verified(at, false, checkFindings(res.Stderr))
	}
	fs, err := p.Facts(ctx)
	if err != nil {
		return core.BackupFacts{}, err
	}
	return fs[0], nil
}

// checkFindings names the first problem borg check reported and the
// verdict, e.g. "Data integrity error: Segment entry checksum mismatch
// [segment 1, offset 41]; Completed repository check, errors found."
func checkFindings(stderr []byte) string {
	var first, last string
	for _, l := range bytes.Split(stderr, []byte("\n")) {
		var ll logLine
		if json.Unmarshal(l, &ll) != nil || ll.Type != "log_message" {
			continue
		}
		if ll.Level == "ERROR" || ll.Level == "CRITICAL" {
			if first == "" {
				first = strings.TrimSpace(ll.Message)
			}
			last = strings.TrimSpace(ll.Message)
		}
	}
	switch {
	case first == "":
		return classify(stderr)
	case first == last:
		return first
	}
	return first + "; " + last
}

// RunNow runs `borg create` of the configured paths into a new archive
// named ArchivePrefix plus the UTC time, so it belongs to the set.
func (p *Provider) RunNow(ctx context.Context, set string) error {
	if err := toolrun.CheckSet("borg", p.cfg.Set, set); err != nil {
		return err
	}
	if len(p.cfg.Backup) == 0 {
		return fmt.Errorf("borg: set %s has no paths to back up configured", set)
	}
	if !p.record.BeginRun(p.now()) {
		return fmt.Errorf("borg: a backup of set %s is already running", set)
	}
	archive := p.cfg.Repository + "::" + p.cfg.ArchivePrefix + "{utcnow:%Y-%m-%dT%H:%M:%S.%f}"
	args := append([]string{"create", "--log-json", archive}, p.cfg.Backup...)
	if _, err := p.run(ctx, args...); err != nil {
		p.record.EndRun(false, err.Error())
		return fmt.Errorf("backing up borg set %s: %w", set, err)
	}
	p.record.EndRun(true, "")
	return nil
}
