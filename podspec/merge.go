package podspec

import (
	"maps"
	"slices"
)

// Merge returns base with over laid on top, deterministically: scalars
// set in over replace base's; maps merge by key; ports, services and
// health checks merge by name (matching entries merge field by field,
// new ones are appended in over's order); every other list (command,
// dependsOn, egress rules, DNS servers, ...) is replaced as a whole. A
// zero value in over never clears base's. Neither argument is modified.
func Merge(base, over *Pod) *Pod {
	out := base.DeepCopy()
	if over == nil {
		return out
	}
	o := over.DeepCopy()
	setStr(&out.ID, o.ID)
	setStr(&out.Name, o.Name)
	setStr(&out.Slug, o.Slug)
	setStr(&out.Template, o.Template)
	setStr(&out.BaseImage, o.BaseImage)
	setStr(&out.Resources.Tier, o.Resources.Tier)
	if o.Resources.CPUCores != 0 {
		out.Resources.CPUCores = o.Resources.CPUCores
	}
	if o.Resources.MemoryMB != 0 {
		out.Resources.MemoryMB = o.Resources.MemoryMB
	}
	if o.Resources.StorageMB != 0 {
		out.Resources.StorageMB = o.Resources.StorageMB
	}
	out.Network.Ports = mergeByName(out.Network.Ports, o.Network.Ports,
		func(p Port) string { return p.Name }, mergePort)
	setStr(&out.Network.Subnet, o.Network.Subnet)
	if g := o.Network.Egress; g != nil {
		if out.Network.Egress == nil {
			out.Network.Egress = &Egress{}
		}
		b := out.Network.Egress
		setStr((*string)(&b.Mode), string(g.Mode))
		setList(&b.Allow, g.Allow)
		setList(&b.Deny, g.Deny)
		setList(&b.Domains, g.Domains)
	}
	if w := o.Network.Bandwidth; w != nil {
		if out.Network.Bandwidth == nil {
			out.Network.Bandwidth = &Bandwidth{}
		}
		b := out.Network.Bandwidth
		for _, f := range []struct{ dst, src *BitRate }{
			{&b.IngressRate, &w.IngressRate}, {&b.IngressBurst, &w.IngressBurst},
			{&b.EgressRate, &w.EgressRate}, {&b.EgressBurst, &w.EgressBurst},
		} {
			if *f.src != 0 {
				*f.dst = *f.src
			}
		}
	}
	if d := o.Network.DNS; d != nil {
		if out.Network.DNS == nil {
			out.Network.DNS = &DNS{}
		}
		setList(&out.Network.DNS.Nameservers, d.Nameservers)
		setList(&out.Network.DNS.Search, d.Search)
	}
	out.Services = mergeByName(out.Services, o.Services,
		func(s Service) string { return s.Name }, MergeService)
	out.Environment = mergeMap(out.Environment, o.Environment)
	setStr(&out.WorkingDir, o.WorkingDir)
	setStr(&out.User, o.User)
	setStr(&out.GithubRepo, o.GithubRepo)
	setStr(&out.GithubBranch, o.GithubBranch)
	out.HealthChecks = mergeByName(out.HealthChecks, o.HealthChecks,
		func(h NamedHealthCheck) string { return h.Name },
		func(_, o NamedHealthCheck) NamedHealthCheck { return o })
	if o.IdleTimeout.Duration != 0 {
		out.IdleTimeout = o.IdleTimeout
	}
	return out
}

// MergeService lays over onto base field by field, with Merge's rules; a
// health check in over replaces base's whole (an http check's path makes
// no sense on an exec check).
func MergeService(base, over Service) Service {
	out, over := base.DeepCopy(), over.DeepCopy()
	setStr(&out.Name, over.Name)
	setList(&out.Command, over.Command)
	out.Env = mergeMap(out.Env, over.Env)
	setStr(&out.WorkingDir, over.WorkingDir)
	setStr(&out.User, over.User)
	setList(&out.Install, over.Install)
	setStr(&out.Creates, over.Creates)
	setList(&out.DependsOn, over.DependsOn)
	if over.HealthCheck != nil {
		out.HealthCheck = over.HealthCheck
	}
	setStr((*string)(&out.Restart), string(over.Restart))
	if over.StopGracePeriod.Duration != 0 {
		out.StopGracePeriod = over.StopGracePeriod
	}
	if over.Port != 0 {
		out.Port = over.Port
	}
	return out
}

func mergePort(base, over Port) Port {
	out := base
	if over.Internal != 0 {
		out.Internal = over.Internal
	}
	setStr((*string)(&out.Protocol), string(over.Protocol))
	if over.External != 0 {
		out.External = over.External
	}
	out.Public = out.Public || over.Public // an override opens a port, never closes one a template opened
	return out
}

func setStr(dst *string, src string) {
	if src != "" {
		*dst = src
	}
}

func setList[T any](dst *[]T, src []T) {
	if src != nil {
		*dst = slices.Clone(src)
	}
}

func mergeMap(base, over map[string]string) map[string]string {
	if base == nil && over == nil {
		return nil
	}
	out := maps.Clone(base)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, over)
	return out
}

// mergeByName merges lists of named entries: an entry of over whose name
// is in base merges into it in place; the others are appended in order.
// Entries without a name are appended as they are (Validate reports them).
func mergeByName[T any](base, over []T, name func(T) string, merge func(T, T) T) []T {
	if over == nil {
		return base
	}
	out := slices.Clone(base)
	for _, o := range over {
		n := name(o)
		i := -1
		if n != "" {
			i = slices.IndexFunc(out, func(b T) bool { return name(b) == n })
		}
		if i >= 0 {
			out[i] = merge(out[i], o)
		} else {
			out = append(out, o)
		}
	}
	return out
}

// DeepCopy returns a copy of p that shares no memory with it.
func (p *Pod) DeepCopy() *Pod {
	if p == nil {
		return &Pod{}
	}
	out := *p
	out.Network.Ports = slices.Clone(p.Network.Ports)
	if g := p.Network.Egress; g != nil {
		out.Network.Egress = &Egress{Mode: g.Mode, Allow: copyRules(g.Allow), Deny: copyRules(g.Deny), Domains: slices.Clone(g.Domains)}
	}
	if b := p.Network.Bandwidth; b != nil {
		c := *b
		out.Network.Bandwidth = &c
	}
	if d := p.Network.DNS; d != nil {
		out.Network.DNS = &DNS{Nameservers: slices.Clone(d.Nameservers), Search: slices.Clone(d.Search)}
	}
	if p.Services != nil {
		out.Services = make([]Service, len(p.Services))
		for i, s := range p.Services {
			out.Services[i] = s.DeepCopy()
		}
	}
	out.Environment = maps.Clone(p.Environment)
	if p.HealthChecks != nil {
		out.HealthChecks = make([]NamedHealthCheck, len(p.HealthChecks))
		for i, h := range p.HealthChecks {
			out.HealthChecks[i] = NamedHealthCheck{Name: h.Name, HealthCheck: h.HealthCheck.DeepCopy()}
		}
	}
	return &out
}

func copyRules(rs []EgressRule) []EgressRule {
	if rs == nil {
		return nil
	}
	out := make([]EgressRule, len(rs))
	for i, r := range rs {
		out[i] = EgressRule{CIDR: r.CIDR, Ports: slices.Clone(r.Ports), Protocol: r.Protocol}
	}
	return out
}
