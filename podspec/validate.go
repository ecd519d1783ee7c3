package podspec

import (
	"fmt"
	"math"
	"net/netip"
	"path"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// Port bounds. The node reserves no port inside a pod: the supervisor
// talks to the node through files, not a socket, so services may use any
// port. External ports come from the node's forwarding pool.
const (
	ExternalPortMin = 30000
	ExternalPortMax = 40000
)

// Bounds on durations the node acts on.
const (
	MinIdleTimeout     = time.Minute
	MaxStopGracePeriod = 10 * time.Minute
)

var (
	dnsLabel = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`) })
	envName  = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`) })
	userSpec = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^(?:[a-z_][a-z0-9_-]{0,31}|[0-9]{1,10})(?::(?:[a-z_][a-z0-9_-]{0,31}|[0-9]{1,10}))?$`)
	})
	githubRepo = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$`)
	})
	hostnameRe = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^(?:\*\.)?(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)
	})
	badRefChars  = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`[\x00-\x20\x7f~^:?*\[\\]`) })
	dnsLabelHelp = "lowercase letters, digits and '-', at most 63, starting and ending with a letter or digit"
)

// Validate checks every field of p and returns all problems at once as a
// *ValidationError (an errdefs.ErrInvalidArgument), or nil. Zero values
// that have defaults are accepted; call Default first to see them.
func (p *Pod) Validate() error {
	var e errList
	if p.ID != "" && errdefs.ValidateID("pod", p.ID) != nil {
		e.add("id", "%q is not a valid id: lowercase letters, digits, '.', '_' and '-', at most 63, starting with a letter or digit", p.ID)
	}
	switch {
	case p.Name == "":
		e.add("name", "required")
	case !dnsLabel().MatchString(p.Name):
		e.add("name", "%q must be a DNS label: %s", p.Name, dnsLabelHelp)
	}
	if p.Slug != "" && !dnsLabel().MatchString(p.Slug) {
		e.add("slug", "%q must be a DNS label: %s", p.Slug, dnsLabelHelp)
	}
	if p.Template != "" && !dnsLabel().MatchString(p.Template) {
		e.add("template", "%q must be a DNS label: %s", p.Template, dnsLabelHelp)
	}
	validateImage("baseImage", p.BaseImage, &e)
	validateResources(p.Resources, &e)
	p.Network.validate(&e)
	validateServices(p.Services, &e)
	validateEnv("environment", p.Environment, &e)
	validateAbsPath("workingDir", p.WorkingDir, &e)
	if p.User != "" && !userSpec().MatchString(p.User) {
		e.add("user", "%q must be user[:group], each a name or a numeric id", p.User)
	}
	if p.GithubRepo != "" {
		owner, repo, _ := strings.Cut(p.GithubRepo, "/")
		if !githubRepo().MatchString(p.GithubRepo) || repo == "." || repo == ".." || strings.HasSuffix(owner, "-") {
			e.add("githubRepo", "%q must be owner/repo, e.g. \"pinacle/pinacle-node\"", p.GithubRepo)
		}
	}
	if p.GithubBranch != "" {
		if p.GithubRepo == "" {
			e.add("githubBranch", "set without githubRepo")
		}
		if !validRefName(p.GithubBranch) {
			e.add("githubBranch", "%q is not a valid git branch name", p.GithubBranch)
		}
	}
	seen := map[string]int{}
	for i, hc := range p.HealthChecks {
		f := Index("healthChecks", i)
		e.uniqueLabel("healthChecks", i, hc.Name, "name", seen)
		hc.HealthCheck.validate(f, 0, &e)
	}
	if d := p.IdleTimeout.Duration; d < 0 || (d > 0 && d < MinIdleTimeout) {
		e.add("idleTimeout", "%s must be 0 (never) or at least %s", d, MinIdleTimeout)
	}
	return e.err()
}

