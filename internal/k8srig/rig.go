package k8srig

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// Options configure a rig.
type Options struct {
	Dir     string // this rig's state: certificates, etcd data, logs, node roots
	BinDir  string // etcd, kube-apiserver, kube-scheduler, kube-controller-manager
	NodeBin string // the pinacle-node binary
	VKBin   string // the pinacle-vk binary
	Nodes   int
	// PortBase: etcd at PortBase, its peer port PortBase+1, the API
	// server at PortBase+2.
	PortBase int
	// OutageSeconds is the API server's default not-ready/unreachable
	// toleration (Kubernetes' default: 300); the node monitor grace period
	// of the controller manager is set to 20 s so a rig test sees an
	// outage in well under a minute.
	OutageSeconds int
	// Image is an OCI layout every node imports before it starts.
	ImageLayout string
	Log         io.Writer
}

// Rig is a running control plane and its pinacle nodes.
type Rig struct {
	opts       Options
	pki        *pki
	Server     string
	Kubeconfig string // admin
	Kube       kubernetes.Interface
	Nodes      []*Node
	etcd, api  *proc
	sched, kcm *proc
	apiPort    int
	relays     []*relay // one a node: its namespace to the API server
}

// Binaries are the control plane's programs, in BinDir.
var Binaries = []string{"etcd", "kube-apiserver", "kube-scheduler", "kube-controller-manager"}

// Start brings up etcd, the API server, the scheduler and the controller
// manager, then opts.Nodes pinacle nodes (serve + vk) and waits until
// every node is Ready. On error, what was started is stopped.
func Start(ctx context.Context, opts Options) (_ *Rig, err error) {
	for _, b := range Binaries {
		if _, err := os.Stat(filepath.Join(opts.BinDir, b)); err != nil {
			return nil, fmt.Errorf("k8s rig: %s missing in %s (run hack/k8srig/build-k8s.sh): %w", b, opts.BinDir, err)
		}
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	r := &Rig{opts: opts}
	defer func() {
		// r, not the named result: a failed Start returns nil but must
		// stop what it started and clean the nodes' host state.
		if err != nil {
			r.Stop(context.WithoutCancel(ctx))
			for _, n := range r.Nodes {
				if cerr := n.Clean(context.WithoutCancel(ctx)); cerr != nil {
					r.logf("%v", cerr)
				}
			}
		}
	}()
	if r.pki, err = newPKI(filepath.Join(opts.Dir, "pki")); err != nil {
		return nil, err
	}
	if err := r.startControlPlane(ctx); err != nil {
		return nil, err
	}
	if err := r.grantNodes(ctx); err != nil {
		return nil, err
	}
	for i := 1; i <= opts.Nodes; i++ {
		if err := r.addNode(ctx, i); err != nil {
			return nil, err
		}
	}
	for _, n := range r.Nodes {
		if err := n.WaitReady(ctx, 90*time.Second); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func (r *Rig) logf(format string, args ...any) {
	fmt.Fprintf(r.opts.Log, "k8s-rig: "+format+"\n", args...)
}

func (r *Rig) startControlPlane(ctx context.Context) error {
	p, o := r.pki, r.opts
	if err := p.controlPlaneCerts(o.Nodes); err != nil {
		return err
	}
	etcdPort, apiPort := o.PortBase, o.PortBase+2
	r.apiPort = apiPort
	r.Server = "https://127.0.0.1:" + strconv.Itoa(apiPort)
	r.Kubeconfig = filepath.Join(o.Dir, "admin.kubeconfig")
	if err := p.kubeconfig(r.Kubeconfig, r.Server, "admin"); err != nil {
		return err
	}
	bin := func(n string) string { return filepath.Join(o.BinDir, n) }
	logs := filepath.Join(o.Dir, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return err
	}
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(etcdPort)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(etcdPort+1)
	var err error
	r.logf("starting etcd at %s", etcdURL)
	r.etcd, err = startProc("etcd", filepath.Join(logs, "etcd.log"), nil, bin("etcd"), "--name", "rig",
		"--data-dir", filepath.Join(o.Dir, "etcd"), "--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL, "--initial-cluster", "rig="+peerURL,
		"--listen-metrics-urls", "")
	if err != nil {
		return err
	}
	outage := strconv.Itoa(max(o.OutageSeconds, 1))
	r.logf("starting kube-apiserver at %s", r.Server)
	r.api, err = startProc("kube-apiserver", filepath.Join(logs, "kube-apiserver.log"), nil, bin("kube-apiserver"),
		"--etcd-servers", etcdURL, "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
		"--secure-port", strconv.Itoa(apiPort), "--cert-dir", filepath.Join(o.Dir, "apiserver-certs"),
		"--tls-cert-file", p.path("apiserver.crt"), "--tls-private-key-file", p.path("apiserver.key"),
		"--client-ca-file", p.path("ca.crt"), "--kubelet-certificate-authority", p.path("ca.crt"),
		"--kubelet-client-certificate", p.path("kubelet-client.crt"), "--kubelet-client-key", p.path("kubelet-client.key"),
		"--kubelet-preferred-address-types", "InternalIP",
		// The endpoint reconciler refuses a loopback advertise address;
		// the rig has no in-cluster clients of the kubernetes Service.
		"--endpoint-reconciler-type", "none",
		"--service-account-key-file", p.path("sa.pub"), "--service-account-signing-key-file", p.path("sa.key"),
		"--service-account-issuer", "https://kubernetes.default.svc", "--service-cluster-ip-range", "10.0.0.0/24",
		"--authorization-mode", "RBAC", "--disable-admission-plugins", "ServiceAccount",
		"--default-not-ready-toleration-seconds", outage, "--default-unreachable-toleration-seconds", outage)
	if err != nil {
		return err
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", r.Kubeconfig)
	if err != nil {
		return err
	}
	if r.Kube, err = kubernetes.NewForConfig(cfg); err != nil {
		return err
	}
	if err := r.waitAPI(ctx); err != nil {
		return err
	}
	r.logf("starting kube-scheduler and kube-controller-manager")
	r.sched, err = startProc("kube-scheduler", filepath.Join(logs, "kube-scheduler.log"), nil, bin("kube-scheduler"),
		"--kubeconfig", r.Kubeconfig, "--leader-elect=false", "--bind-address", "127.0.0.1", "--secure-port", "0")
	if err != nil {
		return err
	}
	r.kcm, err = startProc("kube-controller-manager", filepath.Join(logs, "kube-controller-manager.log"), nil,
		bin("kube-controller-manager"), "--kubeconfig", r.Kubeconfig, "--leader-elect=false",
		"--bind-address", "127.0.0.1", "--secure-port", "0", "--node-monitor-grace-period", "20s",
		"--service-account-private-key-file", p.path("sa.key"), "--root-ca-file", p.path("ca.crt"),
		"--controllers", "*,-serviceaccount-token-controller")
	return err
}

func (r *Rig) waitAPI(ctx context.Context) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		body, err := r.Kube.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err == nil && string(body) == "ok" {
			return nil
		}
		if r.api.exited() || r.etcd.exited() || time.Now().After(deadline) {
			return fmt.Errorf("k8s rig: the API server did not become ready (%v)\n%s\n%s", err, r.api.tail(20), r.etcd.tail(10))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// NodeGroup is the group of the rig's node identities; grantNodes gives
// it what `pinacle-vk` needs.
const NodeGroup = "pinacle:nodes"

func (r *Rig) grantNodes(ctx context.Context) error {
	rw := []string{"get", "list", "watch", "create", "update", "patch", "delete"}
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "pinacle-node"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"pods", "pods/status", "nodes", "nodes/status", "events"}, Verbs: rw},
		{APIGroups: []string{""}, Resources: []string{"configmaps", "secrets", "services"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: rw},
		{APIGroups: []string{"events.k8s.io"}, Resources: []string{"events"}, Verbs: rw},
	}}
	if _, err := r.Kube.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("k8s rig: node role: %w", err)
	}
	b := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "pinacle-node"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "pinacle-node"},
		Subjects: []rbacv1.Subject{{Kind: "Group", APIGroup: "rbac.authorization.k8s.io", Name: NodeGroup}}}
	if _, err := r.Kube.RbacV1().ClusterRoleBindings().Create(ctx, b, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("k8s rig: node role binding: %w", err)
	}
	return nil
}

