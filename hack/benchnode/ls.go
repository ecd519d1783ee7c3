package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"time"

	"golang.org/x/sync/errgroup"
)

// runLs measures `pod ls` with n pods twice: all running, then the same
// pods stopped, so the figure can be read apart from the CPU that n idle
// sandboxes take from a 2-core machine.
func runLs(bin string, n int) error {
	return withNode(bin, func(nd *node) error {
		ctx := context.Background()
		if err := fillPods(ctx, nd, n); err != nil {
			return err
		}
		return lsRunningThenStopped(ctx, bin, nd)
	})
}

// lsRunningThenStopped prints the `pod ls` figures with the node's pods
// running, then stops them all and prints them again.
func lsRunningThenStopped(ctx context.Context, bin string, nd *node) error {
	if err := lsFigures(ctx, bin, nd, "running"); err != nil {
		return err
	}
	all, err := nd.client.List(ctx)
	if err != nil {
		return err
	}
	var g errgroup.Group
	g.SetLimit(4)
	for _, p := range all {
		g.Go(func() error { _, err := nd.client.Stop(ctx, p.ID); return err })
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	return lsFigures(ctx, bin, nd, "stopped")
}

// fillPods creates plain pods, four at a time, until the node has total.
func fillPods(ctx context.Context, nd *node, total int) error {
	have, err := nd.client.List(ctx)
	if err != nil {
		return err
	}
	var g errgroup.Group
	g.SetLimit(4)
	for i := len(have); i < total; i++ {
		g.Go(func() error { _, err := nd.client.Create(ctx, plain(fmt.Sprintf("fill%d", i))); return err })
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("fill: %w", err)
	}
	return nil
}

// lsFigures prints `pod ls` through the CLI, the API call alone, the CLI's
// own start (--version) and the size of the list response.
func lsFigures(ctx context.Context, bin string, nd *node, what string) error {
	var ls, lsAPI, version []time.Duration
	for i := 0; i < 20; i++ {
		t0 := time.Now()
		if out, err := exec.Command(bin, "pod", "ls", "--socket", nd.sock).CombinedOutput(); err != nil {
			return fmt.Errorf("pod ls: %v: %s", err, out)
		}
		ls = append(ls, time.Since(t0))
		t0 = time.Now()
		if _, err := nd.client.List(ctx); err != nil {
			return err
		}
		lsAPI = append(lsAPI, time.Since(t0))
		t0 = time.Now()
		if err := exec.Command(bin, "--version").Run(); err != nil {
			return err
		}
		version = append(version, time.Since(t0))
	}
	size, err := listBytes(ctx, nd.sock)
	if err != nil {
		return err
	}
	all, _ := nd.client.List(ctx)
	fmt.Printf("node-bench: pod ls with %d %s pods: CLI p50 %s p95 %s; the API call alone p50 %s (%d KB); CLI start (--version) p50 %s\n",
		len(all), what, pct(ls, 50), pct(ls, 95), pct(lsAPI, 50), size/1024, pct(version, 50))
	return nil
}

// listBytes is the size of GET /v1/pods as it goes over the socket.
func listBytes(ctx context.Context, sock string) (int, error) {
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://node/v1/pods", nil)
	if err != nil {
		return 0, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return len(b), err
}
