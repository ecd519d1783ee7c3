package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// runCreate measures sequential create -> running of a pod without
// services, and prints the daemon's own breakdown of each bring-up (its
// "pod up" log line: cumulative time at the end of each step).
func runCreate(bin string, n int) error {
	return withNode(bin, func(nd *node) error { return createSteps(nd, n) })
}

func createSteps(nd *node, n int) error {
	seq, err := seqCreates(context.Background(), nd, n)
	if err != nil {
		return err
	}
	fmt.Printf("node-bench: create -> running, 1 at a time:   p50 %s p95 %s (n=%d)\n", pct(seq, 50), pct(seq, 95), n)
	steps, order, err := podUpSteps(filepath.Join(nd.dir, "serve.log"))
	if err != nil {
		return err
	}
	var b strings.Builder
	for _, name := range order {
		fmt.Fprintf(&b, " %s %s;", name, pct(steps[name], 50))
	}
	fmt.Printf("node-bench: bring-up steps, cumulative p50 (daemon's log):%s\n", strings.TrimSuffix(b.String(), ";"))
	return nil
}

// seqCreates times n creates -> running of a pod without services, one
// after another, deleting each before the next.
func seqCreates(ctx context.Context, nd *node, n int) ([]time.Duration, error) {
	var seq []time.Duration
	for i := 0; i < n; i++ {
		t0 := time.Now()
		p, err := nd.client.Create(ctx, plain(fmt.Sprintf("seq%d", i)))
		if err != nil {
			return nil, fmt.Errorf("create: %w", err)
		}
		seq = append(seq, time.Since(t0))
		if err := nd.client.Delete(ctx, p.ID); err != nil {
			return nil, err
		}
	}
	return seq, nil
}

// podUpSteps reads every "pod up" line of the daemon's JSON log.
func podUpSteps(path string) (map[string][]time.Duration, []string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	steps := map[string][]time.Duration{}
	var order []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) != nil || m["msg"] != "pod up" {
			continue
		}
		for k, v := range m {
			s, ok := v.(string)
			if !ok {
				continue
			}
			d, err := time.ParseDuration(s)
			if err != nil {
				continue
			}
			if !slices.Contains(order, k) {
				order = append(order, k)
			}
			steps[k] = append(steps[k], d)
		}
	}
	slices.SortFunc(order, func(a, b string) int { return int(pct(steps[a], 50) - pct(steps[b], 50)) })
	return steps, order, sc.Err()
}
