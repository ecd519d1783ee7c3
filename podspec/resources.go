package podspec

import (
	"fmt"
	"math"
	"slices"
)

// Tier is a named resource size. A pod's CPU may lie anywhere in
// [CPUMin, CPUMax] (default CPUMax); memory and storage default to the
// tier's values, which are also the maxima, and may be lowered down to
// MinMemoryMB and MinStorageMB.
type Tier struct {
	Name      string  `json:"name"`
	CPUMin    float64 `json:"cpuMin"`
	CPUMax    float64 `json:"cpuMax"`
	MemoryMB  int64   `json:"memoryMb"`
	StorageMB int64   `json:"storageMb"`
	PidsLimit int64   `json:"pidsLimit"`
}

// The lowest memory and storage a pod may ask for, whatever its tier.
const (
	MinMemoryMB  = 256
	MinStorageMB = 1024
	// DefaultTier is the tier of a pod that names none.
	DefaultTier = "dev.small"
)

var tiers = []Tier{
	{Name: "dev.small", CPUMin: 0.5, CPUMax: 1, MemoryMB: 1024, StorageMB: 10240, PidsLimit: 1024},
	{Name: "dev.medium", CPUMin: 1, CPUMax: 2, MemoryMB: 2048, StorageMB: 20480, PidsLimit: 2048},
	{Name: "dev.large", CPUMin: 2, CPUMax: 4, MemoryMB: 4096, StorageMB: 40960, PidsLimit: 4096},
	{Name: "dev.xlarge", CPUMin: 4, CPUMax: 8, MemoryMB: 8192, StorageMB: 81920, PidsLimit: 8192},
}

// Tiers returns every tier, smallest first.
func Tiers() []Tier { return slices.Clone(tiers) }

// TierNames returns the tier names, smallest first.
func TierNames() []string {
	names := make([]string, len(tiers))
	for i, t := range tiers {
		names[i] = t.Name
	}
	return names
}

// LookupTier returns the named tier.
func LookupTier(name string) (Tier, bool) {
	for _, t := range tiers {
		if t.Name == name {
			return t, true
		}
	}
	return Tier{}, false
}

// Limits are the concrete limits the runtime applies to a pod's sandbox.
type Limits struct {
	CPUCores     float64 `json:"cpuCores"`     // quota in cores (quota/period)
	CPUPeriodUs  uint64  `json:"cpuPeriodUs"`  // CFS period
	CPUQuotaUs   int64   `json:"cpuQuotaUs"`   // CFS quota per period
	CPUShares    uint64  `json:"cpuShares"`    // cgroup v1 weight, from the tier's minimum
	MemoryBytes  int64   `json:"memoryBytes"`  // hard memory limit
	StorageBytes int64   `json:"storageBytes"` // writable layer + workspace quota
	PidsLimit    int64   `json:"pidsLimit"`
}

// CPUPeriodUs is the CFS period used for every pod: 100 ms, the kernel default.
const CPUPeriodUs = 100000

// Limits maps resources to runtime limits, filling tier defaults for
// zero values. It fails for an unknown tier; call it on a validated pod.
func (r Resources) Limits() (Limits, error) {
	tierName := r.Tier
	if tierName == "" {
		tierName = DefaultTier
	}
	t, ok := LookupTier(tierName)
	if !ok {
		return Limits{}, fmt.Errorf("resources.tier: unknown tier %q", r.Tier)
	}
	cpu, mem, sto := r.CPUCores, r.MemoryMB, r.StorageMB
	if cpu == 0 {
		cpu = t.CPUMax
	}
	if mem == 0 {
		mem = t.MemoryMB
	}
	if sto == 0 {
		sto = t.StorageMB
	}
	// Shares guarantee the tier's minimum under contention: 1024 per core.
	shares := uint64(math.Round(math.Min(cpu, t.CPUMin) * 1024))
	return Limits{
		CPUCores:     cpu,
		CPUPeriodUs:  CPUPeriodUs,
		CPUQuotaUs:   int64(math.Round(cpu * CPUPeriodUs)),
		CPUShares:    max(shares, 2),
		MemoryBytes:  mem << 20,
		StorageBytes: sto << 20,
		PidsLimit:    t.PidsLimit,
	}, nil
}

func fmtCores(f float64) string { return fmt.Sprintf("%g", f) }

// validateResources checks r against its tier; "field: N is above
// dev.medium's maximum 2".
func validateResources(r Resources, errs *errList) {
	tierName := r.Tier
	if tierName == "" {
		tierName = DefaultTier
	}
	t, ok := LookupTier(tierName)
	if !ok {
		errs.add("resources.tier", "unknown tier %q (want one of %v)", r.Tier, TierNames())
		return
	}
	switch c := r.CPUCores; {
	case math.IsNaN(c) || c < 0:
		errs.add("resources.cpuCores", "%s must be positive", fmtCores(c))
	case c == 0:
	case c < t.CPUMin:
		errs.add("resources.cpuCores", "%s is below %s's minimum %s", fmtCores(c), t.Name, fmtCores(t.CPUMin))
	case c > t.CPUMax:
		errs.add("resources.cpuCores", "%s is above %s's maximum %s", fmtCores(c), t.Name, fmtCores(t.CPUMax))
	}
	bound := func(field string, v, lo, hi int64) {
		switch {
		case v < 0:
			errs.add(field, "%d must be positive", v)
		case v == 0:
		case v < lo:
			errs.add(field, "%d is below the minimum %d", v, lo)
		case v > hi:
			errs.add(field, "%d is above %s's maximum %d", v, t.Name, hi)
		}
	}
	bound("resources.memoryMb", r.MemoryMB, MinMemoryMB, t.MemoryMB)
	bound("resources.storageMb", r.StorageMB, MinStorageMB, t.StorageMB)
}
