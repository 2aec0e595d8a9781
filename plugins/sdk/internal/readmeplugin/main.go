// Command ripcord-provider-snapshots reports the freshness of one backup
// set: the newest file in a directory.
package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/ripcordhq/ripcord/core"
	"github.com/ripcordhq/ripcord/plugins/sdk"
)

type snapshots struct {
	mu  sync.Mutex
	dir string
}

func (s *snapshots) Configure(_ context.Context, raw json.RawMessage, _ map[string]string) error {
	var cfg struct {
		Dir string `json:"dir"`
	}
	if err := json.Unmarshal(raw, &cfg); err != nil || cfg.Dir == "" {
		return sdk.SettingErrors{{Path: "dir", Message: "a directory is required"}}
	}
	s.mu.Lock()
	s.dir = cfg.Dir
	s.mu.Unlock()
	return nil
}

func (s *snapshots) CheckHealth(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := os.Stat(s.dir); err != nil {
		return sdk.Degraded("cannot read %s", s.dir)
	}
	return nil
}

func (s *snapshots) Sets(context.Context) ([]sdk.BackupSet, error) {
	return []sdk.BackupSet{{Name: "snapshots", Tool: "files"}}, nil
}

func (s *snapshots) facts() core.BackupFacts {
	s.mu.Lock()
	dir := s.dir
	s.mu.Unlock()
	f := core.BackupFacts{Set: "snapshots", Tool: "files", ReportedAt: time.Now()}
	files, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil || len(files) == 0 {
		f.Unreadable = "no snapshots in " + dir
		return f
	}
	for _, name := range files {
		if st, err := os.Stat(name); err == nil && st.ModTime().After(f.LastEnd) {
			f.LastEnd, f.LastSize = st.ModTime(), st.Size()
		}
	}
	f.AttemptOK = true
	return f
}

func (s *snapshots) WatchFreshness(ctx context.Context, send func(core.BackupFacts) error) error {
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		if err := send(s.facts()); err != nil {
			return err
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return nil
		}
	}
}

func (s *snapshots) Verify(ctx context.Context, op *sdk.Op, set string) (core.BackupFacts, error) {
	if err := op.Progress(0.5, "listing "+set); err != nil {
		return core.BackupFacts{}, err
	}
	f := s.facts()
	f.VerifiedAt, f.VerifyOK = time.Now(), f.Unreadable == ""
	return f, ctx.Err()
}

func (s *snapshots) RunBackup(context.Context, *sdk.Op, string) error {
	return sdk.ErrUnsupported
}

func main() {
	s := &snapshots{}
	sdk.Serve(sdk.ServeConfig{
		Info: sdk.Info{
			Name:         "snapshots",
			Version:      "0.1.0",
			ConfigSchema: json.RawMessage(`{"type":"object","required":["dir"],"properties":{"dir":{"type":"string"}}}`),
		},
		Provider: s,
		Backup:   s,
	})
}
