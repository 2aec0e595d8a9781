// Package gitlabtest is a stand-in for the parts of GitLab's REST API the
// gitlab-ci pipeline source reads. Its JSON is the examples of GitLab's
// API documentation (testdata/, each file naming its page) with the fields
// a test changes filled in; trace.txt is a job trace in the form GitLab
// serves it (ANSI colours, collapsible section markers,
// https://docs.gitlab.com/ci/jobs/job_logs/#custom-collapsible-sections).
// It sends ETags and answers If-None-Match with 304, pages with X-Next-Page
// and Link, sends the RateLimit-* headers and can answer 429 with
// Retry-After as GitLab.com documents
// (https://docs.gitlab.com/security/rate_limits/#headers).
package gitlabtest

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

var (
	//go:embed testdata/pipelines.json
	pipelinesJSON []byte
	//go:embed testdata/pipeline.json
	pipelineJSON []byte
	//go:embed testdata/jobs.json
	jobsJSON []byte
	//go:embed testdata/trace.txt
	trace string
)

// Trace is a failed job's trace as GitLab serves it.
func Trace() string { return trace }

func documented(b []byte) []byte {
	var out [][]byte
	for _, line := range bytes.Split(b, []byte("\n")) {
		if len(out) == 0 && bytes.HasPrefix(bytes.TrimSpace(line), []byte("//")) {
			continue
		}
		out = append(out, line)
	}
	return bytes.Join(out, []byte("\n"))
}

func decode(b []byte, v any) {
	if err := json.Unmarshal(documented(b), v); err != nil {
		panic(fmt.Sprintf("gitlabtest: testdata is not JSON: %v", err))
	}
}

// Pipeline is one pipeline as the test wants GitLab to report it.
type Pipeline struct {
	ID        int64
	Status    string // created, pending, running, success, failed, canceled, manual …
	Ref       string
	SHA       string
	CreatedAt time.Time
	UpdatedAt time.Time
	Jobs      []Job
}

// Job is one job; Files are its artifacts' files by path.
type Job struct {
	ID           int64
	Name         string
	Stage        string
	Status       string
	AllowFailure bool
	Tag          bool
	StartedAt    time.Time
	FinishedAt   time.Time
	Trace        string
	Files        map[string][]byte
}

// Request is one request the server answered.
type Request struct {
	Method string
	Path   string
	Query  string
	Status int
	At     time.Time
}

// Server is the stand-in for one project.
type Server struct {
	*httptest.Server
	Project string // "group/name"

	mu        sync.Mutex
	pipelines []*Pipeline // newest first
	requests  []Request
	limit     int
	remaining int
	pageSize  int
	fail429   int
	retry     int
	played    []int64
	retried   []int64
	created   []string
	canceled  []int64
	nextID    int64
	token     string
	tokens    []string // the PRIVATE-TOKEN of every request
}

// New starts a stand-in for project ("group/name").
func New(project string) *Server {
	s := &Server{Project: project, limit: 2000, remaining: 2000, nextID: 287}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// APIURL is the API root to configure.
func (s *Server) APIURL() string { return s.URL + "/api/v4" }

// SetPageSize caps every page at n items.
func (s *Server) SetPageSize(n int) { s.Update(func() { s.pageSize = n }) }

// RequireToken answers 401 to every request without PRIVATE-TOKEN tok,
// as GitLab does for a wrong or revoked token.
func (s *Server) RequireToken(tok string) { s.Update(func() { s.token = tok }) }

// Tokens lists the PRIVATE-TOKEN header of every request so far.
func (s *Server) Tokens() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.tokens...)
}

// Fail429 answers the next n requests 429 with Retry-After: seconds.
func (s *Server) Fail429(n, seconds int) { s.Update(func() { s.fail429, s.retry = n, seconds }) }

// Add puts a pipeline at the head of the list; ID 0 gets the next one.
func (s *Server) Add(p Pipeline) *Pipeline {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.ID == 0 {
		p.ID = s.nextID
		s.nextID++
	}
	s.pipelines = append([]*Pipeline{&p}, s.pipelines...)
	return &p
}

// Update changes pipelines under the server's lock.
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

// Played, Retried, Created and Canceled list the write calls made.
func (s *Server) Played() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int64(nil), s.played...)
}
func (s *Server) Retried() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int64(nil), s.retried...)
}
func (s *Server) Created() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.created...)
}
func (s *Server) Canceled() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int64(nil), s.canceled...)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	status := s.handle(w, r)
	s.mu.Lock()
	s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery, Status: status, At: time.Now()})
	s.mu.Unlock()
}

