package vk

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/podspec"
)

// CreateRequest maps a Kubernetes pod to the create of a pinacle pod: one
// image for the pod (every container must use it: a pinacle pod is one
// sandbox with one root filesystem), each container a service run by the
// pod's init, its ports forwarded, its readiness probe a health check,
// and the pod's requests and limits a tier with cgroup limits. The node
// validates the result again, as for any create.
func CreateRequest(p *corev1.Pod) (api.CreateRequest, error) {
	if len(p.Spec.Containers) == 0 {
		return api.CreateRequest{}, invalid("spec.containers", "a pod needs at least one container")
	}
	if len(p.Spec.InitContainers) > 0 {
		return api.CreateRequest{}, invalid("spec.initContainers",
			"not supported: use a service with dependsOn in the "+AnnoServices+" annotation")
	}
	image := p.Spec.Containers[0].Image
	for i, c := range p.Spec.Containers[1:] {
		if c.Image != image {
			return api.CreateRequest{}, invalid(fmt.Sprintf("spec.containers[%d].image", i+1),
				fmt.Sprintf("%q differs from containers[0]'s %q: a pinacle pod runs one image", c.Image, image))
		}
	}
	spec := podspec.Pod{Name: PinacleName(p), BaseImage: image}
	res, err := resources(p)
	if err != nil {
		return api.CreateRequest{}, err
	}
	spec.Resources = res
	if spec.Network.Ports, err = ports(p); err != nil {
		return api.CreateRequest{}, err
	}
	if spec.Services, err = services(p); err != nil {
		return api.CreateRequest{}, err
	}
	if wd := p.Spec.Containers[0].WorkingDir; wd != "" {
		spec.WorkingDir = wd
	}
	return api.CreateRequest{Spec: spec, Template: p.Annotations[AnnoTemplate]}, nil
}

func invalid(field, msg string) error {
	return fmt.Errorf("kubernetes pod %s: %s: %w", field, msg, errdefs.ErrInvalidArgument)
}

// services are the annotation's, else one per container with a command.
func services(p *corev1.Pod) ([]podspec.Service, error) {
	if raw := p.Annotations[AnnoServices]; raw != "" {
		var svcs []podspec.Service
		if err := podspec.DecodeStrict([]byte(raw), &svcs); err != nil {
			return nil, invalid("metadata.annotations["+AnnoServices+"]", err.Error())
		}
		return svcs, nil
	}
	var out []podspec.Service
	for i, c := range p.Spec.Containers {
		argv := append(append([]string{}, c.Command...), c.Args...)
		if len(argv) == 0 {
			if p.Annotations[AnnoTemplate] != "" {
				continue // the template's services run
			}
			return nil, invalid(fmt.Sprintf("spec.containers[%d].command", i),
				"required: pinacle runs each container's command as a service (or set "+AnnoServices+" or "+AnnoTemplate+")")
		}
		svc := podspec.Service{Name: c.Name, Command: argv, WorkingDir: c.WorkingDir,
			Restart: restartPolicy(p.Spec.RestartPolicy)}
		env, err := envOf(c, i)
		if err != nil {
			return nil, err
		}
		svc.Env = env
		if len(c.Ports) > 0 {
			svc.Port = int(c.Ports[0].ContainerPort)
		}
		hc, err := healthCheck(c.ReadinessProbe, i)
		if err != nil {
			return nil, err
		}
		svc.HealthCheck = hc
		out = append(out, svc)
	}
	return out, nil
}

func restartPolicy(r corev1.RestartPolicy) podspec.RestartPolicy {
	switch r {
	case corev1.RestartPolicyNever:
		return podspec.RestartNever
	case corev1.RestartPolicyOnFailure:
		return podspec.RestartOnFailure
	}
	return podspec.RestartAlways
}

// envOf takes literal values; virtual-kubelet has already resolved
// secrets, config maps and the downward API into Value.
func envOf(c corev1.Container, i int) (map[string]string, error) {
	if len(c.EnvFrom) > 0 {
		return nil, invalid(fmt.Sprintf("spec.containers[%d].envFrom", i), "not supported: list the variables in env")
	}
	if len(c.Env) == 0 {
		return nil, nil
	}
	env := make(map[string]string, len(c.Env))
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.Value == "" {
			return nil, invalid(fmt.Sprintf("spec.containers[%d].env[%s].valueFrom", i, e.Name), "could not be resolved")
		}
		env[e.Name] = e.Value
	}
	return env, nil
}

