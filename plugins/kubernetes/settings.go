// Package kubernetes is Ripcord's Kubernetes deploy target, served by the
// ripcord-provider-kubernetes binary through the public plugin SDK. It
// rolls a release (an image pinned by digest) out to one workload in one
// namespace, in one of two modes:
//
//   - deployment: a canary runs as a second Deployment NAME-canary with the
//     stable Deployment's selector plus a track label, behind the same
//     Service, its replicas split from the stable's to approximate the
//     step's weight; promotion updates the stable Deployment and removes
//     the canary; rollback puts the stable Deployment back on an image from
//     its ReplicaSet history.
//   - argo-rollouts: an Argo Rollouts Rollout is driven with the patches the
//     kubectl argo rollouts plugin sends (set image, promote, promote
//     --full, abort, retry, undo); its pauses wait for Ripcord.
//
// Status comes from informers (watches), every write carries the operation
// id in an annotation so a restarted provider re-attaches, and an RBAC
// denial names the identity, verb, resource and the verbs it needs.
package kubernetes

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/ripcordhq/ripcord/plugins/sdk"
)

// Modes.
const (
	ModeDeployment = "deployment"
	ModeArgo       = "argo-rollouts"
)

// DefaultTrackLabel marks the canary Deployment's pods (value "canary").
const DefaultTrackLabel = "ripcord.dev/track"

// Settings are the kubernetes target's block in ripcord.yaml.
type Settings struct {
	// Kubeconfig is the kubeconfig file (a leading ~/ is the home
	// directory); Context the context in it (default: its current one).
	Kubeconfig string `json:"kubeconfig"`
	Context    string `json:"context"`
	// InCluster uses the pod's service account instead of a kubeconfig.
	InCluster bool `json:"in_cluster"`
	// Namespace and Workload name the Deployment (or Rollout).
	Namespace string `json:"namespace"`
	Workload  string `json:"workload"`
	// Mode is deployment (default) or argo-rollouts.
	Mode string `json:"mode"`
	// Image is the repository releases are pulled from; a release's
	// artifact digest is appended: IMAGE@sha256:….
	Image string `json:"image"`
	// Container is the container whose image is set (default: the only one).
	Container string `json:"container"`
	// TrackLabel is the label that tells canary pods from stable ones.
	TrackLabel string `json:"track_label"`
	// Timeout bounds each operation (default 10m).
	Timeout time.Duration `json:"-"`
}

// ConfigSchema is the JSON Schema of Settings, published in GetInfo.
var ConfigSchema = json.RawMessage(`{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "additionalProperties": false,
  "required": ["namespace", "workload", "image"],
  "properties": {
    "kubeconfig": {"type": "string", "description": "kubeconfig file (~/ allowed); required unless in_cluster"},
    "context": {"type": "string", "description": "context in the kubeconfig (default: its current context)"},
    "in_cluster": {"type": "boolean", "description": "use the pod's service account instead of a kubeconfig"},
    "namespace": {"type": "string", "description": "namespace of the workload"},
    "workload": {"type": "string", "description": "name of the Deployment (mode deployment) or Rollout (mode argo-rollouts)"},
    "mode": {"type": "string", "enum": ["deployment", "argo-rollouts"], "description": "deployment (default): canary as a second Deployment; argo-rollouts: drive an Argo Rollouts Rollout"},
    "image": {"type": "string", "description": "image repository; a release deploys as IMAGE@sha256:DIGEST"},
    "container": {"type": "string", "description": "container whose image is set (default: the only one)"},
    "track_label": {"type": "string", "description": "label that tells canary pods from stable ones (default ripcord.dev/track)"},
    "timeout": {"type": "string", "description": "deadline of each operation, such as 5m (default 10m)"}
  }
}`)

var (
	dnsLabel  = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	imageRepo = regexp.MustCompile(`^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*$`)
	labelKey  = regexp.MustCompile(`^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`)
)