func (s *Server) rateHeaders(h http.Header) {
	reset := time.Now().Add(time.Minute).Truncate(time.Minute)
	h.Set("RateLimit-Limit", strconv.Itoa(s.limit))
	h.Set("RateLimit-Observed", strconv.Itoa(s.limit-s.remaining))
	h.Set("RateLimit-Remaining", strconv.Itoa(s.remaining))
	h.Set("RateLimit-Reset", strconv.FormatInt(reset.Unix(), 10))
	h.Set("RateLimit-ResetTime", reset.UTC().Format(http.TimeFormat))
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens = append(s.tokens, r.Header.Get("PRIVATE-TOKEN"))
	if s.token != "" && r.Header.Get("PRIVATE-TOKEN") != s.token {
		s.rateHeaders(w.Header())
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"message":"401 Unauthorized"}`))
		return http.StatusUnauthorized
	}
	if s.fail429 > 0 {
		s.fail429--
		s.rateHeaders(w.Header())
		w.Header().Set("Retry-After", strconv.Itoa(s.retry))
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = w.Write([]byte("Retry later\n"))
		return http.StatusTooManyRequests
	}
	prefix := "/api/v4/projects/" + url.PathEscape(s.Project) + "/"
	rest, ok := strings.CutPrefix(r.URL.EscapedPath(), prefix)
	if !ok {
		return s.notFound(w)
	}
	parts := strings.Split(rest, "/")
	switch {
	case r.Method == http.MethodGet && rest == "pipelines":
		ref := r.URL.Query().Get("ref")
		var items []any
		for _, p := range s.pipelines {
			if ref == "" || p.Ref == ref {
				items = append(items, s.pipelineInfo(p))
			}
		}
		return s.page(w, r, items)
	case r.Method == http.MethodPost && rest == "pipeline":
		var body struct {
			Ref string `json:"ref"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		s.created = append(s.created, body.Ref)
		p := &Pipeline{ID: s.nextID, Status: "created", Ref: body.Ref, CreatedAt: time.Now(), UpdatedAt: time.Now()}
		s.nextID++
		return s.write(w, http.StatusCreated, s.pipeline(p))
	case len(parts) >= 2 && parts[0] == "pipelines":
		id, _ := strconv.ParseInt(parts[1], 10, 64)
		p := s.find(id)
		if p == nil {
			return s.notFound(w)
		}
		switch {
		case r.Method == http.MethodGet && len(parts) == 2:
			return s.json(w, r, s.pipeline(p))
		case r.Method == http.MethodGet && len(parts) == 3 && parts[2] == "jobs":
			var items []any
			for i := len(p.Jobs) - 1; i >= 0; i-- { // GitLab lists newest first
				items = append(items, s.job(p, p.Jobs[i]))
			}
			return s.page(w, r, items)
		case r.Method == http.MethodPost && len(parts) == 3 && parts[2] == "retry":
			// GitLab runs a new try of each failed or canceled job (the
			// old try is listed only with include_retried) and the
			// pipeline is pending again.
			s.retried = append(s.retried, id)
			for i, j := range p.Jobs {
				if j.Status == "failed" || j.Status == "canceled" {
					p.Jobs[i] = Job{ID: s.nextJobID(), Name: j.Name, Stage: j.Stage, Status: "pending", AllowFailure: j.AllowFailure, Tag: j.Tag, Files: j.Files}
					p.Status, p.UpdatedAt = "pending", time.Now()
				}
			}
			return s.write(w, http.StatusCreated, s.pipeline(p))
		case r.Method == http.MethodPost && len(parts) == 3 && parts[2] == "cancel":
			s.canceled = append(s.canceled, id)
			return s.write(w, http.StatusOK, s.pipeline(p))
		}
	case len(parts) >= 3 && parts[0] == "jobs":
		id, _ := strconv.ParseInt(parts[1], 10, 64)
		p, j := s.findJob(id)
		if j == nil {
			return s.notFound(w)
		}
		switch {
		case r.Method == http.MethodGet && parts[2] == "trace":
			s.rateHeaders(w.Header())
			w.Header().Set("Content-Type", "text/plain")
			_, _ = w.Write([]byte(j.Trace))
			return http.StatusOK
		case r.Method == http.MethodGet && parts[2] == "artifacts" && len(parts) > 3:
			path, _ := url.PathUnescape(strings.Join(parts[3:], "/"))
			b, ok := j.Files[path]
			if !ok {
				return s.notFound(w)
			}
			s.rateHeaders(w.Header())
			w.Header().Set("Content-Type", "application/octet-stream")
			_, _ = w.Write(b)
			return http.StatusOK
		case r.Method == http.MethodPost && parts[2] == "play":
			if j.Status != "manual" {
				return s.write(w, http.StatusBadRequest, map[string]any{"message": "400 Unplayable Job"})
			}
			s.played = append(s.played, id)
			j.Status = "pending"
			p.Status, p.UpdatedAt = "pending", time.Now()
			return s.write(w, http.StatusOK, s.job(p, *j))
		}
	}
	return s.notFound(w)
}

