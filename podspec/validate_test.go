package podspec

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// validPod returns a fully specified pod that passes Validate.
func validPod() *Pod {
	return &Pod{
		ID:        "pod-1",
		Name:      "shop",
		Slug:      "shop",
		BaseImage: "docker.io/library/node:20-bookworm",
		Resources: Resources{Tier: "dev.medium", CPUCores: 1.5, MemoryMB: 1024, StorageMB: 20480},
		Network: Network{
			Ports: []Port{
				{Name: "app", Internal: 3000, Protocol: "tcp", External: 30001},
				{Name: "code", Internal: 8080},
				{Name: "dns", Internal: 5353, Protocol: "udp"},
			},
			Subnet: "10.88.3.0/24",
			Egress: &Egress{Mode: EgressAllowlist,
				Allow:   []EgressRule{{CIDR: "10.0.0.5/32", Ports: []int{5432}, Protocol: "tcp"}},
				Deny:    []EgressRule{{CIDR: "1.2.3.0/24"}},
				Domains: []string{"github.com", "*.npmjs.org"}},
			Bandwidth: &Bandwidth{IngressRate: 20e6, IngressBurst: 1e6, EgressRate: 10e6, EgressBurst: 1e6},
			DNS:       &DNS{Nameservers: []string{"1.1.1.1"}, Search: []string{"svc.local"}},
		},
		Services: []Service{
			{Name: "db", Command: []string{"postgres"}, Port: 5432, Restart: RestartAlways,
				HealthCheck: &HealthCheck{Type: HealthTCP}},
			{Name: "app", Command: []string{"npm", "run", "dev"}, Port: 3000, DependsOn: []string{"db"},
				Env: map[string]string{"NODE_ENV": "development"}, WorkingDir: "/workspace/app",
				Install: []string{"npm", "ci"}, Creates: "/workspace/app/node_modules",
				HealthCheck: &HealthCheck{Type: HealthHTTP, Path: "/healthz", Interval: Duration{Duration: 10 * time.Second}, Timeout: Duration{Duration: 2 * time.Second}}},
			{Name: "worker", Command: []string{"node", "worker.js"}, DependsOn: []string{"db", "app"}, User: "node",
				HealthCheck: &HealthCheck{Type: HealthExec, Command: []string{"test", "-f", "/tmp/ok"}}},
		},
		Environment:  map[string]string{"FOO": "bar", "_X1": ""},
		WorkingDir:   "/workspace",
		User:         "1000:1000",
		GithubRepo:   "pinacle/shop",
		GithubBranch: "feature/cart",
		HealthChecks: []NamedHealthCheck{{Name: "app", HealthCheck: HealthCheck{Type: HealthHTTP, Port: 3000}}},
		IdleTimeout:  Duration{Duration: 30 * time.Minute},
	}
}

func TestValidPod(t *testing.T) {
	p := validPod()
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	p.Default()
	if err := p.Validate(); err != nil {
		t.Fatalf("after Default: %v", err)
	}
}

