package oci

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

func specRootfs(t *testing.T) string {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "etc"), 0o755)
	os.WriteFile(filepath.Join(dir, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001:app:/home/app:/bin/sh\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "etc/group"), []byte("root:x:0:\nappgrp:x:1001:\nwheel:x:10:app\nstaff:x:50:root,app\n"), 0o644)
	return dir
}

func TestBuildArgs(t *testing.T) {
	img := v1.Config{Entrypoint: []string{"/entry"}, Cmd: []string{"serve", "--port=1"}}
	for _, tc := range []struct {
		name       string
		entry, arg []string
		want       []string
	}{
		{"image", nil, nil, []string{"/entry", "serve", "--port=1"}},
		{"args replace cmd", nil, []string{"x"}, []string{"/entry", "x"}},
		{"entrypoint drops cmd", []string{"/bin/sh"}, nil, []string{"/bin/sh"}},
		{"both", []string{"/bin/sh", "-c"}, []string{"echo"}, []string{"/bin/sh", "-c", "echo"}},
	} {
		got := buildArgs(SpecOptions{Image: img, Entrypoint: tc.entry, Args: tc.arg})
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %q want %q", tc.name, got, tc.want)
		}
	}
}

func TestMergeEnv(t *testing.T) {
	got := mergeEnv([]string{"A=1", "PATH=/bin", "B=2"}, []string{"B=3", "C=4", "A="})
	want := []string{"A=", "PATH=/bin", "B=3", "C=4"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q want %q", got, want)
	}
}

func TestResolveUser(t *testing.T) {
	root := specRootfs(t)
	for _, tc := range []struct {
		user      string
		uid, gid  uint32
		extra     []uint32
		home      string
		wantError bool
	}{
		{"", 0, 0, []uint32{50}, "/root", false},
		{"app", 1000, 1001, []uint32{10, 50}, "/home/app", false},
		{"app:wheel", 1000, 10, []uint32{50}, "/home/app", false},
		{"1000", 1000, 1001, []uint32{10, 50}, "/home/app", false},
		{"1000:5", 1000, 5, []uint32{10, 50}, "/home/app", false},
		{"4242:4343", 4242, 4343, nil, "/", false},
		{"4242", 4242, 0, nil, "/", false},
		{"ghost", 0, 0, nil, "", true},
		{"app:ghosts", 0, 0, nil, "", true},
		{"app:", 0, 0, nil, "", true},
	} {
		u, err := ResolveUser(root, tc.user)
		if tc.wantError {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("%q: err %v, want invalid argument", tc.user, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.user, err)
			continue
		}
		if u.UID != tc.uid || u.GID != tc.gid || !slices.Equal(u.AdditionalGids, tc.extra) || u.Home != tc.home {
			t.Errorf("%q: got %+v want uid %d gid %d extra %v home %s", tc.user, u, tc.uid, tc.gid, tc.extra, tc.home)
		}
	}
}

// An image whose /etc/passwd is an absolute symlink must not read the host's.
func TestResolveUserSymlinkStaysInRoot(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.MkdirAll(filepath.Join(root, "x"), 0o755)
	os.WriteFile(filepath.Join(root, "x/pw"), []byte("inroot:x:77:77::/:/bin/sh\n"), 0o644)
	os.Symlink("/x/pw", filepath.Join(root, "etc/passwd"))
	u, err := ResolveUser(root, "inroot")
	if err != nil || u.UID != 77 {
		t.Fatalf("got %+v %v, want uid 77 from the rootfs's own /x/pw", u, err)
	}
	os.Remove(filepath.Join(root, "etc/passwd"))
	os.Symlink("/etc/shadow", filepath.Join(root, "etc/passwd"))
	if _, err := ResolveUser(root, "root"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("host /etc/shadow must not be read: err %v", err)
	}
}

