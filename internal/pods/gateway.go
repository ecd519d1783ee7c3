package pods

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/pinacle/pinacle-node/gateway"
	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/internal/lifecycle"
	"github.com/pinacle/pinacle-node/podspec"
)

// Links is what the manager needs of the gateway: *gateway.Gateway.
type Links interface {
	Link(pod, port string, ttl time.Duration) (*gateway.Link, error)
	Revoke(pod string) error
	HostURL(pod, port string) string
}

var _ Links = (*gateway.Gateway)(nil)

// URL implements api.Service.
func (m *Manager) URL(ctx context.Context, idOrName string, req api.URLRequest) (*api.PodURL, error) {
	if m.cfg.Gateway == nil {
		return nil, fmt.Errorf("gateway: off on this node (node.yaml gateway.enabled): %w", errdefs.ErrUnavailable)
	}
	p, err := m.find(ctx, idOrName)
	if err != nil {
		return nil, err
	}
	spec, err := decodeSpec(p)
	if err != nil {
		return nil, err
	}
	port, err := gatewayPort(spec, req.Port)
	if err != nil {
		return nil, fmt.Errorf("pod %s: %w", p.ID, err)
	}
	l, err := m.cfg.Gateway.Link(p.ID, port, req.TTL)
	if err != nil {
		return nil, err
	}
	return &api.PodURL{Pod: p.ID, Port: port, URL: l.URL, Host: l.Host, Expires: l.Expires}, nil
}

// gatewayPort picks the named tcp port of spec, or its first one.
func gatewayPort(spec *podspec.Pod, name string) (string, error) {
	for _, p := range spec.Network.Ports {
		if p.Protocol != "" && p.Protocol != podspec.ProtocolTCP {
			continue
		}
		if name == "" || p.Name == name {
			return p.Name, nil
		}
	}
	if name == "" {
		return "", fmt.Errorf("no tcp ports: %w", errdefs.ErrNotFound)
	}
	return "", fmt.Errorf("no tcp port %q: %w", name, errdefs.ErrNotFound)
}

// RevokeURLs implements api.Service.
func (m *Manager) RevokeURLs(ctx context.Context, idOrName string) error {
	p, err := m.find(ctx, idOrName)
	if err != nil {
		return err
	}
	return m.revokeLinks(p.ID)
}

func (m *Manager) revokeLinks(id string) error {
	if m.cfg.Gateway == nil {
		return nil
	}
	return m.cfg.Gateway.Revoke(id)
}

// Backend is where the gateway sends a request for port of pod id: the
// pod's IP and the port's internal port. A pod that is not running is
// ErrUnavailable; a missing pod or port ErrNotFound. It reads the pod's
// record only (no status file, no runsc), as it runs on every request.
func (m *Manager) Backend(ctx context.Context, id, port string) (string, error) {
	p, err := m.cfg.Store.GetPod(ctx, id)
	if err != nil {
		return "", err
	}
	spec, err := decodeSpec(p)
	if err != nil {
		return "", err
	}
	for _, sp := range spec.Network.Ports {
		if sp.Name != port || (sp.Protocol != "" && sp.Protocol != podspec.ProtocolTCP) {
			continue
		}
		st := decodeStatus(p)
		if p.State != lifecycle.Running || st.IP == "" {
			return "", fmt.Errorf("pod %s is %s: %w", id, p.State, errdefs.ErrUnavailable)
		}
		return net.JoinHostPort(st.IP, strconv.Itoa(sp.Internal)), nil
	}
	return "", fmt.Errorf("pod %s: no tcp port %q: %w", id, port, errdefs.ErrNotFound)
}
