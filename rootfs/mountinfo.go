package rootfs

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// mountInfo is one line of /proc/self/mountinfo that we care about.
type mountInfo struct {
	target, fstype, source string
}

// mounts returns the mount table of this process's namespace.
func mounts() ([]mountInfo, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []mountInfo
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20) // overlay lines can be long
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		pf, qf := strings.Fields(pre), strings.Fields(post)
		if len(pf) < 5 || len(qf) < 2 {
			continue
		}
		out = append(out, mountInfo{target: unescape(pf[4]), fstype: qf[0], source: unescape(qf[1])})
	}
	return out, sc.Err()
}

// unescape undoes mountinfo's octal escapes (\040 for space etc.).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &v); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// mountedAt returns the mounts stacked at target, last (topmost) first.
func mountedAt(target string) ([]mountInfo, error) {
	all, err := mounts()
	if err != nil {
		return nil, err
	}
	var out []mountInfo
	for i := len(all) - 1; i >= 0; i-- {
		if all[i].target == target {
			out = append(out, all[i])
		}
	}
	return out, nil
}

// IsMountPoint reports whether path is a mount point in our namespace.
func IsMountPoint(path string) (bool, error) {
	m, err := mountedAt(path)
	return len(m) > 0, err
}

// unmountAll unmounts everything stacked at target. Already unmounted is
// success. A busy mount is retried briefly (a sandbox's gofer may still be
// exiting) and then detached lazily so teardown never wedges.
func unmountAll(target string) error {
	for range 16 {
		m, err := mountedAt(target)
		if err != nil {
			return err
		}
		if len(m) == 0 {
			return nil
		}
		err = unmountRetry(target)
		if err != nil {
			return err
		}
	}
	return fmt.Errorf("unmount %s: still mounted after 16 unmounts", target)
}

func unmountRetry(target string) error {
	deadline := time.Now().Add(time.Second)
	for {
		err := unix.Unmount(target, unix.UMOUNT_NOFOLLOW)
		switch {
		case err == nil, errors.Is(err, unix.EINVAL), errors.Is(err, fs.ErrNotExist):
			return nil
		case errors.Is(err, unix.EBUSY) && time.Now().Before(deadline):
			time.Sleep(10 * time.Millisecond)
			continue
		case errors.Is(err, unix.EBUSY):
			if err := unix.Unmount(target, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW); err != nil && !errors.Is(err, unix.EINVAL) {
				return fmt.Errorf("unmount %s (detach): %w", target, err)
			}
			return nil
		default:
			return fmt.Errorf("unmount %s: %w", target, err)
		}
	}
}
