package pods

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/internal/lifecycle"
	"github.com/pinacle/pinacle-node/internal/store"
	"github.com/pinacle/pinacle-node/oci"
	"github.com/pinacle/pinacle-node/supervisor"
)

// Events implements api.Service.
func (m *Manager) Events(ctx context.Context, idOrName string, since uint64, follow bool, fn func(api.Event) error) error {
	podID := ""
	if idOrName != "" {
		p, err := m.find(ctx, idOrName)
		if err != nil {
			return err
		}
		podID = p.ID
	}
	if !follow {
		evs, err := m.cfg.Store.Events(ctx, since, podID, 0)
		if err != nil {
			return err
		}
		for _, e := range evs {
			if err := fn(eventView(e)); err != nil {
				return err
			}
		}
		return nil
	}
	sub, err := m.cfg.Store.Watch(ctx, since, podID)
	if err != nil {
		return err
	}
	defer sub.Close()
	for e := range sub.C {
		if err := fn(eventView(e)); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return sub.Err()
}

// Logs implements api.Service. An empty service means the sandbox's own log
// (init's messages).
func (m *Manager) Logs(ctx context.Context, idOrName, service string, tail int, follow bool, w io.Writer) error {
	p, err := m.find(ctx, idOrName)
	if err != nil {
		return err
	}
	name := service
	if name == "" {
		name = "sandbox"
	} else if err := m.checkService(p, service); err != nil {
		return err
	}
	dir := m.logDir(p.ID)
	// Measure the current file first: following from there may repeat a
	// line written while the tail is read, but never loses one.
	var offset int64
	if fi, err := os.Stat(supervisor.LogPath(dir, name)); err == nil {
		offset = fi.Size()
	}
	lines, err := supervisor.TailLogs(dir, name, tail)
	if err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return err
	}
	for _, l := range lines {
		if _, err := io.WriteString(w, l+"\n"); err != nil {
			return err
		}
	}
	if !follow {
		return nil
	}
	return supervisor.FollowLogsFrom(ctx, dir, name, offset, w)
}

func (m *Manager) checkService(p *store.Pod, service string) error {
	spec, err := decodeSpec(p)
	if err != nil {
		return err
	}
	for _, s := range spec.Services {
		if s.Name == service {
			return nil
		}
	}
	return fmt.Errorf("pod %s: service %q: %w", p.ID, service, errdefs.ErrNotFound)
}

// running returns the pod if it is running, else a conflict naming its state.
func (m *Manager) running(ctx context.Context, idOrName, what string) (*store.Pod, error) {
	p, err := m.find(ctx, idOrName)
	if err != nil {
		return nil, err
	}
	if p.State != lifecycle.Running {
		return nil, fmt.Errorf("cannot %s pod %s: pod is %s: %w", what, p.ID, p.State, errdefs.ErrConflict)
	}
	return p, nil
}

// awake is running for a pod that may be woken: a hibernated pod is
// woken first (an exec or a terminal wakes it as a connection does).
func (m *Manager) awake(ctx context.Context, idOrName, what string) (*store.Pod, error) {
	p, err := m.find(ctx, idOrName)
	if err != nil {
		return nil, err
	}
	if p.State == lifecycle.Hibernated {
		if _, err := m.Wake(ctx, p.ID); err != nil {
			return nil, err
		}
	}
	return m.running(ctx, p.ID, what)
}

// Exec implements api.Service.
func (m *Manager) Exec(ctx context.Context, idOrName string, req api.ExecRequest) (int, error) {
	if len(req.Args) == 0 {
		return 0, fmt.Errorf("exec: a command is required: %w", errdefs.ErrInvalidArgument)
	}
	p, err := m.awake(ctx, idOrName, "exec in")
	if err != nil {
		return 0, err
	}
	ctx, end := m.execs.begin(ctx, p.ID)
	defer end()
	spec, err := decodeSpec(p)
	if err != nil {
		return 0, err
	}
	o := oci.ExecOpts{Args: req.Args, Env: req.Env, Cwd: req.Cwd, Tty: req.Tty, Stdin: req.Stdin, Stdout: req.Stdout, Stderr: req.Stderr}
	env := make([]string, 0, len(spec.Environment)+len(req.Env))
	for k, v := range spec.Environment {
		env = append(env, k+"="+v)
	}
	o.Env = append(env, req.Env...)
	if o.Cwd == "" {
		o.Cwd = spec.WorkingDir
	}
	user := req.User
	if user == "" {
		user = spec.User
	}
	if user != "" {
		u, err := oci.ResolveUser(m.podDir(p.ID)+"/rootfs", user)
		if err != nil {
			return 0, err
		}
		o.User = fmt.Sprintf("%d:%d", u.UID, u.GID)
		o.AdditionalGids = u.AdditionalGids
	}
	return m.cfg.Runtime.Exec(ctx, p.ID, o)
}

