package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestChaos SIGKILLs the daemon at random moments while several clients
// create, start, stop and delete pods, and now and then kills a sandbox
// from outside. After every restart the node must settle with every
// record consistent: each pod in a stable state, running pods adopted and
// serving through their own host ports, no two pods sharing a port or an
// IP, no sandbox without a running pod, and no pod lost that was created
// and never deleted. The suite's leak check runs after it.
//
// PINACLE_CHAOS_ROUNDS sets the rounds (default 4, the short version CI
// runs; `make chaos` runs 200) and PINACLE_CHAOS_SEED replays a run.
func TestChaos(t *testing.T) {
	rounds := envInt(t, "PINACLE_CHAOS_ROUNDS", 4)
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("PINACLE_CHAOS_SEED"); v != "" {
		seed = uint64(envInt(t, "PINACLE_CHAOS_SEED", 0))
	}
	t.Logf("chaos: %d rounds, PINACLE_CHAOS_SEED=%d", rounds, seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	d := startDaemon(t)
	c := &chaos{d: d, created: map[string]bool{}, deleting: map[string]bool{}}
	for round := range rounds {
		c.round(t, rng)
		d.start()
		if err := c.settle(90 * time.Second); err != nil {
			t.Fatalf("round %d (PINACLE_CHAOS_SEED=%d): %v\ndaemon log:\n%s", round, seed, err, d.logTail())
		}
	}
	t.Logf("chaos: %d rounds survived; pods listed running that took over a second to serve: %d %v", rounds, len(c.windows), c.windows)
}

// chaos tracks what the clients were told, to tell a lost pod from one
// whose delete was cut short and finished by recovery.
type chaos struct {
	d        *daemon
	mu       sync.Mutex
	created  map[string]bool // create answered 0, no delete answered 0 since
	deleting map[string]bool // a delete was sent: the pod may be gone
	windows  []string        // running pods that took over a second to serve
}

const chaosPods = 4

// round runs three clients for a moment, SIGKILLs the daemon under them,
// and sometimes a sandbox too.
func (c *chaos) round(t *testing.T, rng *rand.Rand) {
	var wg sync.WaitGroup
	for range 3 {
		name := fmt.Sprintf("chaos-%d", rng.IntN(chaosPods))
		op := []string{"create", "start", "stop", "delete"}[rng.IntN(4)]
		wg.Go(func() { c.do(name, op) })
	}
	time.Sleep(time.Duration(rng.IntN(1500)) * time.Millisecond)
	if rng.IntN(4) == 0 {
		c.killSandbox(t, rng)
	}
	c.d.kill()
	wg.Wait()
}

func (c *chaos) do(name, op string) {
	var r result
	var err error
	switch op {
	case "create":
		c.mu.Lock()
		c.deleting[name] = false
		c.mu.Unlock()
		f := fmt.Sprintf("%s/%s-%d.yaml", c.d.dir, name, time.Now().UnixNano())
		if err = os.WriteFile(f, []byte(webSpec(name, "")), 0o644); err == nil {
			r, err = c.cli("pod", "create", "-f", f, "-o", "json")
		}
	case "delete":
		c.mu.Lock()
		c.deleting[name] = true
		c.mu.Unlock()
		r, err = c.cli("pod", "delete", name)
	default:
		r, err = c.cli("pod", op, name)
	}
	if err != nil || r.code != 0 {
		return // the daemon died under it, or the op did not apply: both fine
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch op {
	case "create":
		c.created[name] = true
	case "delete":
		delete(c.created, name)
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

// killSandbox SIGKILLs one running sandbox from outside the node.
func (c *chaos) killSandbox(t *testing.T, rng *rand.Rand) {
	ids := c.runscIDs(t)
	if len(ids) == 0 {
		return
	}
	id := ids[rng.IntN(len(ids))]
	out, err := exec.Command("runsc", "--root", c.d.dir+"/runsc", "state", id).Output()
	var st struct {
		Pid int `json:"pid"`
	}
	if err == nil && json.Unmarshal(out, &st) == nil && st.Pid > 0 {
		_ = syscall.Kill(st.Pid, syscall.SIGKILL) // it may have exited on its own meanwhile
	}
}

func (c *chaos) runscIDs(t *testing.T) []string {
	out, err := exec.Command("runsc", "--root", c.d.dir+"/runsc", "list", "-quiet").Output()
	if err != nil {
		t.Fatalf("runsc list: %v", err)
	}
	return strings.Fields(string(out))
}

// settle waits until every pod is in a stable state, then checks the
// invariants once.
func (c *chaos) settle(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		pods, err := c.list()
		if err == nil {
			unstable := ""
			for _, p := range pods {
				switch p.State {
				case "running", "stopped", "failed":
				default:
					unstable = p.Name + " is " + p.State
				}
			}
			if unstable == "" {
				return c.check(pods)
			}
			err = fmt.Errorf("not settled: %s", unstable)
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
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
		if s := state[id]; s == "" || s == "stopped" {
			return fmt.Errorf("sandbox %s runs for a pod that is %q", id, s)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for name := range c.created {
		if _, ok := byName[name]; !ok && !c.deleting[name] {
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
