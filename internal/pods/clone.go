package pods

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/podspec"
)

// cloneTimeout bounds one clone; a large repository over a slow link can
// take minutes, a stuck one must not hold a create forever.
const cloneTimeout = 10 * time.Minute

func (m *Manager) cloneDir(id string) string { return filepath.Join(m.podDir(id), "clone") }

// repoURL turns owner/repo into a clone URL under the node's git base URL.
func (m *Manager) repoURL(repo string) string {
	return strings.TrimSuffix(m.cfg.GitBaseURL, "/") + "/" + repo + ".git"
}

// clone fetches spec's repository (shallow) into the pod's clone dir, on
// the host: the pod's own network policy does not apply to the node.
func (m *Manager) clone(ctx context.Context, id string, spec *podspec.Pod) error {
	dir := m.cloneDir(id)
	if err := os.MkdirAll(filepath.Dir(dir), 0o711); err != nil {
		return err
	}
	// A leftover of an earlier try; one that stays makes git fail below.
	_ = os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(ctx, cloneTimeout)
	defer cancel()
	args := []string{"clone", "--depth", "1", "--no-tags"}
	if spec.GithubBranch != "" {
		args = append(args, "--branch", spec.GithubBranch)
	}
	args = append(args, "--", m.repoURL(spec.GithubRepo), dir)
	cmd := exec.CommandContext(ctx, "git", args...)
	// Never prompt for credentials on the daemon's behalf.
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_ASKPASS=/bin/false", "GIT_SSH_COMMAND=ssh -o BatchMode=yes")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		_ = os.RemoveAll(dir) // a half clone; the next try removes it too
		msg := gitMessage(stderr.String())
		if errors.Is(err, exec.ErrNotFound) {
			return fmt.Errorf("githubRepo: git is not installed on the node: %w", errdefs.ErrUnavailable)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("githubRepo %s: clone timed out after %s: %w", spec.GithubRepo, cloneTimeout, context.DeadlineExceeded)
		}
		// git's stderr is the only account of why; this is the one place
		// that reads it.
		if strings.Contains(msg, "not found") || strings.Contains(msg, "does not exist") ||
			strings.Contains(msg, "does not appear to be a git repository") || strings.Contains(msg, "Remote branch") {
			return fmt.Errorf("githubRepo %s (branch %q): %s: %w", spec.GithubRepo, spec.GithubBranch, msg, errdefs.ErrNotFound)
		}
		return fmt.Errorf("githubRepo %s: git clone: %s: %w", spec.GithubRepo, msg, errdefs.ErrUnavailable)
	}
	return nil
}

// placeClone moves a fresh clone into the pod's working directory (the
// rootfs is mounted at root) and hands it to the pod's user.
func (m *Manager) placeClone(ctx context.Context, id, root string, spec *podspec.Pod) error {
	src := m.cloneDir(id)
	if _, err := os.Stat(src); errors.Is(err, os.ErrNotExist) {
		return nil // no repository, or placed on an earlier start
	}
	wd := spec.WorkingDir
	if wd == "" {
		wd = podspec.DefaultWorkingDir
	}
	dst := filepath.Join(root, filepath.Clean("/"+wd))
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return fmt.Errorf("workspace: %w", err)
	}
	// cp -a keeps modes, links and times; the rootfs upper is on another
	// filesystem (the pod's storage), so a rename cannot do it.
	if out, err := exec.CommandContext(ctx, "cp", "-a", "--", src+"/.", dst+"/").CombinedOutput(); err != nil {
		return fmt.Errorf("workspace: copying the clone: %w: %s", err, out)
	}
	if err := m.chownToUser(ctx, id, root, spec.User, dst, true); err != nil {
		return fmt.Errorf("workspace: %w", err)
	}
	return os.RemoveAll(src)
}

// gitMessage keeps git's "fatal:" lines, the part that says what went wrong.
func gitMessage(stderr string) string {
	var keep []string
	for _, l := range strings.Split(stderr, "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "fatal:") || strings.HasPrefix(l, "error:") {
			keep = append(keep, l)
		}
	}
	if len(keep) == 0 {
		return strings.TrimSpace(stderr)
	}
	return strings.Join(keep, "; ")
}
