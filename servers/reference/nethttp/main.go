// server_nethttp: Go's standard net/http (claim C17), the baseline Gin is compared with in the
// articles. Same routes and flags as server_gin.
//
// Usage: server_nethttp [-port 8080] [-bind 127.0.0.1] [-threads N (GOMAXPROCS)]
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
)

func main() {
	port := flag.Int("port", 8080, "port, 0 picks a free one")
	bind := flag.String("bind", "127.0.0.1", "address")
	threads := flag.Int("threads", 1, "GOMAXPROCS: Ps that run goroutines")
	flag.Parse()
	runtime.GOMAXPROCS(*threads)

	mux := http.NewServeMux()
	mux.HandleFunc("/ping", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"message":"pong"}`))
	})
	mux.HandleFunc("/plaintext", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("Hello, World!"))
	})

	listener, err := net.Listen("tcp4", fmt.Sprintf("%s:%d", *bind, *port))
	if err != nil {
		fmt.Fprintf(os.Stderr, "server_nethttp: listen: %v\n", err)
		os.Exit(1)
	}
	addr := listener.Addr().(*net.TCPAddr)
	fmt.Printf("server_nethttp listening on %s:%d threads=%d pid=%d\n", *bind, addr.Port, *threads, os.Getpid())
	if err := http.Serve(listener, mux); err != nil {
		fmt.Fprintf(os.Stderr, "server_nethttp: serve: %v\n", err)
		os.Exit(1)
	}
}
