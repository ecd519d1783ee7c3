package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/pinacle/pinacle-node/internal/apiserver"
	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/internal/metrics"
	"github.com/pinacle/pinacle-node/internal/node"
	"github.com/pinacle/pinacle-node/internal/nodeconfig"
	"github.com/pinacle/pinacle-node/internal/sdnotify"
	"github.com/pinacle/pinacle-node/oci"
)

func newServeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the node daemon: manage pods and serve the API on a unix socket",
		Long: `Run the node daemon. It serves the API on a unix socket, adopts the
sandboxes that kept running while it was away, and finishes or undoes
operations a crash interrupted. On SIGTERM it stops serving and exits;
pods keep running and are adopted by the next start.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadNodeConfig(cmd)
			if err != nil {
				return err
			}
			return serve(cmd.Context(), cfg)
		},
	}
	addConfigFlag(cmd)
	cmd.Flags().String("socket", envOr("PINACLE_SOCKET", "/run/pinacle/node.sock"), "API socket (env PINACLE_SOCKET)")
	return cmd
}

func serve(ctx context.Context, cfg *nodeconfig.Config) error {
	log, err := node.Logger(cfg)
	if err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("serve needs root: %w", errdefs.ErrInvalidArgument)
	}
	// Sandboxes become our children when runsc create exits: reap them, and
	// learn their exit status (runsc wait cannot report it afterwards).
	if err := oci.BecomeSubreaper(); err != nil {
		return err
	}
	go oci.RunReaper(ctx)
	if err := os.MkdirAll(filepath.Dir(cfg.Socket), 0o711); err != nil {
		return err
	}
	n, err := node.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer n.Close()
	if err := n.Pods.Recover(ctx); err != nil {
		return err
	}
	// Filled after recovery (which may tear networks down), drained when
	// ctx ends; the daemon waits for the drain before it exits.
	defer n.StartWarmPool(ctx)()
	var extra []prometheus.Collector
	if n.Gateway != nil {
		ln, err := n.ListenGateway()
		if err != nil {
			return err
		}
		extra = n.Gateway.Collectors()
		go func() {
			log.Info("gateway serving", "addr", ln.Addr().String(), "domain", n.Gateway.Domain())
			if err := n.Gateway.Serve(ctx, ln); err != nil {
				log.Error("gateway", "err", err)
			}
		}()
	}
	if cfg.MetricsAddr != "" {
		go func() {
			if err := metrics.Serve(ctx, cfg.MetricsAddr, n.Pods, extra...); err != nil {
				log.Error("metrics endpoint", "addr", cfg.MetricsAddr, "err", err)
			}
		}()
	}
	if mode, err := oci.HostTHP(); err == nil && mode != "always" {
		log.Info("host: transparent huge pages are not 'always'; with 'always' sandboxes start faster (docs/runtime.md, Host tuning)",
			"transparent_hugepage", mode)
	}
	ready := func() {
		log.Info("serving", "socket", cfg.Socket, "version", Version)
		if _, err := sdnotify.Notify("READY=1"); err != nil {
			log.Warn("sd_notify", "err", err)
		}
	}
	err = apiserver.Run(ctx, n.Pods, cfg.Socket, log, ready, apiserver.WithVersion(Version))
	if _, nerr := sdnotify.Notify("STOPPING=1"); nerr != nil {
		log.Warn("sd_notify", "err", nerr)
	}
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	log.Info("stopped; pods keep running")
	return err
}
