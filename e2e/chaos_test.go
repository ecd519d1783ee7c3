package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestChaos SIGKILLs the daemon at random moments while several clients
// create, start, stop, delete, hibernate and wake pods, and now and then
// kills a sandbox or a gofer from outside. While the daemon is dead,
// state.db must hold only sound allocations (checkDead). After every
// restart the node must settle with every record consistent: each pod in
// a stable state, running pods adopted and serving through their own host
// ports, no two pods sharing a port or an IP, a pod's host ports unchanged
// until it is deleted and listening exactly while it runs or hibernates, no sandbox without a
// running pod, no pod lost that was created and never deleted, and no
// network record, mount, runsc process or address in the pool that
// belongs to no pod (checkHost); a failed pod holds no more than a
// stopped one once its teardown has converged. The suite's leak check
// runs after it.
//
// PINACLE_CHAOS_ROUNDS sets the rounds (default 4, the short version CI
// runs; `make chaos` runs 200) and PINACLE_CHAOS_SEED replays a run. A
// failed round is reported and the run goes on, up to chaosMaxFailures.
func TestChaos(t *testing.T) {
	rounds := envInt(t, "PINACLE_CHAOS_ROUNDS", 4)
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("PINACLE_CHAOS_SEED"); v != "" {
		seed = uint64(envInt(t, "PINACLE_CHAOS_SEED", 0))
	}
	t.Logf("chaos: %d rounds, PINACLE_CHAOS_SEED=%d", rounds, seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	d := startDaemon(t)
	c := &chaos{d: d, created: map[string]int{}, deleteSent: map[string]int{}, seen: map[string]bool{}}
	// The baseline: a clean start of the same daemon, no pods.
	for range 3 {
		d.stop()
		t0 := time.Now()
		d.start()
		c.cleanStarts = append(c.cleanStarts, time.Since(t0))
	}
	defer c.report(t) // also after FailNow
	failures := 0
	for round := range rounds {
		c.rounds++
		c.round(t, rng)
		err := c.checkDead()
		if err == nil {
			t0 := time.Now()
			d.start()
			c.restarts = append(c.restarts, time.Since(t0))
			t1 := time.Now()
			err = c.settle(90 * time.Second)
			c.settles = append(c.settles, time.Since(t1))
		} else {
			d.start()
		}
		if err != nil {
			failures++
			c.mu.Lock()
			ops := strings.Join(c.ops[max(0, len(c.ops)-3*5):], "\n")
			c.mu.Unlock()
			t.Errorf("round %d (PINACLE_CHAOS_SEED=%d): %v\nlast rounds' operations (round name op exit):\n%s\ndaemon log:\n%s", round, seed, err, ops, d.logTail())
			if failures >= chaosMaxFailures {
				t.FailNow()
			}
			continue
		}
		c.passed++
	}
}

// chaosMaxFailures ends a run early: past a few, later rounds mostly
// repeat the first fault.
const chaosMaxFailures = 3

// report logs the run's figures: rounds passed, what was killed, and the
// restart-to-ready and settle times beside the clean start.
func (c *chaos) report(t *testing.T) {
	t.Logf("chaos: %d/%d rounds passed; daemon SIGKILLs %d, sandboxes killed from outside %d, gofers %d; state.db checks %d, host checks %d",
		c.passed, c.rounds, c.rounds, c.sandboxKills, c.goferKills, c.deadChecks, c.hostChecks)
	base := median(c.cleanStarts)
	t.Logf("chaos: daemon start to socket: clean start (no pods) median %s; restart after SIGKILL median %s (%.2fx), max %s",
		base.Round(time.Millisecond), median(c.restarts).Round(time.Millisecond),
		float64(median(c.restarts))/float64(max(base, 1)), slices.Max(append(c.restarts, 0)).Round(time.Millisecond))
	t.Logf("chaos: restart to settled and serving: median %s (%.2fx the clean start), max %s",
		median(c.settles).Round(time.Millisecond), float64(median(c.settles))/float64(max(base, 1)),
		slices.Max(append(c.settles, 0)).Round(time.Millisecond))
	t.Logf("chaos: pods listed running that took over a second to serve: %d %v", len(c.windows), c.windows)
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// chaos tracks what the clients were told, to tell a lost pod from one
// whose delete was cut short and finished by recovery, and what the
// checks saw, to compare across restarts.
type chaos struct {
	d  *daemon
	mu sync.Mutex
	// created is the round of the last create per name that answered 0
	// (gone once a delete answered 0 in a later round); deleteSent the
	// round of the last delete sent. Ops of one round run at once, in no
	// order: a pod created in round r may be gone if a delete was sent in
	// round r or later (it may have been cut short and finished by
	// recovery), and only then.
	created    map[string]int
	deleteSent map[string]int
	ops        []string // "round name op exit" of each operation, and each outside kill
	windows    []string // running pods that took over a second to serve

	ports map[string]string // pod ID -> its host ports at the last settle
	warm  map[string]bool   // warm networks in state.db at the last kill
	seen  map[string]bool   // every pod ID state.db ever held

	rounds, passed, sandboxKills, goferKills, deadChecks, hostChecks int
	cleanStarts, restarts, settles                                   []time.Duration
}

// chaosPods is how many pod names the clients share: at most that many
// pods exist at once (the machine is shared).
const chaosPods = 4

// round runs three clients for a moment, SIGKILLs the daemon under them,
// and sometimes a sandbox or a gofer too.
func (c *chaos) round(t *testing.T, rng *rand.Rand) {
	var wg sync.WaitGroup
	for range 3 {
		name := fmt.Sprintf("chaos-%d", rng.IntN(chaosPods))
		ops := []string{"create", "start", "stop", "delete", "hibernate", "wake"}
		op := ops[rng.IntN(len(ops))]
		wg.Go(func() { c.do(name, op) })
	}
	time.Sleep(time.Duration(rng.IntN(1500)) * time.Millisecond)
	switch rng.IntN(8) {
	case 0, 1, 2:
		c.killRunsc(t, rng, "runsc-sandbox")
	case 3, 4:
		c.killRunsc(t, rng, "runsc-gofer")
	}
	c.d.kill()
	wg.Wait()
}

func (c *chaos) do(name, op string) {
	var r result
	var err error
	c.mu.Lock()
	round := c.rounds
	if op == "delete" {
		c.deleteSent[name] = round
	}
	c.mu.Unlock()
	switch op {
	case "create":
		f := fmt.Sprintf("%s/%s-%d.yaml", c.d.dir, name, time.Now().UnixNano())
		if err = os.WriteFile(f, []byte(webSpec(name, "")), 0o644); err == nil {
			r, err = c.cli("pod", "create", "-f", f, "-o", "json")
		}
	case "delete":
		r, err = c.cli("pod", "delete", name)
	default:
		r, err = c.cli("pod", op, name)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ops = append(c.ops, fmt.Sprintf("%d %s %s %d %v", round, name, op, r.code, err))
	if err != nil || r.code != 0 {
		return // the daemon died under it, or the op did not apply: both fine
	}
	switch op {
	case "create":
		c.created[name] = round
	case "delete":
		if at, ok := c.created[name]; ok && at < round {
			delete(c.created, name)
		}
	}
}

// cli runs the client without a *testing.T: it runs in goroutines.
func (c *chaos) cli(args ...string) (result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, nodeBin, args...)
	cmd.Env = append(os.Environ(), "PINACLE_SOCKET="+c.d.sock)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return result{out.String(), errb.String(), ee.ExitCode()}, nil
	}
	return result{out.String(), errb.String(), 0}, err
}

// killRunsc SIGKILLs one of the daemon's runsc processes of one kind
// (argv[0] runsc-sandbox or runsc-gofer) from outside the node.
func (c *chaos) killRunsc(t *testing.T, rng *rand.Rand, kind string) {
	procs, err := c.runscProcs(kind)
	if err != nil {
		t.Fatal(err)
	}
	if len(procs) == 0 {
		return
	}
	pid := procs[rng.IntN(len(procs))]
	cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if syscall.Kill(pid, syscall.SIGKILL) == nil { // it may have exited on its own meanwhile
		c.mu.Lock()
		c.ops = append(c.ops, fmt.Sprintf("%d killed %s of %s", c.rounds, kind, podDirRE.FindString(string(cmd))))
		c.mu.Unlock()
		if kind == "runsc-gofer" {
			c.goferKills++
		} else {
			c.sandboxKills++
		}
	}
}

// runscProcs lists the pids of the daemon's runsc processes whose argv[0]
// is kind.
func (c *chaos) runscProcs(kind string) ([]int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue // gone meanwhile
		}
		if argv0, _, _ := strings.Cut(string(b), "\x00"); argv0 == kind && strings.Contains(string(b), c.d.dir) {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

func (c *chaos) runscIDs() ([]string, error) {
	out, err := exec.Command("runsc", "--root", c.d.dir+"/runsc", "list", "-quiet").Output()
	if err != nil {
		return nil, fmt.Errorf("runsc list: %v", err)
	}
	return strings.Fields(string(out)), nil
}

// settle waits until every pod is in a stable state, then checks the
// invariants. A pod failed by its sandbox's death is recorded failed
// before the node takes down what it had (forwarder, sandbox and gofer,
// cgroup, rootfs, network), so while any pod is failed a check that does
// not hold is tried again, until it holds or convergeTimeout has passed
// since it first did not.
func (c *chaos) settle(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var converging time.Time
	for {
		pods, err := c.list()
		if err == nil {
			err = c.settled(pods)
			switch {
			case err == nil:
				c.hostChecks++
				return nil
			case errors.Is(err, errChanged), errors.Is(err, errUnsettled):
			case !c.anyFailed(pods):
				return err
			case converging.IsZero():
				converging = time.Now()
			case time.Since(converging) > convergeTimeout:
				return fmt.Errorf("%w (a failed pod's host state did not converge in %s)", err, convergeTimeout)
			}
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// anyFailed says whether a pod is failed in pods or in a list read now
// (a sandbox's death noticed during the check).
func (c *chaos) anyFailed(pods []podView) bool {
	failed := func(p podView) bool { return p.State == "failed" }
	if slices.ContainsFunc(pods, failed) {
		return true
	}
	now, err := c.list()
	return err == nil && slices.ContainsFunc(now, failed)
}

// errUnsettled says a pod is in a transitional state: wait.
var errUnsettled = errors.New("not settled")

// settled checks pods, all in stable states, against the API and then the
// host, against a fresh list (the first check can take a while): a pod
// that moved meanwhile is errChanged.
func (c *chaos) settled(pods []podView) error {
	for _, p := range pods {
		switch p.State {
		case "running", "stopped", "failed", "hibernated":
		default:
			return fmt.Errorf("%w: %s is %s", errUnsettled, p.Name, p.State)
		}
	}
	if err := c.check(pods); err != nil {
		return err
	}
	pods, err := c.list()
	if err != nil {
		return err
	}
	return c.checkHost(pods)
}

// serves waits until a pod listed running answers through its host port,
// or is no longer running (a sandbox that died around the restart is
// noticed and the pod restarted): the node must converge within
// convergeTimeout. Each wait is recorded, so the windows show in the log.
func (c *chaos) serves(p podView) error {
	start := time.Now()
	for {
		body, err := httpGet(p.Ports[0].URL+"/index.html", 5*time.Second)
		if err == nil && strings.TrimSpace(body) == p.Name {
			break
		}
		r, cerr := c.cli("pod", "get", p.ID, "-o", "json")
		var now podView
		if cerr == nil && r.code == 0 && json.Unmarshal([]byte(r.stdout), &now) == nil && now.State != "running" {
			break // no longer claims to serve; settle checks it again next round
		}
		if time.Since(start) > convergeTimeout {
			return fmt.Errorf("pod %s listed running does not serve through its host port for %s: %q %v", p.Name, convergeTimeout, body, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if w := time.Since(start); w > time.Second {
		c.mu.Lock()
		c.windows = append(c.windows, fmt.Sprintf("%s %s", p.Name, w.Round(100*time.Millisecond)))
		c.mu.Unlock()
	}
	return nil
}

const convergeTimeout = 30 * time.Second

func (c *chaos) list() ([]podView, error) {
	r, err := c.cli("pod", "ls", "-o", "json")
	if err != nil || r.code != 0 {
		return nil, fmt.Errorf("pod ls: exit %d: %v %s", r.code, err, r.stderr)
	}
	var pods []podView
	if err := json.Unmarshal([]byte(r.stdout), &pods); err != nil {
		return nil, fmt.Errorf("pod ls -o json: %v", err)
	}
	return pods, nil
}

// check holds the invariants of a settled node.
func (c *chaos) check(pods []podView) error {
	byName := map[string]podView{}
	ports, ips := map[int]string{}, map[string]string{}
	for _, p := range pods {
		byName[p.Name] = p
		for _, pt := range p.Ports {
			if pt.External == 0 {
				if p.State == "running" {
					return fmt.Errorf("running pod %s has no host port for %s", p.Name, pt.Name)
				}
				continue // a pod that failed before its ports step has none
			}
			if o, dup := ports[pt.External]; dup {
				return fmt.Errorf("host port %d held by both %s and %s", pt.External, o, p.Name)
			}
			ports[pt.External] = p.Name
		}
		if p.State != "running" {
			continue
		}
		if o, dup := ips[p.IP]; dup || p.IP == "" {
			return fmt.Errorf("pod %s has IP %q, also %s's", p.Name, p.IP, o)
		}
		ips[p.IP] = p.Name
		if err := c.serves(p); err != nil {
			return err
		}
	}
	out, err := exec.Command("runsc", "--root", c.d.dir+"/runsc", "list", "-quiet").Output()
	if err != nil {
		return fmt.Errorf("runsc list: %v", err)
	}
	// Listed again after runsc: a failed pod may have begun its restart.
	now, err := c.list()
	if err != nil {
		return err
	}
	state := map[string]string{}
	for _, p := range now {
		state[p.ID] = p.State
	}
	for _, id := range strings.Fields(string(out)) {
		if s := state[id]; s == "" || s == "stopped" || s == "hibernated" || s == "failed" {
			return fmt.Errorf("sandbox %s runs for a pod that is %q", id, s)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, at := range c.created { // rounds count from 1: never sent is 0
		if _, ok := byName[name]; !ok && c.deleteSent[name] < at {
			return fmt.Errorf("pod %s was created and never deleted, and is gone", name)
		}
	}
	return nil
}

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		t.Fatalf("%s=%q: want a non-negative integer", name, v)
	}
	return n
}
