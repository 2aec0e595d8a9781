// Command svc is the service the local target's conformance run deploys:
// it listens on 127.0.0.1 at the port it is given and answers /healthz
// with 200.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"strconv"
)

func main() {
	port := flag.Int("port", 0, "port to listen on (127.0.0.1)")
	flag.Parse()
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(*port)))
	if err != nil {
		log.Fatalf("listen: %v", err)
	}
	log.Fatal(http.Serve(ln, mux))
}
