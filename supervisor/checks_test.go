package supervisor

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pinacle/pinacle-node/podspec/svcspec"
)

func namedCheck(name string, h svcspec.HealthCheck) svcspec.NamedHealthCheck {
	return svcspec.NamedHealthCheck{Name: name, HealthCheck: h}
}

// A pod-level check holds readiness back until it passes, whatever the
// services say; one that never passes is reported unhealthy by name.
func TestPodChecksGateReady(t *testing.T) {
	port := freePort(t)
	web := svc("web", httpd(port, t.TempDir()))
	cfg := testConfig(t, web)
	cfg.Checks = []svcspec.NamedHealthCheck{
		namedCheck("web-up", svcspec.HealthCheck{Type: svcspec.HealthTCP, Host: "127.0.0.1", Port: port,
			Interval: dur(50 * time.Millisecond), Timeout: dur(40 * time.Millisecond)}),
		namedCheck("marker", svcspec.HealthCheck{Type: svcspec.HealthExec, Command: sh("test -e " + t.TempDir() + "/never"),
			Interval: dur(50 * time.Millisecond), Timeout: dur(40 * time.Millisecond), StartPeriod: dur(100 * time.Millisecond), Retries: 2}),
	}
	s := startSupervisor(t, cfg)
	waitService(t, s, "web", 10*time.Second, inState(StateRunning))
	poll(t, 10*time.Second, func() (bool, string) {
		st := s.Status()
		c := st.Check("web-up")
		return c != nil && c.Health == HealthHealthy, fmt.Sprintf("checks %+v", st.Checks)
	})
	// The status file, which the node reads, follows the in-memory
	// status asynchronously: wait on the file itself.
	var st *Status
	poll(t, 10*time.Second, func() (bool, string) {
		var err error
		if st, err = ReadStatus(cfg.StatusFile); err != nil {
			return false, err.Error()
		}
		c := st.Check("marker")
		return c != nil && c.Health == HealthUnhealthy, fmt.Sprintf("checks in the file %+v", st.Checks)
	})
	if st.Ready {
		t.Fatalf("ready with a failing pod check: %+v", st)
	}
	if c := st.Check("marker"); c == nil || !strings.Contains(c.LastError, "never became healthy") {
		t.Fatalf("marker check in the status file: %+v", c)
	}
}

// With every check passing (and the services up), the pod is ready.
func TestPodChecksReady(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, svc("idle", sh("touch "+dir+"/up; exec sleep 60")))
	cfg.Checks = []svcspec.NamedHealthCheck{
		namedCheck("marker", svcspec.HealthCheck{Type: svcspec.HealthExec, Command: sh("test -e " + dir + "/up"),
			Interval: dur(50 * time.Millisecond), Timeout: dur(40 * time.Millisecond)}),
	}
	s := startSupervisor(t, cfg)
	poll(t, 10*time.Second, func() (bool, string) {
		st := s.Status()
		return st.Ready, fmt.Sprintf("status %+v", st)
	})
}

func TestConfigChecksValidated(t *testing.T) {
	for name, c := range map[string][]svcspec.NamedHealthCheck{
		"no name":   {namedCheck("", svcspec.HealthCheck{Type: svcspec.HealthTCP, Port: 80})},
		"duplicate": {namedCheck("a", svcspec.HealthCheck{Type: svcspec.HealthTCP, Port: 80}), namedCheck("a", svcspec.HealthCheck{Type: svcspec.HealthTCP, Port: 81})},
		"no port":   {namedCheck("a", svcspec.HealthCheck{Type: svcspec.HealthTCP})},
	} {
		cfg := &Config{Checks: c}
		cfg.applyDefaults()
		if err := cfg.Validate(); err == nil {
			t.Errorf("%s: validated", name)
		}
	}
}
