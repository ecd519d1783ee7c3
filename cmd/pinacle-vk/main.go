// Command pinacle-vk registers a pinacle node with Kubernetes through
// virtual-kubelet and runs the pods it is given through the node daemon's
// API. It is a binary of its own so that pinacle-node, which also runs as
// PID 1 in every sandbox, carries none of Kubernetes' client libraries.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/pinacle/pinacle-node/internal/cli"
)

// Version is set at build time with -ldflags "-X main.Version=...".
var Version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	root := newVKCmd()
	root.Version = Version
	root.SilenceUsage, root.SilenceErrors = true, true
	cli.AddOutputFlag(root)
	cli.Strict(root)
	cmd, err := root.ExecuteContextC(ctx)
	stop()
	os.Exit(cli.HandleError(cmd, err))
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
