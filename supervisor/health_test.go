package supervisor

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pinacle/pinacle-node/podspec/svcspec"
)

func TestHTTPHealthFlips(t *testing.T) {
	port := freePort(t)
	www := t.TempDir()
	okFile := filepath.Join(www, "ok")
	if err := os.WriteFile(okFile, []byte("ok\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	web := svc("web", httpd(port, www))
	web.HealthCheck = &svcspec.HealthCheck{
		Type: svcspec.HealthHTTP, Port: port, Path: "/ok",
		Interval: dur(30 * time.Millisecond), Timeout: dur(time.Second), Retries: 2,
	}
	cfg := testConfig(t, web)
	s := startSupervisor(t, cfg)
	waitService(t, s, "web", 10*time.Second, inState(StateHealthy))

	os.Remove(okFile) // now 404
	ss := waitService(t, s, "web", 10*time.Second, inState(StateUnhealthy))
	if ss.Health != HealthUnhealthy || !strings.Contains(ss.LastError, "status 404, want 200-399") {
		t.Errorf("unhealthy: %+v", ss)
	}
	if s.Status().Ready {
		t.Errorf("ready while unhealthy")
	}
	os.WriteFile(okFile, []byte("ok\n"), 0o644)
	ss = waitService(t, s, "web", 10*time.Second, inState(StateHealthy))
	if ss.Restarts != 0 || ss.LastError != "" {
		t.Errorf("healthy again: %+v", ss)
	}
	// The status file and the log are separate writes: the log line of the
	// last change may land just after the status a test sees.
	poll(t, 10*time.Second, func() (bool, string) {
		log := readLog(t, cfg, "web")
		ok := strings.Count(log, "health healthy") == 2 && strings.Count(log, "health unhealthy") == 1
		return ok, "log to show healthy -> unhealthy -> healthy:\n" + log
	})
}

func TestExecHealthCheck(t *testing.T) {
	dir := t.TempDir()
	ready := filepath.Join(dir, "ready")
	worker := svc("worker", sh("exec sleep 1000"))
	worker.HealthCheck = &svcspec.HealthCheck{
		Type: svcspec.HealthExec, Command: sh("echo checking; test -f " + ready),
		Interval: dur(30 * time.Millisecond), Timeout: dur(time.Second), Retries: 1,
	}
	after := svc("after", sh("exec sleep 1000"), "worker")
	s := startSupervisor(t, testConfig(t, worker, after))
	ss := waitService(t, s, "worker", 10*time.Second, func(ss ServiceStatus) bool { return ss.LastError != "" })
	if ss.State != StateStarting || !strings.Contains(ss.LastError, "exit code 1: checking") {
		t.Errorf("before ready: %+v", ss)
	}
	if st := s.Status().Service("after"); st.State != StatePending || st.LastError != "waiting for worker" {
		t.Errorf("dependent started before worker was healthy: %+v", st)
	}
	os.WriteFile(ready, nil, 0o644)
	waitService(t, s, "worker", 10*time.Second, inState(StateHealthy))
	waitService(t, s, "after", 10*time.Second, inState(StateRunning))
	// The exec probes are reaped by the supervisor: none is left behind.
	poll(t, 5*time.Second, func() (bool, string) {
		z := zombiesOf(os.Getpid())
		return len(z) == 0, fmt.Sprintf("zombie children: %v", z)
	})
}

func TestExecHealthTimeout(t *testing.T) {
	w := svc("slowcheck", sh("exec sleep 1000"))
	w.HealthCheck = &svcspec.HealthCheck{
		Type: svcspec.HealthExec, Command: sh("sleep 30"),
		Interval: dur(30 * time.Millisecond), Timeout: dur(100 * time.Millisecond), Retries: 1, StartPeriod: dur(time.Millisecond),
	}
	s := startSupervisor(t, testConfig(t, w))
	ss := waitService(t, s, "slowcheck", 10*time.Second, inState(StateUnhealthy))
	if !strings.Contains(ss.LastError, "timed out after 100ms") {
		t.Errorf("lastError = %q", ss.LastError)
	}
}

func TestNeverHealthyReason(t *testing.T) {
	port := freePort(t)
	w := svc("mute", sh("exec sleep 1000")) // never listens
	w.HealthCheck = &svcspec.HealthCheck{
		Type: svcspec.HealthTCP, Port: port,
		Interval: dur(20 * time.Millisecond), Timeout: dur(time.Second), Retries: 2, StartPeriod: dur(200 * time.Millisecond),
	}
	s := startSupervisor(t, testConfig(t, w))
	ss := waitService(t, s, "mute", 10*time.Second, func(ss ServiceStatus) bool { return ss.LastError != "" })
	if ss.State != StateStarting {
		t.Errorf("during start period: %+v", ss)
	}
	ss = waitService(t, s, "mute", 10*time.Second, inState(StateUnhealthy))
	for _, want := range []string{"never became healthy", "start period 200ms", fmt.Sprintf("tcp 127.0.0.1:%d", port), "connection refused"} {
		if !strings.Contains(ss.LastError, want) {
			t.Errorf("lastError %q lacks %q", ss.LastError, want)
		}
	}
}

// zombiesOf lists zombie processes whose parent is ppid.
func zombiesOf(ppid int) []int {
	var z []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		var pid int
		if _, err := fmt.Sscan(e.Name(), &pid); err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 1 && f[0] == "Z" && f[1] == fmt.Sprint(ppid) {
			z = append(z, pid)
		}
	}
	return z
}
