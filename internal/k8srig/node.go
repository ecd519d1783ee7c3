package k8srig

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pinacle/pinacle-node/oci"
)

// Node is one pinacle node of the rig, in its own network namespace
// (k8srig-N, with a veth to the host: 10.231.N.1 on the host, Addr =
// 10.231.N.2 inside, on which its host ports, gateway and kubelet API
// listen, and which is its InternalIP), with its own data root, runsc
// root, cgroup parent, socket, subnet pool and host port range, so two
// nodes on one host share no runsc state or addresses.
type Node struct {
	rig       *Rig
	Index     int
	Name      string
	Dir       string
	Config    string // node.yaml
	Socket    string
	Addr      string
	RunscRoot string
	// Netns is the node's network namespace, under /run/netns.
	Netns string
	// CgroupParent is node.yaml's cgroupParent: the node's pods' cgroups
	// are made under it, and its cleanup removes it.
	CgroupParent string
	Kubeconfig   string
	PortMin      int
	PortMax      int
	net          *nodeNet
	serve, vk    *proc
}

// addNode makes node i's network namespace, configuration and identity,
// imports the image and starts it; the node is in r.Nodes before its
// namespace is made, so a failed Start removes whatever it got to.
func (r *Rig) addNode(ctx context.Context, i int) error {
	dir := filepath.Join(r.opts.Dir, fmt.Sprintf("node%d", i))
	nn := newNodeNet(i)
	n := &Node{rig: r, Index: i, Name: fmt.Sprintf("pinacle-%d", i), Dir: dir, Config: filepath.Join(dir, "node.yaml"),
		Socket: filepath.Join(dir, "node.sock"), Addr: nn.Addr, RunscRoot: filepath.Join(dir, "runsc"), Netns: nn.Name, net: nn,
		Kubeconfig: filepath.Join(dir, "kubeconfig"), CgroupParent: fmt.Sprintf("/pinacle-k8srig-%d", i), PortMin: 26000 + 100*i, PortMax: 26000 + 100*i + 99}
	r.Nodes = append(r.Nodes, n)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := nn.setup(ctx); err != nil {
		return err
	}
	// The node reaches the API server through its host side (relay.go).
	rl, err := newRelay(net.JoinHostPort(nn.HostIP, strconv.Itoa(r.apiPort)), net.JoinHostPort("127.0.0.1", strconv.Itoa(r.apiPort)))
	if err != nil {
		return fmt.Errorf("k8s rig: %s: relay to the API server: %w", n.Name, err)
	}
	r.relays = append(r.relays, rl)
	cfg := fmt.Sprintf(`dataRoot: %s/data
runscRoot: %s
socket: %s
templatesDir: %s/templates
cgroupParent: %s
network: {pool: 10.%d.0.0/16}
ports: {min: %d, max: %d, listenAddr: %s, urlHost: %s}
gateway: {port: %d, listenAddr: %s}
`, dir, n.RunscRoot, n.Socket, dir, n.CgroupParent, 80+i, n.PortMin, n.PortMax, n.Addr, n.Addr, 25800+i, n.Addr)
	if err := os.WriteFile(n.Config, []byte(cfg), 0o644); err != nil {
		return err
	}
	if err := r.pki.issue(n.Name, "system:node:"+n.Name, []string{NodeGroup}, nil, nil, false); err != nil {
		return err
	}
	// The kubelet API's serving pair, for its address: the API server
	// checks it against the rig's CA (logs, exec).
	if err := r.pki.issue(n.Name+"-kubelet", "system:node:"+n.Name, nil, []net.IP{net.ParseIP(n.Addr)}, []string{n.Name}, true); err != nil {
		return err
	}
	if err := r.pki.kubeconfig(n.Kubeconfig, "https://"+net.JoinHostPort(nn.HostIP, strconv.Itoa(r.apiPort)), n.Name); err != nil {
		return err
	}
	if r.opts.ImageLayout != "" {
		cmd := exec.CommandContext(ctx, r.opts.NodeBin, "image", "import", r.opts.ImageLayout)
		cmd.Env = append(os.Environ(), n.Env()...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("k8s rig: %s: image import: %w: %s", n.Name, err, out)
		}
	}
	return n.Start(ctx)
}

