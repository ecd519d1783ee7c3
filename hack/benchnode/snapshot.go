package main

// The template snapshot figures (issue 14, part 2), each beside its
// baseline from the same run, for a template whose one service warms up
// for 5 s before it answers:
//   - create -> first byte through the host port (every service healthy:
//     create waits for it) of a pod restored from the template's
//     snapshot, p50, beside a bare `runsc restore` of the same checkpoint
//     to the first byte from the pod's address, and beside a cold create
//     of the same template;
//   - the snapshot's size on disk.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/podspec"
	"github.com/pinacle/pinacle-node/snapshots"
)

const warmTemplate = `name: warm5
description: one service that warms up for 5 s before it answers
spec:
  baseImage: ` + ref + `
  resources: {tier: dev.small, memoryMb: 256, storageMb: 1024}
  network:
    ports: [{name: web, internal: 8080}]
  services:
    - name: web
      command: [sh, -c, "sleep 5; exec httpd -f -p 8080 -h /etc"]
      healthCheck: {type: http, port: 8080, path: /hostname, interval: 250ms, timeout: 200ms, startPeriod: 30s}
`

func runSnapshot(bin string, n int) error {
	return withNodeSetup(bin, func(dir string) error {
		if err := os.MkdirAll(filepath.Join(dir, "templates"), 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, "templates", "warm5.yaml"), []byte(warmTemplate), 0o644)
	}, func(nd *node) error { return snapshotFigures(context.Background(), nd, n) })
}

// fromTemplate creates a pod of warm5 and times create -> first byte
// through its host port.
func fromTemplate(ctx context.Context, nd *node, name string) (*api.Pod, time.Duration, error) {
	t0 := time.Now()
	p, err := nd.client.Create(ctx, api.CreateRequest{Template: "warm5", Wait: true, Spec: podSpecNamed(name)})
	if err != nil {
		return nil, 0, err
	}
	if err := firstByte(p.Ports[0].URL+"/hostname", time.Minute); err != nil {
		return nil, 0, err
	}
	return p, time.Since(t0), nil
}

func snapshotFigures(ctx context.Context, nd *node, n int) error {
	var cold, restored, bare []time.Duration
	for i := 0; i < max(n/3, 2); i++ {
		p, d, err := fromTemplate(ctx, nd, fmt.Sprintf("cold%d", i))
		if err != nil {
			return err
		}
		cold = append(cold, d)
		if err := nd.client.Delete(ctx, p.ID); err != nil {
			return err
		}
	}
	src, _, err := fromTemplate(ctx, nd, "source")
	if err != nil {
		return err
	}
	snap, err := nd.client.SnapshotTemplate(ctx, api.SnapshotRequest{Template: "warm5", Pod: src.ID})
	if err != nil {
		return err
	}
	ck := filepath.Join(nd.dir, "data", "snapshots", snap.Key, snapshots.CheckpointDir)
	for i := 0; i < n; i++ {
		p, d, err := fromTemplate(ctx, nd, fmt.Sprintf("warm%d", i))
		if err != nil {
			return err
		}
		restored = append(restored, d)
		if err := nd.client.Delete(ctx, p.ID); err != nil {
			return err
		}
	}
	// The bare baseline restores the same checkpoint into the source's
	// own bundle and netns, with the source hibernated out of the way.
	if _, err := nd.client.Hibernate(ctx, src.ID); err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		d, err := bareRestoreFrom(nd, src, ck)
		if err != nil {
			return err
		}
		bare = append(bare, d)
	}
	pr, pb, pc := pct(restored, 50), pct(bare, 50), pct(cold, 50)
	fmt.Printf("snapshot-bench: create from the template snapshot -> all healthy, first byte via host port: p50 %s; bare runsc restore of the same checkpoint -> first byte: p50 %s (%.2fx, target <= 1.5x); cold create -> all healthy, first byte: p50 %s (%.2fx) (n=%d, cold n=%d)\n",
		pr, pb, float64(pr)/float64(pb), pc, float64(pr)/float64(pc), n, len(cold))
	fmt.Printf("snapshot-bench: the snapshot holds %.1f MiB on disk (checkpoint %.1f MiB, writable layer and run dir the rest); a pod restored from it starts with a copy of the layer\n",
		float64(snap.Bytes)/(1<<20), float64(snapshots.DirBytes(ck))/(1<<20))
	return nd.client.RemoveSnapshot(ctx, snap.Key)
}

func podSpecNamed(name string) podspec.Pod { return podspec.Pod{Name: name} }