// Metrics implements api.Service.
func (m *Manager) Metrics(ctx context.Context, idOrName string) (*api.Metrics, error) {
	p, err := m.running(ctx, idOrName, "read metrics of")
	if err != nil {
		return nil, err
	}
	out := &api.Metrics{PodID: p.ID, Time: time.Now().UTC()}
	s, err := m.cfg.Runtime.Stats(ctx, p.ID)
	if err != nil {
		return nil, err
	}
	out.Sandbox = statsView(s)
	for _, ps := range m.cfg.Ports.Stats().Pods {
		if ps.PodID != p.ID {
			continue
		}
		for _, port := range ps.Ports {
			out.Ports = append(out.Ports, api.PortCounters{
				Name: port.Name, HostPort: int(port.HostPort),
				ConnsTotal: port.ConnsTotal, ConnsActive: port.ConnsActive, ConnsRejected: port.ConnsRejected,
				BytesIn: port.BytesIn, BytesOut: port.BytesOut,
			})
		}
	}
	return out, nil
}

// Health implements api.Service.
func (m *Manager) Health(ctx context.Context, idOrName string) (*api.Health, error) {
	p, err := m.find(ctx, idOrName)
	if err != nil {
		return nil, err
	}
	h := &api.Health{PodID: p.ID, State: p.State, Sandbox: "absent"}
	if s, err := m.cfg.Runtime.State(ctx, p.ID); err == nil {
		h.Sandbox = string(s.Status)
	}
	var why []string
	if p.State != lifecycle.Running {
		why = append(why, "pod is "+string(p.State))
	}
	if h.Sandbox != string(oci.StatusRunning) {
		why = append(why, "sandbox is "+h.Sandbox)
	}
	if st, err := m.serviceStatus(p); err == nil {
		h.Services = serviceInfos(st.Services)
		for i := range st.Services {
			if s := &st.Services[i]; !serviceReady(s) {
				why = append(why, fmt.Sprintf("service %s is %s", s.Name, s.State))
			}
		}
		h.Checks = checkInfos(st.Checks)
		for _, c := range st.Checks {
			if c.Health != supervisor.HealthHealthy {
				why = append(why, fmt.Sprintf("check %s is %s", c.Name, c.Health))
			}
		}
	} else if p.State == lifecycle.Running {
		why = append(why, "no service status")
	}
	h.Healthy = len(why) == 0
	h.Reason = strings.Join(why, "; ")
	return h, nil
}

// serviceStatus reads init's status file. A pod without services is
// running before init writes its first status (bringUp has nothing to wait
// for), so for such a pod a missing file is an empty status, not an error.
func (m *Manager) serviceStatus(p *store.Pod) (*supervisor.Status, error) {
	st, err := supervisor.ReadStatus(m.statusFile(p.ID))
	if errors.Is(err, fs.ErrNotExist) {
		if spec, derr := decodeSpec(p); derr == nil && len(spec.Services) == 0 && len(spec.HealthChecks) == 0 {
			return &supervisor.Status{Services: []supervisor.ServiceStatus{}}, nil
		}
	}
	return st, err
}

// ServiceControl implements api.Service.
func (m *Manager) ServiceControl(ctx context.Context, idOrName, op, service string) (*api.ServiceStatus, error) {
	p, err := m.running(ctx, idOrName, op+" services of")
	if err != nil {
		return nil, err
	}
	switch op {
	case supervisor.OpList:
		st, err := m.serviceStatus(p)
		if err != nil {
			return nil, err
		}
		return serviceStatusView(st), nil
	case supervisor.OpStart, supervisor.OpStop, supervisor.OpRestart:
		if err := m.checkService(p, service); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("service operation %q: want ls, start, stop or restart: %w", op, errdefs.ErrInvalidArgument)
	}
	exec := func(ctx context.Context, argv []string) ([]byte, error) {
		return m.execCapture(ctx, p.ID, argv)
	}
	st, err := supervisor.ExecControl(ctx, exec, op, service)
	if st == nil {
		return nil, err
	}
	return serviceStatusView(st), err
}

// execCapture runs argv in the sandbox as root and returns its stdout.
func (m *Manager) execCapture(ctx context.Context, id string, argv []string) ([]byte, error) {
	f, err := tempFile()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	code, err := m.cfg.Runtime.Exec(ctx, id, oci.ExecOpts{Args: argv, Stdout: f, User: "0:0"})
	if err != nil {
		return nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	out, rerr := io.ReadAll(f)
	if rerr != nil {
		return nil, rerr
	}
	if code != 0 {
		return out, fmt.Errorf("%s exited %d", strings.Join(argv, " "), code)
	}
	return out, nil
}
