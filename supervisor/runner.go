package supervisor

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pinacle/pinacle-node/podspec/svcspec"
)

const (
	opStart    = "start"
	opStop     = "stop"
	opRestart  = "restart"
	opShutdown = "shutdown"
)

type command struct {
	op    string
	reply chan error
}

func (c *command) done(err error) { c.reply <- err }

// runner owns one service: a single goroutine (loop) drives its process
// through install, start, health, exit and restart, and takes commands.
// Its status fields are guarded by sup.mu.
type runner struct {
	sup  *Supervisor
	spec *svcspec.Service
	cmds chan *command
	done chan struct{} // closed once it has stopped for good (shutdown)
	logw *rotatingWriter

	// guarded by sup.mu
	st        ServiceStatus
	gen       int  // process generation; health verdicts of old ones are dropped
	satisfied bool // dependents may start (latched)
	installed bool
}

func (r *runner) procSpec(argv []string, out *os.File) procSpec {
	s := r.sup
	var u *user
	if r.spec.User != "" {
		u, _ = lookupUser(r.spec.User, s.passwd, s.group) // resolved (and errors reported) in resolveUser
	}
	return procSpec{
		argv: argv,
		env:  serviceEnv(s.cfg.Env, r.spec.Env, u),
		dir:  r.spec.WorkingDir,
		cred: u.credential(),
		out:  out,
	}
}

func (r *runner) update(f func(st *ServiceStatus)) {
	s := r.sup
	s.mu.Lock()
	prev := r.st.State
	f(&r.st)
	if r.st.State != prev {
		r.st.Since = time.Now()
	}
	s.mu.Unlock()
	s.markChanged()
}

func (r *runner) setState(state State, lastErr string) {
	r.update(func(st *ServiceStatus) {
		st.State = state
		if lastErr != "" {
			st.LastError = lastErr
		}
		if state != StateStarting && state != StateRunning && state != StateHealthy && state != StateUnhealthy {
			st.Pid = 0
			st.Health = HealthNone
		}
	})
	if lastErr != "" {
		r.sup.log.Info("service", "name", r.spec.Name, "state", state, "reason", lastErr)
		r.logw.eventf("%s: %s", state, lastErr)
	} else {
		r.sup.log.Info("service", "name", r.spec.Name, "state", state)
	}
}

func (s *Supervisor) setHealth(r *runner, gen int, h Health, reason string) {
	s.mu.Lock()
	if r.gen != gen || r.st.Pid == 0 || r.st.Health == h {
		s.mu.Unlock()
		return
	}
	r.st.Health = h
	r.st.Since = time.Now()
	if h == HealthHealthy {
		r.st.State = StateHealthy
		r.st.LastError = ""
		r.satisfied = true
	} else {
		r.st.State = StateUnhealthy
		r.st.LastError = reason
	}
	s.mu.Unlock()
	s.markChanged()
	s.log.Info("health", "name", r.spec.Name, "health", h, "reason", reason)
	if reason != "" {
		r.logw.eventf("health %s: %s", h, reason)
	} else {
		r.logw.eventf("health %s", h)
	}
}

// noteHealthError records a failed probe that does not (yet) change the
// verdict, so a service stuck in starting shows why.
func (s *Supervisor) noteHealthError(r *runner, gen int, err error) {
	msg := "health check: " + err.Error()
	s.mu.Lock()
	if r.gen != gen || r.st.Pid == 0 || r.st.LastError == msg {
		s.mu.Unlock()
		return
	}
	r.st.LastError = msg
	s.mu.Unlock()
	s.markChanged()
}

// loop is the service's life. want says whether it should be running.
func (r *runner) loop() {
	s := r.sup
	want := true
	delay := s.cfg.BackoffInitial.Duration
	for {
		if !want {
			if r.idle(&want, &delay) {
				return
			}
			if !want {
				continue
			}
		}

		// Dependencies, then the install step.
		if c := r.waitDeps(); c != nil {
			if r.idleCommand(c, &want) {
				return
			}
			continue
		}
		if s.isStopping() {
			// Shutting down: do not start anything new, wait for the shutdown command.
			want = false
			continue
		}
		if ok, c := r.install(); c != nil {
			if r.idleCommand(c, &want) {
				return
			}
			continue
		} else if !ok {
			want = false
			continue
		}

		// Run one process to its end.
		st, c, startedAt := r.runOnce()
		if c != nil {
			switch c.op {
			case opShutdown:
				r.setState(StateStopped, "")
				c.done(nil)
				return
			case opStop:
				want = false
				r.setState(StateStopped, "")
				c.done(nil)
				continue
			case opRestart:
				r.update(func(st *ServiceStatus) { st.Restarts++ })
				delay = s.cfg.BackoffInitial.Duration
				c.done(nil)
				continue
			}
		}
		if r.exited(st, startedAt, &want, &delay) {
			return
		}
	}
}