func validateImage(field, ref string, e *errList) {
	if ref == "" {
		e.add(field, "required")
		return
	}
	if _, err := name.ParseReference(ref, name.StrictValidation); err != nil {
		msg := fmt.Sprintf("%q is not a fully qualified image reference (registry/repository:tag or @digest)", ref)
		if weak, werr := name.ParseReference(ref); werr == nil {
			// ggcr spells Docker Hub index.docker.io; people write docker.io.
			msg += fmt.Sprintf(", e.g. %q", strings.Replace(weak.Name(), "index.docker.io/", "docker.io/", 1))
		}
		e.add(field, "%s", msg)
	}
}

func validateEnv(field string, env map[string]string, e *errList) {
	for _, k := range sortedKeys(env) {
		if !envName().MatchString(k) {
			e.add(Join(field, k), "%q is not a valid variable name: want [A-Za-z_][A-Za-z0-9_]*", k)
		}
		if strings.ContainsRune(env[k], 0) {
			e.add(Join(field, k), "value contains a NUL byte")
		}
	}
}

func validateAbsPath(field, p string, e *errList) {
	if p == "" {
		return
	}
	if !path.IsAbs(p) || path.Clean(p) != p || strings.ContainsRune(p, 0) {
		e.add(field, "%q must be an absolute, clean path", p)
	}
}

func validRefName(b string) bool {
	return len(b) <= 255 && !badRefChars().MatchString(b) && !strings.HasPrefix(b, "-") &&
		!strings.HasPrefix(b, "/") && !strings.HasSuffix(b, "/") && !strings.HasSuffix(b, ".") &&
		!strings.HasSuffix(b, ".lock") && !strings.Contains(b, "..") && !strings.Contains(b, "//") &&
		!strings.Contains(b, "@{") && b != "@"
}

func validPort(p int) bool { return p >= 1 && p <= 65535 }

func (n *Network) validate(e *errList) {
	validatePorts(n.Ports, e)
	validateSubnet(n.Subnet, e)
	if n.Egress != nil {
		n.Egress.validate(e)
	}
	if n.Bandwidth != nil {
		n.Bandwidth.validate(e)
	}
	if n.DNS != nil {
		n.DNS.validate(e)
	}
}

// validatePorts checks each port and that names, internal ports (per
// protocol) and host ports are unique.
func validatePorts(ports []Port, e *errList) {
	byName := map[string]int{}
	byNum := map[string]int{}
	byExt := map[int]int{}
	for i, p := range ports {
		f := Index("network.ports", i)
		e.uniqueLabel("network.ports", i, p.Name, "port name", byName)
		proto := p.Protocol
		if proto == "" {
			proto = ProtocolTCP
		}
		if proto != ProtocolTCP && proto != ProtocolUDP {
			e.add(f+".protocol", "%q: want tcp or udp", p.Protocol)
		}
		if !validPort(p.Internal) {
			e.add(f+".internal", "%d is not a port: want 1-65535", p.Internal)
		} else {
			key := fmt.Sprintf("%d/%s", p.Internal, proto)
			if j, dup := byNum[key]; dup {
				e.add(f+".internal", "port %s is also network.ports[%d]", key, j)
			}
			byNum[key] = i
		}
		if p.External != 0 {
			if p.External < ExternalPortMin || p.External > ExternalPortMax {
				e.add(f+".external", "%d is outside the node's port pool %d-%d", p.External, ExternalPortMin, ExternalPortMax)
			} else if j, dup := byExt[p.External]; dup {
				e.add(f+".external", "port %d is also network.ports[%d]", p.External, j)
			} else {
				byExt[p.External] = i
			}
			if proto == ProtocolUDP {
				e.add(f+".external", "the node forwards tcp only")
			}
		}
	}
}

