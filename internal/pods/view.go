package pods

import (
	"context"
	"errors"
	"fmt"

	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/internal/store"
	"github.com/pinacle/pinacle-node/oci"
	"github.com/pinacle/pinacle-node/podspec"
	"github.com/pinacle/pinacle-node/supervisor"
)

// The manager is the daemon's api.Service.
var _ api.Service = (*Manager)(nil)

// find resolves an ID or a name to the stored pod.
func (m *Manager) find(ctx context.Context, idOrName string) (*store.Pod, error) {
	if err := errdefs.ValidateID("pod", idOrName); err != nil {
		return nil, err
	}
	p, err := m.cfg.Store.GetPod(ctx, idOrName)
	if errors.Is(err, errdefs.ErrNotFound) {
		p, err = m.cfg.Store.GetPodByName(ctx, idOrName)
	}
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil, fmt.Errorf("pod %q: %w", idOrName, errdefs.ErrNotFound)
	}
	return p, err
}

// view turns a stored pod into its API shape.
func (m *Manager) view(p *store.Pod, withSpec bool) *api.Pod {
	st := decodeStatus(p)
	v := &api.Pod{
		ID: p.ID, Name: p.Name, State: p.State, Reason: p.Reason,
		Image: st.Image, IP: st.IP, Generation: p.Generation,
		CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt,
	}
	spec, err := decodeSpec(p)
	if err == nil {
		v.Template = spec.Template
		if v.Image == "" {
			v.Image = spec.BaseImage
		}
		if withSpec {
			v.Spec = spec
		}
		for _, port := range spec.Network.Ports {
			ps := api.PortStatus{Name: port.Name, Internal: port.Internal, Public: port.Public}
			if m.cfg.Gateway != nil && (port.Protocol == "" || port.Protocol == podspec.ProtocolTCP) {
				ps.Gateway = m.cfg.Gateway.HostURL(p.ID, port.Name)
			}
			for _, a := range st.Ports {
				if a.Name == port.Name {
					ps.External = int(a.HostPort)
					ps.URL = fmt.Sprintf("http://%s:%d", m.cfg.URLHost, a.HostPort)
				}
			}
			v.Ports = append(v.Ports, ps)
		}
	}
	if status, err := m.status.read(m.statusFile(p.ID)); err == nil {
		v.Services = serviceInfos(status.Services)
	}
	return v
}

// Get implements api.Service.
func (m *Manager) Get(ctx context.Context, idOrName string) (*api.Pod, error) {
	p, err := m.find(ctx, idOrName)
	if err != nil {
		return nil, err
	}
	return m.view(p, true), nil
}

// List implements api.Service.
func (m *Manager) List(ctx context.Context) ([]*api.Pod, error) {
	ps, err := m.cfg.Store.ListPods(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*api.Pod, 0, len(ps))
	for i := range ps {
		out = append(out, m.view(&ps[i], false))
	}
	return out, nil
}

// The conversions below copy the node's own types into their API shapes
// field by field: the API may not import them (it builds for macOS), and
// view_test.go checks that both encode to the same JSON.

// serviceInfos converts init's per-service entries.
func serviceInfos(ss []supervisor.ServiceStatus) []api.ServiceInfo {
	if ss == nil {
		return nil
	}
	out := make([]api.ServiceInfo, len(ss))
	for i, s := range ss {
		out[i] = api.ServiceInfo{
			Name: s.Name, State: api.ServiceState(s.State), Pid: s.Pid, Restarts: s.Restarts,
			LastExitCode: s.LastExitCode, LastError: s.LastError, Health: api.ServiceHealth(s.Health),
			Since: s.Since, StartedAt: s.StartedAt,
		}
	}
	return out
}

// serviceStatusView converts init's status file.
func serviceStatusView(st *supervisor.Status) *api.ServiceStatus {
	return &api.ServiceStatus{
		Ready: st.Ready, UpdatedAt: st.UpdatedAt, InitPid: st.InitPid, StartedAt: st.StartedAt,
		Stopping: st.Stopping, Error: st.Error, Services: serviceInfos(st.Services),
		Checks: checkInfos(st.Checks),
	}
}

// checkInfos converts init's pod-level check entries.
func checkInfos(cs []supervisor.CheckStatus) []api.CheckInfo {
	if cs == nil {
		return nil
	}
	out := make([]api.CheckInfo, len(cs))
	for i, c := range cs {
		out[i] = api.CheckInfo{Name: c.Name, Health: string(c.Health), LastError: c.LastError, Since: c.Since}
	}
	return out
}

// eventView converts a stored event.
func eventView(e store.Event) api.Event {
	return api.Event{
		Seq: e.Seq, Time: e.Time, PodID: e.PodID, Type: e.Type,
		From: e.From, To: e.To, Reason: e.Reason, Message: e.Message,
	}
}

// statsView converts a sandbox's runtime stats.
func statsView(s oci.Stats) *api.SandboxStats {
	return &api.SandboxStats{
		CPUUsageNanos: s.CPUUsageNanos, MemoryUsage: s.MemoryUsage, MemoryLimit: s.MemoryLimit,
		MemoryMaxUsage: s.MemoryMaxUsage, MemoryFailCount: s.MemoryFailCount, Pids: s.Pids,
		PidsLimit: s.PidsLimit, OOMKills: s.OOMKills, UnderOOM: s.UnderOOM, CgroupsAvailable: s.CgroupsAvailable,
	}
}
