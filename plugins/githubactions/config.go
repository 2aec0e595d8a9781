// Package githubactions is a pipeline source reading one GitHub Actions
// workflow of one repository: its runs become Ripcord pipeline runs, each
// job a stage and each of the job's steps a step, with their states and
// times. A run's commit is its head SHA and its branch its head branch, as
// GitHub reports them. Its release is an artifact the workflow uploads
// (`artifact: release-{version}`): the artifact's name gives the version,
// its sha256 digest (upload-artifact v4 and later) the release's artifact
// digest, and — with a download directory — its bytes are fetched,
// checked against that digest and kept under `<dir>/<hex>`, where a deploy
// target picks them up. A run with no such artifact builds no release.
//
// Polling is conditional (If-None-Match; a 304 does not count against
// GitHub's rate limit) and adaptive: the run list every Poll while nothing
// runs, the jobs of each run in flight every PollActive and the run list
// every third of those. The rate-limit headers are kept and a secondary
// limit's Retry-After is obeyed. An optional webhook receiver
// (workflow_run and workflow_job events, signed with a shared secret)
// wakes the poller at once, so updates are instant and idle polling can
// be rare.
package githubactions

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Config is one watched workflow.
type Config struct {
	// Service is the Ripcord service the runs build.
	Service string
	// Repository is "owner/name".
	Repository string
	// Workflow is the workflow file name ("ci.yml"), its numeric id, or
	// its name as shown on GitHub ("CI").
	Workflow string
	// Branch filters runs by head branch (default "main"); "*" reads the
	// runs of every branch (the branch gate then judges each).
	Branch string
	// Token authenticates (a fine-grained personal access token with
	// Actions read, or write for retry and cancel; or a GitHub App
	// installation token).
	Token string
	// APIURL is the REST API root (default https://api.github.com/; for
	// GitHub Enterprise Server https://HOST/api/v3/).
	APIURL string
	// Artifact names the artifact that is the release. "{version}" in it
	// matches the version (default "release-{version}"); without it the
	// version is the commit's first 12 characters.
	Artifact string
	// DownloadDir, when set, receives each green run's artifact as
	// <dir>/<sha256 hex>, verified against the digest GitHub reports.
	DownloadDir string
	// MigrationsDir, when set, is the service's migrations directory in a
	// local clone of the repository: each green run's migrations are read
	// there at its commit.
	MigrationsDir string
	// Poll is the run list's interval while no run is in flight (default
	// 30s, 5m with a webhook); PollActive the interval of the jobs of a
	// run in flight (default 10s).
	Poll       time.Duration
	PollActive time.Duration
	// History is how many recent runs are read (default 10).
	History int
	// LogTail is how many lines of a job's log the logs pane gets
	// (default 200).
	LogTail int
	// DispatchRef is the branch or tag a retry dispatches the workflow on
	// (default Branch, or main when Branch is "*").
	DispatchRef string
	// Webhook, when its Listen is set, receives GitHub's webhooks.
	Webhook Webhook

	// Transport carries the API requests (default http.DefaultTransport);
	// Now is the clock (default time.Now). Tests set them.
	Transport http.RoundTripper
	Now       func() time.Time
	// Logf receives what the source has to say (a failed poll, a refused
	// webhook); default nowhere.
	Logf func(format string, args ...any)
}

// Webhook is the receiver of GitHub's workflow_run and workflow_job
// events.
type Webhook struct {
	// Listen is the address to listen on ("127.0.0.1:8790"), usually
	// behind a reverse proxy that terminates TLS.
	Listen string
	// Path is the URL path GitHub posts to (default /github).
	Path string
	// Secret is the webhook's secret: every delivery's
	// X-Hub-Signature-256 must be its HMAC-SHA256, or it is refused.
	Secret string
}

// Defaults.
const (
	defaultPoll        = 30 * time.Second
	defaultPollWebhook = 5 * time.Minute
	defaultPollActive  = 10 * time.Second
	defaultHistory     = 10
	defaultLogTail     = 200
	defaultArtifact    = "release-{version}"
	defaultAPIURL      = "https://api.github.com/"
)

func (c *Config) normalize() error {
	var errs []error
	owner, repo, ok := strings.Cut(c.Repository, "/")
	if !ok || owner == "" || repo == "" || strings.Contains(repo, "/") {
		errs = append(errs, fmt.Errorf("repository: expected owner/name, got %q", c.Repository))
	}
	if strings.TrimSpace(c.Workflow) == "" {
		errs = append(errs, errors.New("workflow: name the workflow file (ci.yml), its id or its name"))
	}
	if c.Branch == "" {
		c.Branch = "main"
	}
	if c.DispatchRef == "" {
		c.DispatchRef = c.Branch
		if c.Branch == "*" {
			c.DispatchRef = "main"
		}
	}
	if c.APIURL == "" {
		c.APIURL = defaultAPIURL
	}
	if !strings.HasSuffix(c.APIURL, "/") {
		c.APIURL += "/"
	}
	if c.Artifact == "" {
		c.Artifact = defaultArtifact
	}
	if _, err := artifactPattern(c.Artifact); err != nil {
		errs = append(errs, err)
	}
	if c.Poll <= 0 {
		c.Poll = defaultPoll
		if c.Webhook.Listen != "" {
			c.Poll = defaultPollWebhook
		}
	}
	if c.PollActive <= 0 {
		c.PollActive = defaultPollActive
	}
	if c.History <= 0 {
		c.History = defaultHistory
	}
	if c.LogTail <= 0 {
		c.LogTail = defaultLogTail
	}
	if c.Webhook.Listen != "" {
		if c.Webhook.Secret == "" {
			errs = append(errs, errors.New("webhook.secret: required with webhook.listen (deliveries are verified with it)"))
		}
		if c.Webhook.Path == "" {
			c.Webhook.Path = "/github"
		}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
	return errors.Join(errs...)
}

// artifactPattern turns an artifact name template into a pattern whose
// first group, when the template has {version}, is the version.
func artifactPattern(template string) (*regexp.Regexp, error) {
	if strings.Count(template, "{version}") > 1 {
		return nil, fmt.Errorf("artifact: {version} may appear once, got %q", template)
	}
	before, after, has := strings.Cut(template, "{version}")
	if !has {
		return regexp.Compile("^" + regexp.QuoteMeta(template) + "$")
	}
	return regexp.Compile("^" + regexp.QuoteMeta(before) + "(.+)" + regexp.QuoteMeta(after) + "$")
}

// workflowID returns the workflow as a number when it is one.
func workflowID(w string) (int64, bool) {
	id, err := strconv.ParseInt(w, 10, 64)
	return id, err == nil && id > 0
}

// isWorkflowFile reports whether w names a workflow file.
func isWorkflowFile(w string) bool {
	return strings.HasSuffix(w, ".yml") || strings.HasSuffix(w, ".yaml")
}
