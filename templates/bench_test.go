package templates

import (
	"context"
	"testing"

	"github.com/pinacle/pinacle-node/podspec"
)

var benchDoc = []byte(`
name: shop
template: nextjs
environment: {API_URL: "http://localhost:8000"}
network: {ports: [{name: app, external: 30080}]}
services:
  - {name: app, command: [npm, run, dev], port: 3000, dependsOn: [code-server], healthCheck: {type: http}}
`)

// BenchmarkDecodeResolve is what pod create pays per spec: strict decode,
// merge onto nextjs, defaults and validation.
func BenchmarkDecodeResolve(b *testing.B) {
	r := Builtin()
	for b.Loop() {
		p, err := podspec.Decode(benchDoc)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := r.Resolve(p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoad is what every CLI call pays: parsing the embedded
// templates and resolving each once.
func BenchmarkLoad(b *testing.B) {
	for b.Loop() {
		if _, _, err := Load(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}
