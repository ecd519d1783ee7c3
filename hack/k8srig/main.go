// Command k8srig brings up the Kubernetes rig (make k8s-rig): etcd,
// kube-apiserver, kube-scheduler and kube-controller-manager on
// 127.0.0.1 and three pinacle nodes joined through `pinacle-vk`, each in
// its own network namespace, prints how to reach it, and on SIGINT/SIGTERM
// deletes every pod, stops everything and cleans the nodes (and removes
// their namespaces).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pinacle/pinacle-node/internal/k8srig"
	"github.com/pinacle/pinacle-node/internal/testimage"
)

func main() {
	dir := flag.String("dir", "/var/lib/pinacle-k8s-rig/run", "the rig's state (removed and made afresh)")
	bin := flag.String("bin", "/var/lib/pinacle-k8s-rig/bin", "where build-k8s.sh put the control plane")
	node := flag.String("node-bin", "bin/pinacle-node", "the pinacle-node binary")
	vkBin := flag.String("vk-bin", "bin/pinacle-vk", "the pinacle-vk binary")
	nodes := flag.Int("nodes", 3, "how many pinacle nodes")
	flag.Parse()
	if err := run(*dir, *bin, *node, *vkBin, *nodes); err != nil {
		fmt.Fprintln(os.Stderr, "k8s-rig:", err)
		os.Exit(1)
	}
}

func run(dir, bin, nodeBin, vkBin string, nodes int) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	nodeBin, err := filepath.Abs(nodeBin)
	if err != nil {
		return err
	}
	if vkBin, err = filepath.Abs(vkBin); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	img, err := testimage.Busybox()
	if err != nil {
		return err
	}
	layout := filepath.Join(dir, "layout")
	if err := testimage.WriteOCILayout(layout, map[string]v1.Image{"pinacle.local/busybox:latest": img}); err != nil {
		return err
	}
	r, err := k8srig.Start(ctx, k8srig.Options{Dir: dir, BinDir: bin, NodeBin: nodeBin, VKBin: vkBin, Nodes: nodes,
		PortBase: 26400, OutageSeconds: 300, ImageLayout: layout, Log: os.Stderr})
	if err != nil {
		return err
	}
	fmt.Printf("k8s-rig: up. export KUBECONFIG=%s\n", r.Kubeconfig)
	for _, n := range r.Nodes {
		fmt.Printf("  node %s: network namespace %s, address %s, host ports %s, PINACLE_SOCKET=%s\n", n.Name, n.Netns, n.Addr, n.PortRange(), n.Socket)
	}
	fmt.Println("k8s-rig: the image pinacle.local/busybox:latest is on every node; ^C deletes every pod and stops the rig")
	<-ctx.Done()
	down := context.Background()
	pods, _ := r.Kube.CoreV1().Pods("").List(down, metav1.ListOptions{})
	for _, p := range pods.Items {
		_ = r.Kube.CoreV1().Pods(p.Namespace).Delete(down, p.Name, metav1.DeleteOptions{})
	}
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if pl, err := r.Kube.CoreV1().Pods("").List(down, metav1.ListOptions{}); err == nil && len(pl.Items) == 0 {
			break
		}
	}
	r.Stop(down)
	for _, n := range r.Nodes {
		if err := n.Clean(down); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	return nil
}
