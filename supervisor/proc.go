package supervisor

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// procSpec is one process to start: argv resolved against its own PATH.
type procSpec struct {
	argv []string
	env  []string
	dir  string
	cred *syscall.Credential
	out  *os.File // stdout and stderr (one pipe, so lines interleave in order)
}

// fork starts p in its own process group (so a stop reaches the whole
// tree it spawns) with stdin on /dev/null. It does not wait: the reaper does.
func fork(p procSpec) (int, error) {
	path, err := lookPath(p.argv[0], p.env)
	if err != nil {
		return 0, err
	}
	null, err := os.Open(os.DevNull)
	if err != nil {
		return 0, err
	}
	defer null.Close()
	attr := &syscall.ProcAttr{
		Dir:   p.dir,
		Env:   p.env,
		Files: []uintptr{null.Fd(), p.out.Fd(), p.out.Fd()},
		Sys: &syscall.SysProcAttr{
			Setpgid:    true,
			Credential: p.cred,
			// If init dies, its services die with it rather than
			// running on unsupervised (only matters outside PID 1).
			Pdeathsig: syscall.SIGKILL,
		},
	}
	pid, err := syscall.ForkExec(path, p.argv, attr)
	if err != nil {
		return 0, fmt.Errorf("start %s: %w", p.argv[0], err)
	}
	return pid, nil
}

// lookPath resolves a command against the PATH of the environment the
// service gets, not init's own.
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	path := DefaultPath
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("command %q not found in PATH %s: %w", name, path, errdefs.ErrNotFound)
}

// user is what a service's User resolves to.
type user struct {
	uid, gid uint32
	groups   []uint32
	name     string
	home     string
}

// lookupUser resolves "name", "uid" or "uid:gid" through the sandbox's own
// /etc/passwd and /etc/group (init runs inside the rootfs, so these are the
// image's files). Parsing them by hand keeps os/user (and cgo) out of init.
func lookupUser(spec, passwd, group string) (*user, error) {
	name, grp, _ := strings.Cut(spec, ":")
	u := &user{name: name, home: "/"}
	found := false
	if f, err := os.Open(passwd); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fs := strings.Split(sc.Text(), ":")
			if len(fs) < 7 || (fs[0] != name && fs[2] != name) {
				continue
			}
			uid, err1 := strconv.ParseUint(fs[2], 10, 32)
			gid, err2 := strconv.ParseUint(fs[3], 10, 32)
			if err1 != nil || err2 != nil {
				continue
			}
			u.uid, u.gid, u.name, u.home, found = uint32(uid), uint32(gid), fs[0], fs[5], true
			break
		}
		f.Close()
	}
	if !found {
		uid, err := strconv.ParseUint(name, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("user %q: not in %s: %w", spec, passwd, errdefs.ErrNotFound)
		}
		u.uid, u.gid = uint32(uid), uint32(uid)
	}
	if grp != "" {
		gid, err := strconv.ParseUint(grp, 10, 32)
		if err != nil {
			g, ok := lookupGroup(group, grp)
			if !ok {
				return nil, fmt.Errorf("user %q: group %q not in %s: %w", spec, grp, group, errdefs.ErrNotFound)
			}
			gid = uint64(g)
		}
		u.gid = uint32(gid)
	}
	if f, err := os.Open(group); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fs := strings.Split(sc.Text(), ":")
			if len(fs) < 4 || !slices.Contains(strings.Split(fs[3], ","), u.name) {
				continue
			}
			if g, err := strconv.ParseUint(fs[2], 10, 32); err == nil && uint32(g) != u.gid {
				u.groups = append(u.groups, uint32(g))
			}
		}
		f.Close()
	}
	return u, nil
}

func lookupGroup(path, name string) (uint32, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Split(sc.Text(), ":")
		if len(fs) >= 3 && fs[0] == name {
			if g, err := strconv.ParseUint(fs[2], 10, 32); err == nil {
				return uint32(g), true
			}
		}
	}
	return 0, false
}

// serviceEnv builds a service's environment: pod env, then service env,
// then PATH, HOME and USER defaults where neither set them.
func serviceEnv(pod, svc map[string]string, u *user) []string {
	m := make(map[string]string, len(pod)+len(svc)+3)
	for k, v := range pod {
		m[k] = v
	}
	for k, v := range svc {
		m[k] = v
	}
	def := func(k, v string) {
		if _, ok := m[k]; !ok {
			m[k] = v
		}
	}
	def("PATH", DefaultPath)
	if u != nil {
		def("HOME", u.home)
		def("USER", u.name)
	} else {
		def("HOME", "/root")
	}
	env := make([]string, 0, len(m))
	for k, v := range m {
		env = append(env, k+"="+v)
	}
	slices.Sort(env)
	return env
}

func (u *user) credential() *syscall.Credential {
	if u == nil {
		return nil
	}
	return &syscall.Credential{Uid: u.uid, Gid: u.gid, Groups: u.groups, NoSetGroups: false}
}
