package supervisor

import (
	"errors"
	"strings"
	"testing"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

func TestParseConfigValidation(t *testing.T) {
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"cycle", `{"services":[
			{"name":"a","command":["x"],"dependsOn":["c"]},
			{"name":"b","command":["x"],"dependsOn":["a"]},
			{"name":"c","command":["x"],"dependsOn":["b"]},
			{"name":"d","command":["x"]}]}`, "dependency cycle: a -> c -> b -> a"},
		{"self", `{"services":[{"name":"a","command":["x"],"dependsOn":["a"]}]}`, "depends on itself"},
		{"unknown dep", `{"services":[{"name":"a","command":["x"],"dependsOn":["db"]}]}`, `dependsOn "db": no such service`},
		{"duplicate", `{"services":[{"name":"a","command":["x"]},{"name":"a","command":["y"]}]}`, `"a": duplicate service name`},
		{"bad name", `{"services":[{"name":"../etc","command":["x"]}]}`, `services[0].name`},
		{"no command", `{"services":[{"name":"a"}]}`, "command is empty"},
		{"restart", `{"services":[{"name":"a","command":["x"],"restart":"sometimes"}]}`, `restart "sometimes"`},
		{"health type", `{"services":[{"name":"a","command":["x"],"healthCheck":{"type":"grpc"}}]}`, `healthCheck.type "grpc"`},
		{"health port", `{"services":[{"name":"a","command":["x"],"healthCheck":{"type":"tcp"}}]}`, `healthCheck.port 0`},
		{"unknown field", `{"services":[],"logdirr":"/x"}`, `unknown field "logdirr"`},
		{"bad duration", `{"services":[{"name":"a","command":["x"],"stopGracePeriod":"soon"}]}`, `invalid duration "soon"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("err = %v, want ErrInvalidArgument", err)
			}
		})
	}
}

func TestParseConfigDefaults(t *testing.T) {
	c, err := ParseConfig([]byte(`{"services":[{"name":"web","command":["x"],"port":3000,
		"healthCheck":{"type":"http","interval":"2s"}}], "controlDir":"/.pinacle/run"}`))
	if err != nil {
		t.Fatal(err)
	}
	h := c.Services[0].HealthCheck
	if h.Port != 3000 || h.Path != "/" || h.StatusMin != 200 || h.StatusMax != 399 || h.Interval.Seconds() != 2 || h.Retries != 3 {
		t.Errorf("health defaults: %+v", h)
	}
	if c.Services[0].Restart != "on-failure" || c.Services[0].StopGracePeriod.Seconds() != 10 {
		t.Errorf("service defaults: %+v", c.Services[0])
	}
	if c.LogMaxBytes != 10<<20 || c.LogMaxFiles != 3 || c.ControlSocket != "/.pinacle/run/init.sock" {
		t.Errorf("config defaults: %+v", c)
	}
}

func TestNewValidates(t *testing.T) {
	cfg := testConfig(t)
	cfg.Services = append(cfg.Services, cfg.Services...)
	cfg.Services = nil
	cfg.Services = append(cfg.Services,
		svc("a", []string{"x"}, "b"), svc("b", []string{"x"}, "a"))
	if _, err := New(cfg); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "a -> b -> a") {
		t.Fatalf("New = %v, want the cycle a -> b -> a", err)
	}
}
