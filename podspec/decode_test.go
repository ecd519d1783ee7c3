package podspec

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

func TestDecodeYAMLAndJSON(t *testing.T) {
	y := `
name: shop
template: nextjs
resources: {tier: dev.large, cpuCores: 2.5}
network:
  ports:
    - {name: app, internal: 3000, external: 30080}
  bandwidth: {ingressRate: 20Mbit, ingressBurst: 1000000, egressRate: "1.5mbps", egressBurst: 64kbit}
services:
  - name: app
    command: [npm, run, dev]
    healthCheck: {type: http, interval: 15s, timeout: 2}
environment: {FOO: bar}
idleTimeout: 30m
`
	p, err := Decode([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "shop" || p.Resources.CPUCores != 2.5 || p.Network.Ports[0].External != 30080 ||
		p.Network.Bandwidth.IngressRate != 20_000_000 || p.Network.Bandwidth.EgressRate != 1_500_000 ||
		p.Network.Bandwidth.EgressBurst != 64_000 || p.Services[0].HealthCheck.Timeout.Duration != 2*time.Second ||
		p.IdleTimeout.Duration != 30*time.Minute || p.Environment["FOO"] != "bar" {
		t.Errorf("decoded %+v", p)
	}
	j := `{"name":"shop","services":[{"name":"app","command":["x"]}]}`
	if p, err := Decode([]byte(j)); err != nil || p.Services[0].Command[0] != "x" {
		t.Errorf("JSON: %v %+v", err, p)
	}
	if p, err := Decode(nil); err != nil || !reflect.DeepEqual(p, &Pod{}) {
		t.Errorf("empty: %v %+v", err, p)
	}
}

func TestDecodeStrictNamesFields(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		want      []string
	}{
		{"top", "name: x\nnmae: y\n", []string{"nmae: unknown field"}},
		{"case", "Name: x\n", []string{`Name: unknown field (did you mean "name"?)`}},
		{"nested list", "network:\n  ports:\n    - {name: a, internal: 1}\n    - {name: b, internal: 2, extrnal: 30000}\n",
			[]string{"network.ports[1].extrnal: unknown field"}},
		{"deep", "services:\n- name: a\n  healthCheck: {type: http, pth: /}\n", []string{"services[0].healthCheck.pth: unknown field"}},
		{"embedded", "healthChecks:\n- {name: a, type: tcp, port: 1, bogus: 1}\n", []string{"healthChecks[0].bogus: unknown field"}},
		{"all at once", "nmae: x\nresources: {cpu: 1}\nnetwork: {ports: [{name: a, internal: 1, x: 1}]}\n",
			[]string{"network.ports[0].x: unknown field", "nmae: unknown field", "resources.cpu: unknown field"}},
		{"type string", "name: [a]\n", []string{"name: want a string, got a list"}},
		{"type int", "network: {ports: [{name: a, internal: \"80\"}]}\n", []string{"network.ports[0].internal: want an integer, got a string"}},
		{"type float int", "network: {ports: [{name: a, internal: 80.5}]}\n", []string{"network.ports[0].internal: want an integer that fits in 64 bits, got 80.5"}},
		{"type object", "resources: small\n", []string{"resources: want an object, got a string"}},
		{"type list", "services: {name: a}\n", []string{"services: want a list, got an object"}},
		{"type map value", "environment: {PORT: 3000}\n", []string{"environment.PORT: want a string, got a number"}},
		{"duration", "idleTimeout: soon\n", []string{`idleTimeout: invalid duration "soon"`}},
		{"bitrate", "network: {bandwidth: {egressRate: fast}}\n", []string{`network.bandwidth.egressRate: invalid bit rate "fast"`}},
		{"cpu number", "resources: {cpuCores: lots}\n", []string{"resources.cpuCores: want a number, got a string"}},
		{"duplicate key", "name: a\nname: b\n", []string{"parse: yaml: unmarshal errors:\n  line 2: key \"name\" already set in map"}},
		{"syntax", "name: [\n", []string{"parse: "}},
		{"not object", "- a\n", []string{"want an object, got a list"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode([]byte(tc.doc))
			var ve *ValidationError
			if !errors.As(err, &ve) || !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("Decode = %v, want a *ValidationError", err)
			}
			if len(ve.Errors) != len(tc.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(ve.Errors), len(tc.want), err)
			}
			for i, w := range tc.want {
				if got := ve.Errors[i].Error(); !strings.HasPrefix(got, w) {
					t.Errorf("error %d = %q, want prefix %q", i, got, w)
				}
			}
		})
	}
}

