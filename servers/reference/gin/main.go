// server_gin: the Gin reference, the framework the articles behind the claims (bench/claims.json)
// measure. gin.New() in release mode with no middleware (no logger, no recovery), so it does as
// little per request as Gin allows. Built from Debian's golang-go and
// golang-github-gin-gonic-gin-dev in GOPATH mode; nothing is downloaded.
//
// Usage: server_gin [-port 8080] [-bind 127.0.0.1] [-threads N (GOMAXPROCS)]
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"

	"github.com/gin-gonic/gin"
)

func main() {
	port := flag.Int("port", 8080, "port, 0 picks a free one")
	bind := flag.String("bind", "127.0.0.1", "address")
	threads := flag.Int("threads", 1, "GOMAXPROCS: Ps that run goroutines")
	flag.Parse()
	runtime.GOMAXPROCS(*threads)

	gin.SetMode(gin.ReleaseMode)
	router := gin.New()
	router.GET("/ping", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"message": "pong"}) })
	router.GET("/plaintext", func(c *gin.Context) { c.String(http.StatusOK, "Hello, World!") })

	listener, err := net.Listen("tcp4", fmt.Sprintf("%s:%d", *bind, *port))
	if err != nil {
		fmt.Fprintf(os.Stderr, "server_gin: listen: %v\n", err)
		os.Exit(1)
	}
	addr := listener.Addr().(*net.TCPAddr)
	fmt.Printf("server_gin listening on %s:%d threads=%d pid=%d\n", *bind, addr.Port, *threads, os.Getpid())
	if err := http.Serve(listener, router); err != nil {
		fmt.Fprintf(os.Stderr, "server_gin: serve: %v\n", err)
		os.Exit(1)
	}
}
