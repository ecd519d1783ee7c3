package podspec

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestSets(t *testing.T) {
	doc := []byte(`
name: shop
network:
  ports:
    - {name: app, internal: 3000}
services:
  - {name: app, command: [npm, start]}
`)
	p, err := DecodeWithSets(doc, []string{
		"resources.tier=dev.large",
		"resources.cpuCores=2.5",
		"environment.FOO=bar",
		"environment.PORT=3000",
		"network.ports[name=app].internal=3001",
		"network.ports[name=api].internal=8000",
		"network.ports[0].external=30001",
		"network.dns.nameservers=1.1.1.1,8.8.8.8",
		"network.bandwidth.egressRate=20Mbit",
		"services[name=app].command=[\"npm\",\"run\",\"dev\"]",
		"services[name=app].healthCheck={type: http, path: /healthz}",
		"services[1].name=worker",
		"idleTimeout=15m",
		"name=a=b",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := &Pod{
		Name:        "a=b",
		Resources:   Resources{Tier: "dev.large", CPUCores: 2.5},
		Environment: map[string]string{"FOO": "bar", "PORT": "3000"},
		Network: Network{
			Ports:     []Port{{Name: "app", Internal: 3001, External: 30001}, {Name: "api", Internal: 8000}},
			DNS:       &DNS{Nameservers: []string{"1.1.1.1", "8.8.8.8"}},
			Bandwidth: &Bandwidth{EgressRate: 20e6},
		},
		Services: []Service{
			{Name: "app", Command: []string{"npm", "run", "dev"}, HealthCheck: &HealthCheck{Type: HealthHTTP, Path: "/healthz"}},
			{Name: "worker"},
		},
		IdleTimeout: Duration{Duration: 15 * time.Minute},
	}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("got  %+v\nwant %+v", p, want)
	}
}

func TestSetErrors(t *testing.T) {
	for _, tc := range []struct{ set, want string }{
		{"resources.tier", "--set resources.tier: want path=value"},
		{"resources.teir=x", `--set resources.teir=x: unknown field "teir"`},
		{"name.first=x", `--set name.first=x: "first": the field above it is not an object`},
		{"name[0]=x", "[...] used on a field that is not a list"},
		{"network.ports[5].internal=1", "index 5 is beyond the end of the list (length 0)"},
		{"network.dns.nameservers[name=x]=1", "[name=...] used on a list whose entries have no name"},
		{"resources.cpuCores=two", `"two": want a number`},
		{"resources.cpuCores=NaN", `"NaN": want a number`},
		{".x=1", "bad path"},
		{"a..b=1", "bad path"},
		{"a[x]=1", "unexpected"},
	} {
		_, err := ApplySets([]byte("name: x"), []string{tc.set})
		var ve *ValidationError
		if !errors.As(err, &ve) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("--set %s: got %v, want %q", tc.set, err, tc.want)
		}
	}
	_, err := ApplySets(nil, []string{"a=1", "b=2"})
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Errors) != 2 {
		t.Errorf("want both errors, got %v", err)
	}
	// A set whose value has the wrong type for the field is caught by
	// strict decoding, with the field's path.
	_, err = DecodeWithSets(nil, []string{"services[0].port=http"})
	if err == nil || !strings.Contains(err.Error(), "want a number") {
		t.Errorf("got %v", err)
	}
	_, err = DecodeWithSets(nil, []string{"services[0].healthCheck=[1]"})
	if err == nil || !strings.Contains(err.Error(), "services[0].healthCheck: want an object, got a list") {
		t.Errorf("got %v", err)
	}
}