func TestBitRate(t *testing.T) {
	for in, want := range map[string]BitRate{
		"20Mbit": 20e6, "20mbit": 20e6, "512kbit": 512e3, "1.5Gbit": 1.5e9, "100": 100, "8bit": 8,
		"10mbps": 10e6, " 2 Tbit ": 2e12, "1e3kbit": 1e6,
	} {
		got, err := ParseBitRate(in)
		if err != nil || got != want {
			t.Errorf("ParseBitRate(%q) = %v, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "Mbit", "-1Mbit", "fast", "1Mb", "0x10", "NaN", "inf", "1e30gbit"} {
		if _, err := ParseBitRate(bad); err == nil {
			t.Errorf("ParseBitRate(%q): no error", bad)
		}
	}
	for r, want := range map[BitRate]string{20e6: "20Mbit", 1_500_000: "1500kbit", 1: "1bit", 0: "0bit", 3e12: "3Tbit"} {
		if got := r.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", uint64(r), got, want)
		}
	}
}

func TestMerge(t *testing.T) {
	base := &Pod{
		BaseImage:   "docker.io/library/node:20-bookworm",
		Resources:   Resources{Tier: "dev.medium"},
		Environment: map[string]string{"A": "1", "B": "2"},
		Network: Network{
			Ports:  []Port{{Name: "app", Internal: 3000}, {Name: "code", Internal: 8080}},
			Egress: &Egress{Mode: EgressDefault, Deny: []EgressRule{{CIDR: "1.0.0.0/8"}}},
		},
		Services: []Service{
			{Name: "code-server", Command: []string{"code-server"}, Env: map[string]string{"X": "1"}, Port: 8080,
				HealthCheck: &HealthCheck{Type: HealthHTTP, Path: "/healthz"}},
			{Name: "web-terminal", Command: []string{"ttyd"}},
		},
	}
	over := &Pod{
		Name:        "shop",
		Resources:   Resources{Tier: "dev.large"},
		Environment: map[string]string{"B": "3", "C": "4"},
		Network: Network{
			Ports:  []Port{{Name: "app", Internal: 3001, Public: true}, {Name: "db", Internal: 5432}},
			Egress: &Egress{Allow: []EgressRule{{CIDR: "10.0.0.1/32"}}},
		},
		Services: []Service{
			{Name: "code-server", Env: map[string]string{"Y": "2"}, HealthCheck: &HealthCheck{Type: HealthTCP}},
			{Name: "app", Command: []string{"npm", "start"}},
		},
	}
	baseCopy, overCopy := base.DeepCopy(), over.DeepCopy()
	got := Merge(base, over)
	want := &Pod{
		Name:        "shop",
		BaseImage:   "docker.io/library/node:20-bookworm",
		Resources:   Resources{Tier: "dev.large"},
		Environment: map[string]string{"A": "1", "B": "3", "C": "4"},
		Network: Network{
			Ports: []Port{{Name: "app", Internal: 3001, Public: true}, {Name: "code", Internal: 8080}, {Name: "db", Internal: 5432}},
			Egress: &Egress{Mode: EgressDefault, Deny: []EgressRule{{CIDR: "1.0.0.0/8"}},
				Allow: []EgressRule{{CIDR: "10.0.0.1/32"}}},
		},
		Services: []Service{
			{Name: "code-server", Command: []string{"code-server"}, Env: map[string]string{"X": "1", "Y": "2"}, Port: 8080,
				HealthCheck: &HealthCheck{Type: HealthTCP}},
			{Name: "web-terminal", Command: []string{"ttyd"}},
			{Name: "app", Command: []string{"npm", "start"}},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Merge:\n got %+v\nwant %+v", got, want)
	}
	if !reflect.DeepEqual(base, baseCopy) || !reflect.DeepEqual(over, overCopy) {
		t.Error("Merge modified its arguments")
	}
	got.Services[0].Env["Z"] = "mutated"
	got.Network.Egress.Deny[0].CIDR = "mutated"
	if base.Services[0].Env["Z"] != "" || base.Network.Egress.Deny[0].CIDR != "1.0.0.0/8" {
		t.Error("Merge result shares memory with base")
	}
}

func TestDefaultIdempotent(t *testing.T) {
	p := validPod()
	p.Resources = Resources{}
	p.Default()
	once := p.DeepCopy()
	p.Default()
	if !reflect.DeepEqual(p, once) {
		t.Error("Default is not idempotent")
	}
	if p.Resources != (Resources{Tier: "dev.small", CPUCores: 1, MemoryMB: 1024, StorageMB: 10240}) {
		t.Errorf("resources = %+v", p.Resources)
	}
	if hc := p.Services[0].HealthCheck; hc.Port != 5432 || hc.Host != "127.0.0.1" || hc.Retries != 3 {
		t.Errorf("health check defaults = %+v", hc)
	}
}
