package vk

import (
	"encoding/json"
	"net"
	"net/url"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/internal/lifecycle"
)

func secs(n int32) time.Duration { return time.Duration(n) * time.Second }

// Condition and container reasons the provider reports.
const (
	ReasonHibernated = "Hibernated"
	ReasonPinacle    = "PinaclePod"
)

// PortAnnotation is one entry of the pinacle.dev/ports annotation: where
// on the node a container port is reachable.
type PortAnnotation struct {
	Name          string `json:"name"`
	ContainerPort int    `json:"containerPort"`
	HostPort      int    `json:"hostPort"`
	Address       string `json:"address"` // host:port
}

// PortsAnnotation is the pinacle.dev/ports value for a pinacle pod: the
// host ports with the address they listen on (from the port's URL, else
// nodeAddr).
func PortsAnnotation(pp *api.Pod, nodeAddr string) string {
	if pp == nil || len(pp.Ports) == 0 {
		return ""
	}
	out := make([]PortAnnotation, 0, len(pp.Ports))
	for _, ps := range pp.Ports {
		if ps.External == 0 {
			continue
		}
		host := nodeAddr
		if u, err := url.Parse(ps.URL); err == nil && u.Hostname() != "" {
			host = u.Hostname()
		}
		out = append(out, PortAnnotation{Name: ps.Name, ContainerPort: ps.Internal, HostPort: ps.External,
			Address: net.JoinHostPort(host, strconv.Itoa(ps.External))})
	}
	if len(out) == 0 {
		return ""
	}
	b, _ := json.Marshal(out)
	return string(b)
}

// PodStatus is the Kubernetes status of k8s pod kp as its pinacle pod pp
// shows it (pp nil: the pinacle pod is gone). Phase follows the pod's
// lifecycle state; each container's state follows the service of the
// same name, as the pod's init last reported it; Ready is every
// container ready. A hibernated pod is Running but not Ready, its
// containers waiting with reason Hibernated.
func PodStatus(kp *corev1.Pod, pp *api.Pod, hostIP string) corev1.PodStatus {
	st := corev1.PodStatus{HostIP: hostIP, QOSClass: kp.Status.QOSClass}
	if hostIP != "" {
		st.HostIPs = []corev1.HostIP{{IP: hostIP}}
	}
	if pp == nil {
		st.Phase = corev1.PodFailed
		st.Reason, st.Message = "NotFound", "the pinacle pod is gone"
		st.ContainerStatuses = containerStatuses(kp, nil, terminated(137, "NotFound", "the pinacle pod is gone"))
		return st
	}
	start := metav1.NewTime(pp.CreatedAt)
	st.StartTime = &start
	if pp.IP != "" {
		st.PodIP = pp.IP
		st.PodIPs = []corev1.PodIP{{IP: pp.IP}}
	}
	var fallback corev1.ContainerState
	switch pp.State {
	case lifecycle.Pending, lifecycle.Provisioning, lifecycle.Starting, lifecycle.Stopped, lifecycle.Stopping:
		st.Phase = corev1.PodPending
		fallback = waiting("ContainerCreating", string(pp.State))
	case lifecycle.Running:
		st.Phase = corev1.PodRunning
		fallback = waiting("ContainerCreating", "waiting for the pod's init to report")
	case lifecycle.Hibernating, lifecycle.Hibernated, lifecycle.Waking:
		st.Phase = corev1.PodRunning
		st.Reason, st.Message = ReasonHibernated, "pinacle pod "+string(pp.State)
		fallback = waiting(ReasonHibernated, "pinacle pod "+string(pp.State))
	case lifecycle.Failed:
		st.Phase = corev1.PodFailed
		st.Reason, st.Message = "Failed", pp.Reason
		fallback = terminated(1, "Error", pp.Reason)
	default: // terminating, terminated
		st.Phase = corev1.PodFailed
		st.Reason, st.Message = "Terminated", string(pp.State)
		fallback = terminated(137, "Terminated", string(pp.State))
	}
	live := pp.State == lifecycle.Running
	st.ContainerStatuses = containerStatuses(kp, func(name string) (corev1.ContainerState, bool, int32, bool) {
		if !live {
			return fallback, false, restarts(pp, name), true
		}
		for _, s := range pp.Services {
			if s.Name == name {
				cs, ready := serviceState(s)
				return cs, ready, int32(s.Restarts), true
			}
		}
		return fallback, false, 0, false
	}, fallback)
	ready := live && len(st.ContainerStatuses) > 0
	for _, cs := range st.ContainerStatuses {
		ready = ready && cs.Ready
	}
	st.Conditions = conditions(pp, ready)
	return st
}

