// Package pgbackrest reports the freshness of a pgBackRest stanza by running
// the real `pgbackrest info --output=json`, and verifies it with
// `pgbackrest verify`.
//
// pgBackRest times are Unix epoch seconds; a stanza's status code 2 means
// "no valid backups" and 1 "missing stanza path"; a running backup is not
// listed until it finishes and shows only as a held backup lock (visible
// on the repository host only).
package pgbackrest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/plugins/internal/toolrun"
)

// Config is one pgBackRest stanza, filled from ripcord.yaml settings.
type Config struct {
	Set    string
	Stanza string
	// ConfigPath is pgbackrest.conf; default pgBackRest's own.
	ConfigPath string
	// CipherPass is the repository cipher passphrase, if the repository is
	// encrypted and the config file does not carry it.
	CipherPass string
	// Wrapper runs pgbackrest as the database owner, e.g.
	// ["sudo", "-n", "-u", "postgres"].
	Wrapper []string
	// BackupType is the run-now backup type: full, diff or incr; empty
	// disables run-now.
	BackupType   string
	Binary       string
	PollInterval time.Duration
}

// Provider implements core.BackupSource for one stanza.
type Provider struct {
	cfg    Config
	now    func() time.Time
	record toolrun.Record
}

var _ core.BackupSource = (*Provider)(nil)

// New checks the config and returns a provider.
func New(cfg Config) (*Provider, error) {
	if cfg.Set == "" {
		return nil, errors.New("pgbackrest: set name is required")
	}
	if cfg.Stanza == "" {
		return nil, fmt.Errorf("pgbackrest: set %s: stanza is required", cfg.Set)
	}
	switch cfg.BackupType {
	case "", "full", "diff", "incr":
	default:
		return nil, fmt.Errorf("pgbackrest: set %s: backup type %q is not full, diff or incr", cfg.Set, cfg.BackupType)
	}
	return &Provider{cfg: cfg, now: time.Now}, nil
}

func (p *Provider) spec(command string, extra ...string) toolrun.Spec {
	args := []string{"--stanza=" + p.cfg.Stanza}
	if p.cfg.ConfigPath != "" {
		args = append(args, "--config="+p.cfg.ConfigPath)
	}
	// Console output stays parseable: errors on stderr, nothing else.
	args = append(args, "--log-level-console=off", "--log-level-stderr=error")
	args = append(append(args, extra...), command)
	var env []string
	if p.cfg.CipherPass != "" {
		env = append(env, "PGBACKREST_REPO1_CIPHER_PASS="+p.cfg.CipherPass)
	}
	return toolrun.Spec{
		Tool:    "pgbackrest",
		Binary:  p.cfg.Binary,
		Package: "pgbackrest",
		Wrapper: p.cfg.Wrapper,
		Args:    args,
		Env:     env,
		Secrets: []string{p.cfg.CipherPass},
	}
}

// Status is pgBackRest's status of a stanza or repository.
type Status struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Lock    struct {
		Backup struct {
			Held bool `json:"held"`
		} `json:"backup"`
	} `json:"lock"`
}

// Status codes of `pgbackrest info`.
const (
	StatusOK             = 0
	StatusMissingStanza  = 1
	StatusNoValidBackups = 2
)

// Backup is one backup of a stanza.
type Backup struct {
	Label     string `json:"label"`
	Type      string `json:"type"` // full, diff, incr
	Error     bool   `json:"error"`
	Prior     string `json:"prior"`
	Timestamp struct {
		Start int64 `json:"start"`
		Stop  int64 `json:"stop"`
	} `json:"timestamp"`
	Archive struct {
		Start string `json:"start"`
		Stop  string `json:"stop"`
	} `json:"archive"`
	Info struct {
		Size       int64 `json:"size"`  // database size: what a restore writes
		Delta      int64 `json:"delta"` // bytes this backup copied
		Repository struct {
			Size  int64 `json:"size"`
			Delta int64 `json:"delta"`
		} `json:"repository"`
	} `json:"info"`
}

// Start and Stop convert pgBackRest's epoch seconds.
func (b Backup) Start() time.Time { return time.Unix(b.Timestamp.Start, 0).UTC() }
func (b Backup) Stop() time.Time  { return time.Unix(b.Timestamp.Stop, 0).UTC() }