// TestValidationMessages covers every validation message: each case
// breaks one thing in a valid pod and expects exactly that error.
func TestValidationMessages(t *testing.T) {
	svc := func(p *Pod, name string) *Service {
		for i := range p.Services {
			if p.Services[i].Name == name {
				return &p.Services[i]
			}
		}
		panic(name)
	}
	for _, tc := range []struct {
		name   string
		mutate func(p *Pod)
		field  string
		msg    string
	}{
		{"bad id", func(p *Pod) { p.ID = "../x" }, "id", `"../x" is not a valid id`},
		{"no name", func(p *Pod) { p.Name = "" }, "name", "required"},
		{"bad name", func(p *Pod) { p.Name = "My_Shop" }, "name", `"My_Shop" must be a DNS label`},
		{"long name", func(p *Pod) { p.Name = strings.Repeat("a", 64) }, "name", "must be a DNS label"},
		{"bad slug", func(p *Pod) { p.Slug = "-x" }, "slug", `"-x" must be a DNS label`},
		{"bad template", func(p *Pod) { p.Template = "Next.js" }, "template", "must be a DNS label"},
		{"no image", func(p *Pod) { p.BaseImage = "" }, "baseImage", "required"},
		{"short image", func(p *Pod) { p.BaseImage = "ubuntu:22.04" }, "baseImage",
			`"ubuntu:22.04" is not a fully qualified image reference (registry/repository:tag or @digest), e.g. "docker.io/library/ubuntu:22.04"`},
		{"no tag", func(p *Pod) { p.BaseImage = "docker.io/library/ubuntu" }, "baseImage", "not a fully qualified image reference"},
		{"garbage image", func(p *Pod) { p.BaseImage = "UPPER/Case::x" }, "baseImage", "not a fully qualified image reference (registry/repository:tag or @digest)"},
		{"unknown tier", func(p *Pod) { p.Resources.Tier = "huge" }, "resources.tier",
			`unknown tier "huge" (want one of [dev.small dev.medium dev.large dev.xlarge])`},
		{"cpu above", func(p *Pod) { p.Resources.CPUCores = 3 }, "resources.cpuCores", "3 is above dev.medium's maximum 2"},
		{"cpu below", func(p *Pod) { p.Resources.CPUCores = 0.5 }, "resources.cpuCores", "0.5 is below dev.medium's minimum 1"},
		{"cpu negative", func(p *Pod) { p.Resources.CPUCores = -1 }, "resources.cpuCores", "-1 must be positive"},
		{"memory above", func(p *Pod) { p.Resources.MemoryMB = 4096 }, "resources.memoryMb", "4096 is above dev.medium's maximum 2048"},
		{"memory below", func(p *Pod) { p.Resources.MemoryMB = 100 }, "resources.memoryMb", "100 is below the minimum 256"},
		{"memory negative", func(p *Pod) { p.Resources.MemoryMB = -5 }, "resources.memoryMb", "-5 must be positive"},
		{"storage above", func(p *Pod) { p.Resources.StorageMB = 99999 }, "resources.storageMb", "99999 is above dev.medium's maximum 20480"},
		{"storage below", func(p *Pod) { p.Resources.StorageMB = 10 }, "resources.storageMb", "10 is below the minimum 1024"},
		{"port no name", func(p *Pod) { p.Network.Ports[1].Name = "" }, "network.ports[1].name", "required"},
		{"port bad name", func(p *Pod) { p.Network.Ports[1].Name = "Code" }, "network.ports[1].name", `"Code" must be a DNS label`},
		{"port dup name", func(p *Pod) { p.Network.Ports[1].Name = "app" }, "network.ports[1].name", `duplicate port name "app" (also network.ports[0])`},
		{"port protocol", func(p *Pod) { p.Network.Ports[1].Protocol = "sctp" }, "network.ports[1].protocol", `"sctp": want tcp or udp`},
		{"port zero", func(p *Pod) { p.Network.Ports[1].Internal = 0 }, "network.ports[1].internal", "0 is not a port: want 1-65535"},
		{"port high", func(p *Pod) { p.Network.Ports[1].Internal = 70000 }, "network.ports[1].internal", "70000 is not a port"},
		{"port dup number", func(p *Pod) { p.Network.Ports[1].Internal = 3000 }, "network.ports[1].internal", "port 3000/tcp is also network.ports[0]"},
		{"external range", func(p *Pod) { p.Network.Ports[1].External = 8080 }, "network.ports[1].external", "8080 is outside the node's port pool 30000-40000"},
		{"external dup", func(p *Pod) { p.Network.Ports[1].External = 30001 }, "network.ports[1].external", "port 30001 is also network.ports[0]"},
		{"external udp", func(p *Pod) { p.Network.Ports[2].External = 30002 }, "network.ports[2].external", "the node forwards tcp only"},
		{"public udp", func(p *Pod) { p.Network.Ports[2].Public = true }, "network.ports[2].public", "the node forwards tcp only"},
		{"subnet syntax", func(p *Pod) { p.Network.Subnet = "10.88.3.0" }, "network.subnet", `"10.88.3.0" is not a CIDR`},
		{"subnet v6", func(p *Pod) { p.Network.Subnet = "fd00::/64" }, "network.subnet", "only IPv4 subnets are supported"},
		{"subnet host bits", func(p *Pod) { p.Network.Subnet = "10.88.3.1/24" }, "network.subnet", `has host bits set; did you mean "10.88.3.0/24"?`},
		{"subnet size", func(p *Pod) { p.Network.Subnet = "10.0.0.0/8" }, "network.subnet", "prefix length must be between /16 and /29"},
		{"subnet public", func(p *Pod) { p.Network.Subnet = "8.8.8.0/24" }, "network.subnet", "is not a private range"},
		{"egress mode", func(p *Pod) { p.Network.Egress.Mode = "open" }, "network.egress.mode", `"open": want default, none or allowlist`},
		{"egress cidr", func(p *Pod) { p.Network.Egress.Deny[0].CIDR = "1.2.3.4" }, "network.egress.deny[0].cidr", `"1.2.3.4" is not a CIDR; did you mean "1.2.3.4/32"?`},
		{"egress cidr junk", func(p *Pod) { p.Network.Egress.Deny[0].CIDR = "x" }, "network.egress.deny[0].cidr", `"x" is not a CIDR`},
		{"egress ports any", func(p *Pod) { p.Network.Egress.Allow[0].Protocol = "" }, "network.egress.allow[0].protocol", "ports need protocol tcp or udp"},
		{"egress protocol", func(p *Pod) { p.Network.Egress.Allow[0].Protocol = "icmp" }, "network.egress.allow[0].protocol", `"icmp": want tcp, udp or any`},
		{"egress port", func(p *Pod) { p.Network.Egress.Allow[0].Ports = []int{5432, 0} }, "network.egress.allow[0].ports[1]", "0 is not a port"},
		{"domains mode", func(p *Pod) { p.Network.Egress.Mode = EgressDefault }, "network.egress.domains", "only used with mode allowlist"},
		{"none allow", func(p *Pod) {
			p.Network.DNS = nil
			p.Network.Egress = &Egress{Mode: EgressNone, Allow: p.Network.Egress.Allow}
		},
			"network.egress.allow", "not used with mode none (no egress at all); use mode allowlist"},
		{"none deny", func(p *Pod) {
			p.Network.DNS = nil
			p.Network.Egress = &Egress{Mode: EgressNone, Deny: p.Network.Egress.Deny}
		},
			"network.egress.deny", "not used with mode none"},
		{"none domains", func(p *Pod) {
			p.Network.DNS = nil
			p.Network.Egress = &Egress{Mode: EgressNone, Domains: p.Network.Egress.Domains}
		},
			"network.egress.domains", "only used with mode allowlist"},
		{"none nameservers", func(p *Pod) { p.Network.Egress = &Egress{Mode: EgressNone} }, "network.dns.nameservers", "not used with egress mode none"},
		{"domain bad", func(p *Pod) { p.Network.Egress.Domains[1] = "exa mple.com" }, "network.egress.domains[1]", `"exa mple.com" is not a domain name`},
		{"ingress burst", func(p *Pod) { p.Network.Bandwidth.IngressBurst = 0 }, "network.bandwidth.ingressBurst", "required when ingressRate is set"},
		{"egress rate", func(p *Pod) { p.Network.Bandwidth.EgressRate = 0 }, "network.bandwidth.egressRate", "required when egressBurst is set"},
		{"burst max", func(p *Pod) { p.Network.Bandwidth.EgressBurst = 40e9 }, "network.bandwidth.egressBurst", "40Gbit is above the maximum 4GB"},
		{"nameservers count", func(p *Pod) { p.Network.DNS.Nameservers = []string{"1.1.1.1", "1.0.0.1", "8.8.8.8", "8.8.4.4"} },
			"network.dns.nameservers", "4 nameservers: resolv.conf uses at most 3"},
		{"nameserver ip", func(p *Pod) { p.Network.DNS.Nameservers[0] = "dns.google" }, "network.dns.nameservers[0]", `"dns.google" is not an IP address`},
		{"search count", func(p *Pod) { p.Network.DNS.Search = strings.Split("a b c d e f g", " ") }, "network.dns.search", "7 search domains"},
		{"search bad", func(p *Pod) { p.Network.DNS.Search[0] = "*.x" }, "network.dns.search[0]", `"*.x" is not a domain name`},
		{"svc no name", func(p *Pod) { svc(p, "worker").Name = "" }, "services[2].name", "required"},
		{"svc bad name", func(p *Pod) { svc(p, "worker").Name = "Worker" }, "services[2].name", `"Worker" must be a DNS label`},
		{"svc dup name", func(p *Pod) { w := svc(p, "worker"); w.DependsOn = nil; w.Name = "app" }, "services[2].name", `duplicate service name "app" (also services[1])`},
		{"svc no command", func(p *Pod) { svc(p, "worker").Command = nil }, "services[2].command", "required"},
		{"svc empty argv0", func(p *Pod) { svc(p, "worker").Command = []string{""} }, "services[2].command[0]", "must not be empty"},
		{"install no creates", func(p *Pod) { svc(p, "app").Creates = "" }, "services[1].creates", "required with install"},
		{"creates no install", func(p *Pod) { svc(p, "app").Install = nil }, "services[1].creates", "set without install"},
		{"install argv0", func(p *Pod) { svc(p, "app").Install = []string{""} }, "services[1].install[0]", "must not be empty"},
		{"creates relative", func(p *Pod) { svc(p, "app").Creates = "node_modules" }, "services[1].creates", `"node_modules" must be an absolute, clean path`},
		{"svc workdir", func(p *Pod) { svc(p, "app").WorkingDir = "/a/../b" }, "services[1].workingDir", "must be an absolute, clean path"},
		{"svc env", func(p *Pod) { svc(p, "app").Env["1X"] = "y" }, `services[1].env["1X"]`, `"1X" is not a valid variable name`},
		{"svc user", func(p *Pod) { svc(p, "worker").User = "root:" }, "services[2].user", `"root:" must be user[:group]`},
		{"restart", func(p *Pod) { svc(p, "db").Restart = "sometimes" }, "services[0].restart", `"sometimes": want always, on-failure or never`},
		{"grace negative", func(p *Pod) { svc(p, "db").StopGracePeriod = Duration{Duration: -time.Second} }, "services[0].stopGracePeriod", "-1s must be between 0 and 10m0s"},
		{"grace long", func(p *Pod) { svc(p, "db").StopGracePeriod = Duration{Duration: time.Hour} }, "services[0].stopGracePeriod", "1h0m0s must be between 0 and 10m0s"},
		{"svc port", func(p *Pod) { svc(p, "worker").Port = 65536 }, "services[2].port", "65536 is not a port"},
		{"svc port shared", func(p *Pod) { svc(p, "worker").Port = 5432 }, "services[2].port", "port 5432 is also used by services[0] (db)"},
		{"dep unknown", func(p *Pod) { svc(p, "worker").DependsOn = []string{"db", "cache"} }, "services[2].dependsOn[1]", `unknown service "cache"`},
		{"dep self", func(p *Pod) { svc(p, "worker").DependsOn = []string{"worker"} }, "services[2].dependsOn[0]", `service "worker" depends on itself`},
		{"dep dup", func(p *Pod) { svc(p, "worker").DependsOn = []string{"db", "db"} }, "services[2].dependsOn[1]", `duplicate dependency "db"`},
		{"dep cycle", func(p *Pod) { svc(p, "db").DependsOn = []string{"app"} }, "services[0].dependsOn", "dependency cycle: db -> app -> db"},
		{"hc no type", func(p *Pod) { svc(p, "db").HealthCheck.Type = "" }, "services[0].healthCheck.type", "required: http, tcp or exec"},
		{"hc bad type", func(p *Pod) { svc(p, "db").HealthCheck.Type = "grpc" }, "services[0].healthCheck.type", `"grpc": want http, tcp or exec`},
		{"hc no port", func(p *Pod) { svc(p, "db").Port = 0 }, "services[0].healthCheck.port", "required for tcp checks (or set the service's port)"},
		{"hc bad port", func(p *Pod) { svc(p, "db").HealthCheck.Port = -1 }, "services[0].healthCheck.port", "-1 is not a port"},
		{"hc command on tcp", func(p *Pod) { svc(p, "db").HealthCheck.Command = []string{"x"} }, "services[0].healthCheck.command", "only used by exec checks"},
		{"hc host", func(p *Pod) { svc(p, "db").HealthCheck.Host = "a b" }, "services[0].healthCheck.host", `"a b" is not a host name or IP address`},
		{"hc exec no command", func(p *Pod) { svc(p, "worker").HealthCheck.Command = nil }, "services[2].healthCheck.command", "required for exec checks"},
		{"hc exec port", func(p *Pod) { svc(p, "worker").HealthCheck.Port = 80 }, "services[2].healthCheck.port", "only used by http and tcp checks"},
		{"hc path on tcp", func(p *Pod) { svc(p, "db").HealthCheck.Path = "/" }, "services[0].healthCheck.path", "path and status are only used by http checks"},
		{"hc path", func(p *Pod) { svc(p, "app").HealthCheck.Path = "healthz" }, "services[1].healthCheck.path", `"healthz" must start with /`},
		{"hc status min", func(p *Pod) { svc(p, "app").HealthCheck.StatusMin = 99 }, "services[1].healthCheck.statusMin", "99 is not an HTTP status"},
		{"hc status max", func(p *Pod) { svc(p, "app").HealthCheck.StatusMax = 600 }, "services[1].healthCheck.statusMax", "600 is not an HTTP status"},
		{"hc status order", func(p *Pod) { svc(p, "app").HealthCheck.StatusMin = 500 }, "services[1].healthCheck.statusMax", "399 is below statusMin 500"},
		{"hc interval", func(p *Pod) { svc(p, "app").HealthCheck.Interval = Duration{Duration: -time.Second} }, "services[1].healthCheck.interval", "-1s must be positive"},
		{"hc start period", func(p *Pod) { svc(p, "app").HealthCheck.StartPeriod = Duration{Duration: -time.Second} }, "services[1].healthCheck.startPeriod", "-1s must be positive"},
		{"hc timeout", func(p *Pod) { svc(p, "app").HealthCheck.Timeout = Duration{Duration: 10 * time.Second} }, "services[1].healthCheck.timeout", "10s must be less than the interval 10s"},
		{"hc timeout default interval", func(p *Pod) { svc(p, "db").HealthCheck.Timeout = Duration{Duration: time.Minute} }, "services[0].healthCheck.timeout", "1m0s must be less than the interval 10s"},
		{"hc retries", func(p *Pod) { svc(p, "app").HealthCheck.Retries = -1 }, "services[1].healthCheck.retries", "-1 must not be negative"},
		{"env name", func(p *Pod) { p.Environment["MY-VAR"] = "x" }, "environment.MY-VAR", `"MY-VAR" is not a valid variable name: want [A-Za-z_][A-Za-z0-9_]*`},
		{"env name odd", func(p *Pod) { p.Environment["a b"] = "x" }, `environment["a b"]`, `"a b" is not a valid variable name`},
		{"env nul", func(p *Pod) { p.Environment["FOO"] = "a\x00b" }, "environment.FOO", "value contains a NUL byte"},
		{"workdir", func(p *Pod) { p.WorkingDir = "workspace" }, "workingDir", `"workspace" must be an absolute, clean path`},
		{"user", func(p *Pod) { p.User = "Root" }, "user", `"Root" must be user[:group], each a name or a numeric id`},
		{"repo", func(p *Pod) { p.GithubRepo = "https://github.com/pinacle/shop" }, "githubRepo", `must be owner/repo`},
		{"repo dots", func(p *Pod) { p.GithubRepo = "pinacle/.." }, "githubRepo", `must be owner/repo`},
		{"branch no repo", func(p *Pod) { p.GithubRepo = "" }, "githubBranch", "set without githubRepo"},
		{"branch", func(p *Pod) { p.GithubBranch = "feature..x" }, "githubBranch", `"feature..x" is not a valid git branch name`},
		{"branch lock", func(p *Pod) { p.GithubBranch = "main.lock" }, "githubBranch", "is not a valid git branch name"},
		{"pod hc name", func(p *Pod) { p.HealthChecks[0].Name = "" }, "healthChecks[0].name", "required"},
		{"pod hc bad name", func(p *Pod) { p.HealthChecks[0].Name = "A" }, "healthChecks[0].name", "must be a DNS label"},
		{"pod hc dup", func(p *Pod) { p.HealthChecks = append(p.HealthChecks, p.HealthChecks[0]) }, "healthChecks[1].name", `duplicate name "app" (also healthChecks[0])`},
		{"pod hc port", func(p *Pod) { p.HealthChecks[0].Port = 0 }, "healthChecks[0].port", "required for http checks"},
		{"idle short", func(p *Pod) { p.IdleTimeout = Duration{Duration: time.Second} }, "idleTimeout", "1s must be 0 (never) or at least 1m0s"},
		{"idle negative", func(p *Pod) { p.IdleTimeout = Duration{Duration: -time.Minute} }, "idleTimeout", "-1m0s must be 0 (never) or at least 1m0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := validPod()
			tc.mutate(p)
			err := p.Validate()
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Validate() = %v, want a *ValidationError", err)
			}
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("not an invalid argument error")
			}
			if len(ve.Errors) != 1 {
				t.Fatalf("got %d errors, want 1:\n%v", len(ve.Errors), err)
			}
			got := ve.Errors[0]
			if got.Field != tc.field || !strings.Contains(got.Message, tc.msg) {
				t.Errorf("got %s\nwant %s: ...%s...", got.Error(), tc.field, tc.msg)
			}
		})
	}
}

