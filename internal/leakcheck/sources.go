package leakcheck

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pinacle/pinacle-node/internal/procfs"
)

// A source reads one kind of host resource. Its error means it could not
// look, which the check treats as a failure, never as "nothing there".
type source struct {
	name string
	read func(ctx context.Context, add func(kind, line string)) error
}

// cgroupRoot is where cgroup hierarchies are mounted (v1 controllers
// below it, or the v2 tree itself); a variable for the unit tests.
var cgroupRoot = "/sys/fs/cgroup"

var sources = []source{
	{"mounts", readMounts},
	{"links", func(ctx context.Context, add func(kind, line string)) error {
		return eachLine(ctx, func(l string) {
			// "3: name@if2: <...>" -> name
			if f := strings.SplitN(l, ":", 3); len(f) == 3 {
				add("link", strings.SplitN(strings.TrimSpace(f[1]), "@", 2)[0])
			}
		}, "ip", "-o", "link", "show")
	}},
	{"addresses", func(ctx context.Context, add func(kind, line string)) error {
		return eachLine(ctx, func(l string) {
			if f := strings.Fields(l); len(f) > 3 {
				add("addr", f[1]+" "+f[3])
			}
		}, "ip", "-o", "addr", "show")
	}},
	{"routes", func(ctx context.Context, add func(kind, line string)) error {
		return eachLine(ctx, func(l string) { add("route", l) }, "ip", "route", "show", "table", "all")
	}},
	{"netns", readNetns},
	{"iptables", readIptables},
	{"qdiscs", func(ctx context.Context, add func(kind, line string)) error {
		return eachLine(ctx, func(l string) {
			// "qdisc tbf 1: dev pn1 root refcnt 2 rate ..." -> up to refcnt
			l, _, _ = strings.Cut(l, " refcnt ")
			add("qdisc", l)
		}, "tc", "qdisc", "show")
	}},
	{"cgroups", func(_ context.Context, add func(kind, line string)) error {
		return walkDirs(cgroupRoot, func(p string) { add("cgroup", p) })
	}},
	{"loop devices", readLoops},
}

func readMounts(_ context.Context, add func(kind, line string)) error {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 {
			add("mount", f[4])
		}
	}
	return nil
}

func readNetns(_ context.Context, add func(kind, line string)) error {
	ents, err := os.ReadDir("/run/netns")
	if errors.Is(err, fs.ErrNotExist) {
		return nil // no named netns yet
	}
	for _, e := range ents {
		add("netns", e.Name())
	}
	return err
}

func readIptables(ctx context.Context, add func(kind, line string)) error {
	for _, table := range []string{"filter", "nat", "mangle"} {
		err := eachLine(ctx, func(l string) {
			if strings.HasPrefix(l, ":") || strings.HasPrefix(l, "-A") {
				add("iptables", table+" "+strings.Fields(l)[0]+" "+firstN(l, 200))
			}
		}, "iptables-save", "-t", table)
		if err != nil {
			return err
		}
	}
	return nil
}

func readLoops(_ context.Context, add func(kind, line string)) error {
	loops, err := filepath.Glob("/sys/block/loop*/loop/backing_file")
	if err != nil {
		return err
	}
	for _, p := range loops {
		b, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue // detached meanwhile
		}
		if err != nil {
			return err
		}
		add("loop", filepath.Base(filepath.Dir(filepath.Dir(p)))+" "+strings.TrimSpace(string(b)))
	}
	return nil
}

// walkDirs calls fn with every directory below root, at any depth (a
// cgroup is a directory). Directories that vanish during the walk are
// skipped; a root that does not exist is an error.
func walkDirs(root string, fn func(string)) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p != root && errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() && p != root {
			fn(p)
		}
		return nil
	})
}

// readFiles calls fn with every path below root (directories end in /).
// A root that does not exist holds nothing.
func readFiles(root string, fn func(string)) error {
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if p == root {
			return nil
		}
		if d.IsDir() {
			p += "/"
		}
		fn(p)
		return nil
	})
	return err
}

// readProcs calls fn with "PID CMDLINE" for every process whose command
// line contains one of match. Zombies and processes that exit meanwhile
// are skipped (they have no command line left).
func readProcs(match []string, fn func(string)) error {
	pids, err := procfs.PIDs()
	if err != nil {
		return err
	}
	for _, pid := range pids {
		argv, err := procfs.Cmdline(pid)
		if err != nil || len(argv) == 0 {
			continue
		}
		cmd := strings.Join(argv, " ")
		for _, m := range match {
			if strings.Contains(cmd, m) {
				fn(strconv.Itoa(pid) + " " + firstN(cmd, 300))
				break
			}
		}
	}
	return nil
}

// eachLine runs a command and calls fn with each line of its output; the
// command failing (missing, non-zero exit, timeout) is the error.
func eachLine(ctx context.Context, fn func(string), name string, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		fn(sc.Text())
	}
	return sc.Err()
}

func firstN(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
