// Command pinacle-node runs development environments in gVisor sandboxes.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/pinacle/pinacle-node/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	root := newRootCmd()
	cmd, err := root.ExecuteContextC(ctx)
	stop()
	os.Exit(cli.HandleError(cmd, err))
}