// Stop stops every node (its pods are left to the caller: Teardown
// deletes them first), the relays to the API server and then the control
// plane; the nodes' namespaces stay until Node.Clean.
func (r *Rig) Stop(ctx context.Context) {
	for _, n := range r.Nodes {
		n.Stop()
	}
	for _, rl := range r.relays {
		rl.Close()
	}
	r.relays = nil
	for _, p := range []*proc{r.kcm, r.sched, r.api, r.etcd} {
		p.stop(20 * time.Second)
	}
}

// Logs is the tail of every process's log, for a failed test.
func (r *Rig) Logs(lines int) string {
	out := ""
	for _, p := range []*proc{r.etcd, r.api, r.sched, r.kcm} {
		if p != nil {
			out += p.tail(lines) + "\n"
		}
	}
	for _, n := range r.Nodes {
		out += n.Logs(lines)
	}
	return out
}

// controlPlaneCerts issues the API server's serving pair, the admin
// identity, the API server's kubelet client pair and the service account
// key. The serving pair names 127.0.0.1 and each node's host-side
// address (10.231.N.1), where the node's namespace reaches it.
func (p *pki) controlPlaneCerts(nodes int) error {
	lo := []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.0.0.1")}
	for i := 1; i <= nodes; i++ {
		lo = append(lo, net.ParseIP(newNodeNet(i).HostIP))
	}
	for _, c := range []struct {
		name, cn string
		groups   []string
		server   bool
	}{
		{"apiserver", "kube-apiserver", nil, true},
		{"admin", "rig-admin", []string{"system:masters"}, false},
		{"kubelet-client", "kube-apiserver-kubelet-client", []string{"system:masters"}, false},
	} {
		if err := p.issue(c.name, c.cn, c.groups, lo, []string{"localhost", "kubernetes", "kubernetes.default"}, c.server); err != nil {
			return err
		}
	}
	return p.serviceAccountKey()
}
