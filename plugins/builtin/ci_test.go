package builtin

import (
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/plugins/githubactions/githubtest"
	"github.com/ripcordhq/ripcord/plugins/gitlabci/gitlabtest"
	"github.com/ripcordhq/ripcord/plugins/sdk/conformance"
)

// gitlab-ci, started as its own process the way ripcord starts it, keeps
// the provider contract against a stand-in GitLab: settings checked with
// the path of a bad one, health, and its runs streamed at once.
func TestGitLabCIBuiltinPassesConformance(t *testing.T) {
	gl := gitlabtest.New("shop/api")
	defer gl.Close()
	gl.RequireToken("glpat-conformance")
	at := time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)
	gl.Add(gitlabtest.Pipeline{Status: "success", Ref: "main", SHA: "50f0acb76a40e34a4ff304f7347dcc6587da8a14", CreatedAt: at, UpdatedAt: at.Add(time.Minute),
		Jobs: []gitlabtest.Job{{ID: 1, Name: "build", Stage: "build", Status: "success", StartedAt: at, FinishedAt: at.Add(time.Minute),
			Files: map[string][]byte{"dist/api": []byte("the build")}}}})
	conformance.Run(t, conformance.Options{
		Binary: launcher(t, "gitlab-ci"),
		Name:   "gitlab-ci",
		Env:    []string{serveEnv + "=gitlab-ci"},
		Settings: map[string]any{"service": "api", "project": "shop/api", "token": "glpat-conformance", "api_url": gl.APIURL(),
			"artifact": map[string]any{"job": "build", "path": "dist/api"}, "download_dir": t.TempDir(), "poll": "200ms"},
		BadSettings: map[string]any{"service": "api", "project": "shop/api", "artifact": map[string]any{"job": "build", "pth": "dist/api"}},
		BadPath:     "artifact.pth",
		Kinds:       []string{"pipeline"},
		Service:     "api",
	})
}

// github-actions, started as its own process, keeps the provider contract
// against a stand-in GitHub.
func TestGitHubActionsBuiltinPassesConformance(t *testing.T) {
	gh := githubtest.New("shop", "api", "ci.yml")
	defer gh.Close()
	at := time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)
	gh.Add(githubtest.Run{Status: "completed", Conclusion: "success", HeadSHA: "acb5820ced9479c074f688cc328bf03f341a511d", Branch: "main",
		CreatedAt: at, StartedAt: at, UpdatedAt: at.Add(time.Minute)})
	conformance.Run(t, conformance.Options{
		Binary: launcher(t, "github-actions"),
		Name:   "github-actions",
		Env:    []string{serveEnv + "=github-actions"},
		Settings: map[string]any{"service": "api", "repository": "shop/api", "workflow": "ci.yml", "token": "ghs_conformance",
			"api_url": gh.APIURL(), "download_dir": t.TempDir(), "poll": "200ms"},
		BadSettings: map[string]any{"service": "api", "repository": "shop/api", "workflow": "ci.yml", "poll_active": "soon"},
		BadPath:     "poll_active",
		Kinds:       []string{"pipeline"},
		Service:     "api",
	})
}
