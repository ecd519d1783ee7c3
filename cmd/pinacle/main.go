// Command pinacle is the host CLI for macOS (and Linux): it runs the
// pinacle node in a Lima VM and forwards pod, image and template commands
// to it through `limactl shell`.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/pinacle/pinacle-node/internal/cli"
	"github.com/pinacle/pinacle-node/internal/errdefs"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	root := newRootCmd()
	_, err := root.ExecuteContextC(ctx)
	stop()
	os.Exit(handleError(root, os.Stderr, err))
}

// handleError prints err as the node CLI does, with its code in the text
// ("Error (not_found): ..."; JSON under -o json), and returns the exit code
// of its class; an ExitError's code passes through.
func handleError(root *cobra.Command, stderr io.Writer, err error) int {
	if err == nil {
		return errdefs.ExitOK
	}
	var ee *cli.ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	c := errdefs.Classify(err)
	if o, _ := root.PersistentFlags().GetString("output"); o == string(cli.JSON) {
		b, _ := json.Marshal(cli.ErrorBody{Code: c.Code, Message: err.Error()})
		fmt.Fprintln(stderr, string(b))
	} else {
		fmt.Fprintf(stderr, "Error (%s): %v\n", c.Code, err)
		if h := cli.UsageHint(err); h != "" {
			fmt.Fprintln(stderr, h)
		}
	}
	return c.ExitCode
}
