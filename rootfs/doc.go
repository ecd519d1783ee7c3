// Package rootfs assembles a pod's root filesystem as a host overlayfs over
// read-only image layers, with a per-pod writable layer that can be capped
// in size by a loop-mounted ext4 image.
package rootfs