// Stanza is one stanza of `pgbackrest info --output=json`.
type Stanza struct {
	Name    string `json:"name"`
	Status  Status `json:"status"`
	Archive []struct {
		ID  string `json:"id"`
		Min string `json:"min"`
		Max string `json:"max"`
	} `json:"archive"`
	// Backup is oldest first, as pgBackRest lists it.
	Backup []Backup `json:"backup"`
}

// WALRange is the oldest and newest WAL segment name in the repository for
// the current database (names, not times).
func (s Stanza) WALRange() (min, max string) {
	if n := len(s.Archive); n > 0 {
		return s.Archive[n-1].Min, s.Archive[n-1].Max
	}
	return "", ""
}

// ParseInfo reads `pgbackrest info --output=json`.
func ParseInfo(b []byte) ([]Stanza, error) {
	var ss []Stanza
	if err := json.Unmarshal(b, &ss); err != nil {
		return nil, fmt.Errorf("parsing pgbackrest info: %w", err)
	}
	return ss, nil
}

type unreadableError struct{ msg string }

func (e *unreadableError) Error() string { return e.msg }

// run runs pgbackrest and returns stdout, or an error naming the problem.
func (p *Provider) run(ctx context.Context, command string, extra ...string) ([]byte, error) {
	res, err := toolrun.Run(ctx, p.spec(command, extra...))
	if errors.Is(err, toolrun.ErrNotFound) {
		return nil, &unreadableError{p.spec(command).NotFoundMessage()}
	}
	if err != nil {
		return nil, err
	}
	if res.ExitCode != 0 {
		msg := toolrun.Message(res.Stderr, "ERROR: ")
		if msg == "" {
			msg = fmt.Sprintf("%s exited with code %d", command, res.ExitCode)
		}
		return nil, &unreadableError{"pgbackrest: " + msg}
	}
	if res.StdoutTruncated {
		return nil, &unreadableError{"pgbackrest: output too large"}
	}
	return res.Stdout, nil
}

// Info reads the stanza.
func (p *Provider) Info(ctx context.Context) (Stanza, error) {
	out, err := p.run(ctx, "info", "--output=json")
	if err != nil {
		return Stanza{}, err
	}
	ss, err := ParseInfo(out)
	if err != nil {
		return Stanza{}, err
	}
	for _, s := range ss {
		if s.Name == p.cfg.Stanza {
			return s, nil
		}
	}
	return Stanza{}, &unreadableError{fmt.Sprintf("pgbackrest: stanza %s not in info output", p.cfg.Stanza)}
}

// Facts reads the stanza once. Repository problems are reported as an
// Unreadable fact, not an error; the error is only the context ending.
func (p *Provider) Facts(ctx context.Context) ([]core.BackupFacts, error) {
	f := core.BackupFacts{Set: p.cfg.Set, Tool: "pgbackrest", CanRunNow: p.cfg.BackupType != ""}
	s, err := p.Info(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		f.Unreadable = err.Error()
	} else {
		FillFacts(&f, s)
	}
	p.record.Apply(&f)
	f.ReportedAt = p.now()
	return []core.BackupFacts{f}, nil
}

// FillFacts turns a stanza's info into facts.
func FillFacts(f *core.BackupFacts, s Stanza) {
	switch s.Status.Code {
	case StatusOK, StatusNoValidBackups:
	default:
		f.Unreadable = fmt.Sprintf("pgbackrest: stanza %s: %s (status %d)", s.Name, s.Status.Message, s.Status.Code)
		return
	}
	f.Running = s.Status.Lock.Backup.Held
	f.Status = s.Status.Message
	if lo, hi := s.WALRange(); lo != "" {
		f.Status += fmt.Sprintf("; WAL %s…%s", lo, hi)
	}
	var newest, full *Backup
	for i := range s.Backup {
		b := &s.Backup[i]
		if newest == nil || b.Timestamp.Stop >= newest.Timestamp.Stop {
			newest = b
		}
		if b.Type == "full" && (full == nil || b.Timestamp.Stop >= full.Timestamp.Stop) {
			full = b
		}
	}
	if newest == nil {
		return
	}
	f.LastStart, f.LastEnd = newest.Start(), newest.Stop()
	f.LastType = newest.Type
	f.LastSize = newest.Info.Size
	if full != nil {
		f.LastFull = full.Stop()
	}
	// Failed runs leave no backup; one that finished with page checksum
	// errors is flagged.
	f.Attempted, f.AttemptOK = newest.Start(), !newest.Error
	if newest.Error {
		f.Status += "; newest backup has page checksum errors"
	}
}

