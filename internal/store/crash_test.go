package store

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/pinacle/pinacle-node/internal/lifecycle"
)

// crashChildEnv makes the test binary act as the crash-test writer
// (TestMain) instead of running tests.
const crashChildEnv = "PINACLE_STORE_CRASH_CHILD_DB"

const crashPods = 10

func TestMain(m *testing.M) {
	if path := os.Getenv(crashChildEnv); path != "" {
		if err := crashChild(path); err != nil {
			fmt.Fprintln(os.Stderr, "crash child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

type crashStatus struct {
	Gen int64 `json:"gen"`
	N   int   `json:"n"`
}

// cycle is the path the crash child walks each pod around.
var cycle = map[lifecycle.State]lifecycle.State{
	lifecycle.Running:  lifecycle.Stopping,
	lifecycle.Stopping: lifecycle.Stopped,
	lifecycle.Stopped:  lifecycle.Starting,
	lifecycle.Starting: lifecycle.Running,
}

// crashChild updates pods, transitions them and churns ports forever,
// printing "gen <pod> <generation>" after each commit returns, until the
// parent kills it.
func crashChild(path string) error {
	ctx := context.Background()
	s, err := Open(ctx, path)
	if err != nil {
		return err
	}
	out := bufio.NewWriter(os.Stdout)
	for i := range crashPods {
		id := fmt.Sprintf("p%d", i)
		if _, err := s.CreatePod(ctx, Pod{ID: id, Name: "n" + id, Spec: json.RawMessage(`{"image":"busybox"}`)}); err != nil {
			return err
		}
		for _, st := range []lifecycle.State{lifecycle.Provisioning, lifecycle.Running} {
			if _, err := s.Transition(ctx, id, st, ""); err != nil {
				return err
			}
		}
	}
	fmt.Fprintln(out, "ready")
	out.Flush()
	setStatus := func(n int) func(*Pod) error {
		return func(p *Pod) error {
			p.Status, _ = json.Marshal(crashStatus{Gen: p.Generation + 1, N: n})
			return nil
		}
	}
	for n := 0; ; n++ {
		id := fmt.Sprintf("p%d", n%crashPods)
		var p *Pod
		switch n % 4 {
		case 3:
			cur, err := s.GetPod(ctx, id)
			if err != nil {
				return err
			}
			p, err = s.TransitionWith(ctx, id, cycle[cur.State], "crash test", setStatus(n))
			if err != nil {
				return err
			}
		default:
			if p, err = s.UpdatePod(ctx, id, setStatus(n)); err != nil {
				return err
			}
		}
		// Port sets write two buckets (sets and the host-port index) in
		// one transaction: the check below wants them in agreement.
		if n%2 == 0 {
			base := 30000 + 10*(n%crashPods)
			err = s.ReplacePortSet(ctx, id, []PortBinding{
				{Key: fmt.Sprintf("port%d", n%3), HostPort: base + n%3},
				{Key: "ssh", HostPort: base + 5},
			})
		} else {
			err = s.DeletePortSet(ctx, id)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "gen %s %d\n", p.ID, p.Generation)
		out.Flush()
	}
}

func TestCrashConsistency(t *testing.T) {
	if testing.Short() {
		t.Skip("re-execs the test binary; skipped with -short")
	}
	path := filepath.Join(t.TempDir(), FileName)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	t.Cleanup(func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})

	// Kill after a random number of acknowledged commits, so the kill
	// lands at a different point of a transaction each run.
	killAfter := 200 + rand.IntN(400)
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	acked := map[string]int64{} // highest generation the child saw committed
	count := 0
	deadline := time.After(2 * time.Minute)
	for open := true; open; {
		select {
		case line, ok := <-lines:
			if !ok {
				open = false
				break
			}
			if id, gen, ok := parseGen(line); ok {
				acked[id] = max(acked[id], gen)
				count++
			}
			if count == killAfter && !killed {
				if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				killed = true
			}
		case <-deadline:
			t.Fatalf("child acknowledged only %d commits before the deadline", count)
		}
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("child exited before the kill: %v", err)
	}
	t.Logf("killed the writer after %d acknowledged commits (%d seen in all)", killAfter, count)

	ctx := context.Background()
	s := openAt(t, path)
	if err := s.db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			t.Errorf("bbolt consistency check: %v", err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	pods, err := s.ListPods(ctx)
	if err != nil {
		t.Fatalf("ListPods after crash: %v", err)
	}
	if len(pods) != crashPods {
		t.Fatalf("%d pods after crash, want %d", len(pods), crashPods)
	}
	for _, p := range pods {
		if p.Generation < acked[p.ID] {
			t.Errorf("pod %s: generation %d on disk, but %d was acknowledged", p.ID, p.Generation, acked[p.ID])
		}
		if p.Status != nil {
			var st crashStatus
			if err := json.Unmarshal(p.Status, &st); err != nil {
				t.Errorf("pod %s: status %q does not decode: %v", p.ID, p.Status, err)
			} else if st.Gen != p.Generation {
				t.Errorf("pod %s: status written for generation %d, record at %d (torn update)", p.ID, st.Gen, p.Generation)
			}
		} else if p.Generation > 3 {
			t.Errorf("pod %s: generation %d with no status", p.ID, p.Generation)
		}
		if !p.State.Valid() {
			t.Errorf("pod %s: invalid state %q", p.ID, p.State)
		}
	}

	// Events: contiguous, and every pod's last state event agrees with its
	// record (the transition and its event committed together).
	evs, err := s.Events(ctx, 0, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	last, _ := s.LastSeq(ctx)
	if len(evs) == 0 || evs[len(evs)-1].Seq != last {
		t.Fatalf("events end at %v, LastSeq %d", evs[len(evs)-1:], last)
	}
	checkContiguous(t, evs, evs[0].Seq)
	lastState := map[string]lifecycle.State{}
	for _, ev := range evs {
		if ev.Type == EventState {
			lastState[ev.PodID] = ev.To
		}
	}
	for _, p := range pods {
		if lastState[p.ID] != p.State {
			t.Errorf("pod %s: state %s but last state event says %s", p.ID, p.State, lastState[p.ID])
		}
	}

	// Port sets and the host-port index agree both ways.
	if err := s.db.View(func(tx *bolt.Tx) error {
		owners := tx.Bucket(bucketPortOwners)
		nb, no := 0, 0
		tx.Bucket(bucketPortSets).ForEach(func(k, v []byte) error {
			set, err := decodePortSet(k, v)
			if err != nil {
				t.Error(err)
				return nil
			}
			for _, b := range set {
				nb++
				if got := owners.Get(portBytes(b.HostPort)); string(got) != string(ownerValue(string(k), b.Key)) {
					t.Errorf("pod %s port %s -> %d: owner entry %q", k, b.Key, b.HostPort, got)
				}
			}
			return nil
		})
		owners.ForEach(func(k, v []byte) error { no++; return nil })
		if nb != no {
			t.Errorf("%d port set bindings, %d owner entries", nb, no)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// And the store carries on.
	p, err := s.UpdatePod(ctx, "p0", func(p *Pod) error { return nil })
	if err != nil || p.Generation <= acked["p0"] {
		t.Fatalf("UpdatePod after crash = %+v, %v", p, err)
	}
}

func parseGen(line string) (string, int64, bool) {
	f := strings.Fields(line)
	if len(f) != 3 || f[0] != "gen" {
		return "", 0, false
	}
	g, err := strconv.ParseInt(f[2], 10, 64)
	return f[1], g, err == nil
}
