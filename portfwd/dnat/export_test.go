package dnat

import "github.com/pinacle/pinacle-node/portfwd"

// SetAfterSave makes k call fn between reading the rules and writing them
// when a pod's rules go: the only way to start a connection inside that
// window on demand.
func SetAfterSave(k portfwd.KernelPath, fn func()) { k.(*kernel).afterSave = fn }
