package node

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"

	"github.com/pinacle/pinacle-node/gateway"
	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/internal/nodeconfig"
)

// GatewayDir is where the gateway keeps its signing key and token epochs,
// under the data root (0700; never mounted into a pod).
func GatewayDir(cfg *nodeconfig.Config) string { return filepath.Join(cfg.DataRoot, "gateway") }

// Gateway builds the authenticating gateway from cfg, sending requests
// where res says; nil when node.yaml turns it off.
func Gateway(cfg *nodeconfig.Config, res gateway.Resolver, log *slog.Logger) (*gateway.Gateway, error) {
	g := cfg.Gateway
	if g.Enabled != nil && !*g.Enabled {
		return nil, nil
	}
	return gateway.New(GatewayDir(cfg), res,
		gateway.WithDomain(g.Domain),
		gateway.WithURL(g.URLScheme, g.URLPort),
		gateway.WithTTL(g.DefaultTTL.Duration, g.MaxTTL.Duration),
		gateway.WithMaxConns(g.MaxConns, g.MaxConnsPerPod),
		gateway.WithLogger(log))
}

// ListenGateway binds the gateway's address (node.yaml gateway.listenAddr
// and port), so serve fails at start, not later, when it is taken.
func (n *Node) ListenGateway() (net.Listener, error) {
	if n.Gateway == nil {
		return nil, fmt.Errorf("gateway: off: %w", errdefs.ErrUnavailable)
	}
	ip, err := netip.ParseAddr(n.Config.Gateway.ListenAddr)
	if err != nil {
		return nil, fmt.Errorf("gateway.listenAddr %q: %w", n.Config.Gateway.ListenAddr, errdefs.ErrInvalidArgument)
	}
	addr := net.JoinHostPort(ip.String(), strconv.Itoa(n.Config.Gateway.Port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("gateway: listen on %s (node.yaml gateway.port): %w", addr, err)
	}
	return ln, nil
}

// podBackends resolves the gateway's requests through the pods manager,
// once New has made it.
func (n *Node) podBackends() gateway.Resolver {
	return gateway.ResolverFunc(func(ctx context.Context, pod, port string) (gateway.Backend, error) {
		if n.Pods == nil {
			return gateway.Backend{}, fmt.Errorf("pods: not ready: %w", errdefs.ErrUnavailable)
		}
		return n.Pods.Backend(ctx, pod, port)
	})
}
