package supervisor

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pinacle/pinacle-node/internal/testenv"

	"github.com/pinacle/pinacle-node/podspec/svcspec"
)

const busybox = "/bin/busybox"

func requireBusybox(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(busybox); err != nil {
		testenv.Missing(t, "needs %s (Debian busybox-static; hack/setup.sh installs it)", busybox)
	}
}

func sh(script string) []string { return []string{busybox, "sh", "-c", script} }

func dur(d time.Duration) svcspec.Duration { return svcspec.Duration{Duration: d} }

// testConfig returns a config writing logs and status under a temp dir,
// with fast backoff and no control socket.
func testConfig(t *testing.T, svcs ...svcspec.Service) *Config {
	dir := t.TempDir()
	return &Config{
		Services:       svcs,
		LogDir:         dir + "/logs",
		StatusFile:     dir + "/run/status.json",
		ControlSocket:  "none",
		BackoffInitial: dur(20 * time.Millisecond),
		BackoffMax:     dur(200 * time.Millisecond),
	}
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// startSupervisor runs a supervisor in-process (waiting only for its own
// pids) and stops it, checking Run returned, at cleanup.
func startSupervisor(t *testing.T, cfg *Config, opts ...Option) *Supervisor {
	t.Helper()
	requireBusybox(t)
	s, err := New(cfg, append([]Option{WithLogger(testLogger(t))}, opts...)...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("supervisor did not stop within 30s")
		}
	})
	return s
}

// stopSupervisor is for tests that check what shutdown did.
func runSupervisor(t *testing.T, cfg *Config) (*Supervisor, func() error) {
	t.Helper()
	requireBusybox(t)
	s, err := New(cfg, WithLogger(testLogger(t)))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			return fmt.Errorf("supervisor did not stop within 30s")
		}
	}
	t.Cleanup(func() { stop() })
	return s, stop
}

// poll calls cond until it returns true or the deadline passes; on timeout
// it fails with the last description cond gave.
func poll(t *testing.T, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, desc := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s: %s", timeout, desc)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitState polls the supervisor until service name satisfies pred.
func waitService(t *testing.T, s *Supervisor, name string, timeout time.Duration, pred func(ServiceStatus) bool) ServiceStatus {
	t.Helper()
	var last ServiceStatus
	poll(t, timeout, func() (bool, string) {
		last = *s.Status().Service(name)
		return pred(last), fmt.Sprintf("service %s: %+v", name, last)
	})
	return last
}

func inState(states ...State) func(ServiceStatus) bool {
	return func(ss ServiceStatus) bool {
		for _, st := range states {
			if ss.State == st {
				return true
			}
		}
		return false
	}
}

// freePort returns a loopback TCP port nobody listens on right now.
// freePort is a port free now in 21000-21999, below the kernel's
// ephemeral range: an ephemeral port freed here could be handed to any
// other test's listener or dial before the service binds it (a db that
// lost its port and restarted failed TestDependencyOrder in CI).
func freePort(t *testing.T) int {
	t.Helper()
	start := rand.IntN(1000)
	for i := range 1000 {
		port := 21000 + (start+i)%1000
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			l.Close()
			return port
		}
	}
	t.Fatal("no free port in 21000-21999")
	return 0
}

func readLog(t *testing.T, cfg *Config, name string) string {
	t.Helper()
	lines, err := TailLogs(cfg.LogDir, name, 0)
	if err != nil {
		t.Fatalf("TailLogs %s: %v", name, err)
	}
	return strings.Join(lines, "\n")
}

// httpd serves dir on port with busybox httpd in the foreground.
func httpd(port int, dir string) []string {
	return []string{busybox, "httpd", "-f", "-p", fmt.Sprintf("127.0.0.1:%d", port), "-h", dir}
}

func svc(name string, cmd []string, deps ...string) svcspec.Service {
	return svcspec.Service{Name: name, Command: cmd, DependsOn: deps}
}

// waitLog polls a service's log until it holds every want, and returns it.
// A service's output reaches its log through a pipe, and the supervisor's
// own lines are written apart from the status file, so a log may lag the
// status a test just saw.
func waitLog(t *testing.T, cfg *Config, name string, want ...string) string {
	t.Helper()
	var log string
	poll(t, 10*time.Second, func() (bool, string) {
		log = readLog(t, cfg, name)
		for _, w := range want {
			if !strings.Contains(log, w) {
				return false, fmt.Sprintf("log of %s to contain %q:\n%s", name, w, log)
			}
		}
		return true, ""
	})
	return log
}

// waitOutput is waitLog over the service's own output only: the
// supervisor's lines ("[pinacle TIME] started sh -c ... echo traps set")
// quote the command, so a marker the command echoes is found there before
// the command has run a single line.
func waitOutput(t *testing.T, cfg *Config, name string, want ...string) string {
	t.Helper()
	var out string
	poll(t, 10*time.Second, func() (bool, string) {
		out = ownOutput(readLog(t, cfg, name))
		for _, w := range want {
			if !strings.Contains(out, w) {
				return false, fmt.Sprintf("output of %s to contain %q:\n%s", name, w, out)
			}
		}
		return true, ""
	})
	return out
}

// ownOutput drops the supervisor's own lines from a service's log.
func ownOutput(log string) string {
	var own []string
	for _, l := range strings.Split(log, "\n") {
		if !strings.HasPrefix(l, "[pinacle ") {
			own = append(own, l)
		}
	}
	return strings.Join(own, "\n")
}
