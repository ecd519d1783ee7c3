package nodeconfig

import (
	"fmt"

	"github.com/pinacle/pinacle-node/podspec"
)

// WarmPool is the warm sandbox pool (docs/warmpool.md): sandboxes booted
// ahead of time, each with its rootfs, network and a standby init, which
// a matching `pod create` claims.
type WarmPool struct {
	// Recent keeps this many entries for the image and tier of the most
	// recent create that could have claimed one (default 1; 0: none).
	Recent *int `json:"recent,omitempty"`
	// Max caps the entries of all shapes together (default 4; 0 turns
	// the pool off).
	Max *int `json:"max,omitempty"`
	// Entries are kept whatever pods are created.
	Entries []WarmPoolEntry `json:"entries,omitempty"`
}

// WarmPoolEntry is one shape to keep ready: a template (with its image and
// tier) or an image, optionally with a tier, and how many.
type WarmPoolEntry struct {
	Template string `json:"template,omitempty"`
	Image    string `json:"image,omitempty"`
	Tier     string `json:"tier,omitempty"` // the template's, or dev.small
	Count    int    `json:"count,omitempty"`
}

func (w *WarmPool) defaults() {
	if w.Recent == nil {
		n := 1
		w.Recent = &n
	}
	if w.Max == nil {
		n := 4
		w.Max = &n
	}
	for i := range w.Entries {
		if w.Entries[i].Count == 0 {
			w.Entries[i].Count = 1
		}
	}
}

func (w *WarmPool) validate(bad func(field, format string, args ...any)) {
	if n := w.Recent; n != nil && (*n < 0 || *n > 16) {
		bad("warmPool.recent", "%d: want 0 (none) to 16", *n)
	}
	if n := w.Max; n != nil && (*n < 0 || *n > 64) {
		bad("warmPool.max", "%d: want 0 (off) to 64", *n)
	}
	for i, e := range w.Entries {
		f := fmt.Sprintf("warmPool.entries[%d]", i)
		if (e.Template == "") == (e.Image == "") {
			bad(f, "want exactly one of template and image")
		}
		if e.Tier != "" {
			if _, ok := podspec.LookupTier(e.Tier); !ok {
				bad(f+".tier", "%q: want one of %v", e.Tier, podspec.TierNames())
			}
		}
		if e.Count < 0 || e.Count > 16 {
			bad(f+".count", "%d: want 1 to 16", e.Count)
		}
	}
}