func restarts(pp *api.Pod, name string) int32 {
	for _, s := range pp.Services {
		if s.Name == name {
			return int32(s.Restarts)
		}
	}
	return 0
}

type lookupFn func(name string) (state corev1.ContainerState, ready bool, restarts int32, found bool)

// containerStatuses reports each container by its service. A container
// without a service of its name (the pod's services came from the
// annotation or a template) is running, and ready, when the pod is.
func containerStatuses(kp *corev1.Pod, look lookupFn, fallback corev1.ContainerState) []corev1.ContainerStatus {
	out := make([]corev1.ContainerStatus, 0, len(kp.Spec.Containers))
	for _, c := range kp.Spec.Containers {
		cs := corev1.ContainerStatus{Name: c.Name, Image: c.Image, ImageID: c.Image, State: fallback,
			ContainerID: "pinacle://" + PinacleName(kp) + "/" + c.Name}
		if look != nil {
			state, ready, n, found := look(c.Name)
			cs.State, cs.Ready, cs.RestartCount = state, ready, n
			if !found && fallback.Waiting != nil && fallback.Waiting.Reason == "ContainerCreating" {
				// No service of this name: the pod as a whole stands for it.
				cs.State = corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}
				cs.Ready = true
			}
		}
		started := cs.State.Running != nil
		cs.Started = &started
		out = append(out, cs)
	}
	return out
}

func serviceState(s api.ServiceInfo) (corev1.ContainerState, bool) {
	switch s.State {
	case api.ServiceRunning, api.ServiceHealthy:
		return running(s), true
	case api.ServiceStarting, api.ServiceUnhealthy:
		return running(s), false
	case api.ServiceExited:
		return terminated(0, "Completed", ""), true
	case api.ServiceFailed, api.ServiceStopped:
		code := int32(1)
		if s.LastExitCode != nil {
			code = int32(*s.LastExitCode)
		}
		return terminated(code, "Error", s.LastError), false
	case api.ServiceBackoff:
		return waiting("CrashLoopBackOff", s.LastError), false
	}
	return waiting("ContainerCreating", string(s.State)), false
}

func running(s api.ServiceInfo) corev1.ContainerState {
	at := s.StartedAt
	if at.IsZero() {
		at = s.Since
	}
	return corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(at)}}
}

func waiting(reason, msg string) corev1.ContainerState {
	return corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}}
}

func terminated(code int32, reason, msg string) corev1.ContainerState {
	return corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code, Reason: reason, Message: msg}}
}

func conditions(pp *api.Pod, ready bool) []corev1.PodCondition {
	now := metav1.NewTime(pp.UpdatedAt)
	b := func(v bool) corev1.ConditionStatus {
		if v {
			return corev1.ConditionTrue
		}
		return corev1.ConditionFalse
	}
	reason := ""
	if !ready {
		reason = string(pp.State)
		if pp.State == lifecycle.Hibernated || pp.State == lifecycle.Hibernating || pp.State == lifecycle.Waking {
			reason = ReasonHibernated
		}
	}
	created := pp.State != lifecycle.Pending && pp.State != lifecycle.Provisioning
	return []corev1.PodCondition{
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(pp.CreatedAt)},
		{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(pp.CreatedAt)},
		{Type: corev1.PodReadyToStartContainers, Status: b(created), LastTransitionTime: now},
		{Type: corev1.ContainersReady, Status: b(ready), Reason: reason, LastTransitionTime: now},
		{Type: corev1.PodReady, Status: b(ready), Reason: reason, LastTransitionTime: now},
	}
}
