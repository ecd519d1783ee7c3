package vk

import (
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/internal/lifecycle"
	"github.com/pinacle/pinacle-node/podspec"
	"github.com/pinacle/pinacle-node/templates"
)

func webPod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "team-a", UID: "0b7c6a3e-1111-2222-3333-444455556666"},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyAlways,
			Containers: []corev1.Container{{
				Name:       "web",
				Image:      "pinacle.local/busybox:latest",
				Command:    []string{"httpd", "-f"},
				Args:       []string{"-p", "8080"},
				WorkingDir: "/srv",
				Env:        []corev1.EnvVar{{Name: "MODE", Value: "dev"}},
				Ports:      []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
				ReadinessProbe: &corev1.Probe{
					ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromInt32(8080)}},
					PeriodSeconds: 2, TimeoutSeconds: 1, FailureThreshold: 3,
				},
				Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("300Mi")},
					Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1500m"), corev1.ResourceMemory: resource.MustParse("1Gi")},
				},
			}, {
				Name: "worker", Image: "pinacle.local/busybox:latest", Command: []string{"sh", "-c", "sleep 1d"},
				Ports: []corev1.ContainerPort{{ContainerPort: 9000, HostPort: 30123}},
			}},
		},
	}
}

func TestCreateRequestMapsContainersToServices(t *testing.T) {
	req, err := CreateRequest(webPod())
	if err != nil {
		t.Fatal(err)
	}
	s := req.Spec
	if s.BaseImage != "pinacle.local/busybox:latest" || s.WorkingDir != "/srv" {
		t.Errorf("image/workdir = %q %q", s.BaseImage, s.WorkingDir)
	}
	// Limits win over requests: 1.5 CPU and 1 GiB fit dev.medium, not dev.small (1 CPU).
	if s.Resources != (podspec.Resources{Tier: "dev.medium", CPUCores: 1.5, MemoryMB: 1024}) {
		t.Errorf("resources = %+v", s.Resources)
	}
	if len(s.Services) != 2 {
		t.Fatalf("services = %+v", s.Services)
	}
	web := s.Services[0]
	if strings.Join(web.Command, " ") != "httpd -f -p 8080" || web.Env["MODE"] != "dev" || web.Restart != podspec.RestartAlways || web.Port != 8080 {
		t.Errorf("web service = %+v", web)
	}
	if hc := web.HealthCheck; hc == nil || hc.Type != podspec.HealthHTTP || hc.Port != 8080 || hc.Path != "/" || hc.Interval.Duration != 2*time.Second || hc.Retries != 3 {
		t.Errorf("health check = %+v", web.HealthCheck)
	}
	want := []podspec.Port{{Name: "http", Internal: 8080, Protocol: "tcp"}, {Name: "p9000", Internal: 9000, Protocol: "tcp", External: 30123}}
	if len(s.Network.Ports) != 2 || s.Network.Ports[0] != want[0] || s.Network.Ports[1] != want[1] {
		t.Errorf("ports = %+v", s.Network.Ports)
	}
	if s.Name != PinacleName(webPod()) || !strings.HasPrefix(s.Name, "k8s-team-a-web-") {
		t.Errorf("name = %q", s.Name)
	}
}

// The mapped spec must pass the node's own validation: the node resolves
// and validates it again on create, and a mapping it rejects is useless.
func TestCreateRequestPassesNodeValidation(t *testing.T) {
	req, err := CreateRequest(webPod())
	if err != nil {
		t.Fatal(err)
	}
	reg := templates.Builtin()
	if _, err := reg.ResolveRequest(templates.Request{Spec: req.Spec, Template: req.Template}, func() string { return "id1" }); err != nil {
		t.Fatalf("node rejects the mapped spec: %v", err)
	}
}

