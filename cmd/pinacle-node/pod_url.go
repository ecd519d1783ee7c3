package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/internal/cli"
	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// revokeResult is `pod url --revoke -o json`.
type revokeResult struct {
	Pod     string `json:"pod"`
	Revoked bool   `json:"revoked"`
}

func newPodURLCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "url POD [PORT]",
		Short: "Print a signed, expiring gateway link to a pod's port (or revoke them all)",
		Long: `Print a link to one port of a pod through the node's authenticating
gateway, http://<port>-<pod>.localhost:29000/ by default. Opening it signs
the browser in to that port of that pod only (an HttpOnly cookie) until
--ttl passes or the pod's links are revoked. PORT defaults to the pod's
first tcp port. --revoke invalidates every link and cookie of the pod;
deleting a pod does the same. See docs/security.md.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := newClient(cmd)
			if revoke, _ := cmd.Flags().GetBool("revoke"); revoke {
				if len(args) > 1 {
					return fmt.Errorf("--revoke takes the pod only: it revokes every port's links: %w", errdefs.ErrUsage)
				}
				if err := c.RevokeURLs(cmd.Context(), args[0]); err != nil {
					return err
				}
				return cli.Print(cmd, revokeResult{Pod: args[0], Revoked: true}, func(w io.Writer) {
					fmt.Fprintf(w, "revoked every gateway link of %s\n", args[0])
				})
			}
			req := api.URLRequest{}
			if len(args) > 1 {
				req.Port = args[1]
			}
			req.TTL, _ = cmd.Flags().GetDuration("ttl")
			u, err := c.URL(cmd.Context(), args[0], req)
			if err != nil {
				return err
			}
			if err := cli.Print(cmd, u, func(w io.Writer) { fmt.Fprintln(w, u.URL) }); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "valid until %s (then run pod url again); opens %s\n", u.Expires.Local().Format(time.RFC3339), u.Host)
			if open, _ := cmd.Flags().GetBool("open"); open {
				return cli.OpenBrowser(cmd.Context(), u.URL)
			}
			return nil
		},
	}
	cmd.Flags().Duration("ttl", 0, "how long the link works (0: the node's gateway.defaultTTL, 24h)")
	cmd.Flags().Bool("revoke", false, "revoke every gateway link and cookie of the pod")
	cmd.Flags().Bool("open", false, "open the link in a browser (xdg-open; open on macOS)")
	return cmd
}
