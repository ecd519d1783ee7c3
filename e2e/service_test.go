package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pinacle/pinacle-node/internal/api"
)

// follower runs a following CLI command (logs -f, events -f) in the
// background and collects its output lines.
type follower struct {
	t     *testing.T
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []string
	done  chan struct{}
}

func (d *daemon) follow(args ...string) *follower {
	d.t.Helper()
	f := &follower{t: d.t, cmd: exec.Command(nodeBin, args...), done: make(chan struct{})}
	f.cmd.Env = append(os.Environ(), "PINACLE_SOCKET="+d.sock)
	out, err := f.cmd.StdoutPipe()
	if err != nil {
		d.t.Fatal(err)
	}
	if err := f.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	go func() {
		defer close(f.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			f.mu.Lock()
			f.lines = append(f.lines, sc.Text())
			f.mu.Unlock()
		}
	}()
	d.t.Cleanup(func() { _ = f.cmd.Process.Kill(); <-f.done; _ = f.cmd.Wait() })
	return f
}

func (f *follower) output() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.lines...)
}

// waitFor polls until a line contains s.
func (f *follower) waitFor(s string, timeout time.Duration) {
	f.t.Helper()
	poll(f.t, timeout, fmt.Sprintf("%q from %v", s, f.cmd.Args[1:]), func() bool {
		select {
		case <-f.done:
			f.t.Fatalf("%v ended; output:\n%s", f.cmd.Args[1:], strings.Join(f.output(), "\n"))
		default:
		}
		return strings.Contains(strings.Join(f.output(), "\n"), s)
	})
}

// interrupt sends ^C and wants a clean exit: ending a follow is no failure.
func (f *follower) interrupt() {
	f.t.Helper()
	_ = f.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-f.done:
	case <-time.After(20 * time.Second):
		f.t.Fatalf("%v did not end on SIGINT", f.cmd.Args[1:])
	}
	if err := f.cmd.Wait(); err != nil {
		f.t.Fatalf("%v after SIGINT: %v", f.cmd.Args[1:], err)
	}
}

// serviceLs runs `pod service ls ID -o json`.
func (d *daemon) serviceLs(pod string) api.ServiceStatus {
	d.t.Helper()
	r := d.cli("pod", "service", "ls", pod, "-o", "json")
	var st api.ServiceStatus
	if r.code != 0 {
		d.t.Fatalf("service ls: exit %d: %s", r.code, r.stderr)
	}
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		d.t.Fatalf("service ls -o json: %v: %s", err, r.stdout)
	}
	return st
}

func (d *daemon) service(pod, name string) api.ServiceInfo {
	d.t.Helper()
	for _, s := range d.serviceLs(pod).Services {
		if s.Name == name {
			return s
		}
	}
	d.t.Fatalf("service %s not in `service ls %s`", name, pod)
	return api.ServiceInfo{}
}

// A service that prints twenty lines, then one more each time /tmp/poke
// appears (the test pokes it with exec), so its output is known exactly.
func chattySpec(name string) string {
	return fmt.Sprintf(`name: %s
baseImage: %s
resources: {memoryMb: 256, storageMb: 1024}
services:
  - name: chatty
    command: [sh, -c, "for i in $(seq 1 20); do echo line-$i; done; n=0; while :; do if [ -e /tmp/poke ]; then rm /tmp/poke; n=$((n+1)); echo poked-$n; fi; sleep 0.1; done"]
`, name, busybox)
}

func TestNodeLogsTailAndFollow(t *testing.T) {
	d := startDaemon(t)
	if _, r := d.create(chattySpec("chat")); r.code != 0 {
		t.Fatalf("create: %s", r.stderr)
	}
	poll(t, 20*time.Second, "line-20 in the log", func() bool {
		return strings.Contains(d.cli("pod", "logs", "chat", "chatty").stdout, "line-20\n")
	})
	// --tail N: exactly the last N lines of the service's own output.
	if r := d.cli("pod", "logs", "chat", "chatty", "--tail", "3"); r.code != 0 || r.stdout != "line-18\nline-19\nline-20\n" {
		t.Fatalf("logs --tail 3: exit %d: %q %s", r.code, r.stdout, r.stderr)
	}
	// --follow: the backlog, then new lines as the service writes them.
	f := d.follow("pod", "logs", "chat", "chatty", "--follow")
	f.waitFor("line-20", 20*time.Second)
	for i := 1; i <= 2; i++ {
		if r := d.cli("pod", "exec", "chat", "--", "touch", "/tmp/poke"); r.code != 0 {
			t.Fatalf("poke: %s", r.stderr)
		}
		f.waitFor(fmt.Sprintf("poked-%d", i), 20*time.Second)
	}
	f.interrupt()
	// The whole service output, once each, in order (the supervisor's own
	// "started" line may precede it).
	var own []string
	for _, l := range f.output() {
		if !strings.HasPrefix(l, "[pinacle ") {
			own = append(own, l)
		}
	}
	want := []string{}
	for i := 1; i <= 20; i++ {
		want = append(want, fmt.Sprintf("line-%d", i))
	}
	want = append(want, "poked-1", "poked-2")
	if strings.Join(own, "\n") != strings.Join(want, "\n") {
		t.Fatalf("logs --follow printed:\n%s", strings.Join(f.output(), "\n"))
	}
}

