// Command build builds the Kubernetes control plane, etcd, kwok and the Argo
// Rollouts controller that the kubernetes provider's cluster tests run
// against, from the Go module proxy, into a cache directory keyed by their
// versions (~/.cache/ripcord/kube/…), and prints that directory. Parts
// already built are reused; a cold build takes 10–20 minutes on 2 cores.
//
//	go run ./plugins/kubernetes/kubetest/build [-argo=false]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/ripcordhq/ripcord/plugins/kubernetes/kubetest"
)

func main() {
	argo := flag.Bool("argo", true, "also build the Argo Rollouts controller and copy its CRDs")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	tools, err := kubetest.Build(ctx, kubetest.BuildOptions{Argo: *argo, Log: os.Stderr})
	if err != nil {
		fmt.Fprintln(os.Stderr, "build:", err)
		os.Exit(1)
	}
	fmt.Println(tools.Dir)
}