// validateSubnet checks a pod's own subnet: a private IPv4 CIDR of /16-/29.
func validateSubnet(subnet string, e *errList) {
	if subnet != "" {
		pfx, err := netip.ParsePrefix(subnet)
		switch {
		case err != nil:
			e.add("network.subnet", "%q is not a CIDR, e.g. \"10.88.0.0/24\"", subnet)
		case !pfx.Addr().Is4():
			e.add("network.subnet", "%q: only IPv4 subnets are supported", subnet)
		case pfx.Masked() != pfx:
			e.add("network.subnet", "%q has host bits set; did you mean %q?", subnet, pfx.Masked())
		case pfx.Bits() < 16 || pfx.Bits() > 29:
			e.add("network.subnet", "%q: prefix length must be between /16 and /29", subnet)
		case !pfx.Addr().IsPrivate() && !netip.MustParsePrefix("100.64.0.0/10").Contains(pfx.Addr()):
			e.add("network.subnet", "%q is not a private range (10/8, 172.16/12, 192.168/16, 100.64/10)", subnet)
		}
	}
}

// validate checks the egress mode, its rules, and that domains come only with an allow list.
func (g *Egress) validate(e *errList) {
	switch g.Mode {
	case "", EgressDefault, EgressNone, EgressAllowlist:
	default:
		e.add("network.egress.mode", "%q: want default, none or allowlist", g.Mode)
	}
	validateRules("network.egress.allow", g.Allow, e)
	validateRules("network.egress.deny", g.Deny, e)
	if len(g.Domains) > 0 && (g.Mode == "" || g.Mode == EgressDefault || g.Mode == EgressNone) {
		e.add("network.egress.domains", "only used with mode allowlist")
	}
	for i, d := range g.Domains {
		if len(d) > 253 || !hostnameRe().MatchString(d) {
			e.add(Index("network.egress.domains", i), "%q is not a domain name (a leading \"*.\" is allowed)", d)
		}
	}
}

// validate checks that each direction has both rate and burst, within what the CNI plugin can hold.
func (b *Bandwidth) validate(e *errList) {
	pair := func(dir string, rate, burst BitRate) {
		switch {
		case rate == 0 && burst != 0:
			e.add("network.bandwidth."+dir+"Rate", "required when %sBurst is set", dir)
		case rate != 0 && burst == 0:
			e.add("network.bandwidth."+dir+"Burst", "required when %sRate is set", dir)
		}
		// The CNI bandwidth plugin keeps the burst in bytes in a uint32.
		if uint64(burst)/8 >= math.MaxUint32 {
			e.add("network.bandwidth."+dir+"Burst", "%s is above the maximum 4GB (34359738360bit)", burst)
		}
	}
	pair("ingress", b.IngressRate, b.IngressBurst)
	pair("egress", b.EgressRate, b.EgressBurst)
}

// validate checks nameservers and search domains against what resolv.conf can use.
func (d *DNS) validate(e *errList) {
	if len(d.Nameservers) > 3 {
		e.add("network.dns.nameservers", "%d nameservers: resolv.conf uses at most 3", len(d.Nameservers))
	}
	for i, ns := range d.Nameservers {
		if _, err := netip.ParseAddr(ns); err != nil {
			e.add(Index("network.dns.nameservers", i), "%q is not an IP address", ns)
		}
	}
	if len(d.Search) > 6 {
		e.add("network.dns.search", "%d search domains: resolv.conf uses at most 6", len(d.Search))
	}
	for i, s := range d.Search {
		if len(s) > 253 || strings.HasPrefix(s, "*") || !hostnameRe().MatchString(s) {
			e.add(Index("network.dns.search", i), "%q is not a domain name", s)
		}
	}
}

func validateRules(field string, rules []EgressRule, e *errList) {
	for i, r := range rules {
		f := Index(field, i)
		if _, err := netip.ParsePrefix(r.CIDR); err != nil {
			hint := ""
			if a, aerr := netip.ParseAddr(r.CIDR); aerr == nil {
				hint = fmt.Sprintf("; did you mean %q?", netip.PrefixFrom(a, a.BitLen()))
			}
			e.add(f+".cidr", "%q is not a CIDR%s", r.CIDR, hint)
		}
		switch r.Protocol {
		case "", ProtocolAny:
			if len(r.Ports) > 0 {
				e.add(f+".protocol", "ports need protocol tcp or udp")
			}
		case ProtocolTCP, ProtocolUDP:
		default:
			e.add(f+".protocol", "%q: want tcp, udp or any", r.Protocol)
		}
		for j, p := range r.Ports {
			if !validPort(p) {
				e.add(Index(f+".ports", j), "%d is not a port: want 1-65535", p)
			}
		}
	}
}

