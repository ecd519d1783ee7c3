package supervisor

import (
	"fmt"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// capNames are the capabilities a config may name in DropCapabilities:
// the ones beyond Docker's default set that the node could give init.
var capNames = map[string]uintptr{
	"CAP_SYS_ADMIN":  unix.CAP_SYS_ADMIN,
	"CAP_NET_ADMIN":  unix.CAP_NET_ADMIN,
	"CAP_SYS_PTRACE": unix.CAP_SYS_PTRACE,
}

// dropCapabilities removes caps from every capability set (bounding,
// effective, permitted, inheritable; ambient follows permitted) of every
// thread of init, so no process init starts from then on can hold them,
// and nothing in the pod can take them from init (ptrace of a process
// whose permitted set is larger than the tracer's needs CAP_SYS_PTRACE).
// It runs on all threads because capabilities are per thread and a
// service is forked from whichever thread the runtime picks; that needs a
// binary built without cgo, as init is.
func dropCapabilities(caps []string) error {
	if len(caps) == 0 {
		return nil
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("init: capget: %w", err)
	}
	for _, name := range caps {
		c, ok := capNames[name]
		if !ok {
			return invalid("dropCapabilities: %q: want one of CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_SYS_PTRACE", name)
		}
		if _, _, e := syscall.AllThreadsSyscall(unix.SYS_PRCTL, unix.PR_CAPBSET_DROP, c, 0); e != 0 {
			return fmt.Errorf("init: dropping %s from the bounding set: %w", name, e)
		}
		bit := uint32(1) << (c % 32)
		d := &data[c/32]
		d.Effective &^= bit
		d.Permitted &^= bit
		d.Inheritable &^= bit
	}
	if _, _, e := syscall.AllThreadsSyscall(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0); e != 0 {
		return fmt.Errorf("init: capset: %w", e)
	}
	return nil
}

// validateCapabilities checks the names in a config's DropCapabilities.
func validateCapabilities(caps []string) error {
	for _, name := range caps {
		if _, ok := capNames[name]; !ok {
			return invalid("dropCapabilities: %q: want one of CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_SYS_PTRACE", name)
		}
	}
	return nil
}
