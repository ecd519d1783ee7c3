package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/internal/apiserver"
	"github.com/pinacle/pinacle-node/internal/cli"
	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/internal/hostcli"
	"github.com/pinacle/pinacle-node/internal/lifecycle"
)

// cliFake is the smallest api.Service the CLI tests need; the methods it
// does not implement panic through the nil embedded interface. The real
// manager behind the real binary is covered by the e2e suite.
type cliFake struct {
	api.Service
	pod     api.Pod
	created *api.CreateRequest
}

func (f *cliFake) find(id string) (*api.Pod, error) {
	if id != f.pod.ID && id != f.pod.Name {
		return nil, fmt.Errorf("pod %s: %w", id, errdefs.ErrNotFound)
	}
	p := f.pod
	return &p, nil
}

func (f *cliFake) Create(_ context.Context, req api.CreateRequest) (*api.Pod, error) {
	f.created = &req
	p := f.pod
	p.Name = req.Spec.Name
	return &p, nil
}
func (f *cliFake) Get(_ context.Context, id string) (*api.Pod, error) { return f.find(id) }
func (f *cliFake) List(context.Context) ([]*api.Pod, error) {
	p := f.pod
	return []*api.Pod{&p}, nil
}
func (f *cliFake) Health(_ context.Context, id string) (*api.Health, error) {
	p, err := f.find(id)
	if err != nil {
		return nil, err
	}
	return &api.Health{PodID: p.ID, Healthy: false, State: p.State, Reason: "service app unhealthy"}, nil
}
func (f *cliFake) Exec(ctx context.Context, id string, req api.ExecRequest) (int, error) {
	if _, err := f.find(id); err != nil {
		return -1, err
	}
	c := exec.CommandContext(ctx, req.Args[0], req.Args[1:]...)
	c.Stdin, c.Stdout, c.Stderr = req.Stdin, req.Stdout, req.Stderr
	err := c.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), nil
	}
	return 0, err
}

