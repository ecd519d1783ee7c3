package webterm

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pinacle/pinacle-node/internal/testenv"

	"golang.org/x/sys/unix"

	"github.com/pinacle/pinacle-node/podspec"
	"github.com/pinacle/pinacle-node/supervisor"
)

// The sandbox test runs the terminal the way a pod does: the static binary
// bind-mounted read-only at /.pinacle/bin/pinacle-node, `init` as PID 1,
// and the web-terminal service started by the supervisor as the pod's
// user in the pod's working directory. The sandbox uses the host's network
// (runsc --network=host) on a port of 25000-25999 so the test can connect.

const (
	runscPath = "/usr/local/bin/runsc"
	busybox   = "/bin/busybox"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// buildBin builds testdata/webtermbin statically, once per test binary.
func buildBin(tb testing.TB) string {
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "pinacle-webtermbin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "pinacle-node")
		cmd := exec.Command("go", "build", "-trimpath", "-o", binPath, "./testdata/webtermbin")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("build webtermbin: %v: %s", err, out)
		}
	})
	if binErr != nil {
		tb.Fatal(binErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

func requireRunsc(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		testenv.Missing(tb, "needs root to run runsc")
	}
	for _, p := range []string{runscPath, busybox} {
		if _, err := os.Stat(p); err != nil {
			testenv.Missing(tb, "needs %s (hack/setup.sh installs it)", p)
		}
	}
}

// freePort picks a port of 25000-25999 nothing listens on.
func freePort(tb testing.TB) int {
	for range 100 {
		p := 25000 + rand.IntN(1000)
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err == nil {
			ln.Close()
			return p
		}
	}
	tb.Fatal("no free port in 25000-25999")
	return 0
}

type sandbox struct {
	tb   testing.TB
	root string // runsc --root
	dir  string
	run  string // host side of /.pinacle/run
	id   string
	port int
}

func must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

// newSandbox lays out a pod-like bundle: a busybox rootfs with a user dev
// (uid 1000), /workspace, the binary, the supervisor's config running the
// web-terminal service.
func newSandbox(tb testing.TB) *sandbox {
	tb.Helper()
	bin := buildBin(tb)
	dir := tb.TempDir()
	s := &sandbox{tb: tb, root: filepath.Join(dir, "runsc"), dir: dir, run: filepath.Join(dir, "run"),
		id: fmt.Sprintf("webterm-%d-%d", os.Getpid(), time.Now().UnixNano()), port: freePort(tb)}
	rootfs := filepath.Join(dir, "bundle", "rootfs")
	conf := filepath.Join(dir, "config")
	for _, d := range []string{s.root, s.run, conf, "bin", "etc", "proc", "dev", "sys", "tmp", "home/dev", "workspace", ".pinacle/bin", ".pinacle/config", ".pinacle/run"} {
		if !filepath.IsAbs(d) {
			d = filepath.Join(rootfs, d)
		}
		must(tb, os.MkdirAll(d, 0o755))
	}
	must(tb, os.Chmod(filepath.Join(rootfs, "tmp"), 0o1777))
	for _, d := range []string{"home/dev", "workspace"} {
		must(tb, os.Chown(filepath.Join(rootfs, d), 1000, 1000))
	}
	b, err := os.ReadFile(busybox)
	must(tb, err)
	must(tb, os.WriteFile(rootfs+"/bin/busybox", b, 0o755))
	for _, a := range []string{"sh", "stty", "tr", "echo", "cat", "sleep", "kill", "id", "pwd", "ps"} {
		must(tb, os.Symlink("busybox", rootfs+"/bin/"+a))
	}
	must(tb, os.WriteFile(rootfs+"/etc/passwd", []byte("root:x:0:0:root:/root:/bin/sh\ndev:x:1000:1000:dev:/home/dev:/bin/sh\n"), 0o644))
	must(tb, os.WriteFile(rootfs+"/etc/group", []byte("root:x:0:\ntty:x:5:\ndev:x:1000:\n"), 0o644))
	must(tb, os.WriteFile(rootfs+"/.pinacle/bin/pinacle-node", nil, 0o755))

	port := strconv.Itoa(s.port)
	cfg := supervisor.Config{
		Env: map[string]string{"PATH": "/bin"},
		Services: []podspec.Service{{
			Name: "web-terminal", User: "dev", WorkingDir: "/workspace", Port: s.port, Restart: podspec.RestartAlways,
			Command:     []string{"/.pinacle/bin/pinacle-node", "webterm", "--port", port, "--addr", "127.0.0.1"},
			HealthCheck: &podspec.HealthCheck{Type: podspec.HealthHTTP, Port: s.port, Path: "/healthz"},
		}},
		LogDir:     supervisor.DefaultLogDir,
		StatusFile: supervisor.DefaultStatusFile,
	}
	j, err := json.Marshal(cfg)
	must(tb, err)
	must(tb, os.WriteFile(conf+"/services.json", j, 0o644))

	caps := []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
		"CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT"}
	spec := map[string]any{
		"ociVersion": "1.0.2",
		"process": map[string]any{
			"user": map[string]any{"uid": 0, "gid": 0}, "cwd": "/", "env": []string{"PATH=/bin"},
			"args":         []string{"/.pinacle/bin/pinacle-node", "init", "--config", "/.pinacle/config/services.json"},
			"capabilities": map[string][]string{"bounding": caps, "effective": caps, "permitted": caps},
		},
		"root":     map[string]any{"path": "rootfs"},
		"hostname": "webterm-pod",
		"mounts": []map[string]any{
			{"destination": "/proc", "type": "proc", "source": "proc"},
			{"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": []string{"nosuid", "mode=755"}},
			{"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
			{"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": []string{"ro"}},
			{"destination": "/.pinacle/config", "type": "bind", "source": conf, "options": []string{"rbind", "ro"}},
			{"destination": "/.pinacle/run", "type": "bind", "source": s.run, "options": []string{"rbind", "rw"}},
			{"destination": "/.pinacle/bin/pinacle-node", "type": "bind", "source": bin, "options": []string{"rbind", "ro"}},
		},
		// No network namespace: --network=host.
		"linux": map[string]any{"namespaces": []map[string]string{{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}}},
	}
	j, err = json.MarshalIndent(spec, "", " ")
	must(tb, err)
	must(tb, os.WriteFile(filepath.Join(dir, "bundle", "config.json"), j, 0o644))
	tb.Cleanup(s.destroy)
	return s
}

// runsc runs runsc with a deadline (a wedged sandbox can hang any call) and
// files, never pipes, as its stdio.
func (s *sandbox) runsc(args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := os.CreateTemp(s.dir, "runsc-out-")
	if err != nil {
		return nil, err
	}
	defer os.Remove(out.Name())
	defer out.Close()
	all := append([]string{"--root", s.root, "--network=host", "--overlay2=none", "--ignore-cgroups"}, args...)
	cmd := exec.CommandContext(ctx, runscPath, all...)
	cmd.Stdout, cmd.Stderr = out, out
	err = cmd.Run()
	b, _ := os.ReadFile(out.Name())
	return b, err
}

func (s *sandbox) start() {
	s.tb.Helper()
	if out, err := s.runsc("run", "--detach", "--bundle", filepath.Join(s.dir, "bundle"), s.id); err != nil {
		s.tb.Fatalf("runsc run: %v: %s", err, out)
	}
}

func (s *sandbox) exec(args ...string) ([]byte, error) {
	return s.runsc(append([]string{"exec", s.id}, args...)...)
}

func (s *sandbox) destroy() {
	if out, err := s.runsc("delete", "--force", s.id); err != nil {
		s.tb.Errorf("runsc delete --force: %v: %s", err, out)
	}
	// runsc keeps the gofers' empty network namespace bind-mounted in its
	// root; unmount it or the temp dir cannot be removed.
	if err := unix.Unmount(filepath.Join(s.root, "null-netns"), unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT {
		s.tb.Errorf("unmount null-netns: %v", err)
	}
}

// ready waits for the supervisor to report the web terminal healthy.
func (s *sandbox) ready() *supervisor.Status {
	s.tb.Helper()
	var st *supervisor.Status
	var err error
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err = supervisor.ReadStatus(filepath.Join(s.run, "status.json"))
		if err == nil && st.Ready {
			return st
		}
		if time.Now().After(deadline) {
			log, _ := supervisor.TailLogs(filepath.Join(s.run, "logs"), "web-terminal", 20)
			s.tb.Fatalf("web terminal not ready: %+v %v\nlog: %s", st, err, strings.Join(log, "\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var vmRSS = regexp.MustCompile(`VmRSS:\s+(\d+) kB`)

// rss is a process's VmRSS inside the sandbox, in kB.
func (s *sandbox) rss(pid int) int {
	out, err := s.exec("cat", "/proc/"+strconv.Itoa(pid)+"/status")
	m := vmRSS.FindSubmatch(out)
	if err != nil || m == nil {
		s.tb.Fatalf("VmRSS of %d: %v: %s", pid, err, out)
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

func TestSandbox(t *testing.T) {
	requireRunsc(t)
	sb := newSandbox(t)
	sb.start()
	st := sb.ready()
	svc := st.Service("web-terminal")
	idle := sb.rss(svc.Pid)

	ts := &testServer{addr: "127.0.0.1:" + strconv.Itoa(sb.port)}
	cl := mustDial(t, ts, "?cols=100&rows=30")
	hello := cl.waitControl(TypeHello)
	if hello.Host != "webterm-pod" || hello.Shell != "/bin/sh" {
		t.Errorf("hello = %+v, want the sandbox's host and /bin/sh (no bash there)", hello)
	}
	// As the pod's user, in the pod's working directory, on a real pty.
	cl.send("echo \"hi-$((6*7)) u=$(id -u) d=$(pwd) t=$TERM s=$(stty size | tr ' ' x)\"\n")
	cl.waitOutput("hi-42 u=1000 d=/workspace t=xterm-256color s=30x100")
	cl.sendControl(Control{Type: TypeResize, Cols: 120, Rows: 50})
	cl.send("stty size | tr ' ' x\n")
	cl.waitOutput("50x120")
	t.Logf("webterm VmRSS in the sandbox (gVisor's accounting): idle %d kB, one session %d kB", idle, sb.rss(svc.Pid))
	t.Logf("keystroke echo round trip over loopback into the sandbox: p50 %s", echoP50(t, cl, 50))

	// Closing the tab hangs up the shell inside the sandbox.
	_ = cl.c.CloseNow()
	poll(t, 20*time.Second, "the shell gone from the sandbox", func() bool {
		_, err := sb.exec("kill", "-0", strconv.Itoa(hello.Pid))
		return err != nil
	})

	// A shell's exit code reaches the page.
	cl = mustDial(t, ts, "")
	cl.waitControl(TypeHello)
	cl.send("exit 3\n")
	if m := cl.waitControl(TypeExit); m.Code == nil || *m.Code != 3 {
		t.Errorf("exit frame = %+v, want code 3", m)
	}
	if st := sb.ready(); st.Service("web-terminal").Restarts != 0 {
		t.Errorf("the server restarted: %+v", st.Service("web-terminal"))
	}
}

// echoP50 types one character n times and waits for each echo; the
// median round trip.
func echoP50(tb testing.TB, cl *client, n int) time.Duration {
	var ds []time.Duration
	for range n {
		ds = append(ds, cl.echo())
	}
	cl.send("\x15") // ^U: kill the line
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[len(ds)/2]
}
