package gateway

import (
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	_ = c.Write(&m)
	return m.GetCounter().GetValue()
}

func gaugeValue(g prometheus.Gauge) float64 {
	var m dto.Metric
	_ = g.Write(&m)
	return m.GetGauge().GetValue()
}

func TestMetrics(t *testing.T) {
	e := newEnv(t)
	e.backend(t, testPod, "app", echoHeaders())
	l := e.link(t, testPod, "app", time.Hour)
	c := e.client(t)
	get(t, c, l.Host)                       // unauthorized
	get(t, c, l.URL)                        // login, then proxied
	get(t, c, "http://app-p1.example.com/") // bad host
	reg := prometheus.NewRegistry()
	for _, col := range e.gw.Collectors() {
		reg.MustRegister(col)
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			key := f.GetName()
			for _, lp := range m.GetLabel() {
				key += "/" + lp.GetValue()
			}
			got[key] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	for key, want := range map[string]float64{
		"pinacle_gateway_requests_total/unauthorized": 1,
		"pinacle_gateway_requests_total/login":        1,
		"pinacle_gateway_requests_total/proxied":      1,
		"pinacle_gateway_requests_total/bad_host":     1,
		"pinacle_gateway_requests_total/over_cap":     0,
	} {
		if got[key] != want {
			t.Errorf("%s = %v, want %v", key, got[key], want)
		}
	}
	if got["pinacle_gateway_connections_total"] < 1 {
		t.Errorf("connections_total = %v", got["pinacle_gateway_connections_total"])
	}
	_ = http.StatusOK
}
