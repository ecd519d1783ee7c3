package supervisor

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/internal/fileutil"
	"github.com/pinacle/pinacle-node/podspec/svcspec"
)

// Supervisor runs the services of one pod.
type Supervisor struct {
	cfg     *Config
	log     *slog.Logger
	reaper  *reaper
	reapAll bool
	passwd  string
	group   string

	runners []*runner
	byName  map[string]*runner
	checks  []*podCheck

	mu        sync.Mutex
	changed   chan struct{} // closed and replaced on every status change
	stopping  bool
	startedAt time.Time
	running   bool

	dirty   chan struct{}
	writeMu sync.Mutex
	copiers sync.WaitGroup // log pipe readers
}

// Option configures a Supervisor.
type Option func(*Supervisor) error

// WithLogger sets the logger for the supervisor's own events (default: discard).
func WithLogger(l *slog.Logger) Option {
	return func(s *Supervisor) error {
		if l == nil {
			return fmt.Errorf("supervisor: nil logger: %w", errdefs.ErrInvalidArgument)
		}
		s.log = l
		return nil
	}
}

// WithReapAll makes the supervisor reap every child of the process, not
// only those it started: right for PID 1 or a child subreaper, wrong for a
// process that waits for children of its own (it would steal their status).
func WithReapAll(on bool) Option {
	return func(s *Supervisor) error { s.reapAll = on; return nil }
}

// WithUserDB sets the passwd and group files users are resolved from
// (default /etc/passwd and /etc/group, which inside the sandbox are the image's).
func WithUserDB(passwd, group string) Option {
	return func(s *Supervisor) error {
		if passwd == "" || group == "" {
			return fmt.Errorf("supervisor: empty passwd or group path: %w", errdefs.ErrInvalidArgument)
		}
		s.passwd, s.group = passwd, group
		return nil
	}
}

// New validates cfg (applying defaults) and prepares a supervisor; nothing
// starts until Run.
func New(cfg *Config, opts ...Option) (*Supervisor, error) {
	c := *cfg
	c.Services = slices.Clone(cfg.Services)
	c.Checks = slices.Clone(cfg.Checks)
	for i := range c.Services {
		if h := c.Services[i].HealthCheck; h != nil {
			hc := *h
			c.Services[i].HealthCheck = &hc
		}
	}
	c.applyDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	s := &Supervisor{
		cfg:     &c,
		log:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		passwd:  "/etc/passwd",
		group:   "/etc/group",
		byName:  make(map[string]*runner),
		changed: make(chan struct{}),
		dirty:   make(chan struct{}, 1),
	}
	for _, o := range opts {
		if err := o(s); err != nil {
			return nil, err
		}
	}
	s.reaper = newReaper(s.reapAll, s.log)
	now := time.Now()
	for i := range c.Services {
		r := &runner{sup: s, spec: &c.Services[i], cmds: make(chan *command), done: make(chan struct{})}
		r.st = ServiceStatus{Name: r.spec.Name, State: StatePending, Since: now}
		s.runners = append(s.runners, r)
		s.byName[r.spec.Name] = r
	}
	s.newPodChecks(now)
	return s, nil
}

// Run starts the services and supervises them until ctx is done, then
// stops them in reverse dependency order and returns. It returns an error
// only when it cannot start at all (log or status directory unusable).
func (s *Supervisor) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return fmt.Errorf("supervisor: already running: %w", errdefs.ErrConflict)
	}
	s.running = true
	s.startedAt = time.Now()
	s.mu.Unlock()

	if err := os.MkdirAll(s.cfg.LogDir, 0o755); err != nil {
		return fmt.Errorf("supervisor: log dir: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(s.cfg.StatusFile), 0o755); err != nil {
		return fmt.Errorf("supervisor: status dir: %w", err)
	}
	for _, r := range s.runners {
		w, err := newRotatingWriter(s.cfg.LogDir, r.spec.Name, s.cfg.LogMaxBytes, s.cfg.LogMaxFiles)
		if err != nil {
			for _, r := range s.runners {
				if r.logw != nil {
					r.logw.Close()
				}
			}
			return fmt.Errorf("supervisor: %w", err)
		}
		r.logw = w
	}
	if err := s.writeStatus(); err != nil {
		return fmt.Errorf("supervisor: status file: %w", err)
	}

	reapCtx, stopReaper := context.WithCancel(context.WithoutCancel(ctx))
	var bg sync.WaitGroup
	bg.Add(2)
	go func() { defer bg.Done(); s.reaper.run(reapCtx) }()
	go func() { defer bg.Done(); s.statusWriter(reapCtx) }()

	var ctl *controlServer
	if s.cfg.ControlSocket != "" && s.cfg.ControlSocket != "none" {
		var err error
		ctl, err = s.serveControl(s.cfg.ControlSocket)
		if err != nil {
			// Services matter more than the control channel: run without it.
			s.log.Error("control socket", "socket", s.cfg.ControlSocket, "err", err)
		}
	}

	s.log.Info("starting services", "count", len(s.runners), "checks", len(s.checks))
	for _, r := range s.runners {
		go r.loop()
	}
	stopChecks := s.startChecks(ctx)
	<-ctx.Done()
	stopChecks()
	s.shutdown()
	if ctl != nil {
		ctl.close()
	}

	// Log pipes close when the last writer in the service's tree exits;
	// one that escaped its process group could hold them forever.
	copied := make(chan struct{})
	go func() { s.copiers.Wait(); close(copied) }()
	select {
	case <-copied:
	case <-time.After(time.Second):
	}
	stopReaper()
	bg.Wait()
	for _, r := range s.runners {
		r.logw.Close()
	}
	if err := s.writeStatus(); err != nil {
		s.log.Error("final status", "err", err)
	}
	return nil
}