func healthCheck(pr *corev1.Probe, i int) (*podspec.HealthCheck, error) {
	if pr == nil {
		return nil, nil
	}
	hc := &podspec.HealthCheck{Retries: int(pr.FailureThreshold)}
	if pr.PeriodSeconds > 0 {
		hc.Interval = podspec.Duration{Duration: secs(pr.PeriodSeconds)}
	}
	if pr.TimeoutSeconds > 0 {
		hc.Timeout = podspec.Duration{Duration: secs(pr.TimeoutSeconds)}
	}
	// Kubernetes lets a probe's timeout reach or pass its period (probes
	// run one at a time); a pinacle health check wants it shorter, so such
	// a timeout becomes nine tenths of the period.
	iv := hc.Interval.Duration
	if iv == 0 {
		iv = podspec.DefaultHealthInterval
	}
	if hc.Timeout.Duration >= iv {
		hc.Timeout = podspec.Duration{Duration: iv * 9 / 10}
	}
	if pr.InitialDelaySeconds > 0 {
		hc.StartPeriod = podspec.Duration{Duration: secs(pr.InitialDelaySeconds)}
	}
	switch h := pr.ProbeHandler; {
	case h.HTTPGet != nil:
		port, err := probePort(h.HTTPGet.Port, i)
		if err != nil {
			return nil, err
		}
		hc.Type, hc.Port, hc.Path, hc.Host = podspec.HealthHTTP, port, h.HTTPGet.Path, h.HTTPGet.Host
	case h.TCPSocket != nil:
		port, err := probePort(h.TCPSocket.Port, i)
		if err != nil {
			return nil, err
		}
		hc.Type, hc.Port, hc.Host = podspec.HealthTCP, port, h.TCPSocket.Host
	case h.Exec != nil:
		hc.Type, hc.Command = podspec.HealthExec, h.Exec.Command
	default:
		return nil, invalid(fmt.Sprintf("spec.containers[%d].readinessProbe", i), "only httpGet, tcpSocket and exec are supported")
	}
	return hc, nil
}

func probePort(v intstr.IntOrString, i int) (int, error) {
	n, err := strconv.Atoi(v.String())
	if err != nil {
		return 0, invalid(fmt.Sprintf("spec.containers[%d].readinessProbe port", i), "named ports are not supported: give the number")
	}
	return n, nil
}

// ports forwards every container port; hostPort, when set, asks for that
// host port (it must lie in the node's range).
func ports(p *corev1.Pod) ([]podspec.Port, error) {
	var out []podspec.Port
	seen := map[string]bool{}
	for i, c := range p.Spec.Containers {
		for j, cp := range c.Ports {
			name := cp.Name
			if name == "" {
				name = "p" + strconv.Itoa(int(cp.ContainerPort))
			}
			if seen[name] {
				return nil, invalid(fmt.Sprintf("spec.containers[%d].ports[%d].name", i, j), fmt.Sprintf("%q is used twice", name))
			}
			seen[name] = true
			proto := podspec.ProtocolTCP
			switch cp.Protocol {
			case corev1.ProtocolUDP:
				proto = podspec.ProtocolUDP
			case corev1.ProtocolSCTP:
				return nil, invalid(fmt.Sprintf("spec.containers[%d].ports[%d].protocol", i, j), "SCTP is not supported")
			}
			out = append(out, podspec.Port{Name: name, Internal: int(cp.ContainerPort), Protocol: proto, External: int(cp.HostPort)})
		}
	}
	return out, nil
}

// resources picks the smallest tier that holds the pod's CPU and memory
// (limits where given, else requests, summed over the containers) and
// sets them as the pod's cgroup limits, raised to the tier's minimum CPU
// and the node's minimum memory. A pod that asks for nothing gets the
// default tier. Ephemeral storage becomes the storage cap.
func resources(p *corev1.Pod) (podspec.Resources, error) {
	var cpu, mem, sto float64
	for _, c := range p.Spec.Containers {
		cpu += pick(c.Resources, corev1.ResourceCPU, func(q resource.Quantity) float64 { return float64(q.MilliValue()) / 1000 })
		mem += pick(c.Resources, corev1.ResourceMemory, func(q resource.Quantity) float64 { return float64(q.Value()) / (1 << 20) })
		sto += pick(c.Resources, corev1.ResourceEphemeralStorage, func(q resource.Quantity) float64 { return float64(q.Value()) / (1 << 20) })
	}
	r := podspec.Resources{Tier: p.Annotations[AnnoTier]}
	if r.Tier == "" && cpu == 0 && mem == 0 {
		r.Tier = podspec.DefaultTier
	}
	if r.Tier == "" {
		for _, t := range podspec.Tiers() {
			if cpu <= t.CPUMax && mem <= float64(t.MemoryMB) {
				r.Tier = t.Name
				break
			}
		}
		if r.Tier == "" {
			tiers := podspec.Tiers()
			big := tiers[len(tiers)-1]
			return r, invalid("spec.containers[].resources", fmt.Sprintf("%g CPU and %g MiB exceed the largest tier %s (%g CPU, %d MiB)",
				cpu, mem, big.Name, big.CPUMax, big.MemoryMB))
		}
	}
	t, ok := podspec.LookupTier(r.Tier)
	if !ok {
		return r, invalid("metadata.annotations["+AnnoTier+"]", fmt.Sprintf("unknown tier %q (want one of %s)", r.Tier, strings.Join(podspec.TierNames(), ", ")))
	}
	if cpu > 0 {
		r.CPUCores = math.Min(math.Max(cpu, t.CPUMin), t.CPUMax)
	}
	if mem > 0 {
		r.MemoryMB = min(max(int64(math.Ceil(mem)), podspec.MinMemoryMB), t.MemoryMB)
	}
	if sto > 0 {
		r.StorageMB = min(max(int64(math.Ceil(sto)), podspec.MinStorageMB), t.StorageMB)
	}
	return r, nil
}

func pick(rr corev1.ResourceRequirements, name corev1.ResourceName, conv func(resource.Quantity) float64) float64 {
	if q, ok := rr.Limits[name]; ok {
		return conv(q)
	}
	if q, ok := rr.Requests[name]; ok {
		return conv(q)
	}
	return 0
}
