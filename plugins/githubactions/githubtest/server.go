// Package githubtest is a stand-in for the parts of GitHub's REST API the
// github-actions pipeline source reads, for tests on a machine that cannot
// reach GitHub. Its responses are the examples of GitHub's REST API
// documentation (testdata/, each file naming its page), with the fields a
// test changes filled in: run and job states, steps, times, artifacts.
// It behaves as GitHub documents: ETags and 304 Not Modified, rate-limit
// headers (a 304 is not charged), Link pagination, secondary rate limits
// (403 or 429 with retry-after), redirects to signed storage URLs for logs
// and artifacts.
package githubtest

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"
)

var (
	//go:embed testdata/workflow-run.json
	runJSON []byte
	//go:embed testdata/workflow-jobs.json
	jobsJSON []byte
	//go:embed testdata/artifacts.json
	artifactsJSON []byte
	//go:embed testdata/secondary-rate-limit.json
	secondaryJSON []byte
	//go:embed testdata/workflow-dispatch.json
	dispatchJSON []byte
	//go:embed testdata/job.log
	jobLog string
)

// JobLog is a job's log as GitHub serves it: every line stamped with its
// time (RFC 3339, 100 ns), step groups marked ##[group].
func JobLog() string { return jobLog }

// Documented returns a testdata file without its leading comment lines.
func Documented(b []byte) []byte {
	var out [][]byte
	for _, line := range bytes.Split(b, []byte("\n")) {
		if len(out) == 0 && bytes.HasPrefix(bytes.TrimSpace(line), []byte("//")) {
			continue
		}
		out = append(out, line)
	}
	return bytes.Join(out, []byte("\n"))
}

func template(b []byte) map[string]any {
	var m map[string]any
	if err := json.Unmarshal(Documented(b), &m); err != nil {
		panic(fmt.Sprintf("githubtest: testdata is not JSON: %v", err))
	}
	return m
}

// Run is one workflow run as the test wants GitHub to report it.
type Run struct {
	ID         int64
	Attempt    int
	Status     string // queued, in_progress, completed
	Conclusion string // success, failure, cancelled, … once completed
	HeadSHA    string
	Branch     string
	// HeadRepo is the repository the head branch lives in (a fork);
	// default the watched repository.
	HeadRepo  string
	Event     string
	CreatedAt time.Time
	StartedAt time.Time
	UpdatedAt time.Time
	Jobs      []Job
	Artifacts []Artifact
}

// Job is one job of a run.
type Job struct {
	ID          int64
	Name        string
	Status      string
	Conclusion  string
	StartedAt   time.Time
	CompletedAt time.Time
	Steps       []Step
	// Log is the job's log as GitHub serves it (each line stamped).
	Log string
}

// Step is one step of a job.
type Step struct {
	Name        string
	Status      string
	Conclusion  string
	StartedAt   time.Time
	CompletedAt time.Time
}

// Artifact is one artifact a run uploaded; its digest is the sha256 of
// Body, which the download serves.
type Artifact struct {
	ID        int64
	Name      string
	Body      []byte
	CreatedAt time.Time
}

// Digest is the artifact's "sha256:<hex>".
func (a Artifact) Digest() string {
	sum := sha256.Sum256(a.Body)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Request is one request the server answered.
type Request struct {
	Method string
	Path   string
	Status int
	At     time.Time
}

// Server is the stand-in. Lock-free accessors are safe for concurrent use.
type Server struct {
	*httptest.Server
	Owner, Repo string
	WorkflowID  int64
	Workflow    string // file name

	mu        sync.Mutex
	runs      []*Run // newest first
	requests  []Request
	limit     int
	remaining int
	reset     time.Time
	// PageSize caps every page (0: honour per_page): pagination tests.
	pageSize   int
	failStatus int
	failCount  int
	retryAfter int
	dispatched []string // refs
	reruns     []int64
	cancels    []int64
	nextID     int64
}

// New starts a stand-in for repository owner/repo with one workflow.
func New(owner, repo, workflow string) *Server {
	s := &Server{Owner: owner, Repo: repo, Workflow: workflow, WorkflowID: 159038,
		limit: 5000, remaining: 5000, reset: time.Now().Add(time.Hour).Truncate(time.Second), nextID: 30433642}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// APIURL is the REST root to configure.
func (s *Server) APIURL() string { return s.URL + "/" }

// SetPageSize caps every page at n items.
func (s *Server) SetPageSize(n int) {
	s.mu.Lock()
	s.pageSize = n
	s.mu.Unlock()
}

// FailNext answers the next n API requests with status (403 or 429) and
// GitHub's secondary-rate-limit body, with retry-after: retryAfter
// seconds.
func (s *Server) FailNext(status, n, retryAfter int) {
	s.mu.Lock()
	s.failStatus, s.failCount, s.retryAfter = status, n, retryAfter
	s.mu.Unlock()
}

// Add puts a run at the head of the list (the newest) and returns it; an
// ID of 0 gets the next one.
func (s *Server) Add(r Run) *Run {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.ID == 0 {
		r.ID = s.nextID
		s.nextID++
	}
	if r.Attempt == 0 {
		r.Attempt = 1
	}
	s.runs = append([]*Run{&r}, s.runs...)
	return &r
}

// Update changes runs under the server's lock.
func (s *Server) Update(fn func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn()
}

// Requests returns what was asked so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Dispatched lists the refs workflow_dispatch was asked for.
func (s *Server) Dispatched() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.dispatched...)
}