func (s *Server) nextJobID() int64 {
	var top int64
	for _, p := range s.pipelines {
		for _, j := range p.Jobs {
			top = max(top, j.ID)
		}
	}
	return top + 1
}

func (s *Server) find(id int64) *Pipeline {
	for _, p := range s.pipelines {
		if p.ID == id {
			return p
		}
	}
	return nil
}

func (s *Server) findJob(id int64) (*Pipeline, *Job) {
	for _, p := range s.pipelines {
		for i := range p.Jobs {
			if p.Jobs[i].ID == id {
				return p, &p.Jobs[i]
			}
		}
	}
	return nil, nil
}

func (s *Server) notFound(w http.ResponseWriter) int {
	s.rateHeaders(w.Header())
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusNotFound)
	_, _ = w.Write([]byte(`{"message":"404 Project Not Found"}`))
	return http.StatusNotFound
}

func (s *Server) write(w http.ResponseWriter, status int, v any) int {
	s.remaining--
	s.rateHeaders(w.Header())
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
	return status
}

func (s *Server) json(w http.ResponseWriter, r *http.Request, v any) int {
	body, _ := json.Marshal(v)
	sum := sha256.Sum256(body)
	etag := `W/"` + hex.EncodeToString(sum[:16]) + `"`
	w.Header().Set("ETag", etag)
	if r.Header.Get("If-None-Match") == etag {
		s.rateHeaders(w.Header())
		w.WriteHeader(http.StatusNotModified)
		return http.StatusNotModified
	}
	s.remaining--
	s.rateHeaders(w.Header())
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
	return http.StatusOK
}

func (s *Server) page(w http.ResponseWriter, r *http.Request, items []any) int {
	q := r.URL.Query()
	per, _ := strconv.Atoi(q.Get("per_page"))
	if per <= 0 {
		per = 20
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
	w.Header().Set("X-Page", strconv.Itoa(page))
	w.Header().Set("X-Per-Page", strconv.Itoa(per))
	w.Header().Set("X-Total", strconv.Itoa(len(items)))
	if to < len(items) {
		w.Header().Set("X-Next-Page", strconv.Itoa(page+1))
		next := *r.URL
		nq := next.Query()
		nq.Set("page", strconv.Itoa(page+1))
		next.RawQuery = nq.Encode()
		w.Header().Set("Link", fmt.Sprintf(`<%s%s>; rel="next"`, s.URL, next.RequestURI()))
	} else {
		w.Header().Set("X-Next-Page", "")
	}
	if items == nil {
		items = []any{}
	}
	return s.json(w, r, items[from:to])
}

func ts(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

func (s *Server) pipelineInfo(p *Pipeline) map[string]any {
	var list []map[string]any
	decode(pipelinesJSON, &list)
	m := list[0]
	m["id"], m["iid"], m["status"], m["ref"], m["sha"] = p.ID, p.ID, p.Status, p.Ref, p.SHA
	m["created_at"], m["updated_at"] = ts(p.CreatedAt), ts(p.UpdatedAt)
	return m
}

func (s *Server) pipeline(p *Pipeline) map[string]any {
	var m map[string]any
	decode(pipelineJSON, &m)
	m["id"], m["iid"], m["status"], m["ref"], m["sha"] = p.ID, p.ID, p.Status, p.Ref, p.SHA
	m["created_at"], m["updated_at"] = ts(p.CreatedAt), ts(p.UpdatedAt)
	return m
}

func (s *Server) job(p *Pipeline, j Job) map[string]any {
	var list []map[string]any
	decode(jobsJSON, &list)
	m := list[0]
	m["id"], m["name"], m["stage"], m["status"], m["allow_failure"], m["tag"] = j.ID, j.Name, j.Stage, j.Status, j.AllowFailure, j.Tag
	m["started_at"], m["finished_at"], m["created_at"] = ts(j.StartedAt), ts(j.FinishedAt), ts(p.CreatedAt)
	m["ref"] = p.Ref
	m["failure_reason"] = nil
	if j.Status == "failed" {
		m["failure_reason"] = "script_failure"
	}
	pm := m["pipeline"].(map[string]any)
	pm["id"], pm["ref"], pm["sha"], pm["status"] = p.ID, p.Ref, p.SHA, p.Status
	m["commit"].(map[string]any)["id"] = p.SHA
	return m
}