func TestResourcesPickSmallestTier(t *testing.T) {
	cases := []struct {
		cpu, mem string
		want     podspec.Resources
		err      bool
	}{
		{"", "", podspec.Resources{Tier: "dev.small"}, false},
		{"250m", "128Mi", podspec.Resources{Tier: "dev.small", CPUCores: 0.5, MemoryMB: 256}, false}, // raised to the tier's and node's minimum
		{"1", "1Gi", podspec.Resources{Tier: "dev.small", CPUCores: 1, MemoryMB: 1024}, false},
		{"3", "2Gi", podspec.Resources{Tier: "dev.large", CPUCores: 3, MemoryMB: 2048}, false},
		{"500m", "3Gi", podspec.Resources{Tier: "dev.large", CPUCores: 2, MemoryMB: 3072}, false},
		{"9", "1Gi", podspec.Resources{}, true},
	}
	for _, c := range cases {
		p := webPod()
		p.Spec.Containers = p.Spec.Containers[:1]
		rl := corev1.ResourceList{}
		if c.cpu != "" {
			rl[corev1.ResourceCPU] = resource.MustParse(c.cpu)
		}
		if c.mem != "" {
			rl[corev1.ResourceMemory] = resource.MustParse(c.mem)
		}
		p.Spec.Containers[0].Resources = corev1.ResourceRequirements{Requests: rl}
		got, err := resources(p)
		if c.err {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("%s/%s: err = %v, want invalid argument", c.cpu, c.mem, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s/%s: %+v, %v; want %+v", c.cpu, c.mem, got, err, c.want)
		}
	}
}

func TestCreateRequestRejects(t *testing.T) {
	cases := map[string]func(*corev1.Pod){
		"spec.containers[1].image": func(p *corev1.Pod) { p.Spec.Containers[1].Image = "other:1" },
		"command":                  func(p *corev1.Pod) { p.Spec.Containers[0].Command, p.Spec.Containers[0].Args = nil, nil },
		"initContainers":           func(p *corev1.Pod) { p.Spec.InitContainers = []corev1.Container{{Name: "i"}} },
		"SCTP":                     func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].Protocol = corev1.ProtocolSCTP },
		"unknown tier":             func(p *corev1.Pod) { p.Annotations = map[string]string{AnnoTier: "huge"} },
		AnnoServices:               func(p *corev1.Pod) { p.Annotations = map[string]string{AnnoServices: "[{name: a, comand: [x]}]"} },
	}
	for want, edit := range cases {
		p := webPod()
		edit(p)
		_, err := CreateRequest(p)
		if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v", want, err)
		}
	}
}