// ParseSettings decodes and checks a settings block; every problem is a
// SettingError at its key, so the user sees ripcord.yaml:LINE:COL.
func ParseSettings(raw json.RawMessage) (Settings, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		raw = json.RawMessage("{}")
	}
	var s Settings
	var errs sdk.SettingErrors
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return s, sdk.SettingErrors{{Path: "", Message: "must be a mapping of settings: " + err.Error()}}
	}
	str := func(key string, into *string) {
		v, ok := fields[key]
		if !ok {
			return
		}
		if err := json.Unmarshal(v, into); err != nil {
			errs = append(errs, sdk.SettingError{Path: key, Message: "must be a string"})
		}
	}
	for key, v := range fields {
		switch key {
		case "kubeconfig":
			str(key, &s.Kubeconfig)
		case "context":
			str(key, &s.Context)
		case "namespace":
			str(key, &s.Namespace)
		case "workload":
			str(key, &s.Workload)
		case "mode":
			str(key, &s.Mode)
		case "image":
			str(key, &s.Image)
		case "container":
			str(key, &s.Container)
		case "track_label":
			str(key, &s.TrackLabel)
		case "in_cluster":
			if err := json.Unmarshal(v, &s.InCluster); err != nil {
				errs = append(errs, sdk.SettingError{Path: key, Message: "must be true or false"})
			}
		case "timeout":
			var d string
			if err := json.Unmarshal(v, &d); err != nil {
				errs = append(errs, sdk.SettingError{Path: key, Message: "must be a duration such as 5m"})
				break
			}
			t, err := time.ParseDuration(d)
			if err != nil || t <= 0 {
				errs = append(errs, sdk.SettingError{Path: key, Message: fmt.Sprintf("%q is not a positive duration such as 5m", d)})
				break
			}
			s.Timeout = t
		default:
			errs = append(errs, sdk.SettingError{Path: key, Message: "unknown setting; known: kubeconfig, context, in_cluster, namespace, workload, mode, image, container, track_label, timeout"})
		}
	}
	if s.Mode == "" {
		s.Mode = ModeDeployment
	}
	if s.TrackLabel == "" {
		s.TrackLabel = DefaultTrackLabel
	}
	if s.Timeout == 0 {
		s.Timeout = 10 * time.Minute
	}
	switch {
	case s.InCluster && s.Kubeconfig != "":
		errs = append(errs, sdk.SettingError{Path: "in_cluster", Message: "give either in_cluster: true or a kubeconfig, not both"})
	case s.InCluster && s.Context != "":
		errs = append(errs, sdk.SettingError{Path: "context", Message: "a context belongs to a kubeconfig; in_cluster uses the pod's service account"})
	case !s.InCluster && s.Kubeconfig == "":
		errs = append(errs, sdk.SettingError{Path: "kubeconfig", Message: "is required (a kubeconfig file such as ~/.kube/config), unless in_cluster: true"})
	}
	if s.Mode != ModeDeployment && s.Mode != ModeArgo {
		errs = append(errs, sdk.SettingError{Path: "mode", Message: fmt.Sprintf("%q is not a mode; use deployment or argo-rollouts", s.Mode)})
	}
	if s.Namespace == "" {
		errs = append(errs, sdk.SettingError{Path: "namespace", Message: "is required: the namespace of the workload"})
	} else if !dnsLabel.MatchString(s.Namespace) || len(s.Namespace) > 63 {
		errs = append(errs, sdk.SettingError{Path: "namespace", Message: fmt.Sprintf("%q is not a namespace name (lower-case letters, digits and '-')", s.Namespace)})
	}
	if s.Workload == "" {
		errs = append(errs, sdk.SettingError{Path: "workload", Message: "is required: the name of the Deployment or Rollout"})
	} else if !dnsLabel.MatchString(s.Workload) || len(s.Workload) > 63-len("-canary") {
		errs = append(errs, sdk.SettingError{Path: "workload", Message: fmt.Sprintf("%q is not a workload name (lower-case letters, digits and '-', at most %d characters so NAME-canary fits)", s.Workload, 63-len("-canary"))})
	}
	if s.Image == "" {
		errs = append(errs, sdk.SettingError{Path: "image", Message: "is required: the image repository, such as registry.example.com/shop/api"})
	} else if strings.ContainsAny(s.Image, "@") || !imageRepo.MatchString(s.Image) || hasTag(s.Image) {
		errs = append(errs, sdk.SettingError{Path: "image", Message: fmt.Sprintf("%q must be a repository without tag or digest (releases add @sha256:…)", s.Image)})
	}
	if !labelKey.MatchString(s.TrackLabel) {
		errs = append(errs, sdk.SettingError{Path: "track_label", Message: fmt.Sprintf("%q is not a label key", s.TrackLabel)})
	}
	if len(errs) > 0 {
		return s, errs
	}
	if rest, ok := strings.CutPrefix(s.Kubeconfig, "~/"); ok {
		home, err := os.UserHomeDir()
		if err != nil {
			return s, sdk.SettingErrors{{Path: "kubeconfig", Message: "cannot expand ~/: no home directory"}}
		}
		s.Kubeconfig = filepath.Join(home, rest)
	}
	return s, nil
}

// hasTag reports whether the last path element carries a :tag (a port in
// the registry host is not a tag).
func hasTag(repo string) bool {
	last := repo[strings.LastIndex(repo, "/")+1:]
	return strings.Contains(last, ":")
}

// CanaryName is the canary Deployment's name.
func CanaryName(workload string) string { return workload + "-canary" }
