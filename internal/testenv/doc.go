// Package testenv lets tests state their prerequisites (root, a binary, a kernel feature): missing ones skip a test on a developer's machine and fail it under CI=true.
package testenv
