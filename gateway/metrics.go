package gateway

import "github.com/prometheus/client_golang/prometheus"

// metrics are the gateway's Prometheus series (pinacle_gateway_*).
type metrics struct {
	requests      *prometheus.CounterVec
	upgrades      prometheus.Counter
	bytes         prometheus.Counter
	connsTotal    prometheus.Counter
	connsActive   prometheus.Gauge
	connsRejected prometheus.Counter
}

// results are the values of the requests counter's "result" label,
// created up front so every series exists from the start.
var results = []string{"proxied", "login", "unauthorized", "bad_host", "cross_site", "not_found", "unavailable", "over_cap", "backend_error"}

func newMetrics() *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pinacle_gateway_requests_total",
			Help: "Requests to the gateway by outcome (proxied, login, unauthorized, bad_host, cross_site, not_found, unavailable, over_cap, backend_error).",
		}, []string{"result"}),
		upgrades:      prometheus.NewCounter(prometheus.CounterOpts{Name: "pinacle_gateway_upgrades_total", Help: "Authenticated upgrade (WebSocket) requests passed to pods."}),
		bytes:         prometheus.NewCounter(prometheus.CounterOpts{Name: "pinacle_gateway_bytes_total", Help: "Bytes proxied to and from pods: bodies both ways and upgraded connections (WebSockets) both ways."}),
		connsTotal:    prometheus.NewCounter(prometheus.CounterOpts{Name: "pinacle_gateway_connections_total", Help: "Client connections accepted by the gateway."}),
		connsActive:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "pinacle_gateway_connections_active", Help: "Open client connections."}),
		connsRejected: prometheus.NewCounter(prometheus.CounterOpts{Name: "pinacle_gateway_connections_rejected_total", Help: "Client connections closed over the cap."}),
	}
	for _, r := range results {
		m.requests.WithLabelValues(r)
	}
	return m
}

func (m *metrics) request(result string) { m.requests.WithLabelValues(result).Inc() }

// Collectors returns the gateway's metrics, for the node's registry.
func (g *Gateway) Collectors() []prometheus.Collector {
	m := g.metrics
	return []prometheus.Collector{m.requests, m.upgrades, m.bytes, m.connsTotal, m.connsActive, m.connsRejected}
}