func TestNodeEventsFollow(t *testing.T) {
	d := startDaemon(t)
	p, r := d.create(chattySpec("evf"))
	if r.code != 0 {
		t.Fatalf("create: %s", r.stderr)
	}
	f := d.follow("pod", "events", "evf", "--follow", "-o", "json")
	f.waitFor(`"to":"running"`, 20*time.Second)
	since := len(f.output())
	for _, op := range []string{"stop", "start"} {
		if r := d.cli("pod", op, "evf"); r.code != 0 {
			t.Fatalf("%s: exit %d: %s", op, r.code, r.stderr)
		}
	}
	want := []string{"running>stopping", "stopping>stopped", "stopped>starting", "starting>running"}
	var got []string
	poll(t, 30*time.Second, "the stop and start transitions", func() bool {
		got = nil
		for _, l := range f.output()[since:] {
			var ev api.Event
			if err := json.Unmarshal([]byte(l), &ev); err != nil {
				t.Fatalf("events -o json line %q: %v", l, err)
			}
			if ev.PodID != p.ID {
				t.Fatalf("event of another pod: %s", l)
			}
			if ev.Type == api.EventState {
				got = append(got, fmt.Sprintf("%s>%s", ev.From, ev.To))
			}
		}
		return len(got) >= len(want)
	})
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("state transitions while following = %v, want %v", got, want)
	}
	// It keeps following: a later stop shows up on the same stream.
	if r := d.cli("pod", "stop", "evf"); r.code != 0 {
		t.Fatalf("stop: %s", r.stderr)
	}
	f.waitFor(`"to":"stopped"`, 30*time.Second)
	f.interrupt()
}

func TestNodeServiceControl(t *testing.T) {
	d := startDaemon(t)
	spec := webSpec("svc", "")
	// A second service, to restart while web is stopped.
	spec = strings.Replace(spec, "network:\n", "  - name: idle\n    command: [sleep, \"100000\"]\n    restart: always\nnetwork:\n", 1)
	p, r := d.create(spec)
	if r.code != 0 {
		t.Fatalf("create: %s", r.stderr)
	}
	url := p.Ports[0].URL + "/index.html"
	// A service with a health check is "healthy" when up, one without "running".
	up := func(s api.ServiceInfo) bool { return (s.State == "healthy" || s.State == "running") && s.Pid != 0 }
	web := d.service("svc", "web")
	if !up(web) {
		t.Fatalf("web after create: %+v", web)
	}
	if r := d.cli("pod", "service", "restart", "svc", "web"); r.code != 0 {
		t.Fatalf("restart: exit %d: %s", r.code, r.stderr)
	}
	var again api.ServiceInfo
	poll(t, 20*time.Second, "web running again", func() bool {
		again = d.service("svc", "web")
		return up(again)
	})
	if again.Pid == web.Pid || again.Restarts != web.Restarts+1 {
		t.Fatalf("restart: before %+v after %+v; want a new pid and one more restart", web, again)
	}
	poll(t, 20*time.Second, "web serving after its restart", func() bool {
		_, err := httpGet(url, 2*time.Second)
		return err == nil
	})
	if r := d.cli("pod", "service", "stop", "svc", "web"); r.code != 0 {
		t.Fatalf("stop: exit %d: %s", r.code, r.stderr)
	}
	stopped := d.service("svc", "web")
	if stopped.State != "stopped" || stopped.Pid != 0 {
		t.Fatalf("after stop: %+v", stopped)
	}
	// Restart the other service and wait for it: web, stopped by hand,
	// must stay stopped meanwhile (no restart policy brings it back).
	idle := d.service("svc", "idle")
	if r := d.cli("pod", "service", "restart", "svc", "idle"); r.code != 0 {
		t.Fatalf("restart idle: %s", r.stderr)
	}
	poll(t, 20*time.Second, "idle running with a new pid", func() bool {
		s := d.service("svc", "idle")
		return up(s) && s.Pid != idle.Pid
	})
	if s := d.service("svc", "web"); s.State != "stopped" || s.Pid != 0 || s.Restarts != stopped.Restarts || !s.Since.Equal(stopped.Since) {
		t.Fatalf("a stopped service did not stay stopped: %+v, was %+v", s, stopped)
	}
	if _, err := httpGet(url, 2*time.Second); err == nil {
		t.Fatal("web answers while stopped")
	}
	if r := d.cli("pod", "service", "start", "svc", "web"); r.code != 0 {
		t.Fatalf("start: %s", r.stderr)
	}
	poll(t, 20*time.Second, "web serving after start", func() bool {
		_, err := httpGet(url, 2*time.Second)
		return err == nil && up(d.service("svc", "web"))
	})
	if r := d.cli("pod", "service", "stop", "svc", "nosuch", "-o", "json"); r.code != 3 || !strings.Contains(r.stderr, "not_found") {
		t.Fatalf("stop of an unknown service: exit %d: %s", r.code, r.stderr)
	}
}

