package supervisor

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/pinacle/pinacle-node/internal/testenv"

	"golang.org/x/sys/unix"

	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/podspec/svcspec"
)

// These run the init as PID 1 of a real gVisor sandbox (runsc, systrap,
// --network=none, --overlay2=none) with the node's layout: the binary
// bind-mounted read-only at /.pinacle/bin/pinacle-node, the config at
// /.pinacle/config, and <pod>/run at /.pinacle/run, read from the host.

const runscPath = "/usr/local/bin/runsc"

var (
	initBinOnce sync.Once
	initBin     string
	initBinErr  error
)

// buildInitBin builds testdata/initbin statically, once per test binary.
func buildInitBin(tb testing.TB) string {
	initBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "pinacle-initbin-")
		if err != nil {
			initBinErr = err
			return
		}
		initBin = filepath.Join(dir, "pinacle-node")
		cmd := exec.Command("go", "build", "-trimpath", "-o", initBin, "./testdata/initbin")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			initBinErr = fmt.Errorf("build initbin: %v: %s", err, out)
		}
	})
	if initBinErr != nil {
		tb.Fatal(initBinErr)
	}
	return initBin
}

type sandbox struct {
	tb     testing.TB
	root   string // runsc --root
	bundle string
	run    string // host side of /.pinacle/run
	id     string

	cancels []context.CancelFunc
}

func requireRunsc(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		testenv.Missing(tb, "needs root to run runsc")
	}
	if _, err := os.Stat(runscPath); err != nil {
		testenv.Missing(tb, "needs %s (hack/setup.sh installs it)", runscPath)
	}
	if _, err := os.Stat(busybox); err != nil {
		testenv.Missing(tb, "needs %s for the rootfs", busybox)
	}
}

