// Command ripcord-provider-snapshots reports the freshness of one backup
// set: the newest file in a directory.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ripcordhq/ripcord/plugins/sdk"
)

// schema is what `ripcord validate` checks every block using this
// provider against, before anything starts.
const schema = `{
  "type": "object",
  "additionalProperties": false,
  "required": ["dir"],
  "properties": {
    "dir": {"type": "string", "description": "the directory the snapshots are written to"},
    "set": {"type": "string", "description": "filled in by Ripcord: the backup set's name"}
  }
}`

type snapshots struct {
	log hclog.Logger

	mu  sync.Mutex
	dir string
	set string
}

func (s *snapshots) Configure(_ context.Context, req sdk.ConfigureRequest) error {
	var cfg struct {
		Dir string `json:"dir"`
		Set string `json:"set"`
	}
	dec := json.NewDecoder(bytes.NewReader(req.Settings))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil || cfg.Dir == "" {
		return sdk.SettingErrors{{Path: "dir", Message: "a directory (a string) is required"}}
	}
	if cfg.Set == "" {
		cfg.Set = "snapshots"
	}
	s.mu.Lock()
	s.dir, s.set = cfg.Dir, cfg.Set
	s.mu.Unlock()
	s.log.Info("watching snapshots", "dir", cfg.Dir, "set", cfg.Set)
	return nil
}

func (s *snapshots) CheckHealth(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dir == "" {
		return sdk.Degraded("waiting for its settings")
	}
	if _, err := os.Stat(s.dir); err != nil {
		return sdk.Degraded("cannot read %s", s.dir)
	}
	return nil
}

func (s *snapshots) facts() sdk.BackupFacts {
	s.mu.Lock()
	dir, set := s.dir, s.set
	s.mu.Unlock()
	f := sdk.BackupFacts{Set: set, Tool: "files", ReportedAt: time.Now()}
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
	f.Attempted, f.AttemptOK = f.LastEnd, true
	return f
}

// WatchFreshness sends the set's facts at once, then every minute, until
// the host cancels it.
func (s *snapshots) WatchFreshness(ctx context.Context, _ sdk.WatchFreshnessRequest, send func(sdk.BackupFacts) error) error {
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

// Verify reads the newest snapshot back and reports the set's facts with
// the verify recorded.
func (s *snapshots) Verify(ctx context.Context, op *sdk.Op, req sdk.VerifyRequest) (sdk.BackupFacts, error) {
	if err := op.Progress(0.5, "reading the newest snapshot of "+req.Set); err != nil {
		return sdk.BackupFacts{}, err
	}
	f := s.facts()
	f.VerifiedAt, f.VerifyOK = time.Now(), f.Unreadable == ""
	if !f.VerifyOK {
		f.VerifyMessage = f.Unreadable
	}
	return f, ctx.Err()
}

func main() {
	log := sdk.NewLogger("snapshots")
	s := &snapshots{log: log}
	sdk.Serve(sdk.ServeConfig{
		Info:     sdk.Info{Name: "snapshots", Version: "0.1.0", ConfigSchema: json.RawMessage(schema)},
		Provider: s,
		Backup:   s,
		Logger:   log,
	})
}
