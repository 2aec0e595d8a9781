// Command etcd is the upstream etcd server, the API server's storage in the
// cluster tests.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