// idle waits for a command while the service should not run (want is
// false) and applies it; it returns true when the runner must exit.
func (r *runner) idle(want *bool, delay *time.Duration) (exit bool) {
	c := <-r.cmds
	switch c.op {
	case opShutdown:
		c.done(nil)
		return true
	case opStop:
		r.setState(StateStopped, "")
	case opStart, opRestart:
		*want = true
		*delay = r.sup.cfg.BackoffInitial.Duration
	}
	c.done(nil)
	return false
}

// exited applies the restart policy to a process that ended on its own:
// it records the outcome and, when the service is to restart, waits out
// the backoff delay (a start or restart command cuts it short) and doubles
// it. It returns true when the runner must exit.
func (r *runner) exited(st exitStatus, startedAt time.Time, want *bool, delay *time.Duration) (exit bool) {
	cfg := r.sup.cfg
	if time.Since(startedAt) >= cfg.BackoffReset.Duration {
		*delay = cfg.BackoffInitial.Duration
	}
	failed := st.code != 0
	restart := r.spec.Restart == svcspec.RestartAlways || (r.spec.Restart == svcspec.RestartOnFailure && failed)
	if !restart {
		*want = false
		if failed {
			r.setState(StateFailed, fmt.Sprintf("%s (restart policy %s)", st.err(), r.spec.Restart))
		} else {
			r.setState(StateExited, "")
		}
		return false
	}
	r.setState(StateBackoff, fmt.Sprintf("%s; restarting in %s", st.err(), *delay))
	t := time.NewTimer(*delay)
	select {
	case <-t.C:
	case c := <-r.cmds:
		t.Stop()
		if c.op != opStart && c.op != opRestart {
			// Stop or shutdown during the backoff: no restart, and the
			// delay and restart count stay as they were.
			return r.idleCommand(c, want)
		}
		c.done(nil) // start now, skipping the rest of the wait
	}
	*delay = min(*delay*2, cfg.BackoffMax.Duration)
	r.update(func(st *ServiceStatus) { st.Restarts++ })
	return false
}

// idleCommand handles a command that arrived while no process was
// running; it returns true when the runner must exit.
func (r *runner) idleCommand(c *command, want *bool) bool {
	switch c.op {
	case opShutdown:
		r.setState(StateStopped, "")
		c.done(nil)
		return true
	case opStop:
		*want = false
		r.setState(StateStopped, "")
	}
	c.done(nil)
	return false
}

func (s *Supervisor) isStopping() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopping
}

// waitDeps blocks until every dependency is satisfied (healthy if it has a
// health check, started if not, or exited 0). A dependency that failed
// fails this service too. It returns a command that interrupted the wait.
func (r *runner) waitDeps() *command {
	s := r.sup
	announced := ""
	for {
		ch := s.changes()
		s.mu.Lock()
		var waiting []string
		failedDep := ""
		for _, d := range r.spec.DependsOn {
			dr := s.byName[d]
			if !dr.satisfied {
				waiting = append(waiting, d)
				if dr.st.State == StateFailed || dr.st.State == StateExited {
					failedDep = d
				}
			}
		}
		stopping := s.stopping
		s.mu.Unlock()
		if len(waiting) == 0 || stopping {
			return nil
		}
		msg, state := "waiting for "+strings.Join(waiting, ", "), StatePending
		if failedDep != "" {
			// Keep waiting: a dependency started again by hand can still come up.
			msg, state = fmt.Sprintf("dependency %s failed", failedDep), StateFailed
		}
		if msg != announced {
			announced = msg
			r.setState(state, msg)
		}
		select {
		case <-ch:
		case c := <-r.cmds:
			if c.op == opStart || c.op == opRestart {
				c.done(nil) // already on its way
				continue
			}
			return c
		}
	}
}

