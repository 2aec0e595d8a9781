package sdk

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The SDK's API is its own: building a plugin pulls in neither Ripcord's
// core nor the host.
func TestSDKDependsOnNoRipcordInternals(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/ripcordhq/ripcord/plugins/sdk").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"github.com/ripcordhq/ripcord/core", "github.com/ripcordhq/ripcord/plugins/host", "github.com/ripcordhq/ripcord/plugins/builtin"} {
			if dep == banned || strings.HasPrefix(dep, banned+"/") {
				t.Errorf("plugins/sdk depends on %s", dep)
			}
		}
	}
}

// exported lists the package's exported top-level names.
func exported(t *testing.T) []string {
	t.Helper()
	files, _ := filepath.Glob("*.go")
	fset := token.NewFileSet()
	var names []string
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range af.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				if d.Recv == nil && d.Name.IsExported() {
					names = append(names, d.Name.Name)
				}
			case *ast.GenDecl:
				for _, s := range d.Specs {
					switch s := s.(type) {
					case *ast.TypeSpec:
						if s.Name.IsExported() {
							names = append(names, s.Name.Name)
						}
					case *ast.ValueSpec:
						for _, n := range s.Names {
							if n.IsExported() {
								names = append(names, n.Name)
							}
						}
					}
				}
			}
		}
	}
	slices.Sort(names)
	return names
}

// Every exported name is something a plugin author uses: the kinds'
// interfaces and their optional ones, the requests and types they carry,
// Serve and the Op. Plumbing (servers, the operation registry, handshake,
// conversion) stays unexported; a new name must be added here on purpose.
func TestSDKExportsOnlyWhatAuthorsUse(t *testing.T) {
	want := []string{
		"Actor", "BackupFacts", "BackupRunner", "BackupSource", "CancelRequest", "Canceller", "ConfigureRequest",
		"Degraded", "DegradedError", "DeployMarker", "DeployRequest", "ErrOpFinished", "ErrUnsupported",
		"ErrorBucket", "ErrorIssue", "ErrorSource", "ErrorWindow", "Healthy", "HealthyNote", "HostStatus", "Info", "IssueLister", "IssuesRequest",
		"LogLine", "LogStreamer", "LogsRequest", "MarkDeployRequest", "Migration", "NewLogger", "Op",
		"PipelineRun", "PipelineSource", "Provider", "ReattachRequest", "Reattacher", "Ref", "Release",
		"RollbackRequest", "RunBackupRequest", "RunCanceled", "RunFailed", "RunQueued", "RunRunning",
		"RunSkipped", "RunState", "RunSucceeded", "RunWaiting", "RunsRequest", "Serve", "ServeConfig",
		"SchemaChange", "SetWeightRequest", "SettingError", "SettingErrors", "Stage", "StatusRequest", "Step", "Target",
		"TargetStatus", "TriggerRequest", "Triggerer", "VerifyRequest", "WatchCountsRequest",
		"WatchFreshnessRequest", "WatchRunsRequest", "WatchStatusRequest",
	}
	got := exported(t)
	for _, n := range got {
		if !slices.Contains(want, n) {
			t.Errorf("plugins/sdk exports %s, which is not in the author's API; unexport it, or add it here and to README.md", n)
		}
	}
	for _, n := range want {
		if !slices.Contains(got, n) {
			t.Errorf("plugins/sdk no longer exports %s", n)
		}
	}
}
