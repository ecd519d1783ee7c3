// Package testimage builds small real OCI images (Debian's static busybox
// plus files a test supplies) and serves them from a loopback registry, for
// tests of the image store and for end-to-end tests.
package testimage
