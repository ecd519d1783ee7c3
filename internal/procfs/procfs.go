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