func TestServicesFromAnnotation(t *testing.T) {
	p := webPod()
	p.Annotations = map[string]string{AnnoServices: `[{name: app, command: [sh, -c, "exec httpd -f -p 8000"], port: 8000}]`, AnnoTemplate: "minimal"}
	req, err := CreateRequest(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(req.Spec.Services) != 1 || req.Spec.Services[0].Name != "app" || req.Template != "minimal" {
		t.Errorf("services = %+v template %q", req.Spec.Services, req.Template)
	}
}

func TestPinacleName(t *testing.T) {
	p := webPod()
	a := PinacleName(p)
	p.UID = "another"
	if b := PinacleName(p); a == b {
		t.Errorf("a recreated pod (new UID) kept the name %q", a)
	}
	p.Name = strings.Repeat("x", 250)
	p.Namespace = "UPPER_case"
	if n := PinacleName(p); len(n) > 63 || errdefs.ValidateID("pod", n) != nil {
		t.Errorf("name %q is not a valid pod name", n)
	}
	p.Annotations = map[string]string{AnnoWorkspace: "alice/project"}
	if n := PinacleName(p); n != "ws-alice-project" || !owned(n) {
		t.Errorf("workspace name = %q", n)
	}
}

func TestPodStatusFromPinaclePod(t *testing.T) {
	kp := webPod()
	code := 2
	now := time.Now()
	pp := &api.Pod{ID: "abc", Name: PinacleName(kp), State: lifecycle.Running, IP: "10.1.0.2", CreatedAt: now, UpdatedAt: now,
		Services: []api.ServiceInfo{
			{Name: "web", State: api.ServiceHealthy, Restarts: 1, StartedAt: now},
			{Name: "worker", State: api.ServiceBackoff, LastExitCode: &code, LastError: "exit 2"},
		}}
	st := PodStatus(kp, pp, "127.0.0.1")
	if st.Phase != corev1.PodRunning || st.PodIP != "10.1.0.2" || st.HostIP != "127.0.0.1" {
		t.Errorf("phase/ips = %s %s %s", st.Phase, st.PodIP, st.HostIP)
	}
	web, worker := st.ContainerStatuses[0], st.ContainerStatuses[1]
	if web.State.Running == nil || !web.Ready || web.RestartCount != 1 {
		t.Errorf("web = %+v", web)
	}
	if worker.State.Waiting == nil || worker.State.Waiting.Reason != "CrashLoopBackOff" || worker.Ready {
		t.Errorf("worker = %+v", worker)
	}
	if cond(st, corev1.PodReady) != corev1.ConditionFalse {
		t.Errorf("pod ready with a container in backoff")
	}
	pp.Services[1].State = api.ServiceRunning
	if st := PodStatus(kp, pp, "127.0.0.1"); cond(st, corev1.PodReady) != corev1.ConditionTrue {
		t.Errorf("pod not ready with every service up: %+v", st.Conditions)
	}
	pp.State = lifecycle.Hibernated
	st = PodStatus(kp, pp, "127.0.0.1")
	if st.Phase != corev1.PodRunning || st.Reason != ReasonHibernated || cond(st, corev1.PodReady) != corev1.ConditionFalse ||
		st.ContainerStatuses[0].State.Waiting == nil || st.ContainerStatuses[0].State.Waiting.Reason != ReasonHibernated {
		t.Errorf("hibernated = %+v", st)
	}
	pp.State, pp.Reason = lifecycle.Failed, "sandbox: oom"
	if st := PodStatus(kp, pp, ""); st.Phase != corev1.PodFailed || st.Message != "sandbox: oom" {
		t.Errorf("failed = %+v", st)
	}
	if st := PodStatus(kp, nil, ""); st.Phase != corev1.PodFailed || st.ContainerStatuses[0].State.Terminated == nil {
		t.Errorf("gone = %+v", st)
	}
}

func cond(st corev1.PodStatus, t corev1.PodConditionType) corev1.ConditionStatus {
	for _, c := range st.Conditions {
		if c.Type == t {
			return c.Status
		}
	}
	return ""
}

func TestPortsAnnotation(t *testing.T) {
	pp := &api.Pod{Ports: []api.PortStatus{{Name: "http", Internal: 8080, External: 24001, URL: "http://127.0.0.2:24001"}, {Name: "x", Internal: 1}}}
	got := PortsAnnotation(pp, "10.0.0.9")
	if got != `[{"name":"http","containerPort":8080,"hostPort":24001,"address":"127.0.0.2:24001"}]` {
		t.Errorf("annotation = %s", got)
	}
	if PortsAnnotation(&api.Pod{}, "x") != "" {
		t.Error("annotation for a pod without ports")
	}
}

func TestOutageTolerations(t *testing.T) {
	sec := int64(300)
	p := webPod()
	p.Spec.Tolerations = []corev1.Toleration{
		{Key: TaintKey, Operator: corev1.TolerationOpEqual, Value: RuntimeGVisor, Effect: corev1.TaintEffectNoSchedule},
		{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: &sec},
	}
	tols, changed := OutageTolerations(p)
	if !changed || len(tols) != 3 {
		t.Fatalf("tolerations = %+v", tols)
	}
	for _, tl := range tols[1:] {
		if tl.TolerationSeconds != nil || tl.Effect != corev1.TaintEffectNoExecute {
			t.Errorf("outage toleration still bounded: %+v", tl)
		}
	}
	p.Spec.Tolerations = tols
	if _, changed := OutageTolerations(p); changed {
		t.Error("second pass changed the tolerations again")
	}
}

// Kubernetes allows a probe timeout equal to its period (timeoutSeconds
// defaults to 1, so periodSeconds: 1 is common); the mapped health check
// must still pass the node's validation, which wants the timeout shorter.
func TestProbeTimeoutAtPeriodIsAccepted(t *testing.T) {
	p := webPod()
	p.Spec.Containers[0].ReadinessProbe.PeriodSeconds = 1
	p.Spec.Containers[0].ReadinessProbe.TimeoutSeconds = 1
	req, err := CreateRequest(p)
	if err != nil {
		t.Fatal(err)
	}
	hc := req.Spec.Services[0].HealthCheck
	if hc == nil || hc.Interval.Duration != time.Second || hc.Timeout.Duration != 900*time.Millisecond {
		t.Fatalf("health check %+v, want interval 1s, timeout 900ms", hc)
	}
	if err := req.Spec.Validate(); err != nil {
		t.Fatalf("mapped spec refused by the node's validation: %v", err)
	}
}
