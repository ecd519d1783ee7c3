package cli

import (
	"context"
	"fmt"
	"net/url"
	"os/exec"
	"runtime"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// OpenBrowser opens an http(s) URL in the user's browser: `open` on
// macOS, `xdg-open` elsewhere. It returns once the opener has.
func OpenBrowser(ctx context.Context, u string) error {
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") {
		return fmt.Errorf("open %q: not an http(s) URL: %w", u, errdefs.ErrInvalidArgument)
	}
	opener := "xdg-open"
	if runtime.GOOS == "darwin" {
		opener = "open"
	}
	if out, err := exec.CommandContext(ctx, opener, u).CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w: %s", opener, err, out)
	}
	return nil
}
