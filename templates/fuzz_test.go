package templates

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/pinacle/pinacle-node/podspec"
)

// FuzzResolve decodes a document, applies a --set expression and resolves
// it against the built-in templates. It must never panic, and a spec it
// accepts must pass Validate, have runtime limits, and resolve to itself.
func FuzzResolve(f *testing.F) {
	seeds := []string{
		"name: shop\ntemplate: nextjs\n",
		"name: x\ntemplate: datascience\nresources: {tier: dev.xlarge, cpuCores: 6, memoryMb: 4096}\n",
		"name: api\ntemplate: nodejs\nservices: [{name: api, command: [node, index.js], port: 8000, dependsOn: [code-server], healthCheck: {type: http, path: /health}}]\n",
		"{\"name\":\"j\",\"template\":\"custom\",\"network\":{\"ports\":[{\"name\":\"app\",\"internal\":3000,\"external\":30000}]}}",
		"name: n\ntemplate: mastra\nnetwork: {egress: {mode: allowlist, allow: [{cidr: 10.0.0.0/8, ports: [443], protocol: tcp}], domains: [github.com]}, bandwidth: {ingressRate: 10Mbit, ingressBurst: 1Mbit}, dns: {nameservers: [1.1.1.1], search: [a.b]}}\n",
		"name: bad\nservices: [{name: a, dependsOn: [b]}, {name: b, dependsOn: [a]}]\n",
		"network:\n  ports:\n    - {extrnal: 1}\n",
		"idleTimeout: 99999999999999999999\nresources: {cpuCores: 1e308}\n",
		"",
		"- [",
	}
	for _, s := range seeds {
		f.Add([]byte(s), "resources.tier=dev.large")
		f.Add([]byte(s), "network.ports[name=app].internal=3001")
	}
	if golden, _ := filepath.Glob(filepath.Join("testdata", "golden", "*.yaml")); len(golden) > 0 {
		b, _ := os.ReadFile(golden[0])
		f.Add(b, "environment.FOO=bar")
	}
	r := Builtin()
	f.Fuzz(func(t *testing.T, data []byte, set string) {
		p, err := podspec.DecodeWithSets(data, []string{set})
		if err != nil {
			var ve *podspec.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("decode error is not a ValidationError: %v", err)
			}
			return
		}
		got, err := r.Resolve(p)
		if err != nil {
			var ve *podspec.ValidationError
			if !errors.As(err, &ve) || len(ve.Errors) == 0 {
				t.Fatalf("resolve error is not a ValidationError: %v", err)
			}
			return
		}
		if err := got.Validate(); err != nil {
			t.Fatalf("resolved spec fails Validate: %v", err)
		}
		if _, err := got.Resources.Limits(); err != nil {
			t.Fatalf("resolved spec has no limits: %v", err)
		}
		again, err := r.Resolve(got)
		if err != nil {
			t.Fatalf("resolving a resolved spec: %v", err)
		}
		if !reflect.DeepEqual(again, got) {
			t.Fatalf("resolving is not idempotent:\n%+v\n%+v", got, again)
		}
	})
}
