// Command ripcord-provider-kubernetes is Ripcord's Kubernetes deploy
// target: a plugin process, written on the public plugin SDK, that rolls
// releases out to a Deployment (canary as a second Deployment) or an Argo
// Rollouts Rollout. Ripcord starts it; it is not run by hand.
package main

import (
	"github.com/ripcordhq/ripcord/plugins/kubernetes"
	"github.com/ripcordhq/ripcord/plugins/sdk"
)

// version is set by the release build.
var version = "dev"

func main() {
	log := sdk.NewLogger("kubernetes")
	p := kubernetes.New(log)
	sdk.Serve(sdk.ServeConfig{
		Info:     sdk.Info{Name: "kubernetes", Version: version, ConfigSchema: kubernetes.ConfigSchema},
		Provider: p,
		Target:   p,
		Logger:   log,
	})
}
