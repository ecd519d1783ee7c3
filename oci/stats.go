package oci

import (
	"context"
	"encoding/json"
	"fmt"
)

// eventsStats is the part of `runsc events --stats` we read.
type eventsStats struct {
	Type string `json:"type"`
	Data struct {
		CPU struct {
			Usage struct {
				Total uint64 `json:"total"`
			} `json:"usage"`
		} `json:"cpu"`
		Memory struct {
			Usage struct {
				Limit   uint64 `json:"limit"`
				Usage   uint64 `json:"usage"`
				Max     uint64 `json:"max"`
				Failcnt uint64 `json:"failcnt"`
			} `json:"usage"`
		} `json:"memory"`
		Pids struct {
			Current uint64 `json:"current"`
			Limit   uint64 `json:"limit"`
		} `json:"pids"`
	} `json:"data"`
}

// Stats combines runsc's view (from inside the sandbox) with the pod
// cgroup's counters (limit, failcnt, OOM kills), which runsc does not report.
func (r *runsc) Stats(ctx context.Context, id string) (Stats, error) {
	ci, _, err := r.lookup(ctx, id)
	if err != nil {
		return Stats{}, fmt.Errorf("stats %s: %w", id, err)
	}
	out, _, err := r.run(ctx, call{id: id, args: []string{"events", "--stats", id}, capture: true})
	if err != nil {
		return Stats{}, fmt.Errorf("stats %s: %w", id, err)
	}
	var ev eventsStats
	if err := json.Unmarshal(out, &ev); err != nil {
		return Stats{}, fmt.Errorf("stats %s: decode %q: %w", id, tail(out, 200), err)
	}
	s := Stats{
		CPUUsageNanos:   ev.Data.CPU.Usage.Total,
		MemoryUsage:     ev.Data.Memory.Usage.Usage,
		MemoryLimit:     ev.Data.Memory.Usage.Limit,
		MemoryMaxUsage:  ev.Data.Memory.Usage.Max,
		MemoryFailCount: ev.Data.Memory.Usage.Failcnt,
		Pids:            ev.Data.Pids.Current,
		PidsLimit:       ev.Data.Pids.Limit,
	}
	ci.mu.Lock()
	cg := ci.cgroupsPath
	ci.mu.Unlock()
	if m := readMemoryEvents(cg); m.ok {
		s.CgroupsAvailable = true
		s.OOMKills, s.UnderOOM = m.oomKills, m.underOOM
		s.MemoryFailCount, s.MemoryMaxUsage = m.failcnt, m.maxUsage
		if m.limit > 0 && m.limit < 1<<62 {
			s.MemoryLimit = m.limit
		}
		if s.PidsLimit == 0 {
			s.PidsLimit = m.pidsLimit
		}
	}
	return s, nil
}
