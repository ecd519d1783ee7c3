package oci

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pinacle/pinacle-node/internal/testenv"
)

func TestMain(m *testing.M) {
	if os.Geteuid() == 0 {
		if err := BecomeSubreaper(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	code := m.Run()
	Reap()
	os.Exit(code)
}

func requireRunsc(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Missing(t, "needs root (runsc, cgroups)")
	}
	if _, err := exec.LookPath("runsc"); err != nil {
		testenv.Missing(t, "runsc not installed (hack/setup.sh installs it)")
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		testenv.Missing(t, "busybox-static not installed (/bin/busybox)")
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// busyboxRootfs builds a minimal rootfs from the static busybox.
func busyboxRootfs(t testing.TB, dir string) string {
	t.Helper()
	for _, d := range []string{"bin", "etc", "proc", "sys", "dev", "tmp", "root", "home/app"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(dir, "tmp"), 0o1777); err != nil {
		t.Fatal(err)
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bin/busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"sh", "echo", "sleep", "true", "false", "cat", "dd", "id", "ls", "yes", "head", "tail", "httpd", "rm", "mkdir", "tty", "stty", "wc", "env", "pwd", "hostname", "df", "sync", "touch"} {
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", a)); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
		"etc/group":  "root:x:0:\nwheel:x:10:app\napp:x:1000:\nstaff:x:50:app,root\nnogroup:x:65534:\n",
	}
	for p, c := range files {
		if err := os.WriteFile(filepath.Join(dir, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// env is one test's runtime: its own runsc root and cgroup parent.
type testEnv struct {
	t       testing.TB
	rt      Runtime
	root    string // runsc --root
	cgroup  string // /pinacle-test-<rand>
	rootfs  string
	workdir string
}

func newTestEnv(t testing.TB, opts ...Option) *testEnv {
	t.Helper()
	requireRunsc(t)
	// Short paths: runsc puts sockets under its root.
	work, err := os.MkdirTemp("", "oci-")
	if err != nil {
		t.Fatal(err)
	}
	e := &testEnv{t: t, root: filepath.Join(work, "r"), cgroup: "/pinacle-test-" + randHex(4), workdir: work}
	e.rootfs = busyboxRootfs(t, filepath.Join(work, "rootfs"))
	rt, err := New(append([]Option{WithRoot(e.root), WithNetwork(NetworkNone)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	e.rt = rt
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if sts, err := rt.List(ctx); err == nil {
			for _, st := range sts {
				t.Errorf("leak: container %s (%s) left behind", st.ID, st.Status)
				_ = rt.Delete(ctx, st.ID, true)
			}
		}
		if dirs := cgroupDirs(e.cgroup); len(dirs) > 0 {
			// The parent is ours to remove; a leftover child is a leak.
			for _, d := range dirs {
				ents, _ := os.ReadDir(d)
				for _, en := range ents {
					if en.IsDir() {
						t.Errorf("leak: cgroup %s/%s left behind", d, en.Name())
					}
				}
			}
			if err := RemoveCgroup(e.cgroup); err != nil {
				t.Errorf("remove cgroup %s: %v", e.cgroup, err)
			}
		}
		// A child that exits just now (its cmd.Wait still on its way, or
		// the reaper's) is a zombie for a moment; one that stays is a leak.
		z := zombieChildren()
		for deadline := time.Now().Add(5 * time.Second); len(z) > 0 && time.Now().Before(deadline); z = zombieChildren() {
			Reap()
			time.Sleep(50 * time.Millisecond)
		}
		if len(z) > 0 {
			t.Errorf("leak: zombie children %v", z)
		}
		if err := ReleaseRoot(e.root); err != nil {
			t.Error(err)
		}
		if m := mountsUnder(work); len(m) > 0 {
			t.Errorf("leak: mounts under %s: %v", work, m)
		}
		_ = os.RemoveAll(work)
	})
	return e
}

// bundle writes a bundle for args with opts applied.
func (e *testEnv) bundle(id string, mod func(*SpecOptions), args ...string) string {
	e.t.Helper()
	dir := filepath.Join(e.workdir, "b-"+id)
	o := SpecOptions{
		Args:        args,
		RootPath:    e.rootfs,
		Hostname:    id,
		CgroupsPath: e.cgroup + "/" + id,
		Network:     NetworkNone,
	}
	if mod != nil {
		mod(&o)
	}
	if _, err := NewBundle(dir, o); err != nil {
		e.t.Fatal(err)
	}
	return dir
}

func (e *testEnv) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	e.t.Cleanup(cancel)
	return ctx
}

func (e *testEnv) id(prefix string) string { return prefix + "-" + randHex(3) }

// outFile is a file the container writes its stdout to.
func (e *testEnv) outFile(name string) *os.File {
	e.t.Helper()
	f, err := os.Create(filepath.Join(e.workdir, name))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { f.Close() })
	return f
}

// poll calls f until it returns nil or the deadline passes.
func poll(t testing.TB, d time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %v: %v", d, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func readTrim(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

var errNotYet = errors.New("not yet")

// zombieChildren lists our children that exited and were not reaped.
func zombieChildren() []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		f := strings.Fields(s[i+1:])
		if len(f) > 2 && f[0] == "Z" && f[1] == fmt.Sprint(os.Getpid()) {
			var pid int
			fmt.Sscan(e.Name(), &pid)
			out = append(out, pid)
		}
	}
	return out
}

// mountsUnder lists mount points at or below dir.
func mountsUnder(dir string) []string {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			out = append(out, f[4])
		}
	}
	return out
}