// Reruns lists the runs whose failed jobs were re-run.
func (s *Server) Reruns() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int64(nil), s.reruns...)
}

// Cancels lists the runs cancel was asked for.
func (s *Server) Cancels() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int64(nil), s.cancels...)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	status := s.handle(w, r)
	s.mu.Lock()
	s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, Status: status, At: time.Now()})
	s.mu.Unlock()
}

func (s *Server) rateHeaders(h http.Header) {
	h.Set("X-RateLimit-Limit", strconv.Itoa(s.limit))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(s.remaining))
	h.Set("X-RateLimit-Used", strconv.Itoa(s.limit-s.remaining))
	h.Set("X-RateLimit-Reset", strconv.FormatInt(s.reset.Unix(), 10))
	h.Set("X-RateLimit-Resource", "core")
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request) int {
	path := r.URL.Path
	if strings.HasPrefix(path, "/blob/") {
		return s.blob(w, path)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failCount > 0 {
		s.failCount--
		s.rateHeaders(w.Header())
		w.Header().Set("Retry-After", strconv.Itoa(s.retryAfter))
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(s.failStatus)
		_, _ = w.Write(Documented(secondaryJSON))
		return s.failStatus
	}
	repo := "/repos/" + s.Owner + "/" + s.Repo + "/actions/"
	rest, ok := strings.CutPrefix(path, repo)
	if !ok {
		return s.notFound(w)
	}
	parts := strings.Split(rest, "/")
	switch {
	case r.Method == http.MethodGet && len(parts) == 3 && parts[0] == "workflows" && parts[2] == "runs" && (parts[1] == s.Workflow || parts[1] == strconv.FormatInt(s.WorkflowID, 10)):
		branch := r.URL.Query().Get("branch")
		var items []any
		for _, run := range s.runs {
			if branch == "" || run.Branch == branch {
				items = append(items, s.runJSON(run))
			}
		}
		return s.page(w, r, "workflow_runs", items)
	case r.Method == http.MethodGet && len(parts) == 1 && parts[0] == "workflows":
		return s.json(w, r, map[string]any{"total_count": 1, "workflows": []any{map[string]any{
			"id": s.WorkflowID, "name": "CI", "path": ".github/workflows/" + s.Workflow, "state": "active"}}})
	case len(parts) >= 2 && parts[0] == "runs":
		id, _ := strconv.ParseInt(parts[1], 10, 64)
		run := s.run(id)
		if run == nil {
			return s.notFound(w)
		}
		switch {
		case r.Method == http.MethodGet && len(parts) == 2:
			return s.json(w, r, s.runJSON(run))
		case r.Method == http.MethodGet && len(parts) == 3 && parts[2] == "jobs":
			var items []any
			for _, j := range run.Jobs {
				items = append(items, s.jobJSON(run, j))
			}
			return s.page(w, r, "jobs", items)
		case r.Method == http.MethodGet && len(parts) == 3 && parts[2] == "artifacts":
			var items []any
			for _, a := range run.Artifacts {
				items = append(items, s.artifactJSON(run, a))
			}
			return s.page(w, r, "artifacts", items)
		case r.Method == http.MethodPost && len(parts) == 3 && parts[2] == "rerun-failed-jobs":
			s.reruns = append(s.reruns, id)
			s.rateHeaders(w.Header())
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write([]byte("{}"))
			return http.StatusCreated
		case r.Method == http.MethodPost && len(parts) == 3 && parts[2] == "cancel":
			s.cancels = append(s.cancels, id)
			s.rateHeaders(w.Header())
			w.WriteHeader(http.StatusAccepted)
			_, _ = w.Write([]byte("{}"))
			return http.StatusAccepted
		}
	case r.Method == http.MethodGet && len(parts) == 3 && parts[0] == "jobs" && parts[2] == "logs":
		id, _ := strconv.ParseInt(parts[1], 10, 64)
		s.rateHeaders(w.Header())
		w.Header().Set("Location", s.URL+"/blob/logs/"+strconv.FormatInt(id, 10)+"?sig=signed")
		w.WriteHeader(http.StatusFound)
		return http.StatusFound
	case r.Method == http.MethodGet && len(parts) == 3 && parts[0] == "artifacts" && parts[2] == "zip":
		id, _ := strconv.ParseInt(parts[1], 10, 64)
		s.rateHeaders(w.Header())
		w.Header().Set("Location", s.URL+"/blob/artifacts/"+strconv.FormatInt(id, 10)+"?sig=signed")
		w.WriteHeader(http.StatusFound)
		return http.StatusFound
	case r.Method == http.MethodPost && len(parts) == 3 && parts[0] == "workflows" && parts[2] == "dispatches":
		var body struct {
			Ref              string `json:"ref"`
			ReturnRunDetails bool   `json:"return_run_details"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		s.dispatched = append(s.dispatched, body.Ref)
		s.remaining--
		s.rateHeaders(w.Header())
		if !body.ReturnRunDetails {
			w.WriteHeader(http.StatusNoContent)
			return http.StatusNoContent
		}
		d := template(dispatchJSON)
		d["workflow_run_id"] = s.nextID
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		_ = json.NewEncoder(w).Encode(d)
		return http.StatusOK
	}
	return s.notFound(w)
}

func (s *Server) notFound(w http.ResponseWriter) int {
	s.rateHeaders(w.Header())
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusNotFound)
	_, _ = w.Write([]byte(`{"message":"Not Found","documentation_url":"https://docs.github.com/rest","status":"404"}`))
	return http.StatusNotFound
}

func (s *Server) run(id int64) *Run {
	for _, r := range s.runs {
		if r.ID == id {
			return r
		}
	}
	return nil
}

// blob serves the signed storage GitHub redirects log and artifact
// downloads to: no API headers, no token expected.
func (s *Server) blob(w http.ResponseWriter, path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	kind, idText, _ := strings.Cut(strings.TrimPrefix(path, "/blob/"), "/")
	id, _ := strconv.ParseInt(idText, 10, 64)
	for _, run := range s.runs {
		switch kind {
		case "logs":
			for _, j := range run.Jobs {
				if j.ID == id {
					w.Header().Set("Content-Type", "text/plain")
					_, _ = w.Write([]byte(j.Log))
					return http.StatusOK
				}
			}
		case "artifacts":
			for _, a := range run.Artifacts {
				if a.ID == id {
					w.Header().Set("Content-Type", "application/zip")
					_, _ = w.Write(a.Body)
					return http.StatusOK
				}
			}
		}
	}
	http.NotFound(w, nil)
	return http.StatusNotFound
}

// json answers v with an ETag; a matching If-None-Match gets 304 and is
// not charged.
func (s *Server) json(w http.ResponseWriter, r *http.Request, v any) int {
	body, _ := json.Marshal(v)
	sum := sha256.Sum256(body)
	etag := `W/"` + hex.EncodeToString(sum[:16]) + `"`
	w.Header().Set("ETag", etag)
	w.Header().Set("Cache-Control", "private, max-age=60, s-maxage=60")
	if r.Header.Get("If-None-Match") == etag {
		s.rateHeaders(w.Header())
		w.WriteHeader(http.StatusNotModified)
		return http.StatusNotModified
	}
	s.remaining--
	s.rateHeaders(w.Header())
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, _ = w.Write(body)
	return http.StatusOK
}

// page answers one page of items with GitHub's Link header.
func (s *Server) page(w http.ResponseWriter, r *http.Request, key string, items []any) int {
	q := r.URL.Query()
	per, _ := strconv.Atoi(q.Get("per_page"))
	if per <= 0 {
		per = 30
	}
	if s.pageSize > 0 && per > s.pageSize {
		per = s.pageSize
	}
	page, _ := strconv.Atoi(q.Get("page"))
	if page <= 0 {
		page = 1
	}
	from := min((page-1)*per, len(items))
	to := min(from+per, len(items))
	if to < len(items) {
		next := *r.URL
		nq := next.Query()
		nq.Set("page", strconv.Itoa(page+1))
		next.RawQuery = nq.Encode()
		w.Header().Set("Link", fmt.Sprintf(`<%s%s>; rel="next"`, s.URL, next.RequestURI()))
	}
	if items == nil {
		items = []any{}
	}
	return s.json(w, r, map[string]any{"total_count": len(items), key: items[from:to]})
}

func ts(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format(time.RFC3339)
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (s *Server) runJSON(r *Run) map[string]any {
	m := template(runJSON)
	full := s.Owner + "/" + s.Repo
	m["id"], m["run_attempt"], m["status"], m["conclusion"] = r.ID, r.Attempt, r.Status, nullable(r.Conclusion)
	m["head_sha"], m["head_branch"], m["workflow_id"] = r.HeadSHA, r.Branch, s.WorkflowID
	m["path"] = ".github/workflows/" + s.Workflow + "@" + r.Branch
	if r.Event != "" {
		m["event"] = r.Event
	}
	m["created_at"], m["run_started_at"], m["updated_at"] = ts(r.CreatedAt), ts(r.StartedAt), ts(r.UpdatedAt)
	m["url"] = fmt.Sprintf("%s/repos/%s/actions/runs/%d", s.URL, full, r.ID)
	m["repository"].(map[string]any)["full_name"] = full
	head := r.HeadRepo
	if head == "" {
		head = full
	}
	m["head_repository"].(map[string]any)["full_name"] = head
	m["head_commit"].(map[string]any)["id"] = r.HeadSHA
	return m
}

func (s *Server) jobJSON(r *Run, j Job) map[string]any {
	m := template(jobsJSON)["jobs"].([]any)[0].(map[string]any)
	m["id"], m["run_id"], m["name"], m["status"], m["conclusion"] = j.ID, r.ID, j.Name, j.Status, nullable(j.Conclusion)
	m["head_sha"], m["head_branch"], m["run_attempt"] = r.HeadSHA, r.Branch, r.Attempt
	m["created_at"], m["started_at"], m["completed_at"] = ts(r.CreatedAt), ts(j.StartedAt), ts(j.CompletedAt)
	var steps []any
	for i, st := range j.Steps {
		steps = append(steps, map[string]any{"name": st.Name, "status": st.Status, "conclusion": nullable(st.Conclusion),
			"number": i + 1, "started_at": ts(st.StartedAt), "completed_at": ts(st.CompletedAt)})
	}
	if steps == nil {
		steps = []any{}
	}
	m["steps"] = steps
	return m
}

func (s *Server) artifactJSON(r *Run, a Artifact) map[string]any {
	m := template(artifactsJSON)["artifacts"].([]any)[0].(map[string]any)
	m["id"], m["name"], m["size_in_bytes"], m["digest"] = a.ID, a.Name, len(a.Body), a.Digest()
	m["archive_download_url"] = fmt.Sprintf("%s/repos/%s/%s/actions/artifacts/%d/zip", s.URL, s.Owner, s.Repo, a.ID)
	m["created_at"] = ts(a.CreatedAt)
	wr := m["workflow_run"].(map[string]any)
	wr["id"], wr["head_sha"], wr["head_branch"] = r.ID, r.HeadSHA, r.Branch
	return m
}

// RunEvent is the body of a workflow_run webhook delivery for run (the
// payload GitHub documents at
// https://docs.github.com/en/webhooks/webhook-events-and-payloads#workflow_run:
// action, workflow_run, repository, sender).
func (s *Server) RunEvent(action string, run *Run) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, _ := json.Marshal(map[string]any{
		"action":       action,
		"workflow_run": s.runJSON(run),
		"repository":   map[string]any{"id": 1296269, "name": s.Repo, "full_name": s.Owner + "/" + s.Repo},
		"sender":       map[string]any{"login": "octocat", "id": 1, "type": "User"},
	})
	return b
}

// Deliver posts a webhook to url as GitHub does, signing the body with
// secret in X-Hub-Signature-256, and returns the status.
func Deliver(url, event, secret string, body []byte) (int, error) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", event)
	req.Header.Set("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
