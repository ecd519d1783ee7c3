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
			return cli.Print(cmd, m, func(w io.Writer) {
				fmt.Fprintf(w, "Pod:\t%s\n", m.PodID)
				if s := m.Sandbox; s != nil {
					fmt.Fprintf(w, "CPU time:\t%s\n", time.Duration(s.CPUUsageNanos).Round(time.Millisecond))
					mem := humanBytes(int64(s.MemoryUsage))
					if s.MemoryLimit > 0 && s.MemoryLimit < 1<<62 {
						mem += " / " + humanBytes(int64(s.MemoryLimit))
					}
					fmt.Fprintf(w, "Memory:\t%s (max %s)\n", mem, humanBytes(int64(s.MemoryMaxUsage)))
					pids := fmt.Sprint(s.Pids)
					if s.PidsLimit > 0 {
						pids += fmt.Sprintf(" / %d", s.PidsLimit)
					}
					fmt.Fprintf(w, "Processes:\t%s\n", pids)
					fmt.Fprintf(w, "OOM kills:\t%d\n", s.OOMKills)
				} else {
					fmt.Fprintf(w, "Sandbox:\tnot running\n")
				}
				for _, p := range m.Ports {
					fmt.Fprintf(w, "Port %s (%d):\t%d conns (%d active, %d rejected), in %s, out %s\n",
						p.Name, p.HostPort, p.ConnsTotal, p.ConnsActive, p.ConnsRejected,
						humanBytes(int64(p.BytesIn)), humanBytes(int64(p.BytesOut)))
				}
			})
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
			if err := cli.Print(cmd, h, func(w io.Writer) {
				verdict := "healthy"
				if !h.Healthy {
					verdict = "unhealthy"
				}
				fmt.Fprintf(w, "Pod:\t%s\n", h.PodID)
				fmt.Fprintf(w, "Health:\t%s\n", verdict)
				fmt.Fprintf(w, "State:\t%s\n", h.State)
				fmt.Fprintf(w, "Sandbox:\t%s\n", dash(h.Sandbox))
				if h.Reason != "" {
					fmt.Fprintf(w, "Reason:\t%s\n", h.Reason)
				}
				for _, s := range h.Services {
					fmt.Fprintf(w, "Service %s:\t%s\n", s.Name, serviceState(s))
				}
			}); err != nil {
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
	return cli.Print(cmd, st, func(w io.Writer) { printServiceStatus(w, st) })
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}

func printServiceStatus(w io.Writer, st *api.ServiceStatus) {
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
