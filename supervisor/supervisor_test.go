package supervisor

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pinacle/pinacle-node/podspec/svcspec"
)

func TestDependencyOrder(t *testing.T) {
	port := freePort(t)
	www := t.TempDir()
	// db comes up slowly and is only "healthy" once it serves; api must
	// wait for that, web for api (started, no health check); side depends
	// on nothing and must not wait for anyone.
	db := svc("db", sh(fmt.Sprintf("sleep 0.3; exec %s", strings.Join(httpd(port, www), " "))))
	db.HealthCheck = &svcspec.HealthCheck{Type: svcspec.HealthTCP, Port: port, Interval: dur(time.Second)}
	api := svc("api", sh("echo api up; exec sleep 1000"), "db")
	web := svc("web", sh("exec sleep 1000"), "api", "db")
	side := svc("side", sh("exec sleep 1000"))
	cfg := testConfig(t, web, api, db, side)
	s := startSupervisor(t, cfg)

	poll(t, 20*time.Second, func() (bool, string) {
		st := s.Status()
		return st.Ready, fmt.Sprintf("not ready: %+v", st.Services)
	})
	// The status file follows the in-memory status (written after every change).
	var st *Status
	poll(t, 10*time.Second, func() (bool, string) {
		var err error
		st, err = ReadStatus(cfg.StatusFile)
		return err == nil && st.Ready, fmt.Sprintf("status file: %+v, %v", st, err)
	})
	if st.InitPid != os.Getpid() {
		t.Fatalf("status file: initPid=%d", st.InitPid)
	}
	get := func(n string) ServiceStatus { return *st.Service(n) }
	if get("db").State != StateHealthy || get("api").State != StateRunning {
		t.Fatalf("states: %+v", st.Services)
	}
	// db became healthy (Since of its healthy state) before api started.
	if !get("api").StartedAt.After(get("db").Since) {
		t.Errorf("api started %v, before db was healthy %v", get("api").StartedAt, get("db").Since)
	}
	if !get("web").StartedAt.After(get("api").StartedAt) {
		t.Errorf("web started %v, before api %v", get("web").StartedAt, get("api").StartedAt)
	}
	// side ran while db was still sleeping: started before db's process.
	if !get("side").StartedAt.Before(get("db").Since) {
		t.Errorf("side (independent) started %v, after db was healthy %v", get("side").StartedAt, get("db").Since)
	}
	waitOutput(t, cfg, "api", "api up")
}

func TestCrashRestartsWithBackoff(t *testing.T) {
	crash := svc("crash", sh("echo attempt; exit 3"))
	cfg := testConfig(t, crash)
	s := startSupervisor(t, cfg)
	ss := waitService(t, s, "crash", 20*time.Second, func(ss ServiceStatus) bool { return ss.Restarts >= 4 })
	if ss.LastExitCode == nil || *ss.LastExitCode != 3 {
		t.Errorf("lastExitCode = %v, want 3", ss.LastExitCode)
	}
	// The backoff doubles from 20ms and is capped at 200ms.
	log := waitLog(t, cfg, "crash", "exit code 3; restarting in 20ms", "restarting in 40ms", "restarting in 80ms")
	if n := strings.Count(log, "attempt"); n < 4 {
		t.Errorf("log has %d attempts, want >= 4:\n%s", n, log)
	}
	waitService(t, s, "crash", 20*time.Second, func(ss ServiceStatus) bool { return ss.Restarts >= 7 })
	if log := waitLog(t, cfg, "crash", "restarting in 200ms"); strings.Contains(log, "restarting in 400ms") {
		t.Errorf("backoff not capped at 200ms:\n%s", log)
	}
}

func TestRestartPolicies(t *testing.T) {
	never := svc("never", sh("exit 2"))
	never.Restart = svcspec.RestartNever
	// With a health check, dependents wait for healthy, which never comes.
	never.HealthCheck = &svcspec.HealthCheck{Type: svcspec.HealthTCP, Port: freePort(t)}
	ok := svc("ok", sh("exit 0")) // on-failure: a clean exit stays exited
	always := svc("always", sh("exit 0"))
	always.Restart = svcspec.RestartAlways
	dependent := svc("dependent", sh("exec sleep 1000"), "ok")
	blocked := svc("blocked", sh("exec sleep 1000"), "never")
	s := startSupervisor(t, testConfig(t, never, ok, always, dependent, blocked))
	ss := waitService(t, s, "never", 10*time.Second, inState(StateFailed))
	if !strings.Contains(ss.LastError, "exit code 2") || ss.Restarts != 0 {
		t.Errorf("never: %+v", ss)
	}
	waitService(t, s, "ok", 10*time.Second, inState(StateExited))
	waitService(t, s, "always", 10*time.Second, func(ss ServiceStatus) bool { return ss.Restarts >= 2 })
	// A one-shot task that exited 0 satisfies its dependents.
	waitService(t, s, "dependent", 10*time.Second, inState(StateRunning))
	ss = waitService(t, s, "blocked", 10*time.Second, inState(StateFailed))
	if ss.LastError != "dependency never failed" {
		t.Errorf("blocked: lastError = %q", ss.LastError)
	}
}

func TestInstallStep(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "installed")
	good := svc("good", sh("exec sleep 1000"))
	good.Install = sh("echo installing; touch " + marker)
	good.Creates = marker
	bad := svc("bad", sh("exec sleep 1000"))
	bad.Install = sh("echo compiling; exit 7")
	cfg := testConfig(t, good, bad)
	s := startSupervisor(t, cfg)
	waitService(t, s, "good", 10*time.Second, inState(StateRunning))
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("install did not run: %v", err)
	}
	waitOutput(t, cfg, "good", "installing")
	ss := waitService(t, s, "bad", 10*time.Second, inState(StateFailed))
	if !strings.Contains(ss.LastError, "install") || !strings.Contains(ss.LastError, "exit code 7") {
		t.Errorf("bad: lastError = %q", ss.LastError)
	}
	waitOutput(t, cfg, "bad", "compiling")
}

