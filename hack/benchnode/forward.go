package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"time"

	"github.com/pinacle/pinacle-node/podspec"
)

// runForward measures only the forwarder figures, with its own daemon.
func runForward(bin string) error {
	return withNode(bin, func(nd *node) error {
		line, err := forwardBench(context.Background(), bin, nd)
		if err != nil {
			return err
		}
		fmt.Println(line)
		return nil
	})
}

// forwardBench measures 1 GiB over HTTP from busybox httpd (a sparse file)
// straight to the pod IP, through the host port on nd (kernel path, the
// default) and through the host port of a second daemon with
// ports.kernelForward: false (userspace relay), interleaved in one run so
// that load from elsewhere hits all three alike. (busybox nc moves
// ~7 MB/s in gVisor: it measures nc, not the path.)
func forwardBench(ctx context.Context, bin string, nd *node) (string, error) {
	udir, err := os.MkdirTemp("", "pinacle-benchnode-user-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(udir)
	nu, err := start(bin, udir, userNet)
	if err != nil {
		return "", fmt.Errorf("userspace-only daemon: %w", err)
	}
	defer nu.stop(bin)

	blast := plain("blast")
	blast.Spec.Resources.StorageMB = 2048
	blast.Spec.Network.Ports = []podspec.Port{{Name: "blast", Internal: 9000}}
	blast.Spec.Services = []podspec.Service{{Name: "blast", Command: []string{"sh", "-c",
		"mkdir -p /srv && dd if=/dev/zero of=/srv/blob bs=1M count=0 seek=1024 2>/dev/null && exec httpd -f -p 9000 -h /srv"},
		HealthCheck: &podspec.HealthCheck{Type: podspec.HealthTCP, Port: 9000}}}
	bp, err := nd.client.Create(ctx, blast)
	if err != nil {
		return "", fmt.Errorf("create blast: %w", err)
	}
	defer nd.client.Delete(ctx, bp.ID)
	up, err := nu.client.Create(ctx, blast)
	if err != nil {
		return "", fmt.Errorf("create blast (userspace-only daemon): %w", err)
	}
	defer nu.client.Delete(ctx, up.ID)

	const total = 1 << 30
	drain := func(url string) (float64, error) {
		t0 := time.Now()
		resp, err := http.Get(url)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		n, err := io.Copy(io.Discard, resp.Body)
		if err != nil || n != total {
			return 0, fmt.Errorf("GET %s: %d bytes, %v", url, n, err)
		}
		return float64(total) / time.Since(t0).Seconds() / 1e6, nil
	}
	urls := []string{
		"http://" + net.JoinHostPort(bp.IP, "9000") + "/blob",
		fmt.Sprintf("http://127.0.0.1:%d/blob", bp.Ports[0].External),
		fmt.Sprintf("http://127.0.0.1:%d/blob", up.Ports[0].External),
	}
	res := make([][]float64, len(urls))
	for range 3 {
		for i, u := range urls {
			v, err := drain(u)
			if err != nil {
				return "", err
			}
			res[i] = append(res[i], v)
		}
	}
	for _, r := range res {
		slices.Sort(r)
	}
	direct, kernel, user := res[0][1], res[1][1], res[2][1]
	return fmt.Sprintf("node-bench: 1 GiB from a pod (median of 3, same run): direct to pod IP %.0f MB/s; "+
		"host port, kernel path %.0f MB/s (ratio %.2f); host port, userspace relay %.0f MB/s (ratio %.2f)",
		direct, kernel, kernel/direct, user, user/direct), nil
}
