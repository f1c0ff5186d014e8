//go:build ignore

// floorserver answers the oidcload harness's discovery and jwks scenarios
// with fixed bytes and nothing else: no routing, logging, middleware or
// security headers. It measures what the harness and net/http allow on this
// machine, the ceiling for any Go server on those two scenarios
// (docs/performance.md, "The harness's ceiling"). .ci/loadtest.sh runs it as
// the target `floor` with copies of Gatehouse's own documents:
//
//	go run .ci/floorserver.go -listen 127.0.0.1:9140 -discovery D.json -jwks J.json
package main

import (
	"flag"
	"log"
	"net/http"
	"os"
	"strconv"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:9140", "address to listen on")
	discovery := flag.String("discovery", "", "file served at /.well-known/openid-configuration")
	jwks := flag.String("jwks", "", "file served at /.well-known/jwks.json")
	flag.Parse()
	serve := func(path, contentType string) http.HandlerFunc {
		b, err := os.ReadFile(path)
		if err != nil {
			log.Fatal(err)
		}
		n := strconv.Itoa(len(b))
		return func(w http.ResponseWriter, _ *http.Request) {
			h := w.Header()
			h["Content-Type"] = []string{contentType}
			h["Content-Length"] = []string{n}
			_, _ = w.Write(b)
		}
	}
	mux := http.NewServeMux()
	mux.Handle("GET /.well-known/openid-configuration", serve(*discovery, "application/json"))
	mux.Handle("GET /.well-known/jwks.json", serve(*jwks, "application/jwk-set+json"))
	log.Fatal(http.ListenAndServe(*listen, mux))
}