func TestBuildSpec(t *testing.T) {
	root := specRootfs(t)
	bundle := t.TempDir()
	vol := t.TempDir()
	o := SpecOptions{
		Image:       v1.Config{Cmd: []string{"/bin/sh"}, Env: []string{"PATH=/usr/bin", "A=1"}, WorkingDir: "/srv", User: "app"},
		Env:         []string{"A=2"},
		RootPath:    root,
		Hostname:    "pod1",
		Mounts:      []Mount{{Source: vol, Destination: "/data", ReadOnly: true}},
		CgroupsPath: "/pinacle/pod1",
		CPUs:        1.5, CPUShares: 1024, MemoryBytes: 256 << 20, PidsLimit: 512, NoFile: 4096,
		NetNSPath:   "/run/netns/p1",
		Network:     NetworkSandbox,
		ResolvConf:  []byte("nameserver 10.0.0.1\n"),
		Hosts:       []byte("127.0.0.1 localhost\n"),
		Terminal:    true,
		Annotations: map[string]string{"k": "v"},
	}
	s, err := NewBundle(bundle, o)
	if err != nil {
		t.Fatal(err)
	}
	p := s.Process
	if p.User.UID != 1000 || p.User.GID != 1001 || !slices.Equal(p.User.AdditionalGids, []uint32{10, 50}) {
		t.Errorf("user %+v", p.User)
	}
	if !slices.Equal(p.Env, []string{"PATH=/usr/bin", "A=2", "HOME=/home/app", "TERM=xterm"}) {
		t.Errorf("env %q", p.Env)
	}
	if p.Cwd != "/srv" || !p.Terminal || p.Rlimits[0].Hard != 4096 {
		t.Errorf("process %+v", p)
	}
	r := s.Linux.Resources
	if *r.CPU.Quota != 150000 || *r.CPU.Period != 100000 || r.CPU.Shares == nil || *r.CPU.Shares != 1024 || *r.Memory.Limit != 256<<20 || *r.Memory.Swap != 256<<20 || *r.Pids.Limit != 512 {
		t.Errorf("resources %+v", r)
	}
	var netns string
	for _, ns := range s.Linux.Namespaces {
		if ns.Type == "network" {
			netns = ns.Path
		}
	}
	if netns != "/run/netns/p1" {
		t.Errorf("netns %q", netns)
	}
	mounts := map[string]string{}
	for _, m := range s.Mounts {
		mounts[m.Destination] = m.Source
		if m.Destination == "/data" && !slices.Contains(m.Options, "ro") {
			t.Errorf("/data not ro: %v", m.Options)
		}
	}
	for dest, name := range map[string]string{"/etc/hostname": "hostname", "/etc/hosts": "hosts", "/etc/resolv.conf": "resolv.conf"} {
		if mounts[dest] != filepath.Join(bundle, name) {
			t.Errorf("mount %s = %q", dest, mounts[dest])
		}
		if _, err := os.Stat(filepath.Join(bundle, name)); err != nil {
			t.Error(err)
		}
	}
	if s.Annotations[AnnotationNetwork] != NetworkSandbox || s.Annotations["k"] != "v" {
		t.Errorf("annotations %v", s.Annotations)
	}
	if len(s.Process.Capabilities.Bounding) != len(DefaultCapabilities) || len(s.Linux.MaskedPaths) == 0 {
		t.Errorf("defaults missing")
	}
	back, err := ReadSpec(bundle)
	if err != nil || back.Hostname != "pod1" {
		t.Fatalf("ReadSpec: %v %v", back, err)
	}
}

func TestBuildSpecValidation(t *testing.T) {
	root := specRootfs(t)
	base := func() SpecOptions { return SpecOptions{Args: []string{"/bin/true"}, RootPath: root} }
	for _, tc := range []struct {
		field string
		mod   func(*SpecOptions)
	}{
		{"root.path", func(o *SpecOptions) { o.RootPath = "rel" }},
		{"args", func(o *SpecOptions) { o.Args = nil }},
		{"env", func(o *SpecOptions) { o.Env = []string{"NOEQUALS"} }},
		{"cpus", func(o *SpecOptions) { o.CPUs = -1 }},
		{"memory", func(o *SpecOptions) { o.MemoryBytes = 1024 }},
		{"pidsLimit", func(o *SpecOptions) { o.PidsLimit = -1 }},
		{"cgroupsPath", func(o *SpecOptions) { o.CgroupsPath = "pinacle/x" }},
		{"mounts[0].destination", func(o *SpecOptions) { o.Mounts = []Mount{{Source: root, Destination: "rel"}} }},
		{"network", func(o *SpecOptions) { o.Network = "bridge" }},
		{"workingDir", func(o *SpecOptions) { o.WorkingDir = "srv" }},
		{"user", func(o *SpecOptions) { o.User = "ghost" }},
	} {
		o := base()
		tc.mod(&o)
		_, err := BuildSpec(t.TempDir(), o)
		if !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: err %v, want invalid argument", tc.field, err)
			continue
		}
		if got := err.Error(); len(got) < len(tc.field) || got[:len(tc.field)] != tc.field {
			t.Errorf("%s: error %q does not start with the field name", tc.field, got)
		}
	}
}

// TestSetNetNS: only the network namespace's path changes; a bundle
// without one is an error, not a silent no-op.
func TestSetNetNS(t *testing.T) {
	bundle := t.TempDir()
	o := SpecOptions{Args: []string{"/bin/true"}, RootPath: specRootfs(t), NetNSPath: "/run/netns/old", Network: NetworkSandbox}
	before, err := NewBundle(bundle, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := SetNetNS(bundle, "/run/netns/new"); err != nil {
		t.Fatal(err)
	}
	after, err := ReadSpec(bundle)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, ns := range after.Linux.Namespaces {
		if ns.Type == specs.NetworkNamespace {
			paths = append(paths, ns.Path)
		}
	}
	if !slices.Equal(paths, []string{"/run/netns/new"}) {
		t.Fatalf("network namespace paths %v", paths)
	}
	for i := range after.Linux.Namespaces {
		after.Linux.Namespaces[i].Path = before.Linux.Namespaces[i].Path
	}
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("more than the path changed:\n%+v\n%+v", before, after)
	}
	after.Linux.Namespaces = slices.DeleteFunc(after.Linux.Namespaces, func(ns specs.LinuxNamespace) bool { return ns.Type == specs.NetworkNamespace })
	if err := WriteSpec(bundle, after); err != nil {
		t.Fatal(err)
	}
	if err := SetNetNS(bundle, "/run/netns/x"); err == nil {
		t.Fatal("a bundle without a network namespace: want an error")
	}
}