// shutdown stops every service, each one only after all services that
// depend on it have stopped.
func (s *Supervisor) shutdown() {
	s.mu.Lock()
	s.stopping = true
	s.mu.Unlock()
	s.markChanged()
	s.log.Info("stopping services")
	var wg sync.WaitGroup
	for _, r := range s.runners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, d := range s.runners {
				if slices.Contains(d.spec.DependsOn, r.spec.Name) {
					<-d.done
				}
			}
			c := &command{op: opShutdown, reply: make(chan error, 1)}
			r.cmds <- c
			<-c.reply
			close(r.done)
		}()
	}
	wg.Wait()
}

// Status returns a snapshot of the current status.
func (s *Supervisor) Status() *Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snapshotLocked()
}

func (s *Supervisor) snapshotLocked() *Status {
	st := &Status{
		Ready:     !s.stopping,
		UpdatedAt: time.Now().UTC(),
		InitPid:   os.Getpid(),
		StartedAt: s.startedAt.UTC(),
		Stopping:  s.stopping,
		Services:  make([]ServiceStatus, 0, len(s.runners)),
	}
	for _, r := range s.runners {
		ss := r.st
		if ss.LastExitCode != nil {
			c := *ss.LastExitCode
			ss.LastExitCode = &c
		}
		ss.Since = ss.Since.UTC()
		if !ss.StartedAt.IsZero() {
			ss.StartedAt = ss.StartedAt.UTC()
		}
		st.Services = append(st.Services, ss)
		switch {
		case ss.State == StateHealthy:
		case ss.State == StateRunning:
		case ss.State == StateExited && r.spec.Restart != svcspec.RestartAlways:
		default:
			st.Ready = false
		}
	}
	var checksOK bool
	st.Checks, checksOK = s.checkStatusesLocked()
	st.Ready = st.Ready && checksOK
	return st
}

// changes returns a channel closed at the next status change.
func (s *Supervisor) changes() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// markChanged wakes dependency waiters and schedules a status write.
func (s *Supervisor) markChanged() {
	s.mu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	select {
	case s.dirty <- struct{}{}:
	default:
	}
}

// statusWriter writes the status file after every change; changes that
// land while a write is in progress coalesce into the next write.
func (s *Supervisor) statusWriter(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.dirty:
			if err := s.writeStatus(); err != nil {
				s.log.Error("status file", "path", s.cfg.StatusFile, "err", err)
			}
		}
	}
}

func (s *Supervisor) writeStatus() error {
	s.writeMu.Lock() // keeps the final write after any in-flight one
	defer s.writeMu.Unlock()
	b, err := json.MarshalIndent(s.Status(), "", "  ")
	if err != nil {
		return err
	}
	return fileutil.WriteAtomic(s.cfg.StatusFile, append(b, '\n'), 0o644)
}

// Signal forwards sig to the process group of every running service.
func (s *Supervisor) Signal(sig unix.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.runners {
		if r.st.Pid > 0 {
			unix.Kill(-r.st.Pid, sig)
		}
	}
}

func (s *Supervisor) runner(name string) (*runner, error) {
	r, ok := s.byName[name]
	if !ok {
		return nil, fmt.Errorf("service %q: %w", name, errdefs.ErrNotFound)
	}
	return r, nil
}

// Start starts a stopped, exited or failed service (a no-op for one that is
// running or about to). It returns once the request is accepted.
func (s *Supervisor) Start(ctx context.Context, name string) error {
	return s.send(ctx, name, opStart)
}

// Stop stops one service (SIGTERM to its process group, SIGKILL after its
// grace period) and keeps it stopped until Start or Restart. Services that
// depend on it are left running.
func (s *Supervisor) Stop(ctx context.Context, name string) error {
	return s.send(ctx, name, opStop)
}

// Restart stops a service if it runs, then starts it again at once
// (no backoff); it counts as a restart.
func (s *Supervisor) Restart(ctx context.Context, name string) error {
	return s.send(ctx, name, opRestart)
}

func (s *Supervisor) send(ctx context.Context, name string, op string) error {
	r, err := s.runner(name)
	if err != nil {
		return err
	}
	s.mu.Lock()
	stopping := s.stopping
	s.mu.Unlock()
	if stopping {
		return fmt.Errorf("service %s: supervisor is shutting down: %w", name, errdefs.ErrUnavailable)
	}
	c := &command{op: op, reply: make(chan error, 1)}
	select {
	case r.cmds <- c:
	case <-r.done:
		return fmt.Errorf("service %s: supervisor is shutting down: %w", name, errdefs.ErrUnavailable)
	case <-ctx.Done():
		return fmt.Errorf("service %s: %s: %w", name, op, ctx.Err())
	}
	select {
	case err := <-c.reply:
		return err
	case <-ctx.Done():
		return fmt.Errorf("service %s: %s: %w", name, op, ctx.Err())
	}
}
