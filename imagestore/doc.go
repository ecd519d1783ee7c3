// Package imagestore pulls, imports and stores OCI images on a node: blobs in
// an OCI image layout, each layer unpacked once (keyed by diffID) into the
// overlayfs form the rootfs code mounts as lower directories.
package imagestore
