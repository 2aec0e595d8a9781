package builtin

import (
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/plugins/internal/toolrun/tooltest"
	"github.com/ripcordhq/ripcord/plugins/sdk/conformance"
)

// The pgbackrest built-in against a live cluster: a stanza with a full and
// an incremental backup, so verify has a repository to check and the kit's
// backups are real incrementals.
func TestPgbackrestBuiltinPassesConformance(t *testing.T) {
	c := tooltest.StartPGCluster(t)
	c.Pgbackrest(t, "stanza-create")
	c.Pgbackrest(t, "backup", "--type=full")
	c.Pgbackrest(t, "backup", "--type=incr")
	settings := map[string]any{"set": "postgres", "stanza": "demo", "config": c.Conf,
		"wrapper": c.AsPG, "backup_type": "incr"}
	conformance.Run(t, conformance.Options{
		Binary:      launcher(t, "pgbackrest"),
		Name:        "pgbackrest",
		Env:         []string{serveEnv + "=pgbackrest"},
		Settings:    settings,
		BadSettings: map[string]any{"set": "postgres", "stanza": "demo", "wrapper": "runuser -u postgres"},
		BadPath:     "wrapper",
		// pgBackRest runs as the postgres user through runuser, so a cancel
		// ends a process tree of its own; with the race detector on two
		// shared cores that has taken just over a second.
		CancelWithin: 5 * time.Second,
		Kinds:        []string{"backup"},
		BackupSet:    "postgres",
	})
}
