package supervisor

import (
	"context"
	"crypto/rand"
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

func uniqueSocket(t *testing.T) string {
	return "@pinacle-supervisor-test-" + rand.Text()[:12]
}

// helperExec runs ControlCommand's operation through a separate process
// (this test binary as the `init svc` client), the way runsc exec would.
func helperExec(socket string) ExecFunc {
	return func(ctx context.Context, argv []string) ([]byte, error) {
		// argv is InitBinary init svc OP [NAME] -o json
		args := []string{socket, argv[3]}
		if len(argv) == 7 {
			args = append(args, argv[4])
		}
		cmd := exec.CommandContext(ctx, os.Args[0], args...)
		cmd.Env = append(os.Environ(), "SUPERVISOR_TEST_HELPER=svc")
		return cmd.Output()
	}
}

func TestControlOverSocket(t *testing.T) {
	cfg := testConfig(t, svc("web", sh("exec sleep 1000")), svc("db", sh("exec sleep 1000")))
	cfg.ControlSocket = uniqueSocket(t)
	s := startSupervisor(t, cfg)
	waitService(t, s, "web", 10*time.Second, inState(StateRunning))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	exe := helperExec(cfg.ControlSocket)

	st, err := ExecControl(ctx, exe, OpList, "")
	if err != nil || len(st.Services) != 2 {
		t.Fatalf("ls = %+v, %v", st, err)
	}
	pid := st.Service("web").Pid
	st, err = ExecControl(ctx, exe, OpStop, "web")
	if err != nil || st.Service("web").State != StateStopped {
		t.Fatalf("stop = %+v, %v", st, err)
	}
	if processAlive(pid) {
		t.Errorf("web pid %d alive after stop", pid)
	}
	if _, err := ExecControl(ctx, exe, OpStart, "web"); err != nil {
		t.Fatal(err)
	}
	waitService(t, s, "web", 10*time.Second, inState(StateRunning))
	st, err = ExecControl(ctx, exe, OpRestart, "web")
	if err != nil || st.Service("web").Restarts != 1 {
		t.Fatalf("restart = %+v, %v", st.Service("web"), err)
	}
	if _, err := ExecControl(ctx, exe, OpRestart, "nosuch"); !errdefs.IsNotFound(err) {
		t.Errorf("restart nosuch = %v, want not found", err)
	}
	if _, err := ExecControl(ctx, exe, OpStop, "../x"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("stop ../x = %v, want invalid argument", err)
	}
	if _, err := ExecControl(ctx, exe, "explode", "web"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("explode = %v, want invalid argument", err)
	}
	// No init listening: unavailable, not a hang.
	if _, err := ExecControl(ctx, helperExec(uniqueSocket(t)), OpList, ""); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("ls without init = %v, want unavailable", err)
	}
}
