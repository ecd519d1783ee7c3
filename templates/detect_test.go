package templates

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

func TestDetect(t *testing.T) {
	for _, tc := range []struct {
		dir, want, reason string
	}{
		{"nextjs", "nextjs", "package.json depends on next"},
		{"mastra", "mastra", "package.json depends on @mastra/core"},
		{"mastra-with-next", "mastra", "package.json depends on @mastra/memory"},
		{"express", "nodejs", "package.json depends on express"},
		{"fastify-dev", "nodejs", "package.json depends on fastify"},
		{"requirements", "datascience", "requirements.txt lists pandas"},
		{"pyproject", "datascience", "pyproject.toml lists numpy"},
		{"poetry", "datascience", "pyproject.toml lists jupyterlab"},
		{"plain-python", "custom", "no known framework"},
		{"empty", "custom", "no known framework"},
		{"broken-package-json", "custom", "package.json skipped: invalid JSON"},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			d, err := Detect(context.Background(), filepath.Join("testdata", "detect", tc.dir))
			if err != nil {
				t.Fatal(err)
			}
			if d.Template != tc.want || !strings.Contains(d.Reason, tc.reason) {
				t.Errorf("Detect = %+v, want %s because %q", d, tc.want, tc.reason)
			}
			if _, err := Builtin().Get(d.Template); err != nil {
				t.Errorf("detected template %q does not exist: %v", d.Template, err)
			}
		})
	}
	if _, err := Detect(context.Background(), filepath.Join("testdata", "nope")); !errdefs.IsNotFound(err) {
		t.Errorf("missing dir: %v, want not found", err)
	}
	if _, err := Detect(context.Background(), "detect.go"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("file: %v, want invalid argument", err)
	}
}
