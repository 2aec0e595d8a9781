package kubernetes

import (
	"strings"

	"github.com/hashicorp/go-hclog"
	"k8s.io/klog/v2"
)

// routeKlog sends client-go's klog lines (reflector retries, throttling)
// to the provider's logger at debug level instead of raw stderr, which the
// host would relay as unstructured lines into the console's log pane.
func routeKlog(log hclog.Logger) {
	klog.LogToStderr(false)
	klog.SetOutput(klogWriter{log})
}

type klogWriter struct{ log hclog.Logger }

func (w klogWriter) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		if line != "" {
			w.log.Debug("client-go", "line", line)
		}
	}
	return len(p), nil
}
