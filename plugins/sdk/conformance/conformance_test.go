package conformance_test

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ripcordhq/ripcord/plugins/sdk"
	"github.com/ripcordhq/ripcord/plugins/sdk/conformance"
)

// The example plugin passes the kit it is the reference for.
func TestExamplePluginConforms(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "ripcord-provider-example")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/ripcordhq/ripcord/plugins/sdk/internal/exampleplugin").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	conformance.Run(t, conformance.Options{
		Binary:      bin,
		Name:        "example",
		Settings:    map[string]any{"step_delay": "60ms", "steps": 20},
		BadSettings: map[string]any{"limits": map[string]any{"max_weight": 500}},
		BadPath:     "limits.max_weight",
		Kinds:       []string{"target", "pipeline", "errors", "backup"},
		Ref:         sdk.Ref{Service: "api", Env: "staging"},
		Release:     sdk.Release{Service: "api", Version: "v1.0.0"},
		Candidate:   sdk.Release{Service: "api", Version: "v1.1.0"},
		BackupSet:   "db",
		Service:     "api",
	})
}
