// Command webtermbin is a stand-in for `pinacle-node webterm` (and for
// `pinacle-node init`, which runs it as a service) in the sandbox test and
// the benchmarks: the same webterm and supervisor packages, without the
// rest of the node binary (which other work may leave unbuildable
// mid-edit).
//
//	webtermbin webterm [--port N] [--addr A] [--shell S] [--cwd D] [--token-file F]
//	webtermbin init [--config PATH]
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/pinacle/pinacle-node/supervisor"
	"github.com/pinacle/pinacle-node/webterm"
)

func main() {
	if len(os.Args) >= 2 && os.Args[1] == "init" {
		path := supervisor.DefaultConfigPath
		if len(os.Args) == 4 && os.Args[2] == "--config" {
			path = os.Args[3]
		}
		if err := supervisor.RunInit(context.Background(), path, slog.New(slog.NewJSONHandler(os.Stderr, nil))); err != nil {
			fail(err)
		}
		return
	}
	if len(os.Args) < 2 || os.Args[1] != "webterm" {
		fmt.Fprintln(os.Stderr, "usage: webtermbin webterm [flags] | webtermbin init [--config PATH]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet("webterm", flag.ExitOnError)
	port := fs.Int("port", webterm.DefaultPort, "")
	addr := fs.String("addr", "0.0.0.0", "")
	shell := fs.String("shell", "", "")
	cwd := fs.String("cwd", "", "")
	tokenFile := fs.String("token-file", "", "")
	_ = fs.Parse(os.Args[2:])
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	opts := []webterm.Option{webterm.WithLogger(log)}
	if *shell != "" {
		opts = append(opts, webterm.WithShell(*shell))
	}
	if *cwd != "" {
		opts = append(opts, webterm.WithDir(*cwd))
	}
	if *tokenFile != "" {
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			fail(err)
		}
		opts = append(opts, webterm.WithToken(strings.TrimSpace(string(b))))
	}
	h, err := webterm.New(opts...)
	if err != nil {
		fail(err)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(*addr, strconv.Itoa(*port)))
	if err != nil {
		fail(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := h.Serve(ctx, ln); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "webterm:", err)
	os.Exit(1)
}