func (f *cliFake) Events(ctx context.Context, id string, since uint64, follow bool, fn func(api.Event) error) error {
	if _, err := f.find(id); err != nil {
		return err
	}
	for i, to := range []lifecycle.State{lifecycle.Pending, lifecycle.Provisioning, lifecycle.Running} {
		ev := api.Event{Seq: uint64(i + 1), PodID: f.pod.ID, Type: api.EventState, To: to}
		if i > 0 {
			ev.From = lifecycle.Pending
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
	if !follow {
		return nil
	}
	<-ctx.Done() // a follower waits for more until it stops reading
	return ctx.Err()
}

func (f *cliFake) Metrics(_ context.Context, id string) (*api.Metrics, error) {
	p, err := f.find(id)
	if err != nil {
		return nil, err
	}
	return &api.Metrics{PodID: p.ID,
		Sandbox: &api.SandboxStats{CPUUsageNanos: 2_500_000_000, MemoryUsage: 40 << 20, MemoryLimit: 1 << 30, MemoryMaxUsage: 50 << 20, Pids: 7},
		Ports:   []api.PortCounters{{Name: "app", HostPort: 30123, ConnsTotal: 4, BytesIn: 2048, BytesOut: 5 << 20}},
	}, nil
}

func (f *cliFake) ServiceControl(_ context.Context, id, op, name string) (*api.ServiceStatus, error) {
	p, err := f.find(id)
	if err != nil {
		return nil, err
	}
	return &api.ServiceStatus{Ready: true, Services: p.Services}, nil
}

// runCLI runs `pinacle-node ARGS...` in process and returns stdout and the exit code.
func runCLI(t *testing.T, args ...string) (string, int) {
	t.Helper()
	root := &cobra.Command{Use: "pinacle-node", SilenceErrors: true, SilenceUsage: true}
	cli.AddOutputFlag(root)
	root.AddCommand(newPodCmd())
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetIn(strings.NewReader(""))
	root.SetArgs(args)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd, err := root.ExecuteContextC(ctx)
	return out.String(), cli.HandleError(cmd, err)
}

func startCLIServer(t *testing.T) (*cliFake, string) {
	t.Helper()
	f := &cliFake{pod: api.Pod{
		ID: "p1", Name: "web", State: lifecycle.Running, Template: "nodejs", IP: "10.77.0.2",
		Ports:     []api.PortStatus{{Name: "app", Internal: 3000, External: 30123}},
		CreatedAt: time.Now().Add(-time.Hour),
	}}
	sock := filepath.Join(t.TempDir(), "node.sock")
	srv, err := apiserver.NewServer(f)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := apiserver.ListenUnix(sock, apiserver.WithSocketGroup(""))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	return f, sock
}

func TestPodCLI(t *testing.T) {
	f, sock := startCLIServer(t)
	t.Setenv(envURLHost, "")

	out, code := runCLI(t, "pod", "ls", "--socket", sock, "-o", "json")
	var ps []api.Pod
	if code != 0 || json.Unmarshal([]byte(out), &ps) != nil || len(ps) != 1 || ps[0].ID != "p1" {
		t.Fatalf("pod ls -o json: exit %d, %q", code, out)
	}
	if ps[0].Ports[0].URL != "http://127.0.0.1:30123" {
		t.Fatalf("port URL = %q", ps[0].Ports[0].URL)
	}
	out, code = runCLI(t, "pod", "ls", "--socket", sock)
	if code != 0 || !strings.Contains(out, "app=http://127.0.0.1:30123") || !strings.Contains(out, "1h") {
		t.Fatalf("pod ls table: exit %d\n%s", code, out)
	}

	// --url-host replaces the host in URLs.
	out, code = runCLI(t, "pod", "get", "web", "--socket", sock, "--url-host", "pod.example", "-o", "json")
	var p api.Pod
	if code != 0 || json.Unmarshal([]byte(out), &p) != nil || p.Ports[0].URL != "http://pod.example:30123" {
		t.Fatalf("pod get --url-host: exit %d, %q", code, out)
	}

	// Errors keep their class's exit code.
	if _, code = runCLI(t, "pod", "get", "nope", "--socket", sock, "-o", "json"); code != errdefs.ExitNotFound {
		t.Fatalf("pod get nope: exit %d, want %d", code, errdefs.ExitNotFound)
	}
	if _, code = runCLI(t, "pod", "get", "../x", "--socket", sock); code != errdefs.ExitInvalidArgument {
		t.Fatalf("pod get ../x: exit %d", code)
	}
	if _, code = runCLI(t, "pod", "ls", "--socket", filepath.Join(t.TempDir(), "none.sock")); code != errdefs.ExitUnavailable {
		t.Fatalf("no daemon: exit %d, want %d", code, errdefs.ExitUnavailable)
	}

	// create: the file, --name and --image make the spec; --set goes to the node.
	spec := filepath.Join(t.TempDir(), "pod.yaml")
	if err := os.WriteFile(spec, []byte("template: nodejs\nresources:\n  tier: dev.small\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, code = runCLI(t, "pod", "create", "-f", spec, "--name", "api", "--image", "busybox:1", "--set", "resources.tier=dev.large", "--socket", sock, "-o", "json")
	if code != 0 || f.created == nil {
		t.Fatalf("pod create: exit %d, %q", code, out)
	}
	if r := f.created; r.Spec.Name != "api" || r.Spec.BaseImage != "busybox:1" || r.Spec.Resources.Tier != "dev.small" || !r.Wait || len(r.Sets) != 1 {
		t.Fatalf("create request = %+v", r)
	}
	if err := os.WriteFile(spec, []byte("nmae: typo\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, code = runCLI(t, "pod", "create", "-f", spec, "--socket", sock); code != errdefs.ExitInvalidArgument {
		t.Fatalf("create with an unknown field: exit %d", code)
	}

	// health: printed, and exit 1 when unhealthy.
	out, code = runCLI(t, "pod", "health", "web", "--socket", sock, "-o", "json")
	var h api.Health
	if code != 1 || json.Unmarshal([]byte(out), &h) != nil || h.Healthy {
		t.Fatalf("pod health: exit %d, %q", code, out)
	}

	// exec: the process's code passes through; node failures are 125.
	out, code = runCLI(t, "pod", "exec", "--socket", sock, "web", "--", "/bin/sh", "-c", "echo hi; exit 3")
	if code != 3 || out != "hi\n" {
		t.Fatalf("exec exit 3: exit %d, %q", code, out)
	}
	out, code = runCLI(t, "pod", "exec", "--socket", sock, "web", "/bin/echo", "-n", "flags", "-x")
	if code != 0 || out != "flags -x" {
		t.Fatalf("exec with flags in the command: exit %d, %q", code, out)
	}
	if _, code = runCLI(t, "pod", "exec", "--socket", sock, "nope", "--", "true"); code != exitExecNode {
		t.Fatalf("exec in a missing pod: exit %d, want %d", code, exitExecNode)
	}
}

// TestTablesMatchHostCLI: the macOS host CLI runs these commands with
// -o json in the VM and renders the JSON itself; what it prints must be
// exactly what this CLI prints as a table.
func TestTablesMatchHostCLI(t *testing.T) {
	f, sock := startCLIServer(t)
	t.Setenv(envURLHost, "")
	f.pod.Image = "node:22"
	f.pod.Reason = "restarted after an OOM"
	f.pod.Ports = append(f.pod.Ports, api.PortStatus{Name: "debug", Internal: 9229})
	f.pod.Services = []api.ServiceInfo{
		{Name: "app", State: api.ServiceRunning, Health: "unhealthy", Restarts: 1, Pid: 12},
		{Name: "ide", State: api.ServiceHealthy, Health: "healthy", LastError: "exited 1"},
	}
	for _, tc := range []struct {
		args   []string
		render func(io.Writer, []byte) error
	}{
		{[]string{"pod", "ls"}, hostcli.RenderPods},
		{[]string{"pod", "get", "web"}, hostcli.RenderPod},
		{[]string{"pod", "metrics", "web"}, hostcli.RenderMetrics},
		{[]string{"pod", "health", "web"}, hostcli.RenderHealth},
		{[]string{"pod", "events", "web"}, hostcli.RenderEvents},
		{[]string{"pod", "service", "ls", "web"}, hostcli.RenderServices},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			args := append(tc.args, "--socket", sock)
			table, code := runCLI(t, args...)
			js, jcode := runCLI(t, append(args, "-o", "json")...)
			if code != jcode || (code != 0 && code != 1) {
				t.Fatalf("exit %d (table), %d (json):\n%s\n%s", code, jcode, table, js)
			}
			var host strings.Builder
			if err := tc.render(&host, []byte(js)); err != nil {
				t.Fatalf("host CLI rendering: %v\n%s", err, js)
			}
			if host.String() != table {
				t.Errorf("the host CLI prints\n%s\nthe node CLI prints\n%s", host.String(), table)
			}
			t.Logf("%s:\n%s", strings.Join(tc.args, " "), table)
			if strings.Count(table, "\n") < 2 {
				t.Errorf("table too short to compare:\n%s", table)
			}
		})
	}
}

func TestFollowUntilSettled(t *testing.T) {
	_, sock := startCLIServer(t)
	c := api.NewClient(sock)
	defer c.Close()
	var changes []lifecycle.State
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	final, err := followUntilSettled(ctx, c, "p1", func(ev api.Event) { changes = append(changes, ev.To) })
	if err != nil || final != lifecycle.Running {
		t.Fatalf("followUntilSettled = %s, %v", final, err)
	}
	if len(changes) != 2 || changes[0] != lifecycle.Provisioning || changes[1] != lifecycle.Running {
		t.Fatalf("state changes shown = %v", changes)
	}
	if _, err := followUntilSettled(ctx, c, "nope", func(api.Event) {}); !errdefs.IsNotFound(err) {
		t.Fatalf("missing pod: %v", err)
	}
}

// TestPodExecTTY runs `pod exec -it` with a real pty as the local
// terminal: raw mode, the initial size, SIGWINCH as a resize, the exit
// code, and the terminal restored afterwards.
func TestPodExecTTY(t *testing.T) {
	_, sock := startCLIServer(t)
	master, slave, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	defer slave.Close()
	if err := pty.Setsize(master, &pty.Winsize{Rows: 30, Cols: 100}); err != nil {
		t.Fatal(err)
	}
	before, err := term.GetState(int(slave.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var out strings.Builder
	go func() {
		b := make([]byte, 4096)
		for {
			n, err := master.Read(b)
			mu.Lock()
			out.Write(b[:n])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	waitOut := func(s string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			mu.Lock()
			ok := strings.Contains(out.String(), s)
			mu.Unlock()
			if ok {
				return
			}
			if time.Now().After(deadline) {
				mu.Lock()
				defer mu.Unlock()
				t.Fatalf("no %q in terminal output %q", s, out.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	root := &cobra.Command{Use: "pinacle-node", SilenceErrors: true, SilenceUsage: true}
	cli.AddOutputFlag(root)
	root.AddCommand(newPodCmd())
	root.SetIn(slave)
	root.SetOut(slave)
	root.SetErr(slave)
	root.SetArgs([]string{"pod", "exec", "-it", "--socket", sock, "web", "--", "/bin/sh", "-c",
		`stty size; while read x; do [ "$x" = q ] && exit 4; stty size; done`})
	codec := make(chan int, 1)
	go func() {
		cmd, err := root.ExecuteContextC(context.Background())
		codec <- cli.HandleError(cmd, err)
	}()
	waitOut("30 100")
	raw, err := term.GetState(int(slave.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	if reflect.DeepEqual(raw, before) {
		t.Fatal("local terminal not in raw mode during exec -it")
	}
	if err := pty.Setsize(master, &pty.Winsize{Rows: 40, Cols: 120}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGWINCH); err != nil {
		t.Fatal(err)
	}
	// Raw mode: the CR goes through as is, and the pod's terminal makes
	// it a newline; each line makes the loop print the size again. The
	// SIGWINCH is handled asynchronously, so poll until the new size shows.
	waitResize := time.Now().Add(15 * time.Second)
	for {
		master.Write([]byte("\r"))
		mu.Lock()
		ok := strings.Contains(out.String(), "40 120")
		mu.Unlock()
		if ok || time.Now().After(waitResize) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	waitOut("40 120")
	master.Write([]byte("q\r"))
	select {
	case code := <-codec:
		if code != 4 {
			t.Fatalf("exec -it exit code = %d, want 4", code)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("exec -it did not end")
	}
	after, err := term.GetState(int(slave.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(after, before) {
		t.Fatal("local terminal not restored after exec -it")
	}
}
