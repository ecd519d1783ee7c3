package imagestore

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/pinacle/pinacle-node/internal/testenv"
)

// requiresRoot skips tests that create overlay whiteouts (char devices),
// trusted.* xattrs and files owned by others.
func requiresRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Missing(t, "needs root: overlay whiteouts are character devices and opaque dirs need trusted.* xattrs")
	}
}

func newTestStore(t testing.TB, opts ...Option) (*store, string) {
	t.Helper()
	root := t.TempDir()
	s, err := New(context.Background(), root, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s.(*store), root
}

// snapshot lists every path under dir with its type and size.
func snapshot(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		info, _ := d.Info()
		if info != nil {
			out[rel] = info.Mode().Type().String() + " " + strings.Repeat("x", 0)
			if info.Mode().IsRegular() {
				b, _ := os.ReadFile(p)
				out[rel] += string(b)
			}
		}
		return nil
	})
	return out
}

func strconvQuote(b []byte) string { return strconv.Quote(string(b)) }
