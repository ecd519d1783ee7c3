package apiserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/internal/lifecycle"
	"github.com/pinacle/pinacle-node/podspec"
)

// fakeService is an in-memory api.Service for the API tests; the real
// manager is exercised by the e2e suite. Exec runs real host processes
// with the stdio files it is given, so pipes and ptys are real.
type fakeService struct {
	mu      sync.Mutex
	pods    map[string]*api.Pod
	events  []api.Event
	changed chan struct{} // closed and replaced when an event is added
	logs    map[string]string
	seen    []string // every idOrName that reached the service
	nextID  int

	// streamEnded gets the error each Events/Logs/Exec call returned.
	streamEnded chan error
	execPid     chan int
	revoked     int // RevokeURLs calls
}

var _ api.Service = (*fakeService)(nil)

func newFake() *fakeService {
	return &fakeService{
		pods:        map[string]*api.Pod{},
		changed:     make(chan struct{}),
		logs:        map[string]string{"app": "one\ntwo\nthree\n"},
		streamEnded: make(chan error, 256),
		execPid:     make(chan int, 4),
	}
}

func (f *fakeService) ended(err error) {
	select {
	case f.streamEnded <- err:
	default:
	}
}

func (f *fakeService) seenIDs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.seen...)
}

func (f *fakeService) lookup(idOrName string) (*api.Pod, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seen = append(f.seen, idOrName)
	for _, p := range f.pods {
		if p.ID == idOrName || p.Name == idOrName {
			return p, nil
		}
	}
	return nil, fmt.Errorf("pod %s: %w", idOrName, errdefs.ErrNotFound)
}

func (f *fakeService) addEvent(ev api.Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ev.Seq = uint64(len(f.events) + 1)
	ev.Time = time.Now()
	f.events = append(f.events, ev)
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeService) transition(p *api.Pod, to lifecycle.State) {
	f.mu.Lock()
	from := p.State
	p.State = to
	f.mu.Unlock()
	f.addEvent(api.Event{PodID: p.ID, Type: api.EventState, From: from, To: to})
}

func (f *fakeService) Create(ctx context.Context, req api.CreateRequest) (*api.Pod, error) {
	if req.Spec.Name == "invalid" {
		return nil, &podspec.ValidationError{Errors: []podspec.FieldError{
			{Field: "resources.tier", Message: "unknown tier"},
			{Field: "network.ports[0].internal", Message: "want 1-65535"},
		}}
	}
	f.mu.Lock()
	for _, p := range f.pods {
		if p.Name == req.Spec.Name {
			f.mu.Unlock()
			return nil, fmt.Errorf("pod %s: %w", req.Spec.Name, errdefs.ErrAlreadyExists)
		}
	}
	f.nextID++
	p := &api.Pod{
		ID: fmt.Sprintf("p%d", f.nextID), Name: req.Spec.Name, State: lifecycle.Pending,
		Template: req.Template, Image: req.Spec.BaseImage, CreatedAt: time.Now(),
		Ports: []api.PortStatus{{Name: "app", Internal: 3000, External: 30001}},
	}
	f.pods[p.ID] = p
	f.mu.Unlock()
	f.addEvent(api.Event{PodID: p.ID, Type: api.EventState, To: lifecycle.Pending})
	if req.Wait {
		f.transition(p, lifecycle.Provisioning)
		f.transition(p, lifecycle.Running)
	}
	return f.Get(ctx, p.ID)
}

func (f *fakeService) Get(ctx context.Context, idOrName string) (*api.Pod, error) {
	p, err := f.lookup(idOrName)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	cp := *p
	return &cp, nil
}

func (f *fakeService) List(ctx context.Context) ([]*api.Pod, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*api.Pod
	for _, p := range f.pods {
		cp := *p
		out = append(out, &cp)
	}
	return out, nil
}

func (f *fakeService) Start(ctx context.Context, idOrName string) (*api.Pod, error) {
	p, err := f.lookup(idOrName)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	st := p.State
	f.mu.Unlock()
	if st == lifecycle.Failed {
		return nil, fmt.Errorf("pod %s: start a failed pod: %w", p.ID, errdefs.ErrConflict)
	}
	if st != lifecycle.Running {
		f.transition(p, lifecycle.Running)
	}
	return f.Get(ctx, p.ID)
}

func (f *fakeService) Stop(ctx context.Context, idOrName string) (*api.Pod, error) {
	p, err := f.lookup(idOrName)
	if err != nil {
		return nil, err
	}
	f.transition(p, lifecycle.Stopped)
	return f.Get(ctx, p.ID)
}

func (f *fakeService) Hibernate(ctx context.Context, idOrName string) (*api.Pod, error) {
	p, err := f.lookup(idOrName)
	if err != nil {
		return nil, err
	}
	f.transition(p, lifecycle.Hibernated)
	return f.Get(ctx, p.ID)
}

func (f *fakeService) Wake(ctx context.Context, idOrName string) (*api.Pod, error) {
	p, err := f.lookup(idOrName)
	if err != nil {
		return nil, err
	}
	f.transition(p, lifecycle.Running)
	return f.Get(ctx, p.ID)
}

