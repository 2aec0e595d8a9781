// Package dir is a backup source for the nightly dump pattern (pg_dump,
// mysqldump, sqlite3 .backup): files matching a glob, the newest one being
// the latest backup. It reports facts only; core's policy judges them.
//
// A backup file is good when it is not empty and not suspiciously small:
// at least MinFraction of the good backup before it. A bad newest file is a
// failed attempt (AttemptOK false, the reason in Status), and LastEnd stays at the
// newest good file, so a dump that wrote 0 bytes never looks fresh.
package dir

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/ripcordhq/ripcord/core"
)

// Config is one backup set.
type Config struct {
	Set  string
	Glob string
	// MinFraction is the smallest size, relative to the previous good
	// backup, a backup may have and still count (default 0.5).
	MinFraction float64
	// Poll is how often WatchFreshness looks again (default 1m).
	Poll time.Duration
}

// Source is a core.BackupSource over one glob.
type Source struct {
	cfg Config
	now func() time.Time
	// afterGlob, set by tests, runs between listing and reading files.
	afterGlob func()
}

var _ core.BackupSource = (*Source)(nil)

// New checks the config.
func New(cfg Config) (*Source, error) {
	if cfg.Set == "" || cfg.Glob == "" {
		return nil, errors.New("dir backups: set and glob are required")
	}
	if _, err := filepath.Match(cfg.Glob, ""); err != nil {
		return nil, fmt.Errorf("dir backups: glob %q: %w", cfg.Glob, err)
	}
	if cfg.MinFraction <= 0 {
		cfg.MinFraction = 0.5
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Minute
	}
	return &Source{cfg: cfg, now: time.Now}, nil
}

// File is one backup file seen by a scan.
type File struct {
	Path    string
	Size    int64
	ModTime time.Time
	Good    bool
	Reason  string // why it is not good
}

// Scan is one look at the set: the facts and what they were made from.
type Scan struct {
	Facts core.BackupFacts
	Files []File // oldest first
	Count int    // good backups
}

// Scan lists the files and judges each against the good one before it.
// Files that vanish between listing and reading are left out.
func (s *Source) Scan() Scan {
	now := s.now()
	facts := core.BackupFacts{Set: s.cfg.Set, Tool: "dir", ReportedAt: now}
	if dir := staticDir(s.cfg.Glob); dir != "" {
		if _, err := os.Stat(dir); err != nil {
			facts.Unreadable = fmt.Sprintf("backup directory: %v", err)
			return Scan{Facts: facts}
		}
	}
	paths, _ := filepath.Glob(s.cfg.Glob) // the pattern was checked in New
	if s.afterGlob != nil {
		s.afterGlob()
	}
	var files []File
	for _, p := range paths {
		st, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed since the listing (rotation)
		}
		if err != nil {
			facts.Unreadable = fmt.Sprintf("stat %s: %v", p, err)
			return Scan{Facts: facts}
		}
		if !st.Mode().IsRegular() {
			continue
		}
		files = append(files, File{Path: p, Size: st.Size(), ModTime: st.ModTime()})
	}
	sort.SliceStable(files, func(i, j int) bool { return files[i].ModTime.Before(files[j].ModTime) })

	var lastGood *File
	count := 0
	for i := range files {
		f := &files[i]
		switch {
		case f.Size == 0:
			f.Reason = "is empty"
		case lastGood != nil && float64(f.Size) < s.cfg.MinFraction*float64(lastGood.Size):
			f.Reason = fmt.Sprintf("is %d bytes, less than %.0f%% of the previous backup (%d bytes)",
				f.Size, s.cfg.MinFraction*100, lastGood.Size)
		default:
			f.Good = true
			lastGood = f
			count++
		}
	}
	if len(files) == 0 {
		return Scan{Facts: facts}
	}
	newest := files[len(files)-1]
	facts.Attempted = newest.ModTime
	facts.AttemptOK = newest.Good
	if lastGood != nil {
		facts.LastEnd = lastGood.ModTime
		facts.LastFull = lastGood.ModTime
		facts.LastSize = lastGood.Size
		facts.LastType = "full"
	}
	if newest.Good {
		facts.Status = fmt.Sprintf("%d good backup files", count)
	} else {
		facts.Status = fmt.Sprintf("newest backup %s %s", filepath.Base(newest.Path), newest.Reason)
	}
	return Scan{Facts: facts, Files: files, Count: count}
}

// staticDir is the glob's leading directory without pattern characters.
func staticDir(glob string) string {
	dir := filepath.Dir(glob)
	for dir != "." && dir != string(filepath.Separator) && strings.ContainsAny(dir, "*?[\\") {
		dir = filepath.Dir(dir)
	}
	if strings.ContainsAny(dir, "*?[\\") {
		return ""
	}
	return dir
}

// WatchFreshness reports the set now and every Poll until ctx ends.
func (s *Source) WatchFreshness(ctx context.Context, fn func(core.BackupFacts)) error {
	tick := time.NewTicker(s.cfg.Poll)
	defer tick.Stop()
	for {
		fn(s.Scan().Facts)
		select {
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Verify scans the set and reads the newest good backup end to end: a file
// that cannot be read back is not a backup.
func (s *Source) Verify(ctx context.Context, set string) (core.BackupFacts, error) {
	if set != s.cfg.Set {
		return core.BackupFacts{}, fmt.Errorf("dir backups: this source reports set %q, not %q", s.cfg.Set, set)
	}
	sc := s.Scan()
	facts := sc.Facts
	var good *File
	for i := len(sc.Files) - 1; i >= 0; i-- {
		if sc.Files[i].Good {
			good = &sc.Files[i]
			break
		}
	}
	facts.VerifiedAt = s.now()
	if good == nil {
		facts.VerifyMessage = "no good backup file to read"
		return facts, nil
	}
	f, err := os.Open(good.Path)
	if err != nil {
		facts.VerifyMessage = err.Error()
		return facts, nil
	}
	defer f.Close()
	n, err := io.Copy(io.Discard, readerCtx{ctx, f})
	if err != nil {
		if ctx.Err() != nil {
			return facts, fmt.Errorf("verify %s: %w", good.Path, ctx.Err())
		}
		facts.VerifyMessage = fmt.Sprintf("read %s: %v", filepath.Base(good.Path), err)
		return facts, nil
	}
	facts.VerifyOK = n == good.Size
	if !facts.VerifyOK {
		facts.VerifyMessage = fmt.Sprintf("%s changed while it was read (%d of %d bytes)", filepath.Base(good.Path), n, good.Size)
	}
	return facts, nil
}

type readerCtx struct {
	ctx context.Context
	r   io.Reader
}

func (r readerCtx) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

// RunNow is not possible: the dumps are made by cron or a timer this
// source only watches.
func (s *Source) RunNow(ctx context.Context, set string) error {
	return fmt.Errorf("dir backups: set %q is written by an external job; run it there", set)
}