func (r *runner) checkUser() error {
	if r.spec.User == "" {
		return nil
	}
	_, err := lookupUser(r.spec.User, r.sup.passwd, r.sup.group)
	return err
}

// spawn starts argv with the service's identity, its output piped into the
// service log by a copier goroutine.
func (r *runner) spawn(argv []string) (int, <-chan exitStatus, error) {
	rd, wr, err := os.Pipe()
	if err != nil {
		return 0, nil, err
	}
	p := r.procSpec(argv, wr)
	pid, exited, err := r.sup.reaper.start(func() (int, error) { return fork(p) })
	wr.Close()
	if err != nil {
		rd.Close()
		return 0, nil, err
	}
	r.sup.copiers.Add(1)
	go func() {
		defer r.sup.copiers.Done()
		io.Copy(r.logw, rd)
		rd.Close()
	}()
	return pid, exited, nil
}

// runOnce starts the service process, runs its health checks, and returns
// when it has exited: by itself (c == nil) or because of command c, which
// the caller must answer.
func (r *runner) runOnce() (exitStatus, *command, time.Time) {
	s := r.sup
	startedAt := time.Now()
	if err := r.checkUser(); err != nil {
		return exitStatus{code: 126, msg: err.Error()}, nil, startedAt
	}
	pid, exited, err := r.spawn(r.spec.Command)
	if err != nil {
		return exitStatus{code: 127, msg: err.Error()}, nil, startedAt
	}
	s.mu.Lock()
	r.gen++
	gen := r.gen
	r.st.Pid = pid
	r.st.StartedAt = startedAt
	r.st.LastError = ""
	if r.spec.HealthCheck != nil {
		r.st.State, r.st.Health = StateStarting, HealthStarting
	} else {
		r.st.State, r.st.Health = StateRunning, HealthNone
		r.satisfied = true
	}
	r.st.Since = startedAt
	s.mu.Unlock()
	s.markChanged()
	s.log.Info("service started", "name", r.spec.Name, "pid", pid)
	r.logw.eventf("started %s (pid %d)", strings.Join(r.spec.Command, " "), pid)

	var hwg sync.WaitGroup
	hctx, hcancel := context.WithCancel(context.Background())
	if r.spec.HealthCheck != nil {
		hwg.Add(1)
		go func() { defer hwg.Done(); s.healthLoop(hctx, r, gen) }()
	}
	st, c := r.waitProc(pid, exited)
	hcancel()
	hwg.Wait()

	code := st.code
	s.mu.Lock()
	r.st.LastExitCode = &code
	r.st.Pid = 0
	r.st.Health = HealthNone
	if st.code == 0 {
		r.satisfied = true // a one-shot task that finished satisfies its dependents
	}
	s.mu.Unlock()
	s.markChanged()
	r.logw.eventf("exited: %s", st.err())
	return st, c, startedAt
}

// waitProc waits for the process to exit, answering start requests (it is
// running already) and terminating it for stop, restart and shutdown.
func (r *runner) waitProc(pid int, exited <-chan exitStatus) (exitStatus, *command) {
	for {
		select {
		case st := <-exited:
			// Take the rest of its process group down with it, so a
			// restart does not find the old children holding its port.
			unix.Kill(-pid, unix.SIGKILL)
			return st, nil
		case c := <-r.cmds:
			if c.op == opStart {
				c.done(nil)
				continue
			}
			return r.terminate(pid, exited), c
		}
	}
}

// terminate sends SIGTERM to the process group, and SIGKILL once the grace
// period has passed.
func (r *runner) terminate(pid int, exited <-chan exitStatus) exitStatus {
	grace := r.spec.StopGracePeriod.Duration
	r.logw.eventf("stopping pid %d (SIGTERM, SIGKILL after %s)", pid, grace)
	unix.Kill(-pid, unix.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	var st exitStatus
	select {
	case st = <-exited:
	case <-t.C:
		r.logw.eventf("grace period %s over: SIGKILL", grace)
		unix.Kill(-pid, unix.SIGKILL)
		st = <-exited
	}
	unix.Kill(-pid, unix.SIGKILL)
	return st
}
