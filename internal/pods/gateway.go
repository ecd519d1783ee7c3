package pods

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pinacle/pinacle-node/gateway"
	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/internal/fileutil"
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
// pod's IP and the port's internal port, and for the web terminal's port
// its token as a bearer token. A hibernated pod is woken first, as a
// connection to its host port would; any other pod that is not running is
// ErrUnavailable; a missing pod or port ErrNotFound. A request counts as
// the pod's activity (it touches ActivityFile), so a pod used through the
// gateway is not hibernated as idle. It reads the pod's record (no status
// file, no runsc), as it runs on every request.
func (m *Manager) Backend(ctx context.Context, id, port string) (gateway.Backend, error) {
	p, err := m.cfg.Store.GetPod(ctx, id)
	if err != nil {
		return gateway.Backend{}, err
	}
	if p.State == lifecycle.Hibernated {
		if _, err := m.WakeForConnection(ctx, id); err != nil {
			return gateway.Backend{}, err
		}
		if p, err = m.cfg.Store.GetPod(ctx, id); err != nil {
			return gateway.Backend{}, err
		}
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
		be := gateway.Backend{Addr: net.JoinHostPort(st.IP, strconv.Itoa(sp.Internal))}
		if servesWebterm(spec, sp.Internal) {
			tok, err := os.ReadFile(filepath.Join(m.configDir(id), webtermTokenFile))
			if err != nil {
				return gateway.Backend{}, fmt.Errorf("pod %s: web terminal token: %w", id, err)
			}
			be.Header = http.Header{"Authorization": {"Bearer " + strings.TrimSpace(string(tok))}}
		}
		return be, nil
	}
	return gateway.Backend{}, fmt.Errorf("pod %s: no tcp port %q: %w", id, port, errdefs.ErrNotFound)
}

// webtermTokenFile is the web terminal's token in the pod's config
// directory (bind-mounted read-only at /.pinacle/config). The web-terminal
// service definition requires it (--token-file), so its port answers only
// to the gateway, which adds the token, and to whoever reads the file.
const webtermTokenFile = "webterm.token"

// ensureWebtermToken makes the pod's web terminal token once (32 random
// bytes, hex); it then lives as long as the pod.
func (m *Manager) ensureWebtermToken(id string) error {
	path := filepath.Join(m.configDir(id), webtermTokenFile)
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return err
	}
	// 0644: the service runs as the pod's user, who must read it.
	return fileutil.WriteAtomic(path, []byte(hex.EncodeToString(b[:])+"\n"), 0o644)
}

// servesWebterm says whether one of spec's services is the node's web
// terminal on port.
func servesWebterm(spec *podspec.Pod, port int) bool {
	for _, s := range spec.Services {
		if s.Port == port && len(s.Command) >= 2 && filepath.Base(s.Command[0]) == "pinacle-node" && s.Command[1] == "webterm" {
			return true
		}
	}
	return false
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
