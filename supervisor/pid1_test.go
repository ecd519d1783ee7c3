package supervisor

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pinacle/pinacle-node/internal/testenv"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Missing(t, "needs root (a new PID namespace)")
	}
}

// startInit runs RunInit in a re-executed test binary, in a new PID
// namespace so it truly is PID 1 there (orphans reparent to it and only
// it can reap them).
func startInit(t *testing.T, cfg *Config) (*exec.Cmd, *syncBuf) {
	t.Helper()
	requireRoot(t)
	requireBusybox(t)
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "services.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr syncBuf
	cmd := exec.Command(os.Args[0], path)
	cmd.Env = append(os.Environ(), "SUPERVISOR_TEST_HELPER=init")
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start init in a new PID namespace: %v", err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill() // killing PID 1 of the namespace kills everything in it
			cmd.Wait()
		}
	})
	return cmd, &stderr
}

func readyStatus(t *testing.T, cfg *Config, timeout time.Duration) *Status {
	t.Helper()
	var st *Status
	poll(t, timeout, func() (bool, string) {
		var err error
		st, err = ReadStatus(cfg.StatusFile)
		return err == nil && st.Ready, fmt.Sprintf("status %+v, %v", st, err)
	})
	return st
}

// childrenOf lists (pid, state, cmdline) of the processes whose parent is ppid.
func childrenOf(ppid int) [][3]string {
	var out [][3]string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 1 && f[1] == fmt.Sprint(ppid) {
			cl, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
			out = append(out, [3]string{e.Name(), f[0], strings.TrimSpace(strings.ReplaceAll(string(cl), "\x00", " "))})
		}
	}
	return out
}

func TestInitAsPID1ReapsOrphansAndStopsOnSIGTERM(t *testing.T) {
	// The inner shells exit at once, orphaning their "sleep 0.7" children:
	// those reparent to init, and when they exit only init can reap them.
	orphans := svc("orphans", sh(`for i in 1 2 3 4 5; do `+busybox+` sh -c "`+busybox+` sleep 0.7 &"; done; exec `+busybox+` sleep 1000`))
	web := svc("web", sh("exec "+busybox+" sleep 1000"), "orphans")
	web.StopGracePeriod = dur(5 * time.Second)
	cfg := testConfig(t, orphans, web)
	cfg.ControlSocket = uniqueSocket(t)
	cmd, stderr := startInit(t, cfg)
	initPid := cmd.Process.Pid

	st := readyStatus(t, cfg, 20*time.Second)
	if st.InitPid != 1 {
		t.Errorf("initPid = %d, want 1 (new PID namespace)", st.InitPid)
	}
	// The orphans show up as init's children...
	poll(t, 10*time.Second, func() (bool, string) {
		n := 0
		for _, c := range childrenOf(initPid) {
			if strings.HasSuffix(c[2], "sleep 0.7") {
				n++
			}
		}
		return n > 0, fmt.Sprintf("no orphan reparented to init; children: %v", childrenOf(initPid))
	})
	// ...and once they exit none is left, dead or alive.
	poll(t, 10*time.Second, func() (bool, string) {
		kids := childrenOf(initPid)
		for _, c := range kids {
			if c[1] == "Z" || strings.HasSuffix(c[2], "sleep 0.7") {
				return false, fmt.Sprintf("init's children: %v", kids)
			}
		}
		return len(kids) == 2, fmt.Sprintf("init's children: %v, want the 2 services", kids)
	})
	poll(t, 5*time.Second, func() (bool, string) {
		n := strings.Count(stderr.String(), "reaped orphan")
		return n == 5, fmt.Sprintf("init logged %d orphans reaped, want 5", n)
	})

	// Control works against the real init too.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if st, err := Control(ctx, cfg.ControlSocket, ControlRequest{Op: OpRestart, Service: "web"}); err != nil || st.Service("web").Restarts != 1 {
		t.Fatalf("restart web: %+v, %v", st, err)
	}

	// SIGTERM: graceful stop of every service, then exit 0.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case err := <-waited:
		if err != nil {
			t.Fatalf("init exit: %v\n%s", err, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("init did not exit after SIGTERM\n%s", stderr.String())
	}
	st, err := ReadStatus(cfg.StatusFile)
	if err != nil {
		t.Fatal(err)
	}
	if st.Ready || !st.Stopping {
		t.Errorf("final status ready=%v stopping=%v", st.Ready, st.Stopping)
	}
	for _, ss := range st.Services {
		if ss.State != StateStopped || ss.Pid != 0 {
			t.Errorf("after SIGTERM: %+v", ss)
		}
	}
}

func TestInitForwardsSignals(t *testing.T) {
	hup := svc("hup", sh(`trap 'echo got HUP' HUP; trap 'echo got USR1' USR1; echo traps set; while true; do sleep 0.05; done`))
	cfg := testConfig(t, hup)
	cmd, _ := startInit(t, cfg)
	readyStatus(t, cfg, 20*time.Second)
	waitOutput(t, cfg, "hup", "traps set") // signals before the traps would kill the shell
	cmd.Process.Signal(syscall.SIGHUP)
	cmd.Process.Signal(syscall.SIGUSR1)
	poll(t, 10*time.Second, func() (bool, string) {
		l := ownOutput(readLog(t, cfg, "hup")) // not the "started" line quoting the traps
		return strings.Contains(l, "got HUP") && strings.Contains(l, "got USR1"), "log:\n" + l
	})
	if st, _ := ReadStatus(cfg.StatusFile); st.Service("hup").Restarts != 0 {
		t.Errorf("service restarted on a forwarded signal: %+v", st.Service("hup"))
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("init exit: %v", err)
	}
}

func TestInitRejectsBadConfig(t *testing.T) {
	cfg := testConfig(t, svc("a", sh("true"), "b"), svc("b", sh("true"), "a"))
	cmd, stderr := startInit(t, cfg)
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("init exit = %v, want exit 1", err)
	}
	if !strings.Contains(stderr.String(), "dependency cycle: a -> b -> a") {
		t.Errorf("stderr: %s", stderr.String())
	}
	st, err := ReadStatus(cfg.StatusFile)
	if err != nil || !strings.Contains(st.Error, "dependency cycle") {
		t.Errorf("status file should carry the config error: %+v, %v", st, err)
	}
}
