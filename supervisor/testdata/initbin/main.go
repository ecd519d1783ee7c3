// Command initbin is a stand-in for `pinacle-node init` in the sandbox
// smoke test and benchmark: the same supervisor.RunInit and control client,
// without the rest of the node binary (which other work may leave
// unbuildable mid-edit).
//
//	initbin init [--config PATH]
//	initbin init svc ls|start|stop|restart [NAME] -o json
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"

	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/supervisor"
)

func main() {
	args := os.Args[1:]
	if len(args) == 0 || args[0] != "init" {
		usage()
	}
	args = args[1:]
	if len(args) >= 2 && args[0] == "svc" {
		req := supervisor.ControlRequest{Op: args[1]}
		if len(args) >= 3 && args[2] != "-o" {
			req.Service = args[2]
		}
		st, err := supervisor.Control(context.Background(), supervisor.DefaultControlSocket, req)
		json.NewEncoder(os.Stdout).Encode(supervisor.NewControlResponse(st, err))
		os.Exit(errdefs.Classify(err).ExitCode)
	}
	path := supervisor.DefaultConfigPath
	if len(args) == 2 && args[0] == "--config" {
		path = args[1]
	} else if len(args) != 0 {
		usage()
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	if err := supervisor.RunInit(context.Background(), path, log); err != nil {
		fmt.Fprintln(os.Stderr, "init:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: initbin init [--config PATH] | initbin init svc OP [NAME] -o json")
	os.Exit(2)
}
