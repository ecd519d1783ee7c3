// Command gohello is the floor for BenchmarkInitRSS: a static Go program
// that touches a marker file and waits for SIGTERM, doing nothing else.
//
//	gohello MARKER
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM)
	if len(os.Args) > 1 {
		os.WriteFile(os.Args[1], nil, 0o644)
	}
	<-c
}
