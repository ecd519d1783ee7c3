package vk

import (
	"context"
	"fmt"
	"io"
	"time"

	dto "github.com/prometheus/client_model/go"
	vkerrdefs "github.com/virtual-kubelet/virtual-kubelet/errdefs"
	vkapi "github.com/virtual-kubelet/virtual-kubelet/node/api"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	statsv1alpha1 "k8s.io/kubelet/pkg/apis/stats/v1alpha1"

	"github.com/pinacle/pinacle-node/internal/api"
)

// pinacleOf finds the pinacle pod name of a Kubernetes pod of this node.
func (p *Provider) pinacleOf(namespace, name string) (string, error) {
	kp, err := p.pods.Pods(namespace).Get(name)
	if err != nil {
		return "", vkerrdefs.NotFoundf("pod %s/%s", namespace, name)
	}
	return PinacleName(kp), nil
}

// GetContainerLogs streams the log of the service the container maps to
// (kubectl logs), as the node's own `pod logs` does.
func (p *Provider) GetContainerLogs(ctx context.Context, namespace, podName, containerName string, opts vkapi.ContainerLogOpts) (io.ReadCloser, error) {
	name, err := p.pinacleOf(namespace, podName)
	if err != nil {
		return nil, err
	}
	tail := -1
	if opts.Tail > 0 {
		tail = opts.Tail
	}
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(p.node.Logs(ctx, name, containerName, tail, opts.Follow, pw))
	}()
	return pr, nil
}

// RunInContainer runs cmd in the pod's sandbox (kubectl exec), with a
// terminal when asked; the container name only selects the pod.
func (p *Provider) RunInContainer(ctx context.Context, namespace, podName, _ string, cmd []string, attach vkapi.AttachIO) error {
	name, err := p.pinacleOf(namespace, podName)
	if err != nil {
		return err
	}
	var resize chan api.Size
	if attach.TTY() {
		resize = make(chan api.Size, 1)
		go func() {
			defer close(resize)
			for sz := range attach.Resize() {
				select {
				case resize <- api.Size{Cols: sz.Width, Rows: sz.Height}:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	var stdout, stderr io.Writer
	if w := attach.Stdout(); w != nil {
		defer w.Close()
		stdout = w
	}
	if w := attach.Stderr(); w != nil {
		defer w.Close()
		stderr = w
	}
	code, err := p.node.ExecStream(ctx, name, api.ExecOptions{Args: cmd, Tty: attach.TTY()}, attach.Stdin(), stdout, stderr, resize)
	if err != nil {
		return err
	}
	if code != 0 {
		return fmt.Errorf("command terminated with exit code %d", code)
	}
	return nil
}

// AttachToContainer is not offered: a service's stdio goes to its log,
// not to a terminal one could attach to.
func (p *Provider) AttachToContainer(context.Context, string, string, string, vkapi.AttachIO) error {
	return vkerrdefs.InvalidInput("attach is not supported by pinacle pods: use kubectl logs -f or kubectl exec")
}

// PortForward is not offered: every container port is already forwarded
// to a host port, published in the pinacle.dev/ports annotation.
func (p *Provider) PortForward(context.Context, string, string, int32, io.ReadWriteCloser) error {
	return vkerrdefs.InvalidInput("port-forward is not supported: the pod's ports are forwarded to host ports, see its " + AnnoPorts + " annotation")
}

// GetStatsSummary reports each running pod's CPU and memory from the
// node's metrics (runsc's cgroup stats).
func (p *Provider) GetStatsSummary(ctx context.Context) (*statsv1alpha1.Summary, error) {
	now := metav1.NewTime(time.Now())
	sum := &statsv1alpha1.Summary{Node: statsv1alpha1.NodeStats{NodeName: p.nodeName, StartTime: now}}
	for _, kp := range p.nodePods() {
		m, err := p.node.Metrics(ctx, PinacleName(kp))
		if err != nil || m.Sandbox == nil {
			continue
		}
		sum.Pods = append(sum.Pods, podStats(kp, m, now))
	}
	return sum, nil
}

func podStats(kp *corev1.Pod, m *api.Metrics, now metav1.Time) statsv1alpha1.PodStats {
	cpu, mem := m.Sandbox.CPUUsageNanos, m.Sandbox.MemoryUsage
	ws := mem
	ps := statsv1alpha1.PodStats{
		PodRef:    statsv1alpha1.PodReference{Name: kp.Name, Namespace: kp.Namespace, UID: string(kp.UID)},
		StartTime: now,
		CPU:       &statsv1alpha1.CPUStats{Time: now, UsageCoreNanoSeconds: &cpu},
		Memory:    &statsv1alpha1.MemoryStats{Time: now, UsageBytes: &mem, WorkingSetBytes: &ws},
	}
	for _, c := range kp.Spec.Containers {
		ps.Containers = append(ps.Containers, statsv1alpha1.ContainerStats{Name: c.Name, StartTime: now})
	}
	return ps
}

// GetMetricsResource has no per-container metrics to give (the node's
// Prometheus endpoint, metricsAddr, has the pod-level ones).
func (p *Provider) GetMetricsResource(context.Context) ([]*dto.MetricFamily, error) {
	return nil, nil
}
