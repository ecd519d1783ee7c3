package testimage

import (
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// BusyboxPath is where Debian's busybox-static puts the binary.
const BusyboxPath = "/bin/busybox"

// Applets get a symlink to busybox in /bin.
var Applets = []string{
	"sh", "ash", "ls", "cat", "echo", "sleep", "httpd", "wget", "env", "id", "ps",
	"mkdir", "rm", "rmdir", "cp", "mv", "ln", "true", "false", "test", "[", "grep",
	"sed", "awk", "head", "tail", "touch", "chmod", "chown", "hostname", "nc", "kill",
	"stat", "sort", "wc", "find", "tee", "printf", "pwd", "uname", "date", "dd",
	"du", "df", "whoami", "readlink", "basename", "dirname", "seq", "yes", "xargs",
	"md5sum", "sha256sum", "vi", "top", "free", "uptime", "ip", "ifconfig", "nslookup",
}

// Passwd and Group give root and a non-root user dev (1000:1000).
const (
	Passwd = "root:x:0:0:root:/root:/bin/sh\ndev:x:1000:1000:dev:/home/dev:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
	Group  = "root:x:0:\ndev:x:1000:\nnogroup:x:65534:\n"
)

var base struct {
	once  sync.Once
	layer v1.Layer
	err   error
}

// BaseFiles are the entries of the base layer: directories, busybox and its
// applet links, /etc/passwd and /etc/group.
func BaseFiles() ([]File, error) {
	bb, err := os.ReadFile(BusyboxPath)
	if err != nil {
		return nil, fmt.Errorf("testimage needs Debian's busybox-static (apt-get install busybox-static): %w", err)
	}
	files := []File{
		Dir("bin", 0o755), Dir("etc", 0o755), Dir("dev", 0o755), Dir("proc", 0o555), Dir("sys", 0o555),
		Dir("tmp", 0o777|fs.ModeSticky), Dir("root", 0o700), Dir("home", 0o755),
		{Path: "home/dev", Mode: fs.ModeDir | 0o755, Uid: 1000, Gid: 1000},
		Dir("usr", 0o755), Dir("usr/bin", 0o755), Dir("var", 0o755), Dir("var/tmp", 0o777|fs.ModeSticky),
		{Path: "bin/busybox", Mode: 0o755, Data: bb},
		Reg("etc/passwd", Passwd, 0o644), Reg("etc/group", Group, 0o644),
		Reg("etc/hostname", "pinacle\n", 0o644),
		Symlink("usr/bin/env", "/bin/busybox"),
	}
	for _, a := range Applets {
		files = append(files, Symlink("bin/"+a, "busybox"))
	}
	return files, nil
}

// BaseLayer is the busybox layer, built once per process: images built from
// it share it, as real images share a base.
func BaseLayer() (v1.Layer, error) {
	base.once.Do(func() {
		files, err := BaseFiles()
		if err != nil {
			base.err = err
			return
		}
		base.layer, base.err = Layer(files...)
	})
	return base.layer, base.err
}

// Config is the part of the image config tests set.
type Config struct {
	Entrypoint []string
	Cmd        []string
	Env        []string
	WorkingDir string
	User       string
	Labels     map[string]string
}

// Image builds base + one layer per element of layers, with cfg.
func Image(cfg Config, layers ...[]File) (v1.Image, error) {
	bl, err := BaseLayer()
	if err != nil {
		return nil, err
	}
	ls := []v1.Layer{bl}
	for _, files := range layers {
		l, err := Layer(files...)
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
	}
	return FromLayers(cfg, ls...)
}

// FromLayers builds an image of exactly these layers.
func FromLayers(cfg Config, layers ...v1.Layer) (v1.Image, error) {
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Created = v1.Time{Time: Epoch}
	env := cfg.Env
	if env == nil {
		env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	}
	cf.Config = v1.Config{
		Entrypoint: cfg.Entrypoint, Cmd: cfg.Cmd, Env: env,
		WorkingDir: cfg.WorkingDir, User: cfg.User, Labels: cfg.Labels,
	}
	return mutate.ConfigFile(img, cf)
}

// Busybox is the base image alone, running sh.
func Busybox() (v1.Image, error) { return Image(Config{Cmd: []string{"/bin/sh"}}) }
