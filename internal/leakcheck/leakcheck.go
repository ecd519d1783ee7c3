// Package leakcheck snapshots the host resources the node creates (mounts,
// links, netns, iptables chains, cgroups, loop devices, runsc containers)
// so tests can prove that everything they made was cleaned up.
package leakcheck

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Snapshot is a set of resource descriptions, grouped by kind.
type Snapshot map[string][]string

// Take records the current resources. Filter keeps only entries that
// contain one of the given substrings (empty: keep all), so concurrent
// unrelated activity on a shared machine does not show up.
func Take(ctx context.Context, filter ...string) Snapshot {
	s := Snapshot{}
	keep := func(line string) bool {
		if len(filter) == 0 {
			return true
		}
		for _, f := range filter {
			if strings.Contains(line, f) {
				return true
			}
		}
		return false
	}
	add := func(kind, line string) {
		if line = strings.TrimSpace(line); line != "" && keep(line) {
			s[kind] = append(s[kind], line)
		}
	}
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Fields(l)
			if len(f) > 4 {
				add("mount", f[4])
			}
		}
	}
	for _, l := range lines(ctx, "ip", "-o", "link", "show") {
		// "3: name@if2: <...>" -> name
		if f := strings.SplitN(l, ":", 3); len(f) == 3 {
			add("link", strings.SplitN(strings.TrimSpace(f[1]), "@", 2)[0])
		}
	}
	for _, l := range lines(ctx, "ip", "-o", "addr", "show") {
		if f := strings.Fields(l); len(f) > 3 {
			add("addr", f[1]+" "+f[3])
		}
	}
	for _, l := range lines(ctx, "ip", "route", "show", "table", "all") {
		add("route", l)
	}
	if ents, err := os.ReadDir("/run/netns"); err == nil {
		for _, e := range ents {
			add("netns", e.Name())
		}
	}
	for _, table := range []string{"filter", "nat", "mangle"} {
		for _, l := range lines(ctx, "iptables-save", "-t", table) {
			if strings.HasPrefix(l, ":") || strings.HasPrefix(l, "-A") {
				add("iptables", table+" "+strings.Fields(l)[0]+" "+firstN(l, 200))
			}
		}
	}
	cg, _ := filepath.Glob("/sys/fs/cgroup/*/*")
	for _, p := range cg {
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			add("cgroup", p)
		}
	}
	loops, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	for _, p := range loops {
		if b, err := os.ReadFile(p); err == nil {
			add("loop", filepath.Base(filepath.Dir(filepath.Dir(p)))+" "+strings.TrimSpace(string(b)))
		}
	}
	for k := range s {
		sort.Strings(s[k])
	}
	return s
}

// Diff returns what is in after but not in before, one line per resource.
func Diff(before, after Snapshot) []string {
	var out []string
	for kind, items := range after {
		had := map[string]int{}
		for _, i := range before[kind] {
			had[i]++
		}
		for _, i := range items {
			if had[i] > 0 {
				had[i]--
				continue
			}
			out = append(out, kind+": "+i)
		}
	}
	sort.Strings(out)
	return out
}

// Check polls until nothing new remains compared to before, or the
// timeout passes, and then returns the leftovers as an error.
func Check(ctx context.Context, before Snapshot, timeout time.Duration, filter ...string) error {
	deadline := time.Now().Add(timeout)
	for {
		d := Diff(before, Take(ctx, filter...))
		if len(d) == 0 {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("leaked resources:\n  %s", strings.Join(d, "\n  "))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func lines(ctx context.Context, name string, args ...string) []string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).Output()
	if err != nil {
		return nil
	}
	var ls []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		ls = append(ls, sc.Text())
	}
	return ls
}

func firstN(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