func TestUserWorkingDirEnv(t *testing.T) {
	// Not t.TempDir: its parent is 0700 and nobody must be able to enter it.
	dir, err := os.MkdirTemp("", "supervisor-user-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o777)
	out := filepath.Join(dir, "out")
	who := svc("who", sh(fmt.Sprintf(`echo "$(id -u) $(pwd) $POD_VAR $SVC_VAR $PATH" > %s; exec sleep 1000`, out)))
	who.User = "nobody"
	who.WorkingDir = dir
	who.Env = map[string]string{"SVC_VAR": "svc", "POD_VAR": "overridden"}
	cfg := testConfig(t, who)
	cfg.Env = map[string]string{"POD_VAR": "pod"}
	s := startSupervisor(t, cfg)
	waitService(t, s, "who", 10*time.Second, inState(StateRunning))
	var got string
	poll(t, 10*time.Second, func() (bool, string) {
		b, _ := os.ReadFile(out)
		got = strings.TrimSpace(string(b))
		return got != "", "no output yet"
	})
	want := fmt.Sprintf("65534 %s overridden svc %s", dir, DefaultPath)
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}

	bad := svc("ghost", sh("true"))
	bad.User = "no-such-user"
	s2 := startSupervisor(t, testConfig(t, func() svcspec.Service { bad.Restart = svcspec.RestartNever; return bad }()))
	ss := waitService(t, s2, "ghost", 10*time.Second, inState(StateFailed))
	if !strings.Contains(ss.LastError, `user "no-such-user"`) {
		t.Errorf("ghost: lastError = %q", ss.LastError)
	}
}

func TestGracefulStopAndKill(t *testing.T) {
	polite := svc("polite", sh(`trap 'echo got TERM; exit 0' TERM; echo traps set; while true; do sleep 0.05; done`))
	polite.StopGracePeriod = dur(10 * time.Second)
	// stubborn ignores TERM outright (its children inherit that), so only
	// the SIGKILL after its grace period ends it, however loaded the host.
	stubborn := svc("stubborn", sh(`trap '' TERM; echo traps set; while true; do sleep 0.05; done`))
	stubborn.StopGracePeriod = dur(300 * time.Millisecond)
	// polite depends on stubborn, so stubborn may only stop after polite.
	polite.DependsOn = []string{"stubborn"}
	cfg := testConfig(t, polite, stubborn)
	s, stop := runSupervisor(t, cfg)
	waitService(t, s, "polite", 10*time.Second, inState(StateRunning))
	waitService(t, s, "stubborn", 10*time.Second, inState(StateRunning))
	// A TERM before its trap would end the shell at once; and "traps set"
	// must be the shell's output, not the supervisor's "started" line that
	// quotes the command (that vacuous wait made this test flake under load).
	waitOutput(t, cfg, "polite", "traps set")
	waitOutput(t, cfg, "stubborn", "traps set")
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	st, err := ReadStatus(cfg.StatusFile)
	if err != nil {
		t.Fatal(err)
	}
	p, k := st.Service("polite"), st.Service("stubborn")
	if p.State != StateStopped || p.LastExitCode == nil || *p.LastExitCode != 0 {
		t.Errorf("polite: %+v", p)
	}
	if k.State != StateStopped || k.LastExitCode == nil || *k.LastExitCode != 137 {
		t.Errorf("stubborn: want killed (137): %+v", k)
	}
	if !k.Since.After(p.Since) {
		t.Errorf("stubborn stopped (%v) before its dependent polite (%v)", k.Since, p.Since)
	}
	waitLog(t, cfg, "stubborn", "grace period 300ms over: SIGKILL")
	waitOutput(t, cfg, "polite", "got TERM")
	if log := readLog(t, cfg, "polite"); strings.Contains(log, "grace period") {
		t.Errorf("polite log:\n%s", log)
	}
}

func TestControlStopStartRestart(t *testing.T) {
	a := svc("a", sh("echo hello from a; exec sleep 1000"))
	b := svc("b", sh("exec sleep 1000"))
	cfg := testConfig(t, a, b)
	s := startSupervisor(t, cfg)
	ctx := context.Background()
	before := waitService(t, s, "a", 10*time.Second, inState(StateRunning))
	bPid := waitService(t, s, "b", 10*time.Second, inState(StateRunning)).Pid

	if err := s.Restart(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	after := waitService(t, s, "a", 10*time.Second, inState(StateRunning))
	if after.Pid == before.Pid || after.Restarts != 1 {
		t.Errorf("restart: before %+v after %+v", before, after)
	}
	if err := s.Stop(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if ss := s.Status().Service("a"); ss.State != StateStopped || ss.Pid != 0 {
		t.Errorf("after stop: %+v", ss)
	}
	if processAlive(after.Pid) {
		t.Errorf("pid %d still alive after stop", after.Pid)
	}
	if s.Status().Ready {
		t.Errorf("ready with a stopped service")
	}
	if err := s.Start(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	waitService(t, s, "a", 10*time.Second, inState(StateRunning))
	if pid := s.Status().Service("b").Pid; pid != bPid {
		t.Errorf("b was disturbed: pid %d -> %d", bPid, pid)
	}
	if err := s.Stop(ctx, "nope"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("Stop(nope) = %v", err)
	}
}

func processAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// A zombie of someone else's is not alive either.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 0 && f[0] != "Z"
}
