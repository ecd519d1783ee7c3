package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/internal/cli"
	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/internal/render"
)

func newPodMetricsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "metrics ID",
		Short: "Show a pod's resource use and per-port traffic",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := newClient(cmd).Metrics(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return cli.Print(cmd, m, func(w io.Writer) { render.Metrics(w, m) })
		},
	}
}

func newPodHealthCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "health ID",
		Short: "Show whether a pod is healthy; exit 1 when it is not",
		Long: `Show a pod's health: its sandbox state and each service's. Healthy
means the sandbox runs and every service is healthy. Exits 0 when
healthy and 1 when not (like a container health check), after printing
the health in the chosen format; other failures use the usual codes.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			h, err := newClient(cmd).Health(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if err := cli.Print(cmd, h, func(w io.Writer) { render.Health(w, h) }); err != nil {
				return err
			}
			if !h.Healthy {
				return &cli.ExitError{Code: 1}
			}
			return nil
		},
	}
}

func newPodServiceCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "service",
		Short: "List, start, stop or restart a pod's services without restarting its sandbox",
	}
	cmd.AddCommand(&cobra.Command{
		Use:     "ls ID",
		Aliases: []string{"list"},
		Short:   "List a pod's services",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return serviceControl(cmd, args[0], "ls", "")
		},
	})
	for _, op := range []string{"start", "stop", "restart"} {
		cmd.AddCommand(&cobra.Command{
			Use:   op + " ID NAME",
			Short: fmt.Sprintf("%s one service of a pod", capitalize(op)),
			Args:  cobra.ExactArgs(2),
			RunE: func(cmd *cobra.Command, args []string) error {
				return serviceControl(cmd, args[0], op, args[1])
			},
		})
	}
	return cmd
}

func serviceControl(cmd *cobra.Command, id, op, name string) error {
	if op != "ls" {
		if err := errdefs.ValidateID("service", name); err != nil {
			return err
		}
	}
	st, err := newClient(cmd).ServiceControl(cmd.Context(), id, op, name)
	if err != nil {
		return err
	}
	if st.Services == nil {
		st.Services = []api.ServiceInfo{}
	}
	return cli.Print(cmd, st, func(w io.Writer) { render.Services(w, st, time.Now()) })
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}