func TestValidateReportsAllErrors(t *testing.T) {
	p := validPod()
	p.Name = ""
	p.Resources.CPUCores = 3
	p.Services[2].DependsOn = []string{"nope"}
	p.Network.Ports[0].Internal = 0
	err := p.Validate()
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Errors) != 4 {
		t.Fatalf("want 4 errors, got %v", err)
	}
	want := []string{"name", "resources.cpuCores", "network.ports[0].internal", "services[2].dependsOn[0]"}
	for i, fe := range ve.Errors {
		if fe.Field != want[i] {
			t.Errorf("error %d: field %q, want %q", i, fe.Field, want[i])
		}
	}
	if !strings.HasPrefix(err.Error(), "4 errors:\n  name: required\n") {
		t.Errorf("Error() = %q", err.Error())
	}
}

func TestDependencyCyclePath(t *testing.T) {
	p := validPod()
	p.Services = []Service{
		{Name: "a", Command: []string{"a"}, DependsOn: []string{"b"}},
		{Name: "b", Command: []string{"b"}, DependsOn: []string{"c"}},
		{Name: "c", Command: []string{"c"}, DependsOn: []string{"a"}},
		{Name: "d", Command: []string{"d"}, DependsOn: []string{"a"}},
	}
	err := p.Validate()
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Errors) != 1 || ve.Errors[0].Error() != "services[0].dependsOn: dependency cycle: a -> b -> c -> a" {
		t.Fatalf("got %v", err)
	}
}

func TestLimits(t *testing.T) {
	l, err := Resources{Tier: "dev.large"}.Limits()
	if err != nil {
		t.Fatal(err)
	}
	want := Limits{CPUCores: 4, CPUPeriodUs: 100000, CPUQuotaUs: 400000, CPUShares: 2048, MemoryBytes: 4 << 30, StorageBytes: 40 << 30, PidsLimit: 4096}
	if l != want {
		t.Errorf("Limits() = %+v, want %+v", l, want)
	}
	l, _ = Resources{Tier: "dev.small", CPUCores: 0.5, MemoryMB: 512}.Limits()
	if l.CPUQuotaUs != 50000 || l.CPUShares != 512 || l.MemoryBytes != 512<<20 || l.StorageBytes != 10<<30 {
		t.Errorf("Limits() = %+v", l)
	}
	if _, err := (Resources{Tier: "nope"}).Limits(); err == nil {
		t.Error("unknown tier: no error")
	}
}
