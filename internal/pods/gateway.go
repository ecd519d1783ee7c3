package pods

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
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
// pod's IP and the port's internal port, and the pod's secret for the
// service on that port if it checks one (secrets.go). A hibernated pod is
// woken first, as a connection to its host port would; any other pod that
// is not running is ErrUnavailable; a missing pod or port ErrNotFound. A
// request counts as the pod's activity (it touches ActivityFile) when it
// starts and, through Backend.Activity, every second or so while its
// bytes move (a WebSocket open for hours), so a pod used through the
// gateway is not hibernated as idle. It reads the pod's record (no status
// file, no runsc), as it runs on every request.
func (m *Manager) Backend(ctx context.Context, id, port string) (gateway.Backend, error) {
	p, err := m.cfg.Store.GetPod(ctx, id)
	if err != nil {
		return gateway.Backend{}, err
	}
	// A pod on its way to or from hibernation is woken too: the wake
	// waits for the pod's lock, so it runs after a hibernate under way and
	// is a no-op after a wake under way.
	woken := false
	switch p.State {
	case lifecycle.Hibernated, lifecycle.Hibernating, lifecycle.Waking:
		if _, err := m.WakeForConnection(ctx, id); err != nil {
			return gateway.Backend{}, err
		}
		if p, err = m.cfg.Store.GetPod(ctx, id); err != nil {
			return gateway.Backend{}, err
		}
		woken = true
	}
	spec, err := decodeSpec(p)
	if err != nil {
		return gateway.Backend{}, err
	}
	for _, sp := range spec.Network.Ports {
		if sp.Name != port || (sp.Protocol != "" && sp.Protocol != podspec.ProtocolTCP) {
			continue
		}
		st := decodeStatus(p)
		if p.State != lifecycle.Running || st.IP == "" {
			return gateway.Backend{}, fmt.Errorf("pod %s is %s: %w", id, p.State, errdefs.ErrUnavailable)
		}
		m.touchActivity(id)
		be := gateway.Backend{
			Addr:     net.JoinHostPort(st.IP, strconv.Itoa(sp.Internal)),
			Activity: func(int64) { m.touchActivity(id) },
			Woken:    woken,
		}
		if err := m.presentSecrets(id, spec, sp.Internal, &be); err != nil {
			return gateway.Backend{}, err
		}
		return be, nil
	}
	return gateway.Backend{}, fmt.Errorf("pod %s: no tcp port %q: %w", id, port, errdefs.ErrNotFound)
}

// touchActivity marks pod id as active now (the idle sweep reads the
// file's time); failures only cost an early hibernation, which the next
// request undoes.
func (m *Manager) touchActivity(id string) {
	path := filepath.Join(m.runDir(id), ActivityFile)
	now := time.Now()
	if err := os.Chtimes(path, now, now); errors.Is(err, os.ErrNotExist) {
		if f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
			f.Close()
		}
	}
}
