// Command svc is a tiny HTTP service the local target's tests deploy: it
// answers / with its version and /healthz with 200, or 500 when told to
// fail its health check.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
)

func main() {
	port := flag.Int("port", 0, "port to listen on (127.0.0.1)")
	version := flag.String("version", os.Getenv("RIPCORD_RELEASE"), "version to report")
	failHealth := flag.Bool("fail-health", false, "answer /healthz with 500")
	flag.Parse()

	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if *failHealth {
			http.Error(w, "unhealthy on purpose", http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, *version)
	})
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(*port)))
	if err != nil {
		log.Fatalf("listen: %v", err)
	}
	fmt.Printf("svc %s listening on %s\n", *version, ln.Addr())
	log.Fatal(http.Serve(ln, mux))
}