// TestNodeRestartBackoff: a crashing service is restarted with growing
// delays at the supervisor's real defaults. The service records each start
// (the sandbox's uptime) and the restarts are counted by `service ls`.
func TestNodeRestartBackoff(t *testing.T) {
	d := startDaemon(t)
	spec := fmt.Sprintf(`name: crashy
baseImage: %s
resources: {memoryMb: 256, storageMb: 1024}
services:
  - name: crashy
    command: [sh, -c, "if [ -e /tmp/crash ]; then read up idle < /proc/uptime; echo $up >> /tmp/starts; exit 3; fi; exec sleep 100000"]
    restart: on-failure
`, busybox)
	if _, r := d.create(spec); r.code != 0 {
		t.Fatalf("create: %s", r.stderr)
	}
	// Healthy through create (which waits for readiness), then crashing.
	if r := d.cli("pod", "exec", "crashy", "--", "touch", "/tmp/crash"); r.code != 0 {
		t.Fatalf("exec: %s", r.stderr)
	}
	base := d.service("crashy", "crashy").Restarts
	if r := d.cli("pod", "service", "restart", "crashy", "crashy"); r.code != 0 {
		t.Fatalf("restart: %s", r.stderr)
	}
	const crashes = 6
	var s api.ServiceInfo
	poll(t, 60*time.Second, fmt.Sprintf("%d restarts after crashes", crashes), func() bool {
		s = d.service("crashy", "crashy")
		return s.Restarts-base-1 >= crashes
	})
	if s.LastExitCode == nil || *s.LastExitCode != 3 {
		t.Fatalf("service = %+v; want last exit code 3", s)
	}
	r := d.cli("pod", "exec", "crashy", "--", "cat", "/tmp/starts")
	var starts []float64
	for _, f := range strings.Fields(r.stdout) {
		v, err := strconv.ParseFloat(f, 64)
		if err != nil {
			t.Fatalf("/tmp/starts: %q", r.stdout)
		}
		starts = append(starts, v)
	}
	if len(starts) < crashes+1 {
		t.Fatalf("%d starts recorded, want %d or more (service ls counted %d restarts): %q", len(starts), crashes+1, s.Restarts, r.stdout)
	}
	var gaps []float64
	for i := 1; i <= crashes; i++ {
		gaps = append(gaps, starts[i]-starts[i-1])
	}
	t.Logf("intervals between starts (s): %v", gaps)
	// The delay doubles per crash: from the fourth gap on each is longer
	// than the one before (the delays differ by 400 ms and more there; the
	// first ones by less than a loaded host's start-up noise), and the last
	// is well over twice the first.
	for i := 3; i < len(gaps); i++ {
		if gaps[i] <= gaps[i-1] {
			t.Errorf("gap %d (%.2fs) not longer than gap %d (%.2fs): %v", i, gaps[i], i-1, gaps[i-1], gaps)
		}
	}
	if last := gaps[len(gaps)-1]; last <= 2*gaps[0] {
		t.Errorf("last gap %.2fs not over twice the first %.2fs: the delay does not grow", last, gaps[0])
	}
}
