package oci

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// ResolvedUser is a user spec resolved against a rootfs.
type ResolvedUser struct {
	UID, GID       uint32
	AdditionalGids []uint32
	Home           string
}

// ResolveUser resolves "name", "uid", "name:group", "uid:gid" (any mix)
// through rootfs's /etc/passwd and /etc/group, like Docker does. Numeric
// IDs need no entry; names must exist. Supplementary groups are the groups
// listing the user as a member.
func ResolveUser(rootfs, user string) (ResolvedUser, error) {
	passwd, err := readRootfsFile(rootfs, "etc/passwd")
	if err != nil {
		return ResolvedUser{}, err
	}
	group, err := readRootfsFile(rootfs, "etc/group")
	if err != nil {
		return ResolvedUser{}, err
	}
	return resolveUser(user, parseColonFile(passwd), parseColonFile(group))
}

func resolveUser(user string, passwd, group [][]string) (ResolvedUser, error) {
	if user == "" {
		user = "0"
	}
	u, g, hasGroup := strings.Cut(user, ":")
	if u == "" || (hasGroup && g == "") {
		return ResolvedUser{}, fmt.Errorf("user %q: want name, uid, name:group or uid:gid: %w", user, errdefs.ErrInvalidArgument)
	}
	res := ResolvedUser{Home: "/"}
	var name string
	if id, err := parseID(u); err == nil {
		res.UID = id
		for _, p := range passwd {
			if len(p) >= 7 && p[2] == u {
				name, res.Home = p[0], p[5]
				res.GID = mustID(p[3])
				break
			}
		}
	} else {
		found := false
		for _, p := range passwd {
			if len(p) >= 7 && p[0] == u {
				uid, err1 := parseID(p[2])
				gid, err2 := parseID(p[3])
				if err1 != nil || err2 != nil {
					return ResolvedUser{}, fmt.Errorf("user %q: bad /etc/passwd entry: %w", u, errdefs.ErrInvalidArgument)
				}
				name, res.UID, res.GID, res.Home, found = u, uid, gid, p[5], true
				break
			}
		}
		if !found {
			return ResolvedUser{}, fmt.Errorf("user %q: no such user in /etc/passwd: %w", u, errdefs.ErrInvalidArgument)
		}
	}
	if res.Home == "" {
		res.Home = "/"
	}
	if hasGroup {
		if id, err := parseID(g); err == nil {
			res.GID = id
		} else {
			found := false
			for _, e := range group {
				if len(e) >= 3 && e[0] == g {
					id, err := parseID(e[2])
					if err != nil {
						return ResolvedUser{}, fmt.Errorf("user %q: bad /etc/group entry for %q: %w", user, g, errdefs.ErrInvalidArgument)
					}
					res.GID, found = id, true
					break
				}
			}
			if !found {
				return ResolvedUser{}, fmt.Errorf("user %q: no such group %q in /etc/group: %w", user, g, errdefs.ErrInvalidArgument)
			}
		}
	}
	if name != "" {
		seen := map[uint32]bool{res.GID: true}
		for _, e := range group {
			if len(e) < 4 {
				continue
			}
			for _, m := range strings.Split(e[3], ",") {
				if m != name {
					continue
				}
				if id, err := parseID(e[2]); err == nil && !seen[id] {
					seen[id] = true
					res.AdditionalGids = append(res.AdditionalGids, id)
				}
			}
		}
	}
	return res, nil
}

func parseID(s string) (uint32, error) {
	v, err := strconv.ParseUint(s, 10, 32)
	return uint32(v), err
}

func mustID(s string) uint32 { v, _ := parseID(s); return v }

func parseColonFile(b []byte) [][]string {
	var out [][]string
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, strings.Split(line, ":"))
	}
	return out
}

// readRootfsFile reads rel inside rootfs with every symlink resolved inside
// rootfs (openat2 RESOLVE_IN_ROOT): an image's /etc/passwd may be a symlink
// to an absolute path, which must not name a host file. A missing file reads
// as empty.
func readRootfsFile(rootfs, rel string) ([]byte, error) {
	root, err := os.Open(rootfs)
	if err != nil {
		return nil, fmt.Errorf("rootfs %s: %w", rootfs, err)
	}
	defer root.Close()
	fd, err := unix.Openat2(int(root.Fd()), rel, &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if errors.Is(err, unix.ENOENT) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("rootfs %s: open %s: %w", rootfs, rel, err)
	}
	f := os.NewFile(uintptr(fd), rel)
	defer f.Close()
	if st, err := f.Stat(); err == nil && !st.Mode().IsRegular() {
		return nil, fmt.Errorf("rootfs %s: %s is not a regular file: %w", rootfs, rel, fs.ErrInvalid)
	}
	// passwd files are small; a cap keeps a hostile image from making us
	// read gigabytes.
	return io.ReadAll(io.LimitReader(f, 4<<20))
}
