package githubactions

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/google/go-github/v93/github"
)

type webhookStats struct {
	accepted int
	refused  int
}

// listen starts the webhook receiver.
func (s *Source) listen() error {
	ln, err := net.Listen("tcp", s.cfg.Webhook.Listen)
	if err != nil {
		return fmt.Errorf("webhook.listen: %w", err)
	}
	s.addr = ln.Addr().String()
	mux := http.NewServeMux()
	mux.HandleFunc(s.cfg.Webhook.Path, s.serveWebhook)
	s.server = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.server.Serve(ln) }()
	return nil
}

// WebhookAddr is the address the receiver listens on ("" without one).
func (s *Source) WebhookAddr() string { return s.addr }

// serveWebhook takes one delivery: its signature must be the HMAC-SHA256
// of the body under the secret (or it is refused with 401 and counted);
// a workflow_run or workflow_job event of this repository wakes the
// poller, which reads what changed with conditional requests.
func (s *Source) serveWebhook(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 25<<20) // GitHub caps payloads at 25 MB
	payload, err := github.ValidatePayload(r, []byte(s.cfg.Webhook.Secret))
	if err != nil {
		s.mu.Lock()
		s.webhooks.refused++
		s.mu.Unlock()
		s.cfg.Logf("webhook delivery %s refused: %v", r.Header.Get("X-GitHub-Delivery"), signatureProblem(err))
		http.Error(w, "signature does not match", http.StatusUnauthorized)
		return
	}
	kind := github.WebHookType(r)
	event, err := github.ParseWebHook(kind, payload)
	if err != nil {
		// An event kind this receiver does not follow (ping among them).
		w.WriteHeader(http.StatusNoContent)
		return
	}
	var repo string
	switch e := event.(type) {
	case *github.WorkflowRunEvent:
		repo = e.GetRepo().GetFullName()
	case *github.WorkflowJobEvent:
		repo = e.GetRepo().GetFullName()
	default:
		w.WriteHeader(http.StatusNoContent)
		return
	}
	s.mu.Lock()
	s.webhooks.accepted++
	s.mu.Unlock()
	if repo == "" || strings.EqualFold(repo, s.cfg.Repository) {
		s.poller.Poke()
	}
	w.WriteHeader(http.StatusNoContent)
}

// signatureProblem names what was wrong with a delivery without echoing
// anything derived from the secret.
func signatureProblem(err error) string {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "signature check failed"):
		return "the signature does not match the configured secret"
	case strings.Contains(msg, "Content-Type"):
		return "not a JSON or form delivery"
	}
	return "no valid X-Hub-Signature-256 header"
}
