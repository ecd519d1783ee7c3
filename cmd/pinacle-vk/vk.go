package main

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/internal/vk"
)

func newVKCmd() *cobra.Command {
	var cfg vk.Config
	var cpu, mem string
	var pods int
	cmd := &cobra.Command{
		Use:   "pinacle-vk",
		Short: "Register this node with Kubernetes (virtual-kubelet) and run the pods it is given",
		Long: `Register this node as a Kubernetes Node through virtual-kubelet and run the
pods the scheduler binds to it as pinacle pods, through the daemon's API
(pinacle-node serve must be running). The node is labelled
pinacle.dev/runtime=gvisor and tainted pinacle.dev/runtime=gvisor:NoSchedule:
only pods that tolerate the taint land here. See docs/kubernetes.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			capa, err := vk.MachineCapacity(pods)
			if err != nil {
				return err
			}
			if err := overrideQuantity("--cpu", cpu, &capa.CPU); err != nil {
				return err
			}
			if err := overrideQuantity("--memory", mem, &capa.Memory); err != nil {
				return err
			}
			cfg.Capacity, cfg.Version = capa, Version
			cfg.Log = slog.New(slog.NewJSONHandler(os.Stderr, nil))
			return vk.Run(cmd.Context(), cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Kubeconfig, "kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the node's identity (env KUBECONFIG)")
	f.StringVar(&cfg.NodeName, "node-name", "", "name of the Kubernetes Node")
	f.StringVar(&cfg.Socket, "socket", envOr("PINACLE_SOCKET", "/run/pinacle/node.sock"), "the daemon's API socket (env PINACLE_SOCKET)")
	f.StringVar(&cfg.HostIP, "address", "127.0.0.1", "the node's IP address, published in node and pod status")
	f.StringVar(&cfg.ListenAddr, "listen", "127.0.0.1:10250", "kubelet API (logs, exec, stats) address")
	f.StringVar(&cfg.TLSCert, "tls-cert", "", "kubelet API serving certificate (default: self-signed at start)")
	f.StringVar(&cfg.TLSKey, "tls-key", "", "kubelet API serving key")
	f.StringVar(&cfg.ClientCA, "client-ca", "", "CA of the API server's kubelet client certificate (without it the kubelet API is off)")
	f.BoolVar(&cfg.KeepThroughOutage, "keep-through-outage", true, "make pods tolerate node outages without a time limit, so an outage never evicts a workspace")
	f.StringVar(&cpu, "cpu", "", "CPU capacity to offer (default: the machine's CPUs)")
	f.StringVar(&mem, "memory", "", "memory capacity to offer, e.g. 8Gi (default: the machine's memory)")
	f.IntVar(&pods, "pods", 110, "how many pods to offer")
	return cmd
}

func overrideQuantity(flag, v string, dst *resource.Quantity) error {
	if v == "" {
		return nil
	}
	q, err := resource.ParseQuantity(v)
	if err != nil {
		return fmt.Errorf("%s %q: %w (%w)", flag, v, errdefs.ErrInvalidArgument, err)
	}
	*dst = q
	return nil
}
