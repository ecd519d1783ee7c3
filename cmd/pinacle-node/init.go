package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/pinacle/pinacle-node/internal/cli"
	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/supervisor"
)

// newInitCmd is the in-sandbox init (PID 1 of every pod) and, as
// `init svc`, its control client run through `runsc exec`.
func newInitCmd() *cobra.Command {
	var configPath, logLevel string
	cmd := &cobra.Command{
		Use:    "init",
		Short:  "Run as a pod's init: supervise its services (PID 1 inside the sandbox)",
		Args:   cobra.NoArgs,
		Hidden: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level %q: want debug, info, warn or error: %w", logLevel, errdefs.ErrInvalidArgument)
			}
			log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
			return supervisor.RunInit(cmd.Context(), configPath, log)
		},
	}
	cmd.Flags().StringVar(&configPath, "config", supervisor.DefaultConfigPath, "services config file")
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "init's own log level (JSON on stderr)")
	cmd.AddCommand(newInitSvcCmd(), newInitSyncCmd(), newInitClaimCmd())
	return cmd
}

// newInitSyncCmd is `init sync`, run through `runsc exec` before a
// checkpoint: gVisor keeps file writes in its own cache, and a checkpoint
// saves them in its image; flushed first, they are on the host too, so a
// cold start after a failed restore still has them. The node binary is
// in every sandbox, so the image needs no sync(1).
func newInitSyncCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "sync",
		Short: "Flush the sandbox's file writes to the host (before a checkpoint)",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			syscall.Sync()
			return nil
		},
	}
}

// newInitClaimCmd is `init claim`, run by the node through `runsc exec`
// in a warm sandbox it hands to a pod (docs/warmpool.md).
func newInitClaimCmd() *cobra.Command {
	var socket, hostname string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "claim",
		Short: "Hand a standby init its pod: set the hostname, start the pod's services",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			return supervisor.Claim(ctx, socket, hostname)
		},
	}
	cmd.Flags().StringVar(&socket, "socket", supervisor.DefaultControlSocket, "init's control socket ('@' = abstract)")
	cmd.Flags().StringVar(&hostname, "hostname", "", "the pod's hostname")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "give up after this long")
	return cmd
}

func newInitSvcCmd() *cobra.Command {
	var socket string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:       "svc ls|start|stop|restart [NAME]",
		Short:     "Control the services of the init running in this sandbox",
		Args:      cobra.RangeArgs(1, 2),
		ValidArgs: []string{supervisor.OpList, supervisor.OpStart, supervisor.OpStop, supervisor.OpRestart},
		RunE: func(cmd *cobra.Command, args []string) error {
			req := supervisor.ControlRequest{Op: args[0]}
			if len(args) == 2 {
				req.Service = args[1]
			} else if req.Op != supervisor.OpList {
				return fmt.Errorf("svc %s: a service NAME is required: %w", req.Op, errdefs.ErrInvalidArgument)
			}
			ctx := cmd.Context()
			if timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
			}
			st, err := supervisor.Control(ctx, socket, req)
			f, _ := cli.OutputFormat(cmd)
			if f == cli.JSON {
				// Always a ControlResponse on stdout, so the node decodes
				// one shape whatever happened (the exit code says it too).
				resp := supervisor.NewControlResponse(st, err)
				if perr := cli.Print(cmd, resp, nil); perr != nil {
					return perr
				}
				if err != nil {
					return &cli.ExitError{Code: errdefs.Classify(err).ExitCode}
				}
				return nil
			}
			if err != nil {
				return err
			}
			return cli.Print(cmd, st, func(w io.Writer) { printServices(w, st) })
		},
	}
	cmd.Flags().StringVar(&socket, "socket", supervisor.DefaultControlSocket, "init's control socket ('@' = abstract)")
	cmd.Flags().DurationVar(&timeout, "timeout", time.Minute, "give up after this long")
	return cmd
}

func printServices(w io.Writer, st *supervisor.Status) {
	fmt.Fprintln(w, "NAME\tSTATE\tPID\tRESTARTS\tSINCE\tLAST ERROR")
	for _, s := range st.Services {
		pid := "-"
		if s.Pid > 0 {
			pid = fmt.Sprint(s.Pid)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\n", s.Name, s.State, pid, s.Restarts,
			time.Since(s.Since).Round(time.Second), s.LastError)
	}
}
