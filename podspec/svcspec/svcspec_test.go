package svcspec

import (
	"encoding/json"
	"testing"
	"time"
)

func TestDurationJSON(t *testing.T) {
	for in, want := range map[string]time.Duration{`"10s"`: 10 * time.Second, `"1m30s"`: 90 * time.Second, `2.5`: 2500 * time.Millisecond} {
		var d Duration
		if err := json.Unmarshal([]byte(in), &d); err != nil || d.Duration != want {
			t.Errorf("%s: %v, %v; want %v", in, d.Duration, err, want)
		}
	}
	for _, in := range []string{`"ten"`, `true`} {
		var d Duration
		if err := json.Unmarshal([]byte(in), &d); err == nil {
			t.Errorf("%s: no error", in)
		}
	}
	b, err := json.Marshal(Duration{Duration: 90 * time.Second})
	if err != nil || string(b) != `"1m30s"` {
		t.Errorf("marshal: %s, %v", b, err)
	}
}

func TestDefaultAndDeepCopy(t *testing.T) {
	s := Service{Name: "web", Port: 8080, Command: []string{"httpd"}, HealthCheck: &HealthCheck{Type: HealthHTTP}}
	s.Default()
	h := s.HealthCheck
	if s.Restart != RestartOnFailure || s.StopGracePeriod.Duration != DefaultStopGracePeriod ||
		h.Port != 8080 || h.Host != DefaultHealthHost || h.Path != "/" || h.StatusMin != 200 || h.StatusMax != 399 ||
		h.Interval.Duration != DefaultHealthInterval || h.Retries != DefaultHealthRetries {
		t.Fatalf("defaults not filled: %+v %+v", s, *h)
	}
	c := s.DeepCopy()
	c.Command[0], c.HealthCheck.Port = "changed", 1
	if s.Command[0] != "httpd" || s.HealthCheck.Port != 8080 {
		t.Errorf("DeepCopy shares memory with the original: %+v", s)
	}
	tcp := HealthCheck{Type: HealthTCP}
	tcp.Default(9000)
	if tcp.Path != "" || tcp.StatusMin != 0 || tcp.Port != 9000 {
		t.Errorf("tcp check got http defaults or no port: %+v", tcp)
	}
}
