package vk

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Capacity is what the node offers the scheduler.
type Capacity struct {
	CPU    resource.Quantity
	Memory resource.Quantity
	Pods   resource.Quantity
}

// MachineCapacity reads the machine's CPUs and memory (/proc/meminfo);
// pods is the pod count to offer.
func MachineCapacity(pods int) (Capacity, error) {
	mem, err := memTotal()
	if err != nil {
		return Capacity{}, err
	}
	return Capacity{
		CPU:    *resource.NewQuantity(int64(runtime.NumCPU()), resource.DecimalSI),
		Memory: *resource.NewQuantity(mem, resource.BinarySI),
		Pods:   *resource.NewQuantity(int64(pods), resource.DecimalSI),
	}, nil
}

func memTotal() (int64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/meminfo MemTotal %q: %w", fields[1], err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("/proc/meminfo: no MemTotal line")
}

// NodeSpec fills the Node this provider registers: labels (the runtime
// label among them), the taint that keeps pods that do not tolerate
// gVisor away, capacity, address and the kubelet endpoint the API server
// calls for logs and exec.
func NodeSpec(n *corev1.Node, capa Capacity, hostIP string, port int32, version string) {
	if n.Labels == nil {
		n.Labels = map[string]string{}
	}
	n.Labels[LabelRuntime] = RuntimeGVisor
	n.Labels["kubernetes.io/os"] = "linux"
	n.Labels["kubernetes.io/arch"] = runtime.GOARCH
	n.Labels["node.kubernetes.io/exclude-from-external-load-balancers"] = "true"
	n.Spec.Taints = []corev1.Taint{{Key: TaintKey, Value: RuntimeGVisor, Effect: corev1.TaintEffectNoSchedule}}
	rl := corev1.ResourceList{corev1.ResourceCPU: capa.CPU, corev1.ResourceMemory: capa.Memory, corev1.ResourcePods: capa.Pods}
	n.Status.Capacity, n.Status.Allocatable = rl, rl.DeepCopy()
	n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: hostIP}, {Type: corev1.NodeHostName, Address: n.Name}}
	n.Status.DaemonEndpoints.KubeletEndpoint.Port = port
	n.Status.NodeInfo = corev1.NodeSystemInfo{
		OperatingSystem: "linux", Architecture: runtime.GOARCH, KernelVersion: kernelVersion(),
		KubeletVersion: "pinacle-node-" + version, ContainerRuntimeVersion: "runsc://gvisor",
	}
}

func kernelVersion() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return strings.TrimSpace(string(b))
}

// nodeProvider reports the node Ready while its pinacle daemon answers.
// Ping (the lease) does not depend on the daemon: a daemon restart must
// not make Kubernetes think the node, and so its pods, are gone; it only
// marks the node not ready for new pods.
type nodeProvider struct {
	ping  func(context.Context) error
	every time.Duration

	mu   sync.Mutex
	node *corev1.Node
}

func (np *nodeProvider) Ping(context.Context) error { return nil }

// NotifyNodeStatus checks the daemon every np.every and reports the
// Ready condition when it changes.
func (np *nodeProvider) NotifyNodeStatus(ctx context.Context, cb func(*corev1.Node)) {
	go func() {
		t := time.NewTicker(np.every)
		defer t.Stop()
		var last *bool
		for {
			err := np.ping(ctx)
			up := err == nil
			if last == nil || *last != up {
				last = &up
				cb(np.withReady(up, err))
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

func (np *nodeProvider) withReady(up bool, err error) *corev1.Node {
	np.mu.Lock()
	defer np.mu.Unlock()
	n := np.node.DeepCopy()
	now := metav1.Now()
	cond := corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
		Message: "pinacle-node answers", LastHeartbeatTime: now, LastTransitionTime: now}
	if !up {
		cond.Status, cond.Reason, cond.Message = corev1.ConditionFalse, "PinacleNodeUnavailable", err.Error()
	}
	conds := []corev1.NodeCondition{cond}
	for _, t := range []corev1.NodeConditionType{corev1.NodeMemoryPressure, corev1.NodeDiskPressure, corev1.NodePIDPressure, corev1.NodeNetworkUnavailable} {
		conds = append(conds, corev1.NodeCondition{Type: t, Status: corev1.ConditionFalse, LastHeartbeatTime: now, LastTransitionTime: now})
	}
	n.Status.Conditions = conds
	n.Status.Phase = corev1.NodeRunning
	np.node = n
	return n.DeepCopy()
}
