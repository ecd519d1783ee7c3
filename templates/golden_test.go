package templates

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the current resolver")

// TestGoldenBuiltins pins what every built-in template resolves to, so a
// change to a template, a service definition or a default shows up in review.
func TestGoldenBuiltins(t *testing.T) {
	r, warns, err := Load(context.Background())
	if err != nil || len(warns) > 0 {
		t.Fatalf("Load: %v %v", warns, err)
	}
	want := []string{"custom", "datascience", "mastra", "minimal", "nextjs", "nodejs"}
	if got := r.Names(); !equal(got, want) {
		t.Fatalf("Names() = %v, want %v", got, want)
	}
	for _, name := range r.Names() {
		t.Run(name, func(t *testing.T) {
			rt, err := r.ResolveTemplate(name)
			if err != nil {
				t.Fatalf("ResolveTemplate: %v", err)
			}
			got, err := yaml.Marshal(rt)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", "golden", name+".yaml")
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./templates -run TestGoldenBuiltins -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from the resolver's output; if intended, rerun with -update.\ngot:\n%s", path, got)
			}
		})
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