// uniqueLabel checks the name of element i of list: present, a DNS label,
// and not taken by an earlier element (seen maps names to the first index).
func (e *errList) uniqueLabel(list string, i int, name, what string, seen map[string]int) {
	f := Index(list, i) + ".name"
	switch {
	case name == "":
		e.add(f, "required")
	case !dnsLabel().MatchString(name):
		e.add(f, "%q must be a DNS label: %s", name, dnsLabelHelp)
	default:
		if j, dup := seen[name]; dup {
			e.add(f, "duplicate %s %q (also %s[%d])", what, name, list, j)
		} else {
			seen[name] = i
		}
	}
}

func validateServices(svcs []Service, e *errList) {
	idx := map[string]int{}
	ports := map[int]int{}
	for i, s := range svcs {
		f := Index("services", i)
		e.uniqueLabel("services", i, s.Name, "service name", idx)
		if len(s.Command) == 0 {
			e.add(f+".command", "required")
		} else if s.Command[0] == "" {
			e.add(f+".command[0]", "must not be empty")
		}
		switch {
		case len(s.Install) > 0 && s.Creates == "":
			e.add(f+".creates", "required with install: the path whose existence means install already ran")
		case len(s.Install) == 0 && s.Creates != "":
			e.add(f+".creates", "set without install")
		case len(s.Install) > 0 && s.Install[0] == "":
			e.add(f+".install[0]", "must not be empty")
		}
		validateAbsPath(f+".creates", s.Creates, e)
		validateAbsPath(f+".workingDir", s.WorkingDir, e)
		validateEnv(f+".env", s.Env, e)
		if s.User != "" && !userSpec().MatchString(s.User) {
			e.add(f+".user", "%q must be user[:group], each a name or a numeric id", s.User)
		}
		switch s.Restart {
		case "", RestartAlways, RestartOnFailure, RestartNever:
		default:
			e.add(f+".restart", "%q: want always, on-failure or never", s.Restart)
		}
		if d := s.StopGracePeriod.Duration; d < 0 || d > MaxStopGracePeriod {
			e.add(f+".stopGracePeriod", "%s must be between 0 and %s", d, MaxStopGracePeriod)
		}
		if s.Port != 0 {
			if !validPort(s.Port) {
				e.add(f+".port", "%d is not a port: want 1-65535", s.Port)
			} else if j, dup := ports[s.Port]; dup {
				e.add(f+".port", "port %d is also used by services[%d] (%s)", s.Port, j, svcs[j].Name)
			} else {
				ports[s.Port] = i
			}
		}
		if s.HealthCheck != nil {
			s.HealthCheck.validate(f+".healthCheck", s.Port, e)
		}
	}
	for i, s := range svcs {
		seen := map[string]bool{}
		for j, d := range s.DependsOn {
			f := Index(Index("services", i)+".dependsOn", j)
			switch _, ok := idx[d]; {
			case d == s.Name:
				e.add(f, "service %q depends on itself", d)
			case !ok:
				e.add(f, "unknown service %q", d)
			case seen[d]:
				e.add(f, "duplicate dependency %q", d)
			}
			seen[d] = true
		}
	}
	for _, cyc := range dependencyCycles(svcs, idx) {
		e.add(Index("services", idx[cyc[0]])+".dependsOn", "dependency cycle: %s", strings.Join(cyc, " -> "))
	}
}