// newSandbox lays out a bundle: a busybox rootfs, the config, and a
// config.json whose process is args (the init, or a baseline command).
func newSandbox(tb testing.TB, bin string, cfg *Config, args []string) *sandbox {
	tb.Helper()
	dir := tb.TempDir()
	s := &sandbox{tb: tb, root: filepath.Join(dir, "runsc"), bundle: filepath.Join(dir, "bundle"),
		run: filepath.Join(dir, "run"), id: fmt.Sprintf("sup-smoke-%d-%d", os.Getpid(), time.Now().UnixNano())}
	rootfs := filepath.Join(s.bundle, "rootfs")
	confDir := filepath.Join(dir, "config")
	for _, d := range []string{s.root, s.run, confDir, rootfs + "/bin", rootfs + "/etc", rootfs + "/proc", rootfs + "/dev",
		rootfs + "/sys", rootfs + "/tmp", rootfs + "/.pinacle/bin", rootfs + "/.pinacle/config", rootfs + "/.pinacle/run"} {
		must(tb, os.MkdirAll(d, 0o755))
	}
	b, err := os.ReadFile(busybox)
	must(tb, err)
	must(tb, os.WriteFile(rootfs+"/bin/busybox", b, 0o755))
	for _, a := range []string{"sh", "httpd", "sleep", "true", "cat", "touch", "test", "echo", "su"} {
		must(tb, os.Symlink("busybox", rootfs+"/bin/"+a))
	}
	must(tb, os.WriteFile(rootfs+"/etc/passwd", []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"), 0o644))
	must(tb, os.WriteFile(rootfs+"/etc/group", []byte("root:x:0:\nnogroup:x:65534:\n"), 0o644))
	must(tb, os.WriteFile(rootfs+"/.pinacle/bin/pinacle-node", nil, 0o755))
	if cfg != nil {
		j, err := json.Marshal(cfg)
		must(tb, err)
		must(tb, os.WriteFile(confDir+"/services.json", j, 0o644))
	}
	mounts := []map[string]any{
		{"destination": "/proc", "type": "proc", "source": "proc"},
		{"destination": "/dev", "type": "tmpfs", "source": "tmpfs"},
		{"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": []string{"ro"}},
		{"destination": "/.pinacle/config", "type": "bind", "source": confDir, "options": []string{"rbind", "ro"}},
		{"destination": "/.pinacle/run", "type": "bind", "source": s.run, "options": []string{"rbind", "rw"}},
	}
	if bin != "" {
		mounts = append(mounts, map[string]any{"destination": "/.pinacle/bin/pinacle-node", "type": "bind", "source": bin, "options": []string{"rbind", "ro"}})
	}
	spec := map[string]any{
		"ociVersion": "1.0.2",
		"process": map[string]any{
			"user": map[string]any{"uid": 0, "gid": 0}, "args": args, "cwd": "/",
			"env": []string{"PATH=/bin"},
			// init needs SETUID/SETGID to run a service as its user, KILL
			// to signal services that run as another user.
			"capabilities": map[string][]string{"bounding": caps, "effective": caps, "permitted": caps},
		},
		"root":     map[string]any{"path": "rootfs"},
		"hostname": "smoke",
		"mounts":   mounts,
		"linux": map[string]any{"namespaces": []map[string]string{
			{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "network"}}},
	}
	j, err := json.MarshalIndent(spec, "", " ")
	must(tb, err)
	must(tb, os.WriteFile(s.bundle+"/config.json", j, 0o644))
	tb.Cleanup(s.destroy)
	return s
}

var caps = []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT"}

func must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

// runsc builds a runsc command; every call gets a deadline, since a wedged
// sandbox can make even `runsc list` hang.
func (s *sandbox) runsc(args ...string) *exec.Cmd {
	all := append([]string{"--root", s.root, "--network=none", "--overlay2=none", "--ignore-cgroups"}, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	s.cancels = append(s.cancels, cancel)
	return exec.CommandContext(ctx, runscPath, all...)
}

// start runs `runsc run --detach`; runsc gets files, never pipes, as stdio.
func (s *sandbox) start() {
	s.tb.Helper()
	logf, err := os.Create(filepath.Join(filepath.Dir(s.bundle), "runsc.out"))
	must(s.tb, err)
	defer logf.Close()
	cmd := s.runsc("run", "--detach", "--bundle", s.bundle, s.id)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Run(); err != nil {
		out, _ := os.ReadFile(logf.Name())
		s.tb.Fatalf("runsc run: %v: %s", err, out)
	}
}

func (s *sandbox) exec(args ...string) []byte {
	s.tb.Helper()
	out, err := s.runsc(append([]string{"exec", s.id}, args...)...).CombinedOutput()
	if err != nil {
		s.tb.Fatalf("runsc exec %v: %v: %s", args, err, out)
	}
	return out
}

func (s *sandbox) destroy() {
	t0 := time.Now()
	if out, err := s.runsc("delete", "--force", s.id).CombinedOutput(); err != nil {
		s.tb.Errorf("runsc delete --force: %v: %s", err, out)
	}
	// runsc keeps the gofers' empty network namespace bind-mounted in its
	// root; unmount it or the temp dir cannot be removed.
	if err := unix.Unmount(filepath.Join(s.root, "null-netns"), unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT {
		s.tb.Errorf("unmount null-netns: %v", err)
	}
	for _, c := range s.cancels {
		c()
	}
	if d := time.Since(t0); d > 5*time.Second {
		s.tb.Logf("sandbox teardown took %s", d)
	}
}

// smokeConfig is three trivial services: an http-checked httpd, a
// tcp-checked httpd that depends on it, and an exec-checked sleeper.
func smokeConfig() *Config {
	web := svcspec.Service{Name: "web", Command: []string{"httpd", "-f", "-p", "127.0.0.1:8080", "-h", "/tmp"},
		HealthCheck: &svcspec.HealthCheck{Type: svcspec.HealthHTTP, Port: 8080, StatusMax: 404, Interval: dur(10 * time.Second)}}
	api := svcspec.Service{Name: "api", Command: []string{"httpd", "-f", "-p", "127.0.0.1:8081", "-h", "/tmp"},
		HealthCheck: &svcspec.HealthCheck{Type: svcspec.HealthTCP, Port: 8081, Interval: dur(10 * time.Second)}}
	worker := svcspec.Service{Name: "worker", Command: []string{"sleep", "100000"}, User: "nobody",
		HealthCheck: &svcspec.HealthCheck{Type: svcspec.HealthExec, Command: []string{"true"}, Interval: dur(10 * time.Second)}}
	return &Config{
		Services:   []svcspec.Service{web, api, worker},
		LogDir:     "/.pinacle/run/logs",
		StatusFile: "/.pinacle/run/status.json",
	}
}

var initArgs = []string{"/.pinacle/bin/pinacle-node", "init", "--config", "/.pinacle/config/services.json"}

// pinacleInitArgs start cmd/pinacle-init, mounted where the harness mounts
// every binary; it takes no subcommand.
var pinacleInitArgs = []string{"/.pinacle/bin/pinacle-node", "--config", "/.pinacle/config/services.json"}

func TestSandboxSmoke(t *testing.T) {
	requireRunsc(t)
	bin := buildInitBin(t)
	s := newSandbox(t, bin, smokeConfig(), initArgs)
	s.start()
	var st *Status
	poll(t, 30*time.Second, func() (bool, string) {
		var err error
		st, err = ReadStatus(filepath.Join(s.run, "status.json"))
		return err == nil && st.Ready, fmt.Sprintf("status from the host side: %+v %v", st, err)
	})
	if st.InitPid != 1 {
		t.Errorf("initPid = %d, want 1", st.InitPid)
	}
	for _, ss := range st.Services {
		if ss.State != StateHealthy {
			t.Errorf("%s: %+v", ss.Name, ss)
		}
	}
	// Logs are plain files on the host side.
	if l, err := TailLogs(filepath.Join(s.run, "logs"), "web", 5); err != nil || len(l) == 0 {
		t.Errorf("web log from the host: %q %v", l, err)
	}
	rss := initRSS(t, s)
	t.Logf("init VmRSS inside the sandbox: %d kB", rss)

	// The control channel: runsc exec runs the client inside the sandbox,
	// the client talks to PID 1 over the abstract socket.
	exe := func(ctx context.Context, argv []string) ([]byte, error) {
		cmd := s.runsc(append([]string{"exec", s.id}, argv...)...)
		cmd.Stderr = os.Stderr
		return cmd.Output()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pid := st.Service("api").Pid
	st, err := ExecControl(ctx, exe, OpRestart, "api")
	if err != nil || st.Service("api").Restarts != 1 || st.Service("api").Pid == pid {
		t.Fatalf("restart api in the sandbox: %+v, %v", st, err)
	}
	if _, err := ExecControl(ctx, exe, OpStop, "nosuch"); !errdefs.IsNotFound(err) {
		t.Errorf("stop nosuch in the sandbox = %v, want not found", err)
	}
	poll(t, 30*time.Second, func() (bool, string) {
		st, err := ReadStatus(filepath.Join(s.run, "status.json"))
		return err == nil && st.Ready && st.Service("api").Restarts == 1, fmt.Sprintf("after restart: %+v %v", st, err)
	})
}

var vmRSS = regexp.MustCompile(`VmRSS:\s+(\d+) kB`)

func initRSS(tb testing.TB, s *sandbox) int {
	m := vmRSS.FindSubmatch(s.exec("cat", "/proc/1/status"))
	if m == nil {
		tb.Fatalf("no VmRSS in /proc/1/status")
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}
