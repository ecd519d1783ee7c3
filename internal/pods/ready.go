package pods

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pinacle/pinacle-node/oci"
	"github.com/pinacle/pinacle-node/podspec"
	"github.com/pinacle/pinacle-node/supervisor"
)

// waitReady polls init's status file until every service is ready and
// every pod-level check passes, init reports an error, the sandbox dies,
// init gives up on a pod-level check, or a service overruns its own start
// period (start period plus retries of its health check, counted from when
// its process started, so a long install step does not count against it).
// ReadyTimeout caps the whole wait.
func (m *Manager) waitReady(ctx context.Context, id string, spec *podspec.Pod) error {
	checks := map[string]*podspec.HealthCheck{}
	for i := range spec.Services {
		checks[spec.Services[i].Name] = spec.Services[i].HealthCheck
	}
	begun := time.Now()
	deadline := begun.Add(m.cfg.ReadyTimeout)
	interval := 5 * time.Millisecond
	var last *supervisor.Status
	lastAlive := time.Now()
	for {
		st, err := supervisor.ReadStatus(m.statusFile(id))
		if err == nil {
			last = st
			if st.Error != "" {
				return fmt.Errorf("services: %s", st.Error)
			}
			if st.Ready {
				return nil
			}
			if failed := failedService(st); failed != nil {
				return m.serviceFailure(id, failed, "failed")
			}
			if c := failedCheck(st); c != nil {
				return fmt.Errorf("health check %s failed: %s", c.Name, c.LastError)
			}
			for i := range st.Services {
				s := &st.Services[i]
				hc := checks[s.Name]
				if hc == nil || s.StartedAt.IsZero() || serviceReady(s) {
					continue
				}
				allowed := hc.StartPeriod.Duration + time.Duration(hc.Retries+1)*(hc.Interval.Duration+hc.Timeout.Duration)
				if time.Since(s.StartedAt) > allowed {
					return m.serviceFailure(id, s, fmt.Sprintf("not healthy within %s", allowed))
				}
			}
		}
		if time.Since(lastAlive) > time.Second {
			// Once a second, make sure the sandbox is still there (each
			// check runs runsc, too costly for every poll).
			if s, err := m.cfg.Runtime.State(ctx, id); err != nil || s.Status != oci.StatusRunning {
				return fmt.Errorf("sandbox stopped while starting: %s", m.tailFile(filepath.Join(m.logDir(id), "sandbox.log"), 5))
			}
			lastAlive = time.Now()
		}
		if time.Now().After(deadline) {
			return m.notReady(id, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
		// Every 5 ms for the first seconds, where pods usually become
		// ready (a coarser step shows up directly in create -> running),
		// then easing off to 100 ms for pods that install things.
		if time.Since(begun) > 3*time.Second && interval < 100*time.Millisecond {
			interval += 5 * time.Millisecond
		}
	}
}

// notReady names what held the pod back when ReadyTimeout ran out: the
// first service not ready, else the first pod-level check not passing.
func (m *Manager) notReady(id string, last *supervisor.Status) error {
	if last != nil {
		for i := range last.Services {
			if s := &last.Services[i]; !serviceReady(s) {
				return m.serviceFailure(id, s, fmt.Sprintf("not ready after %s", m.cfg.ReadyTimeout))
			}
		}
		for _, c := range last.Checks {
			if c.Health != supervisor.HealthHealthy {
				return fmt.Errorf("health check %s not passing after %s (%s): %w", c.Name, m.cfg.ReadyTimeout, cmp.Or(c.LastError, string(c.Health)), context.DeadlineExceeded)
			}
		}
	}
	return fmt.Errorf("services not ready after %s: %w", m.cfg.ReadyTimeout, context.DeadlineExceeded)
}

// failedCheck is the first pod-level check init gave up on.
func failedCheck(st *supervisor.Status) *supervisor.CheckStatus {
	for i := range st.Checks {
		if st.Checks[i].Health == supervisor.HealthUnhealthy {
			return &st.Checks[i]
		}
	}
	return nil
}

func serviceReady(s *supervisor.ServiceStatus) bool {
	switch s.State {
	case supervisor.StateHealthy, supervisor.StateRunning:
		return s.State == supervisor.StateHealthy || s.Health == ""
	case supervisor.StateExited:
		return s.LastExitCode != nil && *s.LastExitCode == 0
	}
	return false
}

func failedService(st *supervisor.Status) *supervisor.ServiceStatus {
	for i := range st.Services {
		if st.Services[i].State == supervisor.StateFailed {
			return &st.Services[i]
		}
	}
	return nil
}

// serviceFailure names the service, its state and its last log lines.
func (m *Manager) serviceFailure(id string, s *supervisor.ServiceStatus, what string) error {
	msg := fmt.Sprintf("service %s %s (state %s", s.Name, what, s.State)
	if s.LastError != "" {
		msg += ", " + s.LastError
	}
	if s.LastExitCode != nil {
		msg += fmt.Sprintf(", last exit %d", *s.LastExitCode)
	}
	msg += ")"
	if lines, err := supervisor.TailLogs(m.logDir(id), s.Name, 5); err == nil && len(lines) > 0 {
		msg += "; last log lines: " + strings.Join(lines, " | ")
	}
	return errors.New(msg)
}

func (m *Manager) tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
