package podspec

import (
	"fmt"
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
		validateHealthCheck(&hc.HealthCheck, f, 0, &e)
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
			validateHealthCheck(s.HealthCheck, f+".healthCheck", s.Port, e)
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

// validateHealthCheck checks h; svcPort is the port an http or tcp check
// defaults to.
func validateHealthCheck(h *HealthCheck, f string, svcPort int, e *errList) {
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