// Start starts the node's daemon, waits for its socket, then starts vk.
func (n *Node) Start(ctx context.Context) error {
	if err := n.StartServe(ctx); err != nil {
		return err
	}
	return n.StartVK()
}

// StartServe starts `pinacle-node serve` and waits for its socket.
func (n *Node) StartServe(ctx context.Context) error {
	var err error
	n.serve, err = startProc(n.Name+" serve", filepath.Join(n.Dir, "serve.log"), nil, n.net.command(n.rig.opts.NodeBin, "serve", "--config", n.Config)...)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if c, err := net.Dial("unix", n.Socket); err == nil {
			c.Close()
			return nil
		}
		if n.serve.exited() || time.Now().After(deadline) {
			return fmt.Errorf("k8s rig: %s: daemon did not come up\n%s", n.Name, n.serve.tail(20))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// StartVK starts `pinacle-vk` for the node.
func (n *Node) StartVK() error {
	var err error
	n.vk, err = startProc(n.Name+" vk", filepath.Join(n.Dir, "vk.log"), nil, n.net.command(n.rig.opts.VKBin,
		"--kubeconfig", n.Kubeconfig, "--node-name", n.Name, "--socket", n.Socket, "--address", n.Addr,
		"--listen", net.JoinHostPort(n.Addr, "10250"), "--client-ca", n.rig.pki.path("ca.crt"),
		"--tls-cert", n.rig.pki.path(n.Name+"-kubelet.crt"), "--tls-key", n.rig.pki.path(n.Name+"-kubelet.key"),
		"--cpu", "2", "--memory", "8Gi", "--pods", "20")...)
	return err
}

// Kill SIGKILLs the node's vk and daemon: a crash of the node's
// processes; its sandboxes keep running.
func (n *Node) Kill() {
	n.vk.kill()
	n.serve.kill()
}

// Stop stops vk and the daemon with SIGTERM; pods keep running.
func (n *Node) Stop() {
	n.vk.stop(20 * time.Second)
	n.serve.stop(30 * time.Second)
}

// WaitReady waits until Kubernetes reports the node Ready.
func (n *Node) WaitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		kn, err := n.rig.Kube.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
		if err == nil {
			for _, c := range kn.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
					return nil
				}
			}
		}
		if time.Now().After(deadline) || (n.vk != nil && n.vk.exited()) {
			return fmt.Errorf("k8s rig: node %s not ready (%v)\n%s", n.Name, err, n.Logs(20))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Clean runs `pinacle-node cleanup` for the node in its namespace (its
// processes stopped first), releases its runsc root, checks that the
// namespace holds nothing the node made there (bridges, veths, chains,
// routes, qdiscs), then removes the namespace and its veth whatever
// failed before. Idempotent: what is gone is not an error.
func (n *Node) Clean(ctx context.Context) error {
	var errs []error
	if _, err := os.Stat(n.net.Path()); err == nil {
		argv := n.net.command(n.rig.opts.NodeBin, "cleanup", "--config", n.Config)
		if out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("k8s rig: %s: cleanup: %w: %s", n.Name, err, out))
		}
	}
	if err := oci.ReleaseRoot(n.RunscRoot); err != nil {
		errs = append(errs, fmt.Errorf("k8s rig: %s: %w", n.Name, err))
	}
	errs = append(errs, n.net.leaks(ctx, 15*time.Second), n.net.remove(ctx))
	return errors.Join(errs...)
}

// Logs is the tail of the node's daemon and vk logs.
func (n *Node) Logs(lines int) string {
	out := ""
	for _, p := range []*proc{n.serve, n.vk} {
		if p != nil {
			out += p.tail(lines) + "\n"
		}
	}
	return out
}

// Env is the environment that points the pinacle-node CLI at this node.
func (n *Node) Env() []string {
	return []string{"PINACLE_SOCKET=" + n.Socket, "PINACLE_DATA_ROOT=" + n.Dir + "/data", "PINACLE_RUNSC_ROOT=" + n.RunscRoot}
}

// PortRange is the node's host port range as "min-max".
func (n *Node) PortRange() string { return strconv.Itoa(n.PortMin) + "-" + strconv.Itoa(n.PortMax) }

// Command is argv run in the node's network namespace.
func (n *Node) Command(ctx context.Context, argv ...string) *exec.Cmd {
	a := n.net.command(argv...)
	return exec.CommandContext(ctx, a[0], a[1:]...)
}
