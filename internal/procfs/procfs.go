// Package procfs reads the few facts about a process the node needs from /proc.
package procfs

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Stat is the part of /proc/PID/stat the node reads.
type Stat struct {
	State   byte // R, S, D, Z, ...
	PPid    int
	Pgrp    int
	Session int
}

// ReadStat reads /proc/pid/stat.
func ReadStat(pid int) (Stat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return Stat{}, err
	}
	return parseStat(string(b))
}

// parseStat parses a stat line. The command name may hold spaces and
// parentheses, so the fields are counted from its last ')'.
func parseStat(s string) (Stat, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return Stat{}, fmt.Errorf("procfs: stat %q: no command name", s)
	}
	f := strings.Fields(s[i+1:]) // state ppid pgrp session ...
	if len(f) < 4 || len(f[0]) != 1 {
		return Stat{}, fmt.Errorf("procfs: stat %q: too few fields", s)
	}
	st := Stat{State: f[0][0]}
	for j, p := range []*int{&st.PPid, &st.Pgrp, &st.Session} {
		n, err := strconv.Atoi(f[j+1])
		if err != nil {
			return Stat{}, fmt.Errorf("procfs: stat %q: %w", s, err)
		}
		*p = n
	}
	return st, nil
}

// Alive says whether pid exists and has not exited (a zombie has).
func Alive(pid int) bool {
	st, err := ReadStat(pid)
	return err == nil && st.State != 'Z'
}

// PIDs lists the processes in /proc other than this one. A process may
// exit before the caller reads it: each read of one must allow for that.
func PIDs() ([]int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	self := os.Getpid()
	pids := make([]int, 0, len(ents))
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil && pid != self {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// Cmdline reads /proc/pid/cmdline as argv; a zombie and a kernel thread
// have none (nil, no error).
func Cmdline(pid int) ([]string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || len(b) == 0 {
		return nil, err
	}
	return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00"), nil
}