// WatchFreshness reports the stanza every PollInterval until ctx ends.
func (p *Provider) WatchFreshness(ctx context.Context, fn func(core.BackupFacts)) error {
	return toolrun.Watch(ctx, p.cfg.PollInterval, p.Facts, fn)
}

// Verify runs `pgbackrest verify`, which checks every backup and WAL file
// in the repository against its checksum. A failed verify is a fact, not
// an error.
func (p *Provider) Verify(ctx context.Context, set string) (core.BackupFacts, error) {
	if err := toolrun.CheckSet("pgbackrest", p.cfg.Set, set); err != nil {
		return core.BackupFacts{}, err
	}
	at := p.now()
	res, err := toolrun.Run(ctx, p.spec("verify", "--output=text"))
	switch {
	case errors.Is(err, toolrun.ErrNotFound):
		p.record.Verified(at, false, p.spec("verify").NotFoundMessage())
	case err != nil:
		return core.BackupFacts{}, fmt.Errorf("verifying pgbackrest stanza %s: %w", p.cfg.Stanza, err)
	default:
		ok, msg := verifyOutcome(res)
		p.record.Verified(at, ok, msg)
	}
	fs, err := p.Facts(ctx)
	if err != nil {
		return core.BackupFacts{}, err
	}
	return fs[0], nil
}

// verifyOutcome reads verify's text report:
//
//	stanza: demo
//	status: error
//	  backup: 20261125-224411F, status: invalid, total files checked: 964, total valid files: 963
//	    checksum invalid: 1
//
// into "status error; backup 20261125-224411F: checksum invalid: 1".
func verifyOutcome(res toolrun.Result) (bool, string) {
	status, where := "", ""
	var problems []string
	for _, l := range strings.Split(string(res.Stdout), "\n") {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, "status: "):
			status = strings.TrimPrefix(l, "status: ")
		case strings.HasPrefix(l, "backup: "), strings.HasPrefix(l, "archiveId: "):
			label, _, _ := strings.Cut(l, ",")
			where = strings.Replace(label, ": ", " ", 1)
		case strings.HasPrefix(l, "checksum invalid: "), strings.HasPrefix(l, "missing: "),
			strings.HasPrefix(l, "size invalid: "), strings.HasPrefix(l, "other: "):
			problems = append(problems, strings.TrimSpace(where+": "+l))
		}
	}
	if res.ExitCode == 0 && (status == "ok" || status == "") {
		return true, "ok"
	}
	var parts []string
	if status != "" {
		parts = append(parts, "status "+status)
	}
	parts = append(parts, problems...)
	if msg := toolrun.Message(res.Stderr, "ERROR: "); msg != "" {
		parts = append(parts, msg)
	}
	if len(parts) == 0 {
		parts = append(parts, fmt.Sprintf("verify exited with code %d", res.ExitCode))
	}
	return false, strings.Join(parts, "; ")
}

// RunNow runs a backup of the configured type.
func (p *Provider) RunNow(ctx context.Context, set string) error {
	if err := toolrun.CheckSet("pgbackrest", p.cfg.Set, set); err != nil {
		return err
	}
	if p.cfg.BackupType == "" {
		return fmt.Errorf("pgbackrest: set %s has no run-now backup type configured", set)
	}
	if !p.record.BeginRun(p.now()) {
		return fmt.Errorf("pgbackrest: a backup of stanza %s is already running", p.cfg.Stanza)
	}
	if _, err := p.run(ctx, "backup", "--type="+p.cfg.BackupType); err != nil {
		p.record.EndRun(false, err.Error())
		return fmt.Errorf("backing up pgbackrest stanza %s: %w", p.cfg.Stanza, err)
	}
	p.record.EndRun(true, "")
	return nil
}
