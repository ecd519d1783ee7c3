package procfs

import (
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Stat
		ok   bool
	}{
		{"42 (sh) S 1 42 42 0 -1", Stat{'S', 1, 42, 42}, true},
		// A name with spaces and a ')' of its own.
		{"7 (a) b (c)) Z 3 4 5 0", Stat{'Z', 3, 4, 5}, true},
		{"7 sh S 1 2 3", Stat{}, false},
		{"7 (sh) S 1", Stat{}, false},
		{"7 (sh) S x 2 3", Stat{}, false},
	} {
		got, err := parseStat(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseStat(%q) = %+v, %v; want %+v, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// TestAlive: this process is alive; a child that exited is not, both
// while it is a zombie and once it is reaped.
func TestAlive(t *testing.T) {
	if st, err := ReadStat(os.Getpid()); err != nil || st.PPid != os.Getppid() || !Alive(os.Getpid()) {
		t.Fatalf("self: %+v %v", st, err)
	}
	c := exec.Command("true")
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	pid := c.Process.Pid
	deadline := time.Now().Add(10 * time.Second)
	for Alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("child %d still alive after it exited", pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if st, err := ReadStat(pid); err != nil || st.State != 'Z' {
		t.Fatalf("unreaped child: %+v %v, want a zombie", st, err)
	}
	_ = c.Wait()
	if Alive(pid) {
		t.Fatalf("reaped child %d alive", pid)
	}
}

// TestPIDsAndCmdline: a child shows in PIDs with its argv, this process
// does not, and an exited child is gone from both.
func TestPIDsAndCmdline(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	pids, err := PIDs()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(pids, pid) || slices.Contains(pids, os.Getpid()) {
		t.Errorf("PIDs: child %d listed %v, self %d listed %v; want the child only",
			pid, slices.Contains(pids, pid), os.Getpid(), slices.Contains(pids, os.Getpid()))
	}
	if argv, err := Cmdline(pid); err != nil || !slices.Equal(argv, []string{"sleep", "30"}) {
		t.Errorf("Cmdline(%d) = %q, %v; want [sleep 30]", pid, argv, err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if argv, err := Cmdline(pid); err == nil && argv != nil {
		t.Errorf("Cmdline of a reaped child = %q, want an error or nothing", argv)
	}
}
