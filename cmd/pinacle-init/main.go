// Command pinacle-init is PID 1 of every pod: it supervises the pod's
// services (supervisor.RunInit). It is a binary of its own, apart from
// pinacle-node, because every page of a binary that init's start touches
// is copied into each sandbox's memory: this one links only the
// supervisor, the service types (podspec/svcspec) and the standard
// library without net/http (no cobra, bbolt, netlink, CNI, nor podspec's
// image-reference and YAML parsers; internal/archtest holds it to that),
// which saves megabytes per idle pod (docs/runtime.md, Memory per idle
// pod). The node installs it beside its own binary and bind-mounts it
// read-only at /.pinacle/bin/pinacle-init.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/pinacle/pinacle-node/supervisor"
)

func main() {
	fs := flag.NewFlagSet("pinacle-init", flag.ContinueOnError)
	configPath := fs.String("config", supervisor.DefaultConfigPath, "services config file")
	logLevel := fs.String("log-level", "info", "init's own log level (JSON on stderr): debug, info, warn or error")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "pinacle-init: unexpected arguments %q (service control is `pinacle-node init svc`)\n", fs.Args())
		os.Exit(2)
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "pinacle-init: --log-level %q: want debug, info, warn or error\n", *logLevel)
		os.Exit(2)
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	if err := supervisor.RunInit(context.Background(), *configPath, log); err != nil {
		log.Error("init", "err", err)
		os.Exit(1)
	}
}