func (f *fakeService) Delete(ctx context.Context, idOrName string) error {
	p, err := f.lookup(idOrName)
	if err != nil {
		return err
	}
	f.mu.Lock()
	delete(f.pods, p.ID)
	f.mu.Unlock()
	f.addEvent(api.Event{PodID: p.ID, Type: api.EventDeleted})
	return nil
}

func (f *fakeService) Events(ctx context.Context, idOrName string, since uint64, follow bool, fn func(api.Event) error) (err error) {
	defer func() { f.ended(err) }()
	podID := ""
	if idOrName != "" {
		p, err := f.lookup(idOrName)
		if err != nil {
			return err
		}
		podID = p.ID
	}
	for {
		f.mu.Lock()
		evs := f.events
		changed := f.changed
		f.mu.Unlock()
		if since > uint64(len(evs)) {
			since = uint64(len(evs))
		}
		for _, ev := range evs[since:] {
			if podID == "" || ev.PodID == podID {
				if err := fn(ev); err != nil {
					return err
				}
			}
		}
		since = uint64(len(evs))
		if !follow {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}

func (f *fakeService) Logs(ctx context.Context, idOrName, service string, tail int, follow bool, w io.Writer) (err error) {
	defer func() { f.ended(err) }()
	if _, err := f.lookup(idOrName); err != nil {
		return err
	}
	if service == "" {
		service = "app"
	}
	if service == "broken" {
		io.WriteString(w, "partial\n")
		return fmt.Errorf("log file of %s vanished: %w", service, errdefs.ErrUnavailable)
	}
	f.mu.Lock()
	text, ok := f.logs[service]
	f.mu.Unlock()
	if !ok {
		return fmt.Errorf("service %s: %w", service, errdefs.ErrNotFound)
	}
	lines := strings.SplitAfter(strings.TrimSuffix(text, "\n"), "\n")
	if tail >= 0 && tail < len(lines) {
		lines = lines[len(lines)-tail:]
	}
	for _, l := range lines {
		if _, err := io.WriteString(w, strings.TrimSuffix(l, "\n")+"\n"); err != nil {
			return err
		}
	}
	if !follow {
		return nil
	}
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			if _, err := fmt.Fprintf(w, "tick %d\n", i); err != nil {
				return err
			}
		}
	}
}

func (f *fakeService) Exec(ctx context.Context, idOrName string, req api.ExecRequest) (code int, err error) {
	defer func() { f.ended(err) }()
	p, err := f.Get(ctx, idOrName)
	if err != nil {
		return -1, err
	}
	if p.State != lifecycle.Running {
		return -1, fmt.Errorf("pod %s is %s: %w", p.ID, p.State, errdefs.ErrConflict)
	}
	if req.Args[0] == "noop" { // for benchmarks: the API's overhead alone
		return 0, nil
	}
	cmd := exec.CommandContext(ctx, req.Args[0], req.Args[1:]...)
	cmd.Env = append([]string{"PATH=/usr/bin:/bin", "HOME=/tmp"}, req.Env...)
	cmd.Dir = req.Cwd
	cmd.Stdin, cmd.Stdout, cmd.Stderr = req.Stdin, req.Stdout, req.Stderr
	if req.Tty {
		// As in a sandbox: the process leads a session whose controlling
		// terminal is the pty, so ^C becomes SIGINT.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	}
	if err := cmd.Start(); err != nil {
		return -1, fmt.Errorf("exec %s: %w", req.Args[0], errdefs.ErrInvalidArgument)
	}
	select { // tests that want it drain first; benchmarks never read it
	case f.execPid <- cmd.Process.Pid:
	default:
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ctx.Err() != nil {
			return -1, ctx.Err()
		}
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	if err != nil {
		return -1, err
	}
	return 0, nil
}

func (f *fakeService) Metrics(ctx context.Context, idOrName string) (*api.Metrics, error) {
	p, err := f.lookup(idOrName)
	if err != nil {
		return nil, err
	}
	return &api.Metrics{PodID: p.ID, Time: time.Now(), Sandbox: &api.SandboxStats{MemoryUsage: 16 << 20, Pids: 3}}, nil
}

func (f *fakeService) Health(ctx context.Context, idOrName string) (*api.Health, error) {
	p, err := f.lookup(idOrName)
	if err != nil {
		return nil, err
	}
	return &api.Health{PodID: p.ID, Healthy: p.State == lifecycle.Running, State: p.State, Sandbox: "running"}, nil
}

func (f *fakeService) ServiceControl(ctx context.Context, idOrName, op, service string) (*api.ServiceStatus, error) {
	if _, err := f.lookup(idOrName); err != nil {
		return nil, err
	}
	st := &api.ServiceStatus{Ready: true, Services: []api.ServiceInfo{{Name: "app", State: api.ServiceRunning}}}
	switch op {
	case "ls":
	case "restart", "start":
		if service != "app" {
			return nil, fmt.Errorf("service %s: %w", service, errdefs.ErrNotFound)
		}
		st.Services[0].Restarts = 1
	case "stop":
		st.Services[0].State = api.ServiceStopped
	default:
		return nil, fmt.Errorf("op %s: %w", op, errdefs.ErrInvalidArgument)
	}
	return st, nil
}

func execRequestWithStdout(args []string, stdout *os.File) api.ExecRequest {
	return api.ExecRequest{Args: args, Stdout: stdout}
}
