package main

// Memory per idle running pod (issue 14, part 3): the drop of MemAvailable
// per pod over n idle busybox pods (init only, no services), and the mean
// of their memory cgroups' usage. docs/runtime.md, "Memory per idle pod",
// has where it goes.

import (
	"context"
	"fmt"
	"time"
)

func runMemory(bin string, n int) error {
	return withNode(bin, func(nd *node) error {
		ctx := context.Background()
		// One pod first, so the image, spares and the daemon's own growth
		// are not counted against the n.
		first, err := nd.client.Create(ctx, plain("mem-warmup"))
		if err != nil {
			return err
		}
		time.Sleep(3 * time.Second)
		before := memAvailable()
		var ids []string
		for i := 0; i < n; i++ {
			p, err := nd.client.Create(ctx, plain(fmt.Sprintf("mem%d", i)))
			if err != nil {
				return err
			}
			ids = append(ids, p.ID)
		}
		time.Sleep(10 * time.Second) // let the sandboxes settle
		after := memAvailable()
		var cg uint64
		for _, id := range ids {
			cg += cgroupMemory(id)
		}
		fmt.Printf("memory-bench: idle busybox pod (init, no services): MemAvailable drop %.1f MB per pod, memory cgroup usage %.1f MB per pod (n=%d; target 15 MB)\n",
			float64(int64(before)-int64(after))/float64(n)/1e6, float64(cg)/float64(n)/1e6, n)
		return nd.client.Delete(ctx, first.ID)
	})
}
