package supervisor

// Pod-level readiness checks (the pod spec's healthChecks): probes that
// belong to no service. They run from init's start on their own schedule,
// with the same probe kinds and verdict rules as service health checks,
// and the pod is ready only while every one of them passes.

import (
	"context"
	"sync"
	"time"

	"github.com/pinacle/pinacle-node/podspec/svcspec"
)

// CheckStatus is one pod-level check's entry in the status file.
type CheckStatus struct {
	Name string `json:"name"`
	// Health is starting until the first verdict, then healthy or
	// unhealthy (the start period is over and retries failed in a row).
	Health    Health    `json:"health"`
	LastError string    `json:"lastError,omitempty"`
	Since     time.Time `json:"since"` // when it entered Health
}

// podCheck runs one check. Exec checks run through a runner of their
// own (never started) for its user, environment and working directory.
type podCheck struct {
	r  *runner
	st CheckStatus
}

// newPodChecks prepares cfg's checks; exec ones run as cfg.User in
// cfg.WorkingDir with the pod's environment.
func (s *Supervisor) newPodChecks(now time.Time) {
	for i := range s.cfg.Checks {
		c := &s.cfg.Checks[i]
		svc := &svcspec.Service{Name: c.Name, User: s.cfg.User, WorkingDir: s.cfg.WorkingDir, HealthCheck: &c.HealthCheck}
		s.checks = append(s.checks, &podCheck{
			r:  &runner{sup: s, spec: svc},
			st: CheckStatus{Name: c.Name, Health: HealthStarting, Since: now},
		})
	}
}

// startChecks runs the checks in the background; the returned function
// stops them and waits.
func (s *Supervisor) startChecks(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); s.runChecks(ctx) }()
	return func() { cancel(); <-done }
}

// runChecks probes every check until ctx is done.
func (s *Supervisor) runChecks(ctx context.Context) {
	var wg sync.WaitGroup
	for _, c := range s.checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			probeLoop(ctx, c.r.spec.HealthCheck, s.newProbe(c.r), verdicts{
				healthy:   func() { s.setCheck(c, HealthHealthy, "") },
				failing:   func(err error) { s.setCheck(c, "", "health check: "+err.Error()) },
				unhealthy: func(reason string) { s.setCheck(c, HealthUnhealthy, reason) },
			})
		}()
	}
	wg.Wait()
}

// setCheck records a verdict (h empty: only the last error changes).
func (s *Supervisor) setCheck(c *podCheck, h Health, lastErr string) {
	s.mu.Lock()
	prev := c.st
	if h != "" && h != c.st.Health {
		c.st.Health = h
		c.st.Since = time.Now()
	}
	c.st.LastError = lastErr
	changed := prev != c.st
	s.mu.Unlock()
	if !changed {
		return
	}
	s.markChanged()
	if h != "" && h != prev.Health {
		s.log.Info("pod check", "name", c.st.Name, "health", h, "reason", lastErr)
	}
}

// checkStatusesLocked copies the checks' status; ok says every one passes.
func (s *Supervisor) checkStatusesLocked() (out []CheckStatus, ok bool) {
	ok = true
	for _, c := range s.checks {
		st := c.st
		st.Since = st.Since.UTC()
		out = append(out, st)
		if st.Health != HealthHealthy {
			ok = false
		}
	}
	return out, ok
}

// Check returns the entry for a pod-level check, or nil.
func (s *Status) Check(name string) *CheckStatus {
	for i := range s.Checks {
		if s.Checks[i].Name == name {
			return &s.Checks[i]
		}
	}
	return nil
}

// validateChecks checks the pod-level checks' names and probes.
func (c *Config) validateChecks() error {
	seen := map[string]bool{}
	for i, chk := range c.Checks {
		if chk.Name == "" || seen[chk.Name] {
			return invalid("checks[%d].name %q: empty or duplicate", i, chk.Name)
		}
		seen[chk.Name] = true
		if err := validateHealth("check "+chk.Name, &c.Checks[i].HealthCheck); err != nil {
			return err
		}
	}
	return nil
}

func (c *Config) defaultChecks() {
	for i := range c.Checks {
		c.Checks[i].HealthCheck.Default(0)
	}
}
