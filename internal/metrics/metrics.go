// Package metrics exposes the node's pods to Prometheus: states, sandbox
// resource use and port forwarder counters, gathered at scrape time.
package metrics

import (
	"context"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/internal/lifecycle"
)

var (
	descPods    = prometheus.NewDesc("pinacle_pods", "Pods by state.", []string{"state"}, nil)
	descCPU     = prometheus.NewDesc("pinacle_pod_cpu_seconds_total", "CPU time used by the pod's sandbox.", []string{"pod"}, nil)
	descMem     = prometheus.NewDesc("pinacle_pod_memory_bytes", "Memory used by the pod's sandbox.", []string{"pod"}, nil)
	descMemLim  = prometheus.NewDesc("pinacle_pod_memory_limit_bytes", "Memory limit of the pod's sandbox.", []string{"pod"}, nil)
	descPids    = prometheus.NewDesc("pinacle_pod_pids", "Processes in the pod's sandbox.", []string{"pod"}, nil)
	descOOM     = prometheus.NewDesc("pinacle_pod_oom_kills_total", "OOM kills in the pod's memory cgroup.", []string{"pod"}, nil)
	descConns   = prometheus.NewDesc("pinacle_port_connections_total", "Connections accepted on a forwarded port.", []string{"pod", "port"}, nil)
	descActive  = prometheus.NewDesc("pinacle_port_connections_active", "Open connections on a forwarded port.", []string{"pod", "port"}, nil)
	descRej     = prometheus.NewDesc("pinacle_port_connections_rejected_total", "Connections refused over the cap.", []string{"pod", "port"}, nil)
	descBytesIn = prometheus.NewDesc("pinacle_port_bytes_in_total", "Bytes from clients to the pod.", []string{"pod", "port"}, nil)
	descBytesOu = prometheus.NewDesc("pinacle_port_bytes_out_total", "Bytes from the pod to clients.", []string{"pod", "port"}, nil)
)

// scrapeParallel bounds the runsc calls one scrape runs at once.
const scrapeParallel = 4

// Collector gathers pod metrics from the pod service at scrape time.
type Collector struct{ svc api.Service }

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns a collector over svc.
func NewCollector(svc api.Service) *Collector { return &Collector{svc: svc} }

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPods, descCPU, descMem, descMemLim, descPids, descOOM, descConns, descActive, descRej, descBytesIn, descBytesOu} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	list, err := c.svc.List(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descPods, err)
		return
	}
	counts := map[lifecycle.State]int{}
	for _, s := range lifecycle.States {
		counts[s] = 0
	}
	// Each pod's figures cost a runsc call (tens of ms): gather them a few
	// at a time, so a scrape of many pods takes a fraction of the serial time.
	var running []string
	for _, p := range list {
		counts[p.State]++
		if p.State == lifecycle.Running {
			running = append(running, p.ID)
		}
	}
	results := make([]*api.Metrics, len(running))
	var wg sync.WaitGroup
	sem := make(chan struct{}, scrapeParallel)
	for i, id := range running {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if m, err := c.svc.Metrics(ctx, id); err == nil {
				results[i] = m
			}
		}()
	}
	wg.Wait()
	for i, m := range results {
		if m == nil {
			continue // stopped or gone since the list
		}
		id := running[i]
		if s := m.Sandbox; s != nil {
			ch <- prometheus.MustNewConstMetric(descCPU, prometheus.CounterValue, float64(s.CPUUsageNanos)/1e9, id)
			ch <- prometheus.MustNewConstMetric(descMem, prometheus.GaugeValue, float64(s.MemoryUsage), id)
			ch <- prometheus.MustNewConstMetric(descMemLim, prometheus.GaugeValue, float64(s.MemoryLimit), id)
			ch <- prometheus.MustNewConstMetric(descPids, prometheus.GaugeValue, float64(s.Pids), id)
			ch <- prometheus.MustNewConstMetric(descOOM, prometheus.CounterValue, float64(s.OOMKills), id)
		}
		for _, port := range m.Ports {
			l := []string{id, port.Name}
			ch <- prometheus.MustNewConstMetric(descConns, prometheus.CounterValue, float64(port.ConnsTotal), l...)
			ch <- prometheus.MustNewConstMetric(descActive, prometheus.GaugeValue, float64(port.ConnsActive), l...)
			ch <- prometheus.MustNewConstMetric(descRej, prometheus.CounterValue, float64(port.ConnsRejected), l...)
			ch <- prometheus.MustNewConstMetric(descBytesIn, prometheus.CounterValue, float64(port.BytesIn), l...)
			ch <- prometheus.MustNewConstMetric(descBytesOu, prometheus.CounterValue, float64(port.BytesOut), l...)
		}
	}
	for s, n := range counts {
		ch <- prometheus.MustNewConstMetric(descPods, prometheus.GaugeValue, float64(n), string(s))
	}
}

// Serve serves /metrics on addr until ctx ends: the pods of svc, the Go
// runtime and process, and extra (the gateway's).
func Serve(ctx context.Context, addr string, svc api.Service, extra ...prometheus.Collector) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(svc), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(extra...)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		return err
	}
	return nil
}