// dependencyCycles finds each dependency cycle once, as the path of
// service names from its first member (in spec order) back to itself.
func dependencyCycles(svcs []Service, idx map[string]int) [][]string {
	const (
		white = iota
		grey
		black
	)
	color := make([]int, len(svcs))
	var stack []string
	var cycles [][]string
	var visit func(i int)
	visit = func(i int) {
		color[i] = grey
		stack = append(stack, svcs[i].Name)
		for _, d := range svcs[i].DependsOn {
			j, ok := idx[d]
			if !ok || d == svcs[i].Name {
				continue // reported elsewhere
			}
			switch color[j] {
			case white:
				visit(j)
			case grey:
				start := slices.Index(stack, d)
				cyc := append(slices.Clone(stack[start:]), d)
				cycles = append(cycles, cyc)
			}
		}
		stack = stack[:len(stack)-1]
		color[i] = black
	}
	for i, s := range svcs {
		if j, ok := idx[s.Name]; ok && j == i && color[i] == white {
			visit(i)
		}
	}
	return cycles
}

// validate checks h; svcPort is the port an http or tcp check defaults to.
func (h *HealthCheck) validate(f string, svcPort int, e *errList) {
	switch h.Type {
	case HealthHTTP, HealthTCP:
		if h.Port == 0 && svcPort == 0 {
			e.add(f+".port", "required for %s checks (or set the service's port)", h.Type)
		} else if h.Port != 0 && !validPort(h.Port) {
			e.add(f+".port", "%d is not a port: want 1-65535", h.Port)
		}
		if len(h.Command) > 0 {
			e.add(f+".command", "only used by exec checks")
		}
		if h.Host != "" && !hostnameRe().MatchString(h.Host) {
			if _, err := netip.ParseAddr(h.Host); err != nil {
				e.add(f+".host", "%q is not a host name or IP address", h.Host)
			}
		}
	case HealthExec:
		if len(h.Command) == 0 || h.Command[0] == "" {
			e.add(f+".command", "required for exec checks")
		}
		if h.Port != 0 || h.Host != "" {
			e.add(f+".port", "only used by http and tcp checks")
		}
	case "":
		e.add(f+".type", "required: http, tcp or exec")
	default:
		e.add(f+".type", "%q: want http, tcp or exec", h.Type)
	}
	if h.Type != HealthHTTP && (h.Path != "" || h.StatusMin != 0 || h.StatusMax != 0) {
		e.add(f+".path", "path and status are only used by http checks")
	}
	if h.Type == HealthHTTP {
		if h.Path != "" && !strings.HasPrefix(h.Path, "/") {
			e.add(f+".path", "%q must start with /", h.Path)
		}
		lo, hi := h.StatusMin, h.StatusMax
		if lo == 0 {
			lo = DefaultHealthStatusMin
		}
		if hi == 0 {
			hi = DefaultHealthStatusMax
		}
		if h.StatusMin != 0 && (h.StatusMin < 100 || h.StatusMin > 599) {
			e.add(f+".statusMin", "%d is not an HTTP status: want 100-599", h.StatusMin)
		} else if h.StatusMax != 0 && (h.StatusMax < 100 || h.StatusMax > 599) {
			e.add(f+".statusMax", "%d is not an HTTP status: want 100-599", h.StatusMax)
		} else if lo > hi {
			e.add(f+".statusMax", "%d is below statusMin %d", hi, lo)
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"interval", h.Interval.Duration}, {"timeout", h.Timeout.Duration}, {"startPeriod", h.StartPeriod.Duration}} {
		if d.v < 0 {
			e.add(f+"."+d.name, "%s must be positive", d.v)
		}
	}
	iv, to := h.Interval.Duration, h.Timeout.Duration
	if iv == 0 {
		iv = DefaultHealthInterval
	}
	if to == 0 {
		to = DefaultHealthTimeout
	}
	if iv > 0 && to > 0 && to >= iv {
		e.add(f+".timeout", "%s must be less than the interval %s", to, iv)
	}
	if h.Retries < 0 {
		e.add(f+".retries", "%d must not be negative", h.Retries)
	}
}

// IsDNSLabel reports whether s may name a pod, service, port or template:
// lowercase letters, digits and '-', at most 63, alphanumeric at both ends.
func IsDNSLabel(s string) bool { return dnsLabel().MatchString(s) }
